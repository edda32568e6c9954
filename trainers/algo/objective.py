"""`compute_policy_loss`: the learner's single entry point — the chosen loss plus the extra terms.

    total = policy_loss(cfg.name)                      registry, aggregated by cfg.loss_agg_mode
          - c * agg(H)                                 entropy bonus, c fixed or adaptive (loss_terms)
          + cfg.kl_coef * agg(KL_k1|k3(pi || pi_ref))   optional
          + cfg.sft_coef * NLL(positives)               SFT on fully correct samples (Klear)

All terms share the global normalisers of `LossInputs.norm`, so the micro-batch invariance of the
policy loss holds for the total (see toolgym.trainers.algo.loss_api for how to fill LossInputs).

Metrics (each value is this micro-batch's share; sum them over micro-batches, see LossOutput):
    loss/policy, loss/clipfrac_low, loss/clipfrac_high, loss/clipfrac (+ loss/clipfrac_dual with the
    dual clip), loss/approx_kl (k3 estimate of KL(pi_old || pi_theta): mean of (r - 1) - log r),
    actor/entropy (when LossInputs.entropy is given), loss/kl (when ref_logp is given), loss/sft (when
    sft_coef > 0), adv/mean, adv/std (over the tokens in the loss), loss/total. The entropy coefficient
    in use is the driver's `actor/entropy_coef`. Values are detached tensors (`LossOutput.floats()`).
"""

from __future__ import annotations

import torch
from toolgym.trainers.algo.loss_api import (
    LOG_RATIO_CLAMP,
    LossInputs,
    LossOutput,
    get_loss,
    token_weights,
)
from toolgym.trainers.algo.loss_config import LossConfig
from toolgym.trainers.algo.terms import kl_per_token, sft_nll


def compute_policy_loss(inputs: LossInputs, cfg: LossConfig) -> LossOutput:
    """The total loss of one (micro-)batch and its metrics."""
    policy = get_loss(cfg.name)(inputs, cfg)
    loss = policy.loss
    metrics: dict[str, torch.Tensor] = {"loss/policy": policy.loss.detach(), **policy.metrics}
    w = token_weights(inputs, cfg)  # [B, T]
    loss = loss + _entropy_term(inputs, cfg, w, metrics)
    loss = loss + _kl_term(inputs, cfg, w, metrics)
    if cfg.sft_coef > 0:
        sft, metrics["loss/sft"] = sft_nll(inputs)
        loss = loss + cfg.sft_coef * sft
    metrics.update(_ratio_and_advantage_metrics(inputs))
    metrics["loss/total"] = loss.detach()
    return LossOutput(loss, metrics)


def entropy_coef_for(inputs: LossInputs, cfg: LossConfig) -> float:
    """The entropy coefficient of this step: LossInputs.entropy_coef if given, else cfg.entropy_coef."""
    if inputs.entropy_coef is not None:
        return float(inputs.entropy_coef)
    if cfg.entropy_target is not None:
        raise ValueError("adaptive entropy is on (LossConfig.entropy_target is set): pass "
                         "LossInputs.entropy_coef = AdaptiveEntropyController.coef_to_apply for this step")
    return cfg.entropy_coef


def _entropy_term(inputs: LossInputs, cfg: LossConfig, w: torch.Tensor,
                  metrics: dict[str, torch.Tensor]) -> torch.Tensor | float:
    coef = entropy_coef_for(inputs, cfg)
    if inputs.entropy is not None:
        metrics["actor/entropy"] = inputs.token_mean(inputs.entropy)
    if coef == 0:
        return 0.0
    if inputs.entropy is None:
        raise ValueError(f"an entropy coefficient of {coef} needs LossInputs.entropy ([B, T] full-vocabulary "
                         "entropy with grad, e.g. loss_terms.entropy_from_logits)")
    return -coef * (inputs.entropy * w).sum()


def _kl_term(inputs: LossInputs, cfg: LossConfig, w: torch.Tensor,
             metrics: dict[str, torch.Tensor]) -> torch.Tensor | float:
    if inputs.ref_logp is None:
        if cfg.kl_coef > 0:
            raise ValueError(f"LossConfig.kl_coef = {cfg.kl_coef} needs LossInputs.ref_logp "
                             "(reference log-probs)")
        return 0.0
    kl = (kl_per_token(inputs.logp, inputs.ref_logp, cfg.kl_type) * w).sum()
    metrics["loss/kl"] = kl.detach()
    return cfg.kl_coef * kl if cfg.kl_coef > 0 else 0.0


def _ratio_and_advantage_metrics(inputs: LossInputs) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        x = (inputs.logp - inputs.old_logp).detach().clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)  # log r, [B, T]
        approx_kl = inputs.token_mean(torch.expm1(x) - x)  # (r - 1) - log r >= 0
        m, adv = inputs.mask, inputs.advantages
        local_n = m.sum().clamp_min(1e-8)
        mean = (adv * m).sum() / local_n
        std = torch.sqrt((((adv - mean) ** 2) * m).sum() / local_n)
        share = inputs.token_mean(torch.ones_like(m))  # local tokens / N_tok
    return {"loss/approx_kl": approx_kl, "adv/mean": mean * share, "adv/std": std * share}
