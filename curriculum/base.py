"""The scheduler interface every curriculum implements, and the bookkeeping they share.

    requests = scheduler.next_batch(n, rng)     # n TaskRequests, split "train", in stage order
    ... roll out G episodes per request ...
    scheduler.update(outcomes)                  # one call = one training step
    scheduler.state_dict() / load_state_dict()  # JSON-serialisable, for checkpoints
    scheduler.describe()                        # {"curriculum/stage": ..., ...} for the logs

The base class owns the units (`UnitSet`), the success statistics (`SuccessStats`), the train-split
check and the probe; a subclass says which units are active (`active_units`), how a batch is drawn
(`_draw`) and what happens after a step (`_after_update`). All randomness comes from the rng passed
to `next_batch`, so a scheduler is deterministic given a seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from toolgym.curriculum.potential import ProbeFn, improvement_potential, run_probe
from toolgym.curriculum.stats import SuccessStats
from toolgym.curriculum.units import DEFAULT_NUM_INSTANCES, UnitSet, check_train_split, expand_units
from toolgym.envs.types import Outcome, TaskRequest

STATE_VERSION = 1


class Scheduler:
    """Base class: subclasses implement `active_units`, `_draw` and optionally the hooks."""

    # True for schedulers whose order depends on measured success rates: the trainer probes them
    # before the first RL step (`probe()`); without a probe they rank unmeasured units
    ranks_by_success: bool = False

    name: ClassVar[str] = "base"

    def __init__(self, units: Sequence[str], *, unit: str = "family",
                 instances_per_family: int | None = None, num_instances: int = DEFAULT_NUM_INSTANCES,
                 splits: Mapping[str, Sequence[str]] | None = None, half_life: float = 50.0,
                 min_samples: float = 4.0) -> None:
        """`units`: task ids and/or 'task_id#index' names; `unit`/`instances_per_family`: see
        `expand_units`; `num_instances`: index range drawn for family units; `splits`: task id ->
        split names (else the registry is asked); `half_life`/`min_samples`: see `SuccessStats`."""
        self.units = UnitSet(expand_units(units, unit, instances_per_family), num_instances)
        check_train_split(self.units.task_ids, splits)
        self.stats = SuccessStats(self.units.names, half_life=half_life, min_samples=min_samples)
        self.step = 0  # update() calls so far
        self.episodes = 0  # training outcomes seen
        self.probe_episodes = 0  # outcomes gathered by probe()

    # ---- the interface ------------------------------------------------------------------------
    def next_batch(self, n: int, rng: np.random.Generator) -> list[TaskRequest]:
        """`n` train requests drawn from the active units."""
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"next_batch needs n >= 1 requests, got {n!r}")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"next_batch needs a numpy Generator (np.random.default_rng(seed)), "
                            f"got {type(rng).__name__}")
        return self.units.requests(self._draw(int(n), rng), rng)

    def update(self, outcomes: Sequence[Outcome]) -> None:
        """Record one training step's outcomes (all are validated before any is recorded)."""
        mapped = [(self.units.unit_of(o), o) for o in outcomes]
        self.stats.record_many((u, o.success, o.reward) for u, o in mapped)
        self.step += 1
        self.episodes += len(mapped)
        self._after_update(mapped)

    def probe(self, probe_fn: ProbeFn, n: int = 20,
              modes: Sequence[str] = ("free",)) -> dict[str, float | None]:
        """Estimate every unit's success rate with `probe_fn(units, n, mode)` per mode (see
        `toolgym.curriculum.potential`); returns unit -> rate. Does not count as a training step."""
        outcomes = run_probe(probe_fn, self.units.names, n, modes)
        mapped = [(self.units.unit_of(o), o) for o in outcomes]
        self.stats.record_many((u, o.success, o.reward) for u, o in mapped)
        self.probe_episodes += len(mapped)
        self._after_probe()
        return {u: self.stats.rate(u) for u in self.units.names}

    def potentials(self, unknown: float = float("nan")) -> np.ndarray:
        """4 p (1 - p) per unit in unit order, shape [U]; `unknown` for unmeasured units."""
        rates = self.stats.rates()
        return np.where(np.isnan(rates), unknown, improvement_potential(np.nan_to_num(rates)))

    @property
    def max_response_length(self) -> int | None:
        """Per-stage cap on response tokens for the trainer (sequence scheduler); None = no cap."""
        return None

    def active_units(self) -> list[str]:
        """Units the next batch is drawn from."""
        raise NotImplementedError

    def describe(self) -> dict[str, float | int | None]:
        """Scalars for the logs; names are stable and namespaced `curriculum/...` (NaN if undefined).
        `curriculum/stage` counts from 1 (1..S), unlike the 0-based `stage` attribute."""
        active = self.active_units()
        rates = self.stats.rates()
        pos = [self.units.position[u] for u in active]
        active_pot = self.potentials()[pos]
        return {
            "curriculum/step": self.step,
            "curriculum/stage": 1,
            "curriculum/num_stages": 1,
            "curriculum/units_total": len(self.units),
            "curriculum/active_units": len(active),
            "curriculum/units_measured": int(self.stats.measured().sum()),
            "curriculum/mean_success": _nanmean(rates),
            "curriculum/mean_potential": _nanmean(active_pot),
            "curriculum/episodes": self.episodes,
            "curriculum/probe_episodes": self.probe_episodes,
            "curriculum/max_response_length": self.max_response_length,
            **self._describe_extra(),
        }

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state; restore it into a scheduler built with the same config."""
        return {"version": STATE_VERSION, "scheduler": self.name, "units": list(self.units.names),
                "stats": self.stats.state_dict(), "step": self.step, "episodes": self.episodes,
                "probe_episodes": self.probe_episodes, "extra": self._extra_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"curriculum state version {state.get('version')!r} is not supported "
                             f"(this code reads version {STATE_VERSION})")
        if state.get("scheduler") != self.name:
            raise ValueError(f"the saved state is of scheduler {state.get('scheduler')!r}, this is "
                             f"{self.name!r}: build the same scheduler to resume")
        if list(state["units"]) != self.units.names:
            raise ValueError("the saved state lists different units: build the curriculum with the "
                             "unit list of the run being resumed")
        self.stats.load_state_dict(state["stats"])
        self.step = int(state["step"])
        self.episodes = int(state["episodes"])
        self.probe_episodes = int(state["probe_episodes"])
        self._load_extra_state(state["extra"])

    # ---- subclass hooks -----------------------------------------------------------------------
    def _draw(self, n: int, rng: np.random.Generator) -> list[str]:
        raise NotImplementedError

    def _after_update(self, mapped: list[tuple[str, Outcome]]) -> None:
        """Called after each training step with (unit, outcome) pairs."""

    def _after_probe(self) -> None:
        """Called after probe() recorded new estimates."""

    def _describe_extra(self) -> dict[str, Any]:
        return {}

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Restore what `_extra_state` saved."""


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")

