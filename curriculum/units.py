"""Training units: what the curriculum ranks, samples and keeps statistics for.

A unit is either a whole task family (`"toolgym/arith-v0"`: each request draws a fresh instance index
from the caller's rng) or one instance (`"toolgym/arith-v0#17"`: always index 17). R1-Code-Interpreter
ranks whole tasks; per-instance units are the finer grain of AceReason/Skywork's prompt filters. The
kind is chosen by config (`unit="family"|"instance"`, see `expand_units`) and read from the string.

The curriculum never samples a held-out split: every request it makes has `split="train"`, and a
unit whose task has no train split is rejected at construction (`check_train_split`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from toolgym.envs.types import Outcome, TaskRequest

TRAIN = "train"
UNIT_SEPARATOR = "#"
UNIT_KINDS = ("family", "task", "instance")  # "task" is another name for "family"
# Default number of distinct instance indices a family unit draws from. Procedural families treat the
# index as a seed; a family with a finite train split should be given `num_instances=<its size>`.
DEFAULT_NUM_INSTANCES = 2**31 - 1


@dataclass(frozen=True)
class Unit:
    """A parsed unit: a task id and, for an instance unit, its index."""

    task_id: str
    index: int | None = None  # None: a family unit (index drawn per request)


def parse_unit(unit: str) -> Unit:
    """Parse `"task_id"` or `"task_id#index"`; raises ValueError on a malformed name."""
    if not isinstance(unit, str) or not unit:
        raise ValueError(f"a unit must be a non-empty string (a task id or 'task_id#index'), got {unit!r}")
    task_id, sep, index = unit.rpartition(UNIT_SEPARATOR)
    if not sep:
        return Unit(unit)
    if not task_id or not index.isdigit():
        raise ValueError(f"bad unit {unit!r}: write an instance unit as 'task_id#index' with index >= 0")
    return Unit(task_id, int(index))


def unit_name(task_id: str, index: int | None = None) -> str:
    """The inverse of `parse_unit`."""
    return task_id if index is None else f"{task_id}{UNIT_SEPARATOR}{index}"


def expand_units(units: Sequence[str], unit: str = "family",
                 instances_per_family: int | None = None) -> list[str]:
    """Apply the unit-granularity config (`unit="family"`, alias `"task"`, or `"instance"`): with
    `unit="instance"`, a family id becomes `instances_per_family` instance units
    `id#0 .. id#(k-1)`; instance units are kept as they are."""
    if unit not in UNIT_KINDS:
        raise ValueError(f"unknown unit kind {unit!r}; known: {', '.join(UNIT_KINDS)}")
    if isinstance(units, str):
        raise ValueError(f"units must be a list of unit names, got the single string {units!r}")
    out: list[str] = []
    for name in units:
        parsed = parse_unit(name)
        if unit != "instance" or parsed.index is not None:
            out.append(name)
            continue
        if instances_per_family is None or instances_per_family < 1:
            raise ValueError(f"unit='instance' with family id {name!r} needs instances_per_family >= 1 "
                             f"(got {instances_per_family!r}), or list instance units 'task_id#index'")
        out += [unit_name(name, i) for i in range(instances_per_family)]
    return out


def check_train_split(task_ids: Sequence[str], splits: Mapping[str, Sequence[str]] | None = None) -> None:
    """Fail unless every task id has a train split.

    `splits` (task id -> split names) is used when given, so tests and simulations need no registry.
    Otherwise the task registry is asked (`toolgym.envs.registry.task_splits`).
    """
    from toolgym.envs.registry import task_splits  # here: the curriculum alone loads without gymnasium

    lookup = task_splits if splits is None else _mapping_lookup(splits)
    for task_id in dict.fromkeys(task_ids):
        names = tuple(lookup(task_id))
        if TRAIN not in names:
            raise ValueError(f"task {task_id!r} has no {TRAIN!r} split (its splits: {list(names)}); the "
                             "curriculum only trains on train splits: remove it from the units")


def _mapping_lookup(splits: Mapping[str, Sequence[str]]):
    def lookup(task_id: str) -> Sequence[str]:
        if task_id not in splits:
            raise ValueError(f"no splits given for task {task_id!r}; add it to `splits` "
                             f"(known: {sorted(splits)[:10]})")
        return splits[task_id]

    return lookup


class UnitSet:
    """An ordered set of units: maps outcomes to units and units to train requests."""

    def __init__(self, units: Sequence[str], num_instances: int = DEFAULT_NUM_INSTANCES) -> None:
        names = list(units)
        if not names:
            raise ValueError("the curriculum needs at least one unit (task id or 'task_id#index')")
        duplicates = sorted({u for u in names if names.count(u) > 1})
        if duplicates:
            raise ValueError(f"duplicate units: {duplicates}; list each unit once")
        if num_instances < 1:
            raise ValueError(f"num_instances must be >= 1, got {num_instances}")
        self.names = names
        self.parsed = [parse_unit(u) for u in names]
        self.position = {u: i for i, u in enumerate(names)}
        self.num_instances = num_instances

    def __len__(self) -> int:
        return len(self.names)

    @property
    def task_ids(self) -> list[str]:
        return list(dict.fromkeys(p.task_id for p in self.parsed))

    def unit_of(self, outcome: Outcome) -> str:
        """The unit an outcome belongs to (its instance unit if listed, else its family)."""
        if outcome.split != TRAIN:
            raise ValueError(f"outcome of {outcome.task_id}#{outcome.index} is from split "
                             f"{outcome.split!r}; the curriculum learns only from {TRAIN!r} outcomes")
        for name in (unit_name(outcome.task_id, outcome.index), outcome.task_id):
            if name in self.position:
                return name
        raise ValueError(f"outcome for unknown unit {outcome.task_id}#{outcome.index}: neither it nor "
                         f"{outcome.task_id!r} is a unit of this curriculum (units: {self.preview()})")

    def resolve(self, entry: str) -> list[str]:
        """A unit name, or a family id standing for all of its instance units."""
        if entry in self.position:
            return [entry]
        members = [n for n, p in zip(self.names, self.parsed, strict=True) if p.task_id == entry]
        if not members:
            raise ValueError(f"unknown unit {entry!r}; known: {self.preview()}")
        return members

    def requests(self, drawn: Sequence[str], rng: np.random.Generator) -> list[TaskRequest]:
        """Train requests for drawn units; family units get indices from `rng` (one vectorised draw)."""
        indices = rng.integers(0, self.num_instances, size=len(drawn))
        out = []
        for name, drawn_index in zip(drawn, indices, strict=True):
            parsed = self.parsed[self.position[name]]
            index = int(drawn_index) if parsed.index is None else parsed.index
            out.append(TaskRequest(parsed.task_id, index, TRAIN))
        return out

    def preview(self, limit: int = 8) -> str:
        shown = ", ".join(self.names[:limit])
        return shown + (f", ... ({len(self.names)} in all)" if len(self.names) > limit else "")


def unit_requests(unit: str, n: int, rng: np.random.Generator,
                  num_instances: int = DEFAULT_NUM_INSTANCES) -> list[TaskRequest]:
    """`n` train requests for one unit, for probe callbacks: distinct random instances of a family
    (while there are enough), or `n` copies of an instance unit."""
    parsed = parse_unit(unit)
    if parsed.index is not None:
        return [TaskRequest(parsed.task_id, parsed.index, TRAIN)] * n
    indices = rng.choice(num_instances, size=n, replace=n > num_instances)
    return [TaskRequest(parsed.task_id, int(i), TRAIN) for i in indices]
