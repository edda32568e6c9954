"""`gspo`: Group Sequence Policy Optimization (Qwen, 2507.18071), in its token form (GSPO-token).

The reward is given per sequence, so GSPO clips a per-sequence importance ratio — the geometric mean
of the token ratios — instead of each token's ratio, which is noisy over long responses and for MoE:

    s_i   = exp( mean_t (logp_t - old_logp_t) )          over sample i's masked tokens
    L_i   = max(-A_i * s_i, -A_i * clip(s_i, 1 - eps_low, 1 + eps_high))     (sequence form)
    J     = mean_i L_i

Token form (lets the advantage vary per token; equal to the sequence form when it does not):

    s_it  = sg(s_i) * exp(logp_t - sg(logp_t))           value s_i, d s_it / d logp_t = s_i
    L_it  = max(-A_it * s_it, -A_it * clip(s_it, ...)),  aggregated with seq-mean-token-mean

With seq-mean-token-mean, sum_t L_it / n_i = L_i in value and d/dlogp_t = -A_i * s_i / n_i in both forms
(tests/test_losses_gspo.py checks value and gradient). Other aggregation modes are allowed but are no
longer the paper's objective. With the dual clip switched on it applies to s_it as in ppo_clip.

Defaults in the paper's runs: eps_low 3e-4, eps_high 4e-4 (ranges are tiny because s_i averages the
log-ratios), seq-mean-token-mean, no KL (LossConfig.defaults_for("gspo")).
Neighbours: `ppo_clip` clips each token's ratio; `gppo`/`cispo` keep gradients of clipped tokens,
GSPO drops whole sequences from the gradient when their ratio leaves the range.

Metrics: `loss/clipfrac_low` / `loss/clipfrac_high` = share of tokens whose sequence is clipped
(A < 0 and s_i < 1 - eps_low / A > 0 and s_i > 1 + eps_high).
"""

from __future__ import annotations

import torch
from toolgym.trainers.algo.loss_api import (
    LOG_RATIO_CLAMP,
    LossInputs,
    LossOutput,
    aggregate,
    clip_metrics,
    register_loss,
)
from toolgym.trainers.algo.loss_config import LossConfig
from toolgym.trainers.algo.losses.ppo_clip import clip_masks, clipped_surrogate, dual_clip_metric


def sequence_log_ratio(inputs: LossInputs) -> torch.Tensor:
    """log s_i broadcast to the sample's tokens ([B, 1] rows or [B, T] packed), detached."""
    delta = (inputs.logp - inputs.old_logp).detach()  # [B, T]
    per_sample = inputs.sample_sum(delta)  # [S]
    log_s = inputs.per_token(per_sample) / inputs.sample_tokens().clamp_min(1e-8)
    return log_s.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)


@register_loss("gspo")
def gspo_loss(inputs: LossInputs, cfg: LossConfig) -> LossOutput:
    log_s = sequence_log_ratio(inputs)  # [B, 1] or [B, T]
    s_tok = torch.exp(log_s + inputs.logp - inputs.logp.detach())  # [B, T], value s_i, grad s_i
    adv = inputs.advantages
    loss = aggregate(clipped_surrogate(s_tok, adv, cfg), inputs, cfg)
    low, high = clip_masks(s_tok, adv, cfg)
    metrics = {**clip_metrics(low, high, inputs), **dual_clip_metric(s_tok, inputs, cfg)}
    return LossOutput(loss, metrics)
