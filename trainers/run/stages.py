"""The data stages between rollout and learner: filter groups, compute advantages, build samples.

    groups   = group_episodes(episodes)            errored episodes leave their group (zero weight)
    kept     = GroupFilter on binary success       zero-variance groups dropped (refilled by the driver)
    kl       = reward_kl(kept, reference)          reinforce_pp's KL in the reward (algo.kl_coef > 0)
    adv      = advantage registry over kept groups [N, R] per response token
    samples  = token-aligned learner samples       truncated episodes masked when rollout.mask_truncated

Kept separate from the driver so that each stage is a small function with a test of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from toolgym.agents.episode import Episode
from toolgym.envs.types import Outcome
from toolgym.trainers.algo.advantages import AdvantageConfig, AdvantageInputs, episode_advantages
from toolgym.trainers.config.schema import TrainConfig
from toolgym.trainers.learner.batching import Sample, sample_from_episode


def outcomes(episodes: Sequence[Episode]) -> list[Outcome]:
    """What the curriculum learns from: every finished, non-errored episode."""
    return [Outcome(e.task_id, e.index, bool(e.success), float(e.reward), e.split)
            for e in episodes if e.finish_reason != "error"]


def group_episodes(episodes: Sequence[Episode]) -> list[list[Episode]]:
    """Groups by group_id, in order; errored episodes are left out (a rollout error is masked, not fatal)."""
    groups: dict[str, list[Episode]] = {}
    for e in episodes:
        bucket = groups.setdefault(e.group_id, [])
        if e.finish_reason != "error" and e.response_ids:
            bucket.append(e)
    return [g for g in groups.values() if g]


def response_mask(flat: Sequence[Episode]) -> torch.Tensor:
    """[N, R] loss masks of the episodes' response tokens, right-padded with 0."""
    mask = torch.zeros((len(flat), max(len(e.response_ids) for e in flat)))
    for i, e in enumerate(flat):
        mask[i, : len(e.loss_mask)] = torch.tensor(e.loss_mask, dtype=torch.float32)
    return mask


def reward_kl(groups: Sequence[Sequence[Episode]],
              reference_logprobs: Callable[[list[Sample]], list[torch.Tensor]]) -> torch.Tensor:
    """[N, R] per-token KL estimate log pi_old - log pi_ref (k1) on each episode's policy tokens, 0
    elsewhere: the behaviour log-probs against the frozen reference's (`Learner.reference_logprobs`)."""
    flat = [e for g in groups for e in g]
    ref = reference_logprobs([sample_from_episode(e, 0.0) for e in flat])  # [L-1] each, target-aligned
    mask = response_mask(flat)
    kl = torch.zeros_like(mask)
    for i, e in enumerate(flat):
        start = len(e.prompt_ids) - 1  # target index of the first response token
        n = len(ref[i]) - start  # the sample ends at the last policy token (sample_from_episode)
        kl[i, :n] = torch.tensor(e.logprobs[:n], dtype=torch.float32) - ref[i][start:].float()
    return kl * mask


def mean_policy_kl(groups: Sequence[Sequence[Episode]], kl: torch.Tensor) -> float:
    """Mean of `reward_kl`'s [N, R] estimate (0 off the policy tokens) over the groups' policy tokens."""
    tokens = sum(sum(e.loss_mask) for g in groups for e in g)
    return float(kl.sum()) / max(tokens, 1)


def advantages(groups: Sequence[Sequence[Episode]], cfg: TrainConfig,
               kl: torch.Tensor | None = None) -> list[float | list[float]]:
    """The advantage of every episode of `groups` (flattened in order): one value per episode from the
    group estimators, a list per response token from a per-token one (reinforce_pp with `kl`, the
    [N, R] per-token KL of `reward_kl`, when algo.kl_coef > 0)."""
    flat = [e for g in groups for e in g]
    if not flat:
        return []
    mask = response_mask(flat)  # [N, R]
    rewards = torch.tensor([float(e.reward) for e in flat])  # [N]
    inputs = AdvantageInputs(rewards=rewards, group_ids=[e.group_id for e in flat], mask=mask, kl=kl)
    algo = cfg.algo
    estimator = AdvantageConfig(name=algo.advantage, std_eps=algo.std_eps, whiten_eps=algo.whiten_eps,
                                kl_coef=algo.kl_coef)
    adv = episode_advantages(inputs, estimator)  # [N] or [N, R]
    if adv.dim() == 1:
        return adv.tolist()
    return [adv[i, : len(e.response_ids)].tolist() for i, e in enumerate(flat)]


def build_samples(groups: Sequence[Sequence[Episode]], cfg: TrainConfig,
                  kl: torch.Tensor | None = None) -> list[Sample]:
    """Learner samples of the kept groups (advantages computed over exactly these groups)."""
    flat = [e for g in groups for e in g]
    per_token = advantages(groups, cfg, kl)
    samples = []
    for e, adv in zip(flat, per_token, strict=True):
        weight = 0.0 if (cfg.rollout.mask_truncated and e.truncated) else 1.0
        samples.append(sample_from_episode(e, adv, weight=weight))
    return samples
