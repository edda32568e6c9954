"""Policy-loss plumbing: `LossInputs`, `LossOutput`, the loss registry and the aggregation modes.

Every policy loss is a function `(LossInputs, LossConfig) -> LossOutput` registered by name
(`@register_loss("gppo")`); it builds a per-token loss `L [B, T]` and reduces it with `aggregate`,
which implements the four `loss_agg_mode`s of ALGORITHMS.md as one weighted sum `sum(L * W)`:

    token-mean                W = mask / N_tok                       (global over the mini-batch)
    seq-mean-token-sum        W = mask / N_seq
    seq-mean-token-mean       W = mask / (n_i * N_seq)               n_i = sum of sample i's mask
    seq-mean-token-sum-norm   W = mask / cfg.norm_constant           (Dr. GRPO)

How the learner fills `LossInputs` for micro-batches (gradient accumulation)
--------------------------------------------------------------------------
1. For each mini-batch (one optimizer step), before any forward pass, compute the global counts:
       norm = LossNormalisers.total(LossNormalisers.from_batch(mb.mask, positive=mb.positive)
                                    for mb in micro_batches)
   Under DDP, all-reduce (sum) the three counts over ranks and multiply each rank's loss by the world
   size before `backward()` (DDP averages gradients over ranks).
2. For each micro-batch: `out = compute_policy_loss(LossInputs(logp, old_logp, advantages, mask,
   norm=norm, ...), cfg)`; `out.loss.backward()`. Do not divide by the number of micro-batches: the
   global normaliser already makes the sum of the micro-batch losses the mini-batch loss, so
   micro-batch 1 x accumulation 8 gives the same gradient as 8 x 1 in every mode.
3. Sum `out.metrics` over micro-batches (and ranks): each value is this micro-batch's share of the
   mini-batch value (see `LossOutput`).
A sample must not be split across micro-batches (per-sample modes and GSPO need it whole); one row
is one sample. Without `norm`, the counts of this batch are used.
`mask` may hold fractional loss weights; counts are then sums of weights.
The log-ratio logp - old_logp is clamped to +-20 before exp (as verl does): a token beyond that gets
no gradient from the ratio, instead of an inf / NaN loss.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from toolgym.trainers.algo.loss_config import AGG_MODES, LossConfig

from toolgym.registry import Registry

LOG_RATIO_CLAMP = 20.0  # |logp - old_logp| is clamped here before exp (exp(20) ~ 5e8), as verl does
_TINY = 1e-8  # floor of the normalisers: an empty micro-batch gives a zero loss, not NaN


@dataclass(frozen=True)
class LossNormalisers:
    """Global counts of one mini-batch (all micro-batches; all ranks under DDP)."""

    num_tokens: float  # sum of mask (loss weights)
    num_sequences: float  # samples with at least one weighted token
    num_positive_tokens: float = 0.0  # sum of mask over fully correct samples (SFT term)

    @classmethod
    def from_batch(cls, mask: torch.Tensor, *, positive: torch.Tensor | None = None) -> LossNormalisers:
        """Counts of one (micro-)batch of rows; `positive` [B] bool."""
        m = mask.detach().float()  # [B, T]
        per_sample = m.sum(-1)  # [B]
        pos = 0.0 if positive is None else float((per_sample * positive.to(m.dtype)).sum())
        return cls(float(m.sum()), float((per_sample > 0).sum()), pos)

    def __add__(self, other: LossNormalisers) -> LossNormalisers:
        return LossNormalisers(self.num_tokens + other.num_tokens, self.num_sequences + other.num_sequences,
                               self.num_positive_tokens + other.num_positive_tokens)

    @classmethod
    def total(cls, parts: Iterable[LossNormalisers]) -> LossNormalisers:
        out = cls(0.0, 0.0, 0.0)
        for part in parts:
            out = out + part
        return out


@dataclass
class LossInputs:
    """One (micro-)batch of per-token tensors, all [B, T] and aligned to the predicted tokens."""

    logp: torch.Tensor  # [B, T] log pi_theta(token), with grad
    old_logp: torch.Tensor  # [B, T] behaviour log-probs (rollout engine, or recomputed); detached here
    advantages: torch.Tensor  # [B, T] per-token advantages (0 where mask is 0)
    mask: torch.Tensor  # [B, T] loss weights: 1 = sampled by the policy, 0 = prompt/tool output/padding
    ref_logp: torch.Tensor | None = None  # [B, T] reference policy log-probs (KL term)
    entropy: torch.Tensor | None = None  # [B, T] full-vocabulary entropy, with grad for the bonus
    positive: torch.Tensor | None = None  # [B] bool, fully correct samples (SFT term)
    norm: LossNormalisers | None = None  # global counts of the mini-batch; None = this batch's own
    entropy_coef: float | None = None  # this step's entropy coefficient (AdaptiveEntropyController)
    is_weight: torch.Tensor | None = None  # [B, T] behaviour importance weights (behaviour_is.py); detached
    _cache: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        shape = tuple(self.logp.shape)
        if len(shape) != 2:
            raise ValueError(f"LossInputs.logp must be [B, T]; got shape {shape}")
        for name in ("old_logp", "advantages", "mask", "ref_logp", "entropy", "is_weight"):
            value = getattr(self, name)
            if value is not None and tuple(value.shape) != shape:
                raise ValueError(f"LossInputs.{name} must have the shape of logp {shape}; "
                                 f"got {tuple(value.shape)}")
        self.old_logp = self.old_logp.detach()
        self.advantages = self.advantages.detach().to(self.logp.dtype)
        self.mask = self.mask.detach().to(self.logp.dtype)
        if self.is_weight is not None:
            self.is_weight = self.is_weight.detach().to(self.logp.dtype)
        rows = shape[0]
        if self.positive is not None and tuple(self.positive.shape) != (rows,):
            raise ValueError(f"LossInputs.positive must be [{rows}] (one flag per sample); "
                             f"got {tuple(self.positive.shape)}")

    def sample_sum(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample sum of x * mask: [B, T] -> [B]."""
        return (x * self.mask).sum(-1)

    def per_token(self, per_sample: torch.Tensor) -> torch.Tensor:
        """Broadcast a per-sample value [B] to its tokens: [B, 1]."""
        return per_sample[:, None]

    def sample_tokens(self) -> torch.Tensor:
        """n_i, the sum of each sample's mask, broadcast to its tokens ([B, 1])."""
        if "n" not in self._cache:
            self._cache["n"] = self.per_token(self.sample_sum(torch.ones_like(self.mask)))
        return self._cache["n"]

    def num_tokens(self) -> torch.Tensor | float:
        """N_tok: the global count if given, else this batch's (floored to avoid 0/0)."""
        if self.norm is not None:
            return max(self.norm.num_tokens, _TINY)
        return self.mask.sum().clamp_min(_TINY)

    def num_sequences(self) -> torch.Tensor | float:
        if self.norm is not None:
            return max(self.norm.num_sequences, _TINY)
        return (self.sample_sum(torch.ones_like(self.mask)) > 0).sum().to(self.mask.dtype).clamp_min(_TINY)

    def token_mean(self, x: torch.Tensor) -> torch.Tensor:
        """sum(x * mask) / N_tok (detached): this micro-batch's share of the mini-batch token mean."""
        return (x.detach() * self.mask).sum() / self.num_tokens()


@dataclass
class LossOutput:
    """A scalar to `backward()` and metrics, each value this micro-batch's share of the mini-batch value.

    Summing `metrics` over the micro-batches of a mini-batch gives: token means exactly
    (`loss/clipfrac*`, `loss/approx_kl`, `actor/entropy`, `adv/mean`); the mini-batch loss for
    `loss/policy`, `loss/sft`, `loss/kl`; and a token-weighted mean of the micro-batch values for
    `adv/std` (exact with one micro-batch). Values are detached 0-d tensors: the caller reads them all
    with one device sync (`floats()`, or the learner's own once per micro-batch).
    """

    loss: torch.Tensor  # [] scalar
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)

    def floats(self) -> dict[str, float]:
        """The metrics as Python floats (one device sync)."""
        return to_floats(self.metrics)


LossFn = Callable[[LossInputs, LossConfig], LossOutput]
LOSSES: Registry[LossFn] = Registry(
    "loss", builtins=["toolgym.trainers.algo.losses.*"], entry_points="toolgym.losses")


def register_loss(name: str) -> Callable[[LossFn], LossFn]:
    """Decorator registering `fn(inputs: LossInputs, cfg: LossConfig) -> LossOutput` as `name`."""
    return LOSSES.register(name)


def get_loss(name: str) -> LossFn:
    """The registered loss `name`; an unknown name raises ValueError listing the registered ones."""
    return LOSSES.get(name)


def list_losses() -> list[str]:
    return LOSSES.names()


def token_weights(inputs: LossInputs, cfg: LossConfig) -> torch.Tensor:
    """W [B, T] such that the aggregated loss is sum(L * W) (see the module docstring)."""
    key = f"w:{cfg.loss_agg_mode}:{cfg.norm_constant}"
    if key not in inputs._cache:
        m, mode = inputs.mask, cfg.loss_agg_mode
        if mode == "token-mean":
            w = m / inputs.num_tokens()
        elif mode == "seq-mean-token-sum":
            w = m / inputs.num_sequences()
        elif mode == "seq-mean-token-mean":
            w = m / (inputs.sample_tokens().clamp_min(_TINY) * inputs.num_sequences())
        elif mode == "seq-mean-token-sum-norm":
            w = m / float(cfg.norm_constant or 1.0)
        else:
            raise ValueError(f"loss_agg_mode must be one of {', '.join(AGG_MODES)}; got {mode!r}")
        inputs._cache[key] = w  # [B, T]
    return inputs._cache[key]


def aggregate(loss_tok: torch.Tensor, inputs: LossInputs, cfg: LossConfig) -> torch.Tensor:
    """Reduce a per-token policy loss [B, T] to the scalar of `cfg.loss_agg_mode`, each token weighted
    by its behaviour importance weight when the inputs carry one (`loss.behaviour_is`)."""
    if inputs.is_weight is not None:
        loss_tok = loss_tok * inputs.is_weight
    return (loss_tok * token_weights(inputs, cfg)).sum()


def ratio(inputs: LossInputs) -> torch.Tensor:
    """r = exp(logp - old_logp) [B, T], the log-ratio clamped to +-LOG_RATIO_CLAMP."""
    return torch.exp((inputs.logp - inputs.old_logp).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP))


def clip_metrics(low: torch.Tensor, high: torch.Tensor, inputs: LossInputs) -> dict[str, torch.Tensor]:
    """Token shares of clipped tokens: `low`/`high` [B, T] bool."""
    lo, hi = inputs.token_mean(low.to(inputs.mask.dtype)), inputs.token_mean(high.to(inputs.mask.dtype))
    return {"loss/clipfrac_low": lo, "loss/clipfrac_high": hi, "loss/clipfrac": lo + hi}


def to_floats(metrics: dict[str, torch.Tensor | float]) -> dict[str, float]:
    """Detach metric tensors to Python floats with a single device sync."""
    keys = [k for k, v in metrics.items() if isinstance(v, torch.Tensor)]
    values = torch.stack([metrics[k].detach().float().reshape(()) for k in keys]).tolist() if keys else []
    out = {k: float(v) for k, v in metrics.items() if not isinstance(v, torch.Tensor)}
    out.update(zip(keys, values, strict=True))
    return out
