"""Success statistics per training unit, fed by episode outcomes.

Success is the verifier's perfect score (`Outcome.success`), never a shaped reward: the potential
score and the difficulty filters are about whether the policy can solve a unit. The policy changes
as it trains, so the rate that drives decisions is recency-weighted: each new outcome multiplies the
weight of the older ones by `decay = 0.5 ** (1 / half_life)`, i.e. an outcome `half_life` samples
old counts half as much as the newest one.

    weight_n  = decay * weight_{n-1} + 1
    success_n = decay * success_{n-1} + s_n          rate = success_n / weight_n

`weight_n` is the effective number of samples (the confidence): a unit counts as measured once it
reaches `min_samples`. Raw counts (attempts, successes) are kept too, for logs.

Outcomes arrive a step's batch at a time (`record_many`), and the episodes of a batch are equally
recent: a unit with k outcomes in the batch decays its past by `decay ** k` once and adds the k new
outcomes with weight 1 each, so the order of outcomes inside a batch does not move the rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class UnitSummary:
    """A snapshot of one unit's statistics."""

    attempts: int  # outcomes ever recorded
    successes: int  # of which perfect scores
    rate: float | None  # recency-weighted success rate; None until min_samples effective samples
    confidence: float  # effective (recency-weighted) number of samples
    reward: float | None  # recency-weighted mean shaped reward


class SuccessStats:
    """Counts, recency-weighted success rate and confidence for a fixed list of units."""

    def __init__(self, units: Sequence[str], *, half_life: float = 50.0, min_samples: float = 4.0) -> None:
        if not half_life > 0:
            raise ValueError(f"half_life must be > 0 samples, got {half_life}")
        if min_samples < 1:
            raise ValueError(f"min_samples must be >= 1, got {min_samples}")
        self.units = list(units)
        self.position = {u: i for i, u in enumerate(self.units)}
        self.half_life = float(half_life)
        self.min_samples = float(min_samples)
        self.decay = 0.5 ** (1.0 / self.half_life)
        n = len(self.units)
        self.attempts = np.zeros(n, dtype=np.int64)  # [U]
        self.successes = np.zeros(n, dtype=np.int64)  # [U]
        self.weight = np.zeros(n)  # [U] effective sample count
        self.weighted_success = np.zeros(n)  # [U]
        self.weighted_reward = np.zeros(n)  # [U]

    def record(self, unit: str, success: bool, reward: float = 0.0) -> None:
        """Add one outcome of `unit`."""
        i = self._index(unit)
        self.attempts[i] += 1
        self.successes[i] += bool(success)
        self.weight[i] = self.decay * self.weight[i] + 1.0
        self.weighted_success[i] = self.decay * self.weighted_success[i] + float(bool(success))
        self.weighted_reward[i] = self.decay * self.weighted_reward[i] + float(reward)

    def record_many(self, items: Iterable[tuple[str, bool, float]]) -> None:
        """Add one batch of outcomes given as (unit, success, reward): equally recent, in any order."""
        batch: dict[int, list[tuple[bool, float]]] = {}
        for unit, success, reward in items:
            batch.setdefault(self._index(unit), []).append((bool(success), float(reward)))
        for i, outcomes in batch.items():
            past = self.decay ** len(outcomes)
            self.attempts[i] += len(outcomes)
            self.successes[i] += sum(s for s, _ in outcomes)
            self.weight[i] = past * self.weight[i] + len(outcomes)
            self.weighted_success[i] = past * self.weighted_success[i] + sum(s for s, _ in outcomes)
            self.weighted_reward[i] = past * self.weighted_reward[i] + sum(r for _, r in outcomes)

    def rate(self, unit: str) -> float | None:
        """Recency-weighted success rate, or None while the unit has fewer than min_samples."""
        i = self._index(unit)
        return self._rate_at(i)

    def rates(self) -> np.ndarray:
        """Rates of all units in unit order, shape [U]; NaN for unmeasured units."""
        out = np.full(len(self.units), np.nan)
        measured = self.measured()
        out[measured] = self.weighted_success[measured] / self.weight[measured]
        return out

    def measured(self) -> np.ndarray:
        """Boolean mask [U]: units with at least min_samples effective samples."""
        return self.weight >= self.min_samples - 1e-9

    def summary(self, unit: str) -> UnitSummary:
        i = self._index(unit)
        w = float(self.weight[i])
        return UnitSummary(int(self.attempts[i]), int(self.successes[i]), self._rate_at(i), w,
                           float(self.weighted_reward[i] / w) if w > 0 else None)

    def _rate_at(self, i: int) -> float | None:
        if self.weight[i] < self.min_samples - 1e-9:
            return None
        return float(self.weighted_success[i] / self.weight[i])

    def _index(self, unit: str) -> int:
        try:
            return self.position[unit]
        except KeyError:
            raise ValueError(f"unknown unit {unit!r} in success statistics") from None

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state (floats round-trip exactly through json)."""
        return {"units": list(self.units), "half_life": self.half_life, "min_samples": self.min_samples,
                "attempts": self.attempts.tolist(), "successes": self.successes.tolist(),
                "weight": self.weight.tolist(), "weighted_success": self.weighted_success.tolist(),
                "weighted_reward": self.weighted_reward.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if list(state["units"]) != self.units:
            raise ValueError("saved success statistics are for different units; build the curriculum "
                             "with the same unit list as the run being resumed")
        if not math.isclose(state["half_life"], self.half_life) or state["min_samples"] != self.min_samples:
            raise ValueError(f"saved statistics used half_life={state['half_life']}, min_samples="
                             f"{state['min_samples']}; this curriculum has {self.half_life}, "
                             f"{self.min_samples}: use the same settings to resume")
        self.attempts = np.asarray(state["attempts"], dtype=np.int64)
        self.successes = np.asarray(state["successes"], dtype=np.int64)
        self.weight = np.asarray(state["weight"], dtype=float)
        self.weighted_success = np.asarray(state["weighted_success"], dtype=float)
        self.weighted_reward = np.asarray(state["weighted_reward"], dtype=float)
