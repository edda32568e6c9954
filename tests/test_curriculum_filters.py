"""The zero-variance group filter: what it drops, how it refills, and what it reports."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from toolgym.curriculum import FilterReport, GroupFilter


@dataclass
class Sample:
    group_id: int
    success: bool
    reward: float = 0.0


def group(gid: int, *successes: bool) -> list[Sample]:
    return [Sample(gid, s, reward=0.1 * i) for i, s in enumerate(successes)]


def test_drops_uniform_success_groups_not_shaped_reward_differences() -> None:
    f = GroupFilter()
    mixed, solved, failed = group(0, True, False), group(1, True, True), group(2, False, False, False)
    assert f.is_informative(mixed) and not f.is_informative(solved) and not f.is_informative(failed)
    assert not f.is_informative(group(3, True))  # a group of one has no variance
    result = f.filter([mixed, solved, failed])  # `failed` has different rewards, same success
    assert result.kept == [mixed] and result.dropped == [solved, failed]
    r = result.report
    assert (r.groups_sampled, r.groups_kept, r.groups_dropped) == (3, 1, 2)
    assert (r.dropped_all_success, r.dropped_all_failure, r.attempts) == (1, 1, 1)
    assert r.drop_fraction == pytest.approx(2 / 3)


def test_fill_oversamples_by_the_observed_keep_rate() -> None:
    asked: list[int] = []
    counter = iter(range(10_000))

    def sample(k: int) -> list[list[Sample]]:  # every other group is informative
        asked.append(k)
        out = []
        for _ in range(k):
            gid = next(counter)
            out.append(group(gid, True, gid % 2 == 0))
        return out

    result = GroupFilter(max_attempts=5).fill(sample, 8)
    assert asked == [8, 8]  # 4 of 8 kept -> rate 0.5 -> 4 missing / 0.5 = 8
    assert len(result.kept) == 8 and all(GroupFilter().is_informative(g) for g in result.kept)
    assert result.report.attempts == 2 and result.report.shortfall == 0
    assert result.report.groups_sampled == 16 and result.report.groups_dropped == 8


def test_fill_stops_after_max_attempts_and_reports_the_shortfall() -> None:
    asked: list[int] = []

    def sample(k: int) -> list[list[Sample]]:
        asked.append(k)
        return [group(i, False, False) for i in range(k)]  # nothing is ever informative

    f = GroupFilter(max_attempts=3, max_oversample=2.0)
    result = f.fill(sample, 4)
    assert asked == [4, 8, 8]  # no keep rate yet: ask max_oversample x the missing groups
    assert result.kept == [] and len(result.dropped) == 20
    assert result.report.shortfall == 4 and result.report.drop_fraction == 1.0


def test_fill_returns_surplus_and_totals_accumulate() -> None:
    def sample(k: int) -> list[list[Sample]]:
        return [group(i, True, False) for i in range(k + 3)]  # an over-eager sampler

    f = GroupFilter()
    result = f.fill(sample, 2)
    assert len(result.kept) == 2 and len(result.surplus) == 3 and result.report.groups_surplus == 3
    f.filter([group(0, True, True)])
    totals = f.totals
    assert totals.groups_sampled == 6 and totals.groups_dropped == 1 and totals.attempts == 2
    metrics = totals.metrics()
    assert metrics["filter/drop_fraction"] == pytest.approx(1 / 6)
    assert set(metrics) >= {"filter/groups_sampled", "filter/shortfall", "filter/dropped_all_success"}


def test_disabled_filter_keeps_everything_and_still_reports() -> None:
    f = GroupFilter(enabled=False)
    result = f.filter([group(0, True, True), group(1, False, False)])
    assert len(result.kept) == 2 and result.report.groups_dropped == 0


def test_success_from_dicts_and_callables() -> None:
    dict_group = [{"success": True}, {"success": False}]
    assert GroupFilter().is_informative(dict_group)
    by_score = GroupFilter(success=lambda s: s["score"] >= 1.0)
    assert not by_score.is_informative([{"score": 0.5}, {"score": 0.9}])  # partial credit is failure
    with pytest.raises(KeyError, match="no key 'success'"):
        GroupFilter().is_informative([{"ok": 1}, {"ok": 0}])
    with pytest.raises(AttributeError, match="no attribute 'success'"):
        GroupFilter().is_informative([object(), object()])


def test_bad_config_and_empty_group() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        GroupFilter(max_attempts=0)
    with pytest.raises(ValueError, match="max_oversample"):
        GroupFilter(max_oversample=0.5)
    with pytest.raises(ValueError, match="empty group"):
        GroupFilter().filter([[]])
    with pytest.raises(ValueError, match="n_groups"):
        GroupFilter().fill(lambda k: [], 0)


def test_report_add() -> None:
    a, b = FilterReport(groups_sampled=2, groups_dropped=1), FilterReport(groups_sampled=3, groups_dropped=3)
    a.add(b)
    assert (a.groups_sampled, a.groups_dropped, a.drop_fraction) == (5, 4, 0.8)
