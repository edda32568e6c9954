"""Advantage estimators: a registry of `(AdvantageInputs, AdvantageConfig) -> Tensor [N] or [N, T]`.

Outcome rewards are one number per sample, and samples come in groups (G rollouts of one prompt), so
critic-free estimators compare a sample with its group (ALGORITHMS.md, "Advantages"):

    grpo                   (R_i - mean(R)) / (std(R) + 1e-6)    std unbiased (N-1); group of 1 -> 0
    dr_grpo                R_i - mean(R)                        (Dr. GRPO, 2503.20783: no std)
    rloo                   R_i - mean_{j != i} R_j = G/(G-1) (R_i - mean(R))   (Ahmadian et al. 2024)
    reinforce_pp           return-to-go of (R_i at the last loss token - kl_coef * KL_t), gamma = 1,
                           then whitened over all loss tokens of the batch: (A - mean) / sqrt(var + 1e-8)
                           (REINFORCE++, 2501.03262; var unbiased, as verl's masked_whiten)
    reinforce_pp_baseline  R_i - mean(R) then the same batch whitening

An estimator returns one value per episode ([N]) when the value is the same on all of the episode's
tokens -- every estimator above, reinforce_pp included when there is no per-token KL (the return-to-go
of a final reward is that reward on every token, and token-weighted whitening of per-episode values
needs only each episode's token count) -- or one per token ([N, T]) otherwise (reinforce_pp with
`kl_coef`). `episode_advantages` returns what the estimator gives (the trainer's form: a value per
episode, no per-token round trip); `compute_advantages` broadcasts it to [N, T], repeated on every token
of sample i where mask > 0 and 0 elsewhere. A group whose rewards are all equal gets exactly 0 (no
rounding noise amplified by a tiny std). Statistics are
computed in float64 and returned in float32. Whitening uses the whole batch passed in: call once per
rollout batch, not per micro-batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import torch

from toolgym.registry import Registry


@dataclass
class AdvantageInputs:
    rewards: torch.Tensor  # [N] float, one scalar reward per sample
    group_ids: torch.Tensor | Sequence[Hashable]  # [N] group of each sample (same prompt = same group)
    mask: torch.Tensor  # [N, T] loss mask (1 = token sampled by the policy)
    kl: torch.Tensor | None = None  # [N, T] per-token KL(pi || pi_ref) estimate (reinforce_pp only)

    def __post_init__(self) -> None:
        n = self.rewards.shape[0] if self.rewards.dim() == 1 else -1
        if n < 0 or self.mask.dim() != 2 or self.mask.shape[0] != n or len(self.group_ids) != n:
            raise ValueError(f"AdvantageInputs: rewards must be [N], group_ids [N], mask [N, T]; got rewards "
                             f"{tuple(self.rewards.shape)}, {len(self.group_ids)} group ids, mask "
                             f"{tuple(self.mask.shape)}")
        if self.kl is not None and self.kl.shape != self.mask.shape:
            raise ValueError(f"AdvantageInputs.kl must be [N, T] like mask {tuple(self.mask.shape)}; "
                             f"got {tuple(self.kl.shape)}")


@dataclass
class AdvantageConfig:
    name: str = "grpo"  # a registered estimator (see ADVANTAGES.names())
    std_eps: float = 1e-6  # grpo: added to the group std
    whiten_eps: float = 1e-8  # reinforce_pp*: added to the batch variance
    kl_coef: float = 0.0  # reinforce_pp: per-token reward -kl_coef * KL (needs AdvantageInputs.kl)

    def __post_init__(self) -> None:
        if self.name not in ADVANTAGES:
            raise ValueError(f"AdvantageConfig.name: {ADVANTAGES.unknown_message(self.name)}")
        for field in ("std_eps", "whiten_eps", "kl_coef"):
            value = getattr(self, field)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"AdvantageConfig.{field} must be a finite number >= 0; got {value!r}")
        if self.kl_coef and self.name != "reinforce_pp":
            raise ValueError(f"AdvantageConfig.kl_coef applies to name='reinforce_pp' only; "
                             f"got name={self.name!r}")


AdvantageFn = Callable[[AdvantageInputs, AdvantageConfig], torch.Tensor]
ADVANTAGES: Registry[AdvantageFn] = Registry("advantage estimator", entry_points="toolgym.advantages")


def register_advantage(name: str) -> Callable[[AdvantageFn], AdvantageFn]:
    """Decorator registering `fn(inputs: AdvantageInputs, cfg: AdvantageConfig) -> Tensor [N, T]`."""
    return ADVANTAGES.register(name)


def get_advantage(name: str) -> AdvantageFn:
    return ADVANTAGES.get(name)


def list_advantages() -> list[str]:
    return ADVANTAGES.names()


def episode_advantages(inputs: AdvantageInputs, cfg: AdvantageConfig | None = None) -> torch.Tensor:
    """The estimator's own output (float32): [N], one value per episode, or [N, T] per token."""
    cfg = cfg or AdvantageConfig()
    adv = get_advantage(cfg.name)(inputs, cfg)
    n = inputs.rewards.shape[0]
    if tuple(adv.shape) not in ((n,), tuple(inputs.mask.shape)):
        raise ValueError(f"advantage estimator {cfg.name!r} returned shape {tuple(adv.shape)}; it must be "
                         f"[N] = ({n},) or [N, T] = {tuple(inputs.mask.shape)}")
    return adv.float()


def compute_advantages(inputs: AdvantageInputs, cfg: AdvantageConfig | None = None) -> torch.Tensor:
    """Per-token advantages [N, T] (float32) by the estimator `cfg.name` (default grpo)."""
    adv = episode_advantages(inputs, cfg)
    per_token = adv[:, None] if adv.dim() == 1 else adv
    return (per_token * (inputs.mask > 0)).float()


@dataclass
class GroupStats:
    index: torch.Tensor  # [N] long, group of each sample in [0, G)
    count: torch.Tensor  # [N] float64, size of the sample's group
    centred: torch.Tensor  # [N] float64, R_i - mean(group), exactly 0 in all-equal groups
    std: torch.Tensor  # [N] float64, unbiased group std (0 for groups of 1)


def group_stats(rewards: torch.Tensor, group_ids: torch.Tensor | Sequence[Hashable]) -> GroupStats:
    """Per-sample statistics of its group, vectorised with index_add / scatter_reduce."""
    r = rewards.detach().to(torch.float64)  # [N]
    index = _group_index(group_ids, r.device)
    g = int(index.max()) + 1 if index.numel() else 0
    count = torch.zeros(g, dtype=r.dtype, device=r.device).index_add(0, index, torch.ones_like(r))
    mean = torch.zeros_like(count).index_add(0, index, r) / count.clamp_min(1)
    hi = torch.full_like(count, -math.inf).scatter_reduce(0, index, r, "amax")
    lo = torch.full_like(count, math.inf).scatter_reduce(0, index, r, "amin")
    centred = torch.where((hi == lo)[index], 0.0, r - mean[index])
    sq = torch.zeros_like(count).index_add(0, index, centred**2)
    std = torch.sqrt(sq / (count - 1).clamp_min(1))
    return GroupStats(index, count[index], centred, std[index])


def _group_index(group_ids: torch.Tensor | Sequence[Hashable], device: torch.device) -> torch.Tensor:
    if isinstance(group_ids, torch.Tensor):
        return torch.unique(group_ids.to(device), return_inverse=True)[1].reshape(-1)
    seen: dict[Hashable, int] = {}
    return torch.tensor([seen.setdefault(k, len(seen)) for k in group_ids], dtype=torch.long, device=device)


@register_advantage("grpo")
def grpo_advantages(inputs: AdvantageInputs, cfg: AdvantageConfig) -> torch.Tensor:
    st = group_stats(inputs.rewards, inputs.group_ids)
    return torch.where(st.count > 1, st.centred / (st.std + cfg.std_eps), 0.0)


@register_advantage("dr_grpo")
def dr_grpo_advantages(inputs: AdvantageInputs, cfg: AdvantageConfig) -> torch.Tensor:
    return group_stats(inputs.rewards, inputs.group_ids).centred


@register_advantage("rloo")
def rloo_advantages(inputs: AdvantageInputs, cfg: AdvantageConfig) -> torch.Tensor:
    st = group_stats(inputs.rewards, inputs.group_ids)
    return torch.where(st.count > 1, st.centred * st.count / (st.count - 1).clamp_min(1), 0.0)


@register_advantage("reinforce_pp")
def reinforce_pp_advantages(inputs: AdvantageInputs, cfg: AdvantageConfig) -> torch.Tensor:
    if not cfg.kl_coef:  # the return-to-go is R_i on every token: whiten per episode, token-weighted
        rewards = inputs.rewards.detach().to(torch.float64)
        return whiten_episodes(rewards, _token_counts(inputs), cfg.whiten_eps)
    m = (inputs.mask > 0).to(torch.float64)  # [N, T]
    t = m.shape[1]
    last = t - 1 - torch.argmax(m.flip(-1), dim=-1)  # [N] index of the last loss token
    token_reward = torch.zeros_like(m)
    token_reward[torch.arange(m.shape[0], device=m.device), last] = inputs.rewards.detach().to(torch.float64)
    token_reward = token_reward * m  # rows without loss tokens get nothing
    if inputs.kl is None:
        raise ValueError("AdvantageConfig.kl_coef > 0 needs AdvantageInputs.kl ([N, T] per-token KL)")
    token_reward = token_reward - cfg.kl_coef * inputs.kl.detach().to(torch.float64) * m
    returns = token_reward.flip(-1).cumsum(-1).flip(-1)  # [N, T] return-to-go, gamma = 1
    return whiten(returns, m, cfg.whiten_eps)


@register_advantage("reinforce_pp_baseline")
def reinforce_pp_baseline_advantages(inputs: AdvantageInputs, cfg: AdvantageConfig) -> torch.Tensor:
    centred = group_stats(inputs.rewards, inputs.group_ids).centred
    return whiten_episodes(centred, _token_counts(inputs), cfg.whiten_eps)


def _token_counts(inputs: AdvantageInputs) -> torch.Tensor:
    return (inputs.mask > 0).to(torch.float64).sum(-1)  # [N] loss tokens per episode


def whiten(values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps) over the tokens where mask > 0 (unbiased var); 0 elsewhere."""
    m = (mask > 0).to(values.dtype)
    n = m.sum()
    mean = (values * m).sum() / n.clamp_min(1)
    var = (((values - mean) * m) ** 2).sum() / (n - 1).clamp_min(1)
    return (values - mean) * torch.rsqrt(var + eps) * m


def whiten_episodes(values: torch.Tensor, counts: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """`whiten` of per-episode values repeated on each episode's `counts` [N] loss tokens, per episode:
    the token mean and unbiased token variance from the counts, (x_i - mean) / sqrt(var + eps)."""
    x, c = values.to(torch.float64), counts.to(torch.float64)
    n = c.sum()
    mean = (x * c).sum() / n.clamp_min(1)
    var = (c * (x - mean) ** 2).sum() / (n - 1).clamp_min(1)
    return torch.where(c > 0, (x - mean) * torch.rsqrt(var + eps), 0.0)
