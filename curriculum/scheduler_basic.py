"""Unstaged schedulers: the uniform baseline and the two online difficulty filters.

- `uniform`: passes over all units in a fresh random order each epoch (a data loader). The baseline
  every curriculum is compared against.
- `difficulty_band`: trains only on units whose current success rate p lies in [lo, hi] — the
  pass-rate band filters of Klear-Reasoner (pass@16) and AceReason-Nemotron. Rates are re-estimated
  from training outcomes, so a unit that rises above `hi` leaves the band; a unit outside the band is
  no longer sampled, so its estimate only changes through a new `probe()` (an offline filter with
  online removal). Unmeasured units are kept (so they get measured) unless `include_unknown=False`.
- `solved_drop`: epoch passes like `uniform`, and at the end of each epoch drops, for good, the units
  the policy solved every time it tried them during that epoch (AceReason's and Skywork-OR1's
  online filtering of all-solved prompts).

Filters never empty the pool: when fewer than `min_active` units remain, the ones nearest to
qualifying are kept (difficulty_band: nearest to the band; solved_drop: solved units in unit order).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from toolgym.curriculum.base import Scheduler
from toolgym.curriculum.registry import register_scheduler
from toolgym.curriculum.sampling import EpochSampler, spread
from toolgym.envs.types import Outcome


@register_scheduler("uniform")
class UniformScheduler(Scheduler):
    """Every unit equally often: shuffled epoch passes over all units."""

    def __init__(self, units: Sequence[str], **common: Any) -> None:
        super().__init__(units, **common)
        self.sampler = EpochSampler()

    def active_units(self) -> list[str]:
        return list(self.units.names)

    def _draw(self, n: int, rng: np.random.Generator) -> list[str]:
        return self.sampler.take(self.units.names, n, rng)

    def _describe_extra(self) -> dict[str, Any]:
        return {"curriculum/epoch": self.sampler.epoch}

    def _extra_state(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict()}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])


@register_scheduler("difficulty_band")
class DifficultyBandScheduler(Scheduler):
    """Units whose success rate is inside [lo, hi] (inclusive), drawn evenly each batch."""

    ranks_by_success = True

    def __init__(self, units: Sequence[str], *, lo: float = 0.05, hi: float = 0.95,
                 include_unknown: bool = True, min_active: int = 1, **common: Any) -> None:
        super().__init__(units, **common)
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"difficulty band needs 0 <= lo <= hi <= 1, got lo={lo}, hi={hi}")
        self.lo, self.hi = float(lo), float(hi)
        self.include_unknown = bool(include_unknown)
        self.min_active = _check_min_active(min_active, len(self.units))

    def active_units(self) -> list[str]:
        rates = self.stats.rates()  # [U], NaN = unmeasured
        known = ~np.isnan(rates)
        filled = np.nan_to_num(rates)
        outside = np.maximum(np.maximum(self.lo - filled, filled - self.hi), 0.0)  # [U]
        distance = np.where(known, outside, 0.0 if self.include_unknown else 2.0)
        keep = distance <= 0.0
        if keep.sum() < self.min_active:
            nearest = np.argsort(distance, kind="stable")[: self.min_active]
            keep[nearest] = True
        return [u for u, k in zip(self.units.names, keep, strict=True) if k]

    def _draw(self, n: int, rng: np.random.Generator) -> list[str]:
        return spread(self.active_units(), n, rng)

    def _describe_extra(self) -> dict[str, Any]:
        rates = self.stats.rates()
        return {"curriculum/units_below_band": int(np.sum(rates < self.lo)),
                "curriculum/units_above_band": int(np.sum(rates > self.hi))}


@register_scheduler("solved_drop")
class SolvedDropScheduler(Scheduler):
    """Epoch passes; after each epoch, drop the units solved on every attempt in that epoch."""

    def __init__(self, units: Sequence[str], *, min_active: int = 1, **common: Any) -> None:
        super().__init__(units, **common)
        self.min_active = _check_min_active(min_active, len(self.units))
        self.sampler = EpochSampler()
        self.dropped: list[str] = []  # in the order they were dropped
        self.epoch_attempts: dict[str, int] = {}
        self.epoch_successes: dict[str, int] = {}

    def active_units(self) -> list[str]:
        gone = set(self.dropped)
        return [u for u in self.units.names if u not in gone]

    def _draw(self, n: int, rng: np.random.Generator) -> list[str]:
        return self.sampler.take(self.active_units(), n, rng, on_epoch_end=self._end_epoch)

    def _after_update(self, mapped: list[tuple[str, Outcome]]) -> None:
        for unit, outcome in mapped:
            self.epoch_attempts[unit] = self.epoch_attempts.get(unit, 0) + 1
            self.epoch_successes[unit] = self.epoch_successes.get(unit, 0) + bool(outcome.success)

    def _end_epoch(self) -> list[str]:
        active = self.active_units()
        solved = [u for u in active
                  if self.epoch_attempts.get(u, 0) > 0 and self.epoch_successes[u] == self.epoch_attempts[u]]
        spare = len(active) - self.min_active  # how many may go
        self.dropped += solved[: max(spare, 0)]
        self.epoch_attempts, self.epoch_successes = {}, {}
        return self.active_units()

    def _describe_extra(self) -> dict[str, Any]:
        return {"curriculum/epoch": self.sampler.epoch, "curriculum/units_dropped": len(self.dropped)}

    def _extra_state(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict(), "dropped": list(self.dropped),
                "epoch_attempts": dict(self.epoch_attempts), "epoch_successes": dict(self.epoch_successes)}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])
        self.dropped = list(state["dropped"])
        self.epoch_attempts = {k: int(v) for k, v in state["epoch_attempts"].items()}
        self.epoch_successes = {k: int(v) for k, v in state["epoch_successes"].items()}


def _check_min_active(min_active: int, total: int) -> int:
    if not 1 <= min_active <= total:
        raise ValueError(f"min_active must be between 1 and the number of units ({total}), got {min_active}")
    return int(min_active)
