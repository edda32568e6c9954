"""Zero-variance group filter with bounded over-sampling (DAPO's dynamic sampling; Klear, Skywork).

A GRPO group whose samples all have the same outcome has zero advantage on every sample: it costs a
backward pass and teaches nothing, and it shrinks the effective batch. The filter drops such groups
and refills the batch by sampling more groups, up to `max_attempts` sampling rounds in all.

It filters on binary *success* (the verifier's perfect score), not on the shaped reward: two samples
that both fail but differ by a format bonus are not an informative pair, and filtering on shaped
rewards can collapse the policy (see ALGORITHMS.md, "Sampling and filtering").

Groups are lists of any records with a success flag (agents' `Episode`, dicts, ...), read by
attribute or key name, or by a callable. The filter does not import agents.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass
class FilterReport:
    """How much a filtering round dropped (also accumulated over calls in `GroupFilter.totals`)."""

    groups_sampled: int = 0
    groups_kept: int = 0  # informative groups returned (at most the target when refilling)
    groups_dropped: int = 0
    dropped_all_success: int = 0
    dropped_all_failure: int = 0
    groups_surplus: int = 0  # informative groups sampled beyond the target (returned separately)
    attempts: int = 0  # sampling rounds (1 = no refill needed)
    shortfall: int = 0  # target - kept when max_attempts ran out

    @property
    def drop_fraction(self) -> float:
        return self.groups_dropped / self.groups_sampled if self.groups_sampled else 0.0

    def add(self, other: FilterReport) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def metrics(self, prefix: str = "filter/") -> dict[str, float]:
        """Flat scalars for the logs, e.g. `filter/drop_fraction`."""
        out = {prefix + name: float(getattr(self, name)) for name in self.__dataclass_fields__}
        out[prefix + "drop_fraction"] = self.drop_fraction
        return out


@dataclass
class FilterResult(Generic[T]):
    """Informative groups (`kept`), the dropped ones, and extra informative groups beyond the target.

    All sampled groups are returned so the trainer can still feed every outcome to the curriculum."""

    kept: list[list[T]]
    dropped: list[list[T]] = field(default_factory=list)
    surplus: list[list[T]] = field(default_factory=list)
    report: FilterReport = field(default_factory=FilterReport)


class GroupFilter:
    """Drop groups whose samples all succeed or all fail; optionally refill by over-sampling."""

    def __init__(self, *, max_attempts: int = 3, max_oversample: float = 4.0,
                 success: str | Callable[[Any], bool] = "success", enabled: bool = True) -> None:
        """`max_attempts`: sampling rounds in `fill` (1 = never refill); `max_oversample`: a refill
        round asks for at most this many times the missing groups; `success`: attribute/key name or
        callable giving a sample's success; `enabled=False` keeps every group (a baseline)."""
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1 sampling round, got {max_attempts}")
        if not max_oversample >= 1.0:
            raise ValueError(f"max_oversample must be >= 1, got {max_oversample}")
        self.max_attempts = int(max_attempts)
        self.max_oversample = float(max_oversample)
        self.success = _success_getter(success)
        self.enabled = bool(enabled)
        self.totals = FilterReport()

    def is_informative(self, group: Sequence[Any]) -> bool:
        """True when the group mixes successes and failures (a group of one never does)."""
        if not group:
            raise ValueError("an empty group has no samples to filter; check the rollout grouping")
        first = self.success(group[0])
        return any(self.success(s) != first for s in group[1:])

    def filter(self, groups: Iterable[Sequence[T]]) -> FilterResult[T]:
        """One pass: split `groups` into informative and dropped ones (no refill)."""
        result = self._split(groups)
        result.report.attempts = 1
        self.totals.add(result.report)
        return result

    def fill(self, sample: Callable[[int], Sequence[Sequence[T]]], n_groups: int) -> FilterResult[T]:
        """Call `sample(k) -> k groups` until `n_groups` informative groups are kept or
        `max_attempts` rounds are spent. Each refill round asks for the missing groups divided by the
        keep rate seen so far, capped at `max_oversample` times the missing count."""
        if n_groups < 1:
            raise ValueError(f"fill needs n_groups >= 1, got {n_groups}")
        total = FilterResult[T](kept=[])
        request = n_groups
        while True:
            part = self._split(sample(request))
            total.kept += part.kept
            total.dropped += part.dropped
            total.report.add(part.report)
            total.report.attempts += 1
            missing = n_groups - len(total.kept)
            if missing <= 0 or total.report.attempts >= self.max_attempts:
                break
            rate = len(total.kept) / max(total.report.groups_sampled, 1)
            cap = math.ceil(missing * self.max_oversample)
            request = cap if rate == 0 else min(cap, math.ceil(missing / rate))
        total.surplus = total.kept[n_groups:]
        total.kept = total.kept[:n_groups]
        report = total.report
        report.groups_surplus = len(total.surplus)
        report.groups_kept = len(total.kept)
        report.shortfall = n_groups - len(total.kept)
        self.totals.add(report)
        return total

    def _split(self, groups: Iterable[Sequence[T]]) -> FilterResult[T]:
        result = FilterResult[T](kept=[])
        for group in groups:
            group = list(group)
            result.report.groups_sampled += 1
            if not self.enabled or self.is_informative(group):
                result.kept.append(group)
                continue
            result.dropped.append(group)
            result.report.groups_dropped += 1
            if self.success(group[0]):
                result.report.dropped_all_success += 1
            else:
                result.report.dropped_all_failure += 1
        result.report.groups_kept = len(result.kept)
        return result


def _success_getter(success: str | Callable[[Any], bool]) -> Callable[[Any], bool]:
    get = _getter(success)
    return lambda sample: bool(get(sample))


def _getter(key: str | Callable[[Any], Any]) -> Callable[[Any], Any]:
    if callable(key):
        return key
    if not isinstance(key, str):
        raise TypeError(f"expected an attribute/key name or a callable, got {key!r}")

    def get(item: Any) -> Any:
        if isinstance(item, Mapping):
            if key not in item:
                raise KeyError(f"sample has no key {key!r} (keys: {sorted(item)})")
            return item[key]
        if not hasattr(item, key):
            raise AttributeError(f"sample of type {type(item).__name__} has no attribute {key!r}")
        return getattr(item, key)

    return get
