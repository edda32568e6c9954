"""Staged schedulers: the improvement-potential curriculum (the default) and fixed stage sequences.

`potential` (R1-Code-Interpreter, arXiv 2505.21668). Units are ranked by P = 4 p (1 - p); stage k
of S trains on the top `fractions[k]` of units (default S = 4: 25/50/75/100%), highest potential
first. A stage ends after `steps_per_stage` training steps, or earlier when its per-step training
reward plateaus (see `Plateau`); the last stage never ends. Success rates are re-estimated from
training outcomes (recency-weighted, `SuccessStats`) and the ranking is redone at each stage start,
so units solved in stage k give their place to others in stage k+1.

Within a stage, `weighting="potential"` (default) draws units with probability proportional to
max(P, weight_floor) under the current estimates; `weighting="uniform"` draws them evenly, as the
paper does. Why the default differs from the paper: P is proportional to the expected GRPO signal of
a group, and with cumulative stages the last stage holds every unit, so even sampling ends as the
uniform baseline, spending most groups on units that are out of reach or already solved (all-fail or
all-pass groups carry no gradient). The floor keeps every active unit sampled now and then so its
estimate can recover. benchmarks/curriculum_sim.py compares both.

Other departures: the paper ranks once, after its probe; re-ranking uses the fresher estimates, and
a unit that is never trained keeps the estimate of the last probe. Run `probe()` before training:
without it every unit is unmeasured and counts as `unknown_potential` (1.0: try it first), so the
first stages fall back to unit order.

`sequence` (AceReason-Nemotron's math-then-code RL, and the 8k -> 16k -> 32k response-length stages
of AceReason, Skywork-OR1 and DeepCoder): a fixed list of stages, each with its own units, a number
of steps and an optional max response length that the trainer reads from `max_response_length`.
With `drop_solved=True` (Skywork-OR1 and AceReason drop the prompts the policy already solves at
each stage start), a unit whose pass rate over the finished stage's training attempts is at least
`drop_solved_rate` (default 1.0: solved on every attempt, the papers' setting) is excluded from all
later stages; a unit not tried in that stage keeps its place. The counts are raw, per stage (a
`SuccessStats` reset at each stage start), not the recency-weighted estimate. A stage never falls
below `min_active` units: dropped units of that stage come back, in unit order, to fill it. Use
`unit: instance` for per-prompt dropping; with family units a whole family goes once it is solved.
`describe()` reports `curriculum/units_dropped` (units excluded now); `advances` entries record how
many units each boundary dropped (`dropped`) and brought back (`restored`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from toolgym.curriculum.base import Scheduler
from toolgym.curriculum.registry import register_scheduler
from toolgym.curriculum.sampling import EpochSampler, Plateau, spread
from toolgym.curriculum.stats import SuccessStats
from toolgym.envs.types import Outcome

WEIGHTINGS = ("uniform", "potential")


class _StagedScheduler(Scheduler):
    """Stage counter, step budget per stage, plateau test and the advance log."""

    def __init__(self, units: Sequence[str], *, plateau_window: int | None, plateau_tol: float,
                 **common: Any) -> None:
        super().__init__(units, **common)
        self.plateau = Plateau(plateau_window, plateau_tol)
        self.stage = 0
        self.stage_steps = 0
        self.advances: list[dict[str, Any]] = []  # {"step", "stage" (0-based, entered), "reason"}

    @property
    def num_stages(self) -> int:
        raise NotImplementedError

    def _stage_step_limit(self) -> int | None:
        raise NotImplementedError

    def _after_update(self, mapped: list[tuple[str, Outcome]]) -> None:
        self.stage_steps += 1
        if mapped:
            self.plateau.add(float(np.mean([o.reward for _, o in mapped])))
        if self.stage >= self.num_stages - 1:
            return
        limit = self._stage_step_limit()
        if limit is not None and self.stage_steps >= limit:
            self._advance("steps")
        elif self.plateau.reached():
            self._advance("plateau")

    def _advance(self, reason: str) -> None:
        self.stage += 1
        self.stage_steps = 0
        self.plateau.reset()
        self.advances.append({"step": self.step, "stage": self.stage, "reason": reason})
        self._enter_stage()

    def _enter_stage(self) -> None:
        """Prepare the new stage's units."""

    def _describe_extra(self) -> dict[str, Any]:
        return {"curriculum/stage": self.stage + 1, "curriculum/num_stages": self.num_stages,
                "curriculum/stage_steps": self.stage_steps}

    def _extra_state(self) -> dict[str, Any]:
        return {"stage": self.stage, "stage_steps": self.stage_steps, "plateau": self.plateau.state_dict(),
                "advances": [dict(a) for a in self.advances]}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.stage = int(state["stage"])
        self.stage_steps = int(state["stage_steps"])
        self.plateau.load_state_dict(state["plateau"])
        self.advances = [dict(a) for a in state["advances"]]


@register_scheduler("potential")
class PotentialScheduler(_StagedScheduler):
    """Top-k% of units by improvement potential, k growing stage by stage."""

    ranks_by_success = True

    def __init__(self, units: Sequence[str], *, stages: int = 4, fractions: Sequence[float] | None = None,
                 steps_per_stage: int | None = 100, plateau_window: int | None = 10,
                 plateau_tol: float = 0.01, unknown_potential: float = 1.0, weighting: str = "potential",
                 weight_floor: float = 0.05, **common: Any) -> None:
        super().__init__(units, plateau_window=plateau_window, plateau_tol=plateau_tol, **common)
        self.fractions = _check_fractions(stages, fractions)
        if weighting not in WEIGHTINGS:
            raise ValueError(f"unknown weighting {weighting!r}; known: {', '.join(WEIGHTINGS)}")
        if not 0.0 < weight_floor <= 1.0:
            raise ValueError(f"weight_floor must lie in (0, 1], got {weight_floor}")
        self.weighting = weighting
        self.weight_floor = float(weight_floor)
        if steps_per_stage is not None and steps_per_stage < 1:
            raise ValueError(f"steps_per_stage must be >= 1 (or None), got {steps_per_stage}")
        if steps_per_stage is None and plateau_window is None and len(self.fractions) > 1:
            raise ValueError("set steps_per_stage and/or plateau_window: with neither the potential "
                             "curriculum never leaves its first stage")
        if not 0.0 <= unknown_potential <= 1.0:
            raise ValueError(f"unknown_potential must lie in [0, 1], got {unknown_potential}")
        self.steps_per_stage = steps_per_stage
        self.unknown_potential = float(unknown_potential)
        self.stage_units: list[str] | None = None  # chosen on first use, then at each stage start

    @property
    def num_stages(self) -> int:
        return len(self.fractions)

    def _stage_step_limit(self) -> int | None:
        return self.steps_per_stage

    def ranking(self) -> list[str]:
        """All units, highest potential first (unmeasured = unknown_potential; ties in unit order)."""
        order = np.argsort(-self.potentials(unknown=self.unknown_potential), kind="stable")
        return [self.units.names[i] for i in order]

    def active_units(self) -> list[str]:
        if self.stage_units is None:
            self._enter_stage()
        assert self.stage_units is not None
        return list(self.stage_units)

    def _enter_stage(self) -> None:
        k = max(1, math.ceil(self.fractions[self.stage] * len(self.units) - 1e-9))
        self.stage_units = self.ranking()[:k]

    def _after_probe(self) -> None:
        if self.stage_steps == 0:  # no training in this stage yet: choose it with the new estimates
            self._enter_stage()

    def _draw(self, n: int, rng: np.random.Generator) -> list[str]:
        active = self.active_units()
        if self.weighting == "uniform":
            return spread(active, n, rng)
        pot = self.potentials(unknown=self.unknown_potential)[[self.units.position[u] for u in active]]
        weights = np.maximum(pot, self.weight_floor)  # [A], current estimates
        # with replacement, so each draw is exactly proportional to its weight
        picks = rng.choice(len(active), size=n, replace=True, p=weights / weights.sum())
        return [active[i] for i in picks]

    def _describe_extra(self) -> dict[str, Any]:
        return {**super()._describe_extra(), "curriculum/stage_fraction": self.fractions[self.stage]}

    def _extra_state(self) -> dict[str, Any]:
        stage_units = None if self.stage_units is None else list(self.stage_units)
        return {**super()._extra_state(), "stage_units": stage_units}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        super()._load_extra_state(state)
        self.stage_units = None if state["stage_units"] is None else list(state["stage_units"])


@dataclass(frozen=True)
class Stage:
    """One stage of a `sequence` curriculum."""

    units: tuple[str, ...]  # unit names, or family ids standing for all their instance units
    steps: int | None = None  # training steps before the next stage (None: plateau or forever)
    max_response_length: int | None = None  # tokens per response the trainer allows in this stage
    name: str = ""


@register_scheduler("sequence")
class SequenceScheduler(_StagedScheduler):
    """Fixed stages in order, each with its units, step budget and max response length; optionally
    drops the units solved in a stage from the stages after it (`drop_solved`)."""

    def __init__(self, units: Sequence[str], *, stages: Sequence[Stage | Mapping[str, Any]],
                 plateau_window: int | None = None, plateau_tol: float = 0.01, drop_solved: bool = False,
                 drop_solved_rate: float = 1.0, min_active: int = 1, **common: Any) -> None:
        super().__init__(units, plateau_window=plateau_window, plateau_tol=plateau_tol, **common)
        self.stages = [_as_stage(s, i) for i, s in enumerate(_check_stage_list(stages))]
        self.stage_unit_lists = [_dedupe([m for e in s.units for m in self.units.resolve(e)])
                                 for s in self.stages]
        for i, stage in enumerate(self.stages[:-1]):
            if stage.steps is None and plateau_window is None:
                raise ValueError(f"stage {i} ({stage.name or 'unnamed'}) has no `steps` and plateau_window "
                                 "is None: it would never end; give it steps or set plateau_window")
        self.drop_solved = _check_drop_options(drop_solved, drop_solved_rate, min_active)
        self.drop_solved_rate = float(drop_solved_rate)
        self.min_active = int(min_active)
        self.sampler = EpochSampler()
        self.stage_stats = SuccessStats(self.units.names)  # raw counts of the current stage's attempts
        self.dropped: list[str] = []  # units excluded from later stages, in the order they were dropped

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    @property
    def max_response_length(self) -> int | None:
        return self.stages[self.stage].max_response_length

    def _stage_step_limit(self) -> int | None:
        return self.stages[self.stage].steps

    def active_units(self) -> list[str]:
        gone = set(self.dropped)
        return [u for u in self.stage_unit_lists[self.stage] if u not in gone]

    def solved_in_stage(self) -> list[str]:
        """Units (unit order) tried in the current stage with pass rate >= drop_solved_rate."""
        attempts, successes = self.stage_stats.attempts, self.stage_stats.successes  # [U], [U]
        hit = (attempts > 0) & (successes >= self.drop_solved_rate * attempts - 1e-9)
        return [u for u, h in zip(self.units.names, hit, strict=True) if h]

    def _after_update(self, mapped: list[tuple[str, Outcome]]) -> None:
        self.stage_stats.record_many((u, o.success, o.reward) for u, o in mapped)
        super()._after_update(mapped)  # may advance: _enter_stage reads this stage's counts first

    def _enter_stage(self) -> None:
        self.sampler = EpochSampler()
        if self.drop_solved:
            gone = set(self.dropped)
            newly = [u for u in self.solved_in_stage() if u not in gone]
            self.dropped += newly
            restored = self._keep_min_active()
            self.advances[-1].update({"dropped": len(newly), "restored": restored})
        self.stage_stats = SuccessStats(self.units.names)

    def _keep_min_active(self) -> int:
        """Bring dropped units of the new stage back (unit order) until it has min_active; how many."""
        members = self.stage_unit_lists[self.stage]
        missing = min(self.min_active, len(members)) - len(self.active_units())
        if missing <= 0:
            return 0
        gone = set(self.dropped)
        back = set([u for u in members if u in gone][:missing])
        self.dropped = [u for u in self.dropped if u not in back]
        return len(back)

    def _draw(self, n: int, rng: np.random.Generator) -> list[str]:
        return self.sampler.take(self.active_units(), n, rng)

    def _describe_extra(self) -> dict[str, Any]:
        return {**super()._describe_extra(), "curriculum/units_dropped": len(self.dropped)}

    def _extra_state(self) -> dict[str, Any]:
        return {**super()._extra_state(), "sampler": self.sampler.state_dict(), "dropped": list(self.dropped),
                "stage_stats": self.stage_stats.state_dict()}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        super()._load_extra_state(state)
        self.sampler.load_state_dict(state["sampler"])
        # states saved before solved-prompt dropping existed have neither key: nothing dropped yet
        self.dropped = list(state.get("dropped", []))
        self.stage_stats = SuccessStats(self.units.names)
        if state.get("stage_stats") is not None:
            self.stage_stats.load_state_dict(state["stage_stats"])


def _check_drop_options(drop_solved: bool, rate: float, min_active: int) -> bool:
    if not isinstance(drop_solved, bool):
        raise ValueError(f"drop_solved must be true or false, got {drop_solved!r}")
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 < rate <= 1.0:
        raise ValueError(f"drop_solved_rate must lie in (0, 1] (1.0 = solved on every attempt of the "
                         f"stage), got {rate!r}")
    if isinstance(min_active, bool) or not isinstance(min_active, int) or min_active < 1:
        raise ValueError(f"min_active must be an integer >= 1, got {min_active!r}")
    return drop_solved


def _check_fractions(stages: int, fractions: Sequence[float] | None) -> list[float]:
    if fractions is not None and stages not in (4, len(fractions)):
        raise ValueError(f"stages={stages} disagrees with the {len(fractions)} fractions {list(fractions)}; "
                         "give one of them")
    if fractions is None:
        if isinstance(stages, bool) or not isinstance(stages, int) or stages < 1:
            raise ValueError(f"stages must be an integer >= 1, got {stages!r}")
        return [(k + 1) / stages for k in range(stages)]
    values = [float(f) for f in fractions]
    if not values:
        raise ValueError("fractions is empty: give the share of units per stage, e.g. [0.25, 0.5, 0.75, 1.0]")
    if any(not 0.0 < f <= 1.0 for f in values):
        raise ValueError(f"every stage fraction must lie in (0, 1], got {values}")
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise ValueError(f"stage fractions must be strictly increasing, got {values}")
    return values


_STAGE_KEYS = ("units", "steps", "max_response_length", "name")


def _check_stage_list(stages: Sequence[Any]) -> Sequence[Any]:
    if isinstance(stages, str | Mapping) or not isinstance(stages, Sequence) or not stages:
        raise ValueError("`stages` must be a non-empty list of stages, each {'units': [...], 'steps': N, "
                         "'max_response_length': L}")
    return stages


def _as_stage(spec: Stage | Mapping[str, Any], i: int) -> Stage:
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - set(_STAGE_KEYS))
        if unknown:
            raise ValueError(f"stage {i}: unknown key(s) {unknown}; allowed: {', '.join(_STAGE_KEYS)}")
        if "units" not in spec:
            raise ValueError(f"stage {i} has no 'units'")
        units = spec["units"]
        spec = Stage(tuple([units] if isinstance(units, str) else units), spec.get("steps"),
                     spec.get("max_response_length"), spec.get("name", ""))
    if not isinstance(spec, Stage):
        raise TypeError(f"stage {i} must be a Stage or a mapping, got {type(spec).__name__}")
    if not spec.units:
        raise ValueError(f"stage {i} ({spec.name or 'unnamed'}) is empty: give it at least one unit")
    for field in ("steps", "max_response_length"):
        value = getattr(spec, field)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"stage {i}: {field} must be a positive integer or None, got {value!r}")
    return spec


def _dedupe(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))
