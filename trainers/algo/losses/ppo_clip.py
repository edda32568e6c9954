"""`ppo_clip`: the clipped surrogate of PPO as used by GRPO and DAPO, with an optional dual clip.

Papers: PPO (Schulman et al. 2017, 1707.06347); GRPO (DeepSeekMath, 2402.03300); DAPO (2503.14476)
"clip-higher" = a wider upper range eps_high > eps_low; dual clip (Ye et al. 2020, 1912.09729).

    r    = exp(logp - old_logp)                                  per token
    L    = max(-A * r, -A * clip(r, 1 - eps_low, 1 + eps_high))
    dual clip (switch cfg.dual_clip), for A < 0 only:  L = min(L, -A * c)

Gradient: d L / d logp = -A * r where the unclipped term is the max, else 0. So a token with A > 0
whose ratio rose above 1 + eps_high, or with A < 0 whose ratio fell below 1 - eps_low, gets no
gradient at all ("clipped"); with the dual clip, a token with A < 0 and r > c gets none either.

Defaults in the papers' runs: GRPO eps 0.2 / 0.2, seq-mean-token-mean, KL k3 with beta 0.04;
DAPO eps_low 0.2, eps_high 0.28, token-mean, no KL (LossConfig.defaults_for("ppo_clip")).
Neighbours: `gppo` has the same forward value but keeps a bounded gradient on the clipped tokens;
`cispo` clips a stop-gradient weight instead of the objective; `gspo` clips a sequence ratio.

Metrics: `loss/clipfrac_low` = share of tokens with A < 0 and r < 1 - eps_low, `loss/clipfrac_high`
= A > 0 and r > 1 + eps_high (the zero-gradient tokens), `loss/clipfrac` their sum, and with the
dual clip `loss/clipfrac_dual` = A < 0 and r > c.
"""

from __future__ import annotations

import torch
from toolgym.trainers.algo.loss_api import (
    LossInputs,
    LossOutput,
    aggregate,
    clip_metrics,
    ratio,
    register_loss,
)
from toolgym.trainers.algo.loss_config import LossConfig


def clipped_surrogate(r: torch.Tensor, adv: torch.Tensor, cfg: LossConfig) -> torch.Tensor:
    """Per-token PPO loss [B, T] for ratio r and advantages adv (both [B, T]), dual clip included."""
    loss = torch.maximum(-adv * r, -adv * r.clamp(1.0 - cfg.eps_low, 1.0 + cfg.eps_high))
    if cfg.dual_clip:
        loss = torch.where(adv < 0, torch.minimum(loss, -adv * cfg.dual_clip_c), loss)
    return loss


def clip_masks(r: torch.Tensor, adv: torch.Tensor, cfg: LossConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, T] bool masks of the tokens PPO clips on the low side (A < 0) and the high side (A > 0)."""
    r = r.detach()
    return (adv < 0) & (r < 1.0 - cfg.eps_low), (adv > 0) & (r > 1.0 + cfg.eps_high)


def dual_clip_metric(r: torch.Tensor, inputs: LossInputs, cfg: LossConfig) -> dict[str, torch.Tensor]:
    if not cfg.dual_clip:
        return {}
    hit = (inputs.advantages < 0) & (r.detach() > cfg.dual_clip_c)
    return {"loss/clipfrac_dual": inputs.token_mean(hit.to(inputs.mask.dtype))}


@register_loss("ppo_clip")
def ppo_clip_loss(inputs: LossInputs, cfg: LossConfig) -> LossOutput:
    r = ratio(inputs)  # [B, T]
    loss = aggregate(clipped_surrogate(r, inputs.advantages, cfg), inputs, cfg)
    low, high = clip_masks(r, inputs.advantages, cfg)
    metrics = {**clip_metrics(low, high, inputs), **dual_clip_metric(r, inputs, cfg)}
    return LossOutput(loss, metrics)
