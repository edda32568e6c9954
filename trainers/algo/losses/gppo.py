"""`gppo`: Gradient-Preserving clipping Policy Optimization (Klear-Reasoner, 2508.07629).

PPO's clip zeroes the gradient of two kinds of tokens: good tokens (A > 0) whose probability already
rose past 1 + eps_high — exploration signal lost — and bad tokens (A < 0) whose probability already
fell below 1 - eps_low — slower correction of negative samples. GPPO keeps PPO's forward value but
lets a bounded gradient through those tokens, by writing the bound as `bound / sg(r) * r`:

    r    = exp(logp - old_logp)
    L    = -A * clamp(r, beta1 * (1 - eps_low) / sg(r) * r, beta2 * (1 + eps_high) / sg(r) * r)
    L    = max(L, -A * r)                 (as in PPO: only the pessimistic side is clipped)
    dual clip (switch cfg.dual_clip), for A < 0:  L = min(L, -A * c)

Gradient weight F in  dL/dlogp = -A * F:

    case                                   F
    A < 0 and r < 1 - eps_low              beta1 * (1 - eps_low)      (ppo_clip: 0)
    A > 0 and r > 1 + eps_high             beta2 * (1 + eps_high)     (ppo_clip: 0)
    A < 0 and r > c, dual clip on          0                          (as ppo_clip)
    otherwise                              r                          (as ppo_clip)

With beta1 = beta2 = 1 the forward value equals ppo_clip's; with beta != 1 the value on those tokens is
scaled by beta too. `only_high` keeps the preserved gradient on the high side only; the low side is
then exactly ppo_clip's (constant value -A * (1 - eps_low), F = 0).
Implementation: `L = -A * r * g` with a detached per-token factor g = beta * bound / sg(r) on the two
clipped sides and 1 elsewhere — one extra multiply over ppo_clip, no Python loops.

Defaults in the paper's runs: eps_low 0.2, eps_high 0.28, dual clip c = 10, token-mean, no KL, no
entropy term, SFT on positives alpha 0.1 (LossConfig.defaults_for("gppo")); beta1 in 0.25-0.5 and
beta2 = 1 are suggested for other models. The released code errs on the only_high path; ours is
tested on every path (tests/test_losses_gppo.py).
Neighbours: `ppo_clip` (same value, zero gradient when clipped); `cispo` also never zeroes the
gradient but weights log pi by a clipped stop-gradient ratio, so its weight is capped at 1 + eps_high
even for A < 0 and large r, where GPPO's weight is r (a strong correction) unless the dual clip cuts it.

Metrics: as ppo_clip — `loss/clipfrac_low` / `loss/clipfrac_high` count the tokens that get the
preserved gradient; `loss/clipfrac_dual` (dual clip on) the tokens with A < 0 and r > c.
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
from toolgym.trainers.algo.losses.ppo_clip import clip_masks, dual_clip_metric


def gppo_token_loss(r: torch.Tensor, adv: torch.Tensor, cfg: LossConfig,
                    low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Per-token GPPO loss [B, T] for ratio r (with grad), advantages adv and PPO's clip masks low/high."""
    r_sg = r.detach()
    with torch.no_grad():
        g = torch.where(high, (cfg.beta2 * (1.0 + cfg.eps_high)) / r_sg, 1.0)  # [B, T]
        g = torch.where(low, 0.0 if cfg.only_high else (cfg.beta1 * (1.0 - cfg.eps_low)) / r_sg, g)
    surrogate = r * g  # value beta * bound where clipped, gradient beta * bound there; r elsewhere
    if cfg.only_high:  # low side as ppo_clip: constant value (1 - eps_low), no gradient
        surrogate = surrogate + low.to(r.dtype) * (1.0 - cfg.eps_low)
    loss = -adv * surrogate
    if cfg.dual_clip:
        loss = torch.where(adv < 0, torch.minimum(loss, -adv * cfg.dual_clip_c), loss)
    return loss


@register_loss("gppo")
def gppo_loss(inputs: LossInputs, cfg: LossConfig) -> LossOutput:
    r = ratio(inputs)  # [B, T]
    low, high = clip_masks(r, inputs.advantages, cfg)  # [B, T] bool
    loss = aggregate(gppo_token_loss(r, inputs.advantages, cfg, low, high), inputs, cfg)
    metrics = {**clip_metrics(low, high, inputs), **dual_clip_metric(r, inputs, cfg)}
    return LossOutput(loss, metrics)
