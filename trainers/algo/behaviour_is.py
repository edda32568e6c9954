"""Behaviour importance weights: correct for tokens the learner's policy did not generate.

The loss's ratio r = pi_theta / pi_old is a true importance ratio only if pi_old generated the tokens.
Two things break that: the engine's numerics differ from the learner's (bf16 vLLM, top_p applied
after the log-probs), and, with `run.max_staleness` K > 0, the tokens come from weights up to K
updates old. With `loss.behaviour_is` on, the learner recomputes pi_old with its own weights before
the update (the "proximal" policy) and weights each policy token's loss by

    rho   = pi_old(token) / pi_behaviour(token)     (learner now / the engine that generated it)
    truncate:  w = min(rho, C)                      TIS (Yao, Liu et al. 2025, "Your efficient RL
                                                    framework secretly brings you off-policy RL
                                                    training"; also AReaL's decoupled PPO objective,
                                                    Fu et al. 2025, 2505.24298, which truncates none)
    mask:      w = rho if rho <= C else 0           MIS, the masked variant of the blog's later parts:
                                                    a token far off-policy gives no gradient at all

C = `loss.behaviour_is_cap` (2 in TIS's runs). The clip of the loss then acts around pi_old, the
learner's own policy, whatever the rollout's lag; w is detached and multiplies the per-token policy
loss only (not the SFT, entropy or KL terms), and the normalisers still count tokens, as TIS does.
"""

from __future__ import annotations

import torch

MODES = ("off", "truncate", "mask")
_LOG_CLAMP = 20.0  # as loss_api.LOG_RATIO_CLAMP: exp of a larger gap would overflow


def behaviour_weights(proximal: torch.Tensor, behaviour: torch.Tensor, mode: str,
                      cap: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token weights w and a bool "capped" flag (truncated or masked), same shape as the inputs:
    `proximal` the learner's log-probs before the update, `behaviour` the generating engine's."""
    rho = torch.exp((proximal - behaviour).clamp(-_LOG_CLAMP, _LOG_CLAMP))
    capped = rho > cap
    if mode == "truncate":
        return rho.clamp(max=cap), capped
    if mode == "mask":
        return torch.where(capped, torch.zeros_like(rho), rho), capped
    raise ValueError(f"behaviour importance weights: mode must be truncate or mask; got {mode!r}")


def weight_metrics(weights: list[torch.Tensor], capped: list[torch.Tensor],
                   masks: list[torch.Tensor]) -> dict[str, float]:
    """`loss/behaviour_is_mean` (mean weight) and `loss/behaviour_is_capped` (share of tokens truncated
    or masked) over the policy tokens (loss weights as the mask)."""
    tokens = sum(float(m.sum()) for m in masks)
    if not tokens:
        return {"loss/behaviour_is_mean": 1.0, "loss/behaviour_is_capped": 0.0}
    mean = sum(float((w * m).sum()) for w, m in zip(weights, masks, strict=True)) / tokens
    share = sum(float((c.float() * m).sum()) for c, m in zip(capped, masks, strict=True)) / tokens
    return {"loss/behaviour_is_mean": mean, "loss/behaviour_is_capped": share}
