"""Terms added to any policy loss: SFT on fully correct samples, an entropy bonus, a KL penalty.

- SFT on positives (Klear-Reasoner, 2508.07629): `total = policy_loss + alpha * NLL(positives)`, the
  NLL token-mean over the samples whose score is the maximum (1.0); alpha 0.1 in their runs. It keeps
  imitating what already works while the RL term explores.
- Entropy bonus `-c * H` (H the full-vocabulary entropy per token, aggregated like the policy loss),
  with c either fixed or given per step by the adaptive controller of Skywork-OR1 (per-step driver
  state, so it lives in `toolgym.trainers.run.entropy_control`).
- KL to a reference policy (off in every recipe here), per token with x = ref_logp - logp:
      k1 = -x = log(pi / pi_ref)          k3 = exp(x) - x - 1 = pi_ref/pi - log(pi_ref/pi) - 1  (>= 0)
"""

from __future__ import annotations

import torch
from toolgym.trainers.algo.loss_api import LOG_RATIO_CLAMP, LossInputs


def kl_per_token(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str) -> torch.Tensor:
    """KL estimate of pi_theta from pi_ref per token [B, T] ("k1" or "k3"), with grad through logp."""
    x = (ref_logp.detach() - logp).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)  # log(pi_ref / pi)
    if kind == "k1":
        return -x
    if kind == "k3":
        return torch.exp(x) - x - 1.0
    raise ValueError(f"kl kind must be 'k1' or 'k3'; got {kind!r}")


def sft_nll(inputs: LossInputs) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, metric): token-mean NLL over positive samples, normalised by the mini-batch positive count."""
    if inputs.positive is None:
        raise ValueError("LossConfig.sft_coef > 0 needs LossInputs.positive "
                         "([S] bool: the fully correct samples)")
    pos_mask = inputs.mask * inputs.per_token(inputs.positive.to(inputs.mask.dtype))  # [B, T]
    if inputs.norm is not None:
        denom: torch.Tensor | float = max(inputs.norm.num_positive_tokens, 1e-8)
    else:
        denom = pos_mask.sum().clamp_min(1e-8)
    loss = -(inputs.logp * pos_mask).sum() / denom
    return loss, loss.detach()


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Full-vocabulary entropy H = logsumexp(z) - sum softmax(z) * z: [B, T, V] -> [B, T]."""
    logits = logits.float()
    log_z = torch.logsumexp(logits, dim=-1)  # [B, T]
    return log_z - (torch.softmax(logits, dim=-1) * logits).sum(-1)
