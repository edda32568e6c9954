"""`cispo`: Clipped IS-weight Policy Optimization (MiniMax-M1, 2506.13585).

PPO-style clipping drops the gradient of clipped tokens; in long reasoning these are often the rare
"fork" tokens (however, wait, ...) whose probability moves most. CISPO clips the importance-sampling
weight instead, as a stop-gradient factor on a REINFORCE term, so every token keeps a gradient:

    r    = exp(logp - old_logp)
    w    = sg(clip(r, 1 - eps_low, 1 + eps_high))
    L    = -w * A * logp                          dL/dlogp = -A * w,  0 < w <= 1 + eps_high

The gradient is never zero (for A != 0) inside or outside the range, and its weight is capped at
1 + eps_high. Note the forward value is -w * A * logp, not comparable in scale with ppo_clip's.

Defaults in the paper's runs: no lower bound (eps_low large: LossConfig.defaults_for("cispo") sets
eps_low = 1, i.e. w >= 0), only eps_high tuned (its value is not published; 0.28 here, DAPO's), token-mean,
no KL. The dual clip does not apply (the weight is already capped).
Neighbours: `gppo` also keeps gradients on clipped tokens but with weight r (uncapped) for tokens
PPO would not clip, e.g. A < 0 with r = 100 gives weight 100 in GPPO (strong correction) and 1 + eps_high
in CISPO; `ppo_clip` gives 0 on clipped tokens.

Metrics: `loss/clipfrac_low` = share of tokens with r < 1 - eps_low, `loss/clipfrac_high` = r > 1 +
eps_high (whatever the sign of A: the weight is clipped, not the objective).
"""

from __future__ import annotations

from toolgym.trainers.algo.loss_api import (
    LossInputs,
    LossOutput,
    aggregate,
    clip_metrics,
    ratio,
    register_loss,
)
from toolgym.trainers.algo.loss_config import LossConfig


@register_loss("cispo")
def cispo_loss(inputs: LossInputs, cfg: LossConfig) -> LossOutput:
    r = ratio(inputs).detach()  # [B, T]
    weight = r.clamp(1.0 - cfg.eps_low, 1.0 + cfg.eps_high)  # [B, T], stop-gradient
    loss = aggregate(-(weight * inputs.advantages) * inputs.logp, inputs, cfg)
    metrics = clip_metrics(r < 1.0 - cfg.eps_low, r > 1.0 + cfg.eps_high, inputs)
    return LossOutput(loss, metrics)
