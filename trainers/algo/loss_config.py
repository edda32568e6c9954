"""`LossConfig`: every knob of the policy loss and its extra terms, typed and validated.

One flat dataclass rather than one per loss, because recipes switch losses by name (`name: cispo`)
and the extra terms (SFT on positives, entropy, KL) combine with any loss. Fields that only one loss
reads (`beta1`, `beta2`, `only_high` for GPPO) are rejected for the others instead of being silently
ignored. A bad value is a ValueError naming the field, the value and what is allowed.

`LossConfig.defaults_for(name)` gives the settings of the paper each loss comes from (see the loss
modules' docstrings); the plain defaults are Klear-Reasoner's GPPO run, the project's default.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

AGG_MODES = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")
KL_TYPES = ("k1", "k3")
BEHAVIOUR_IS_MODES = ("off", "truncate", "mask")  # = behaviour_is.MODES (a test keeps them equal)
_GPPO_ONLY = ("beta1", "beta2", "only_high")

# Settings used in each paper's runs (sources in the loss modules' docstrings).
_PAPER_DEFAULTS: dict[str, dict[str, Any]] = {
    "ppo_clip": {"eps_low": 0.2, "eps_high": 0.28},  # DAPO clip-higher, token-mean, no KL
    "gppo": {"eps_low": 0.2, "eps_high": 0.28, "dual_clip": True, "dual_clip_c": 10.0},  # Klear-Reasoner
    "cispo": {"eps_low": 1.0, "eps_high": 0.28},  # MiniMax-M1: no lower bound; eps_high not published
    "gspo": {"eps_low": 3e-4, "eps_high": 4e-4, "loss_agg_mode": "seq-mean-token-mean"},  # GSPO
}


@dataclass
class LossConfig:
    """Policy-loss settings. Defaults: GPPO as in Klear-Reasoner's runs, minus the dual clip (a switch)."""

    name: str = "gppo"  # a registered loss: ppo_clip, gppo, cispo, gspo (or a plugin's)
    loss_agg_mode: str = "token-mean"  # one of AGG_MODES
    eps_low: float = 0.2  # lower clip: ratio below 1 - eps_low is clipped (in [0, 1]; 1 = no lower bound)
    eps_high: float = 0.28  # upper clip: ratio above 1 + eps_high is clipped (DAPO clip-higher)
    dual_clip: bool = False  # for A < 0 cap the loss at -A * dual_clip_c (ppo_clip, gppo, gspo)
    dual_clip_c: float = 10.0  # > 1
    beta1: float = 1.0  # gppo: gradient weight multiplier on the low side (A < 0, r < 1 - eps_low)
    beta2: float = 1.0  # gppo: gradient weight multiplier on the high side (A > 0, r > 1 + eps_high)
    only_high: bool = False  # gppo: preserve the gradient on the high side only (low side as ppo_clip)
    norm_constant: float | None = None  # seq-mean-token-sum-norm divisor (e.g. max response length)
    sft_coef: float = 0.0  # alpha of the NLL term on fully correct samples (Klear: 0.1); 0 = off
    entropy_coef: float = 0.0  # fixed entropy-bonus coefficient; 0 = off (adaptive: see entropy_target)
    entropy_target: float | None = None  # adaptive entropy control (Skywork-OR1) toward this; None = off
    entropy_delta: float = 1e-4  # adaptive step of the coefficient
    entropy_max_coef: float = 5e-3  # adaptive cap of the coefficient
    kl_coef: float = 0.0  # beta of the KL-to-reference term; 0 = off
    kl_type: str = "k3"  # one of KL_TYPES
    kl_reference: str | None = None  # the frozen reference policy (model dir); None = the starting policy
    # importance weights pi_old / pi_behaviour on the policy loss (trainers/algo/behaviour_is.py): off,
    # truncate (TIS) or mask (MIS) at behaviour_is_cap; on, the learner recomputes pi_old first
    behaviour_is: str = "off"
    behaviour_is_cap: float = 2.0  # C, > 1 (TIS's runs: 2)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"LossConfig.name must be a loss name (e.g. gppo); got {self.name!r}")
        _one_of("loss_agg_mode", self.loss_agg_mode, AGG_MODES)
        _one_of("kl_type", self.kl_type, KL_TYPES)
        _one_of("behaviour_is", self.behaviour_is, BEHAVIOUR_IS_MODES)
        if not (isinstance(self.behaviour_is_cap, int | float) and self.behaviour_is_cap > 1.0):
            raise ValueError(f"LossConfig.behaviour_is_cap must be a number > 1 (TIS: 2); "
                             f"got {self.behaviour_is_cap!r}")
        _in_range("eps_low", self.eps_low, 0.0, 1.0)
        _in_range("eps_high", self.eps_high, 0.0, math.inf)
        if not self.dual_clip_c > 1.0:
            raise ValueError(f"LossConfig.dual_clip_c must be > 1 (e.g. 3 or 10); got {self.dual_clip_c!r}")
        for field in ("beta1", "beta2"):
            if not getattr(self, field) > 0:
                raise ValueError(f"LossConfig.{field} must be > 0 (paper: 0.25-1); "
                                 f"got {getattr(self, field)!r}")
        for field in ("sft_coef", "entropy_coef", "entropy_delta", "entropy_max_coef", "kl_coef"):
            _in_range(field, getattr(self, field), 0.0, math.inf)
        if self.entropy_target is not None:
            _in_range("entropy_target", self.entropy_target, 0.0, math.inf)
            if self.entropy_coef:
                raise ValueError("LossConfig.entropy_coef must be 0 when entropy_target is set (the adaptive "
                                 "controller owns the coefficient); set one or the other")
        for field in ("dual_clip", "only_high"):
            if not isinstance(getattr(self, field), bool):
                raise ValueError(f"LossConfig.{field} must be true or false; got {getattr(self, field)!r}")
        if self.dual_clip and self.name == "cispo":
            raise ValueError("LossConfig.dual_clip does not apply to name='cispo' (its weight is already "
                             "capped at 1 + eps_high); set dual_clip=False")
        if self.kl_reference is not None and not isinstance(self.kl_reference, str):
            raise ValueError(f"LossConfig.kl_reference must be a model directory (a string), got "
                             f"{self.kl_reference!r}")  # whether a KL uses it: config.checks.check_kl
        self._check_gppo_only()
        self._check_norm_constant()

    def _check_gppo_only(self) -> None:
        if self.name == "gppo":
            return
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for field in _GPPO_ONLY:
            if getattr(self, field) != defaults[field]:
                raise ValueError(f"LossConfig.{field} applies to name='gppo' only; got name={self.name!r}. "
                                 f"Remove {field} or use gppo")

    def _check_norm_constant(self) -> None:
        if self.norm_constant is not None and not self.norm_constant > 0:
            raise ValueError(f"LossConfig.norm_constant must be > 0; got {self.norm_constant!r}")
        if self.loss_agg_mode == "seq-mean-token-sum-norm" and self.norm_constant is None:
            raise ValueError("LossConfig.norm_constant must be set when loss_agg_mode="
                             "'seq-mean-token-sum-norm' (Dr. GRPO divides by a constant: use the maximum "
                             "response length in tokens)")

    @classmethod
    def defaults_for(cls, name: str, **overrides: Any) -> LossConfig:
        """The settings of the paper loss `name` comes from, then `overrides`."""
        return cls.from_dict({"name": name, **_PAPER_DEFAULTS.get(name, {}), **overrides})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LossConfig:
        """Build from a mapping (YAML); an unknown key is an error listing the allowed keys."""
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ValueError(f"unknown LossConfig key(s) {unknown}; allowed: {', '.join(allowed)}")
        return cls(**data)


def _one_of(field: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"LossConfig.{field} must be one of {', '.join(allowed)}; got {value!r}")


def _in_range(field: str, value: object, low: float, high: float) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high
    if not ok:
        bound = "infinity" if high == math.inf else high
        raise ValueError(f"LossConfig.{field} must be a number in [{low}, {bound}]; got {value!r}")
