"""Terms added to any policy loss: SFT on fully correct samples, an entropy bonus, a KL penalty.

- SFT on positives (Klear-Reasoner, 2508.07629): `total = policy_loss + alpha * NLL(positives)`, the
  NLL token-mean over the samples whose score is the maximum (1.0); alpha 0.1 in their runs. It keeps
  imitating what already works while the RL term explores.
- Entropy bonus `-c * H` (H the full-vocabulary entropy per token, aggregated like the policy loss),
  with c either fixed or set by the adaptive controller of Skywork-OR1 (2505.22312), which raises c
  only while entropy is under a target, so that entropy neither collapses nor explodes:
      after each step with entropy e:  c = clip(c + delta if e < target else c - delta, 0, c_max)
      the next step applies c if e < target, else 0.
  Their scripts: target 0.2, delta 1e-4 (the paper mentions 0.005), c_max 0.005; c starts at 0.
- KL to a reference policy (off in every recipe here), per token with x = ref_logp - logp:
      k1 = -x = log(pi / pi_ref)          k3 = exp(x) - x - 1 = pi_ref/pi - log(pi_ref/pi) - 1  (>= 0)
"""

from __future__ import annotations

import math
from typing import Any

import torch
from toolgym.trainers.losses import LOG_RATIO_CLAMP, LossInputs


class AdaptiveEntropyController:
    """Skywork-OR1's entropy coefficient: stateful across steps, owned by the learner / driver.

    Usage per step: `inputs.entropy_coef = ctl.coef_to_apply`; after the step,
    `ctl.update(measured_entropy)` (the mini-batch mean of `loss/entropy`). Checkpoint `state_dict()`.
    """

    def __init__(self, target: float = 0.2, delta: float = 1e-4, max_coef: float = 5e-3,
                 init_coef: float = 0.0) -> None:
        params = {"target": target, "delta": delta, "max_coef": max_coef, "init_coef": init_coef}
        for name, value in params.items():
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"AdaptiveEntropyController {name} must be a finite number >= 0; "
                                 f"got {value!r}")
        self.target, self.delta, self.max_coef = float(target), float(delta), float(max_coef)
        self.coef = min(float(init_coef), self.max_coef)  # c, the controller's state
        self.active = False  # whether the last measured entropy was below the target
        self.steps = 0

    @classmethod
    def from_config(cls, cfg: Any) -> AdaptiveEntropyController:
        """From a LossConfig with `entropy_target` set."""
        if cfg.entropy_target is None:
            raise ValueError("LossConfig.entropy_target is None (adaptive entropy off); set it, e.g. 0.2")
        return cls(cfg.entropy_target, cfg.entropy_delta, cfg.entropy_max_coef)

    @property
    def coef_to_apply(self) -> float:
        """The coefficient of the entropy bonus for the next step (0 until an entropy under target)."""
        return self.coef if self.active else 0.0

    def update(self, entropy: float) -> float:
        """Feed the entropy measured at this step; returns the coefficient for the next step."""
        entropy = float(entropy)
        if not math.isfinite(entropy):
            raise ValueError(f"entropy must be finite; got {entropy!r}")
        self.active = entropy < self.target
        step = self.delta if self.active else -self.delta
        self.coef = min(max(self.coef + step, 0.0), self.max_coef)
        self.steps += 1
        return self.coef_to_apply

    def state_dict(self) -> dict[str, float | bool | int]:
        return {"coef": self.coef, "active": self.active, "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.coef, self.active, self.steps = float(state["coef"]), bool(state["active"]), int(state["steps"])


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
