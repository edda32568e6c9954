"""Skywork-OR1's adaptive entropy coefficient (2505.22312): per-step driver state, not a loss term.

The controller raises the entropy-bonus coefficient c only while the measured entropy is under a
target, so that entropy neither collapses nor explodes:
    after each step with entropy e:  c = clip(c + delta if e < target else c - delta, 0, c_max)
    the next step applies c if e < target, else 0.
Their scripts: target 0.2, delta 1e-4 (the paper mentions 0.005), c_max 0.005; c starts at 0.
The coefficient reaches the learner as an argument of each update; the bonus itself is a term of the
objective (`toolgym.trainers.algo.terms`).
"""

from __future__ import annotations

import math
from typing import Any


class AdaptiveEntropyController:
    """Skywork-OR1's entropy coefficient: stateful across steps, owned by the learner / driver.

    Usage per step: `inputs.entropy_coef = ctl.coef_to_apply`; after the step,
    `ctl.update(measured_entropy)` (the update's `actor/entropy`). Checkpoint `state_dict()`.
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
