"""Units, the train-split guard, success statistics, the potential score and the probe."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
from toolgym.curriculum import (
    PROMPT_MODES,
    SuccessStats,
    UnitSet,
    check_train_split,
    expand_units,
    improvement_potential,
    parse_unit,
    run_probe,
    unit_name,
    unit_requests,
)
from toolgym.envs.types import Outcome, TaskRequest


def test_parse_unit_family_and_instance() -> None:
    assert parse_unit("toolgym/arith-v0").index is None
    assert parse_unit("toolgym/arith-v0#17").task_id == "toolgym/arith-v0"
    assert parse_unit("toolgym/arith-v0#17").index == 17
    assert unit_name("a", 3) == "a#3" and unit_name("a") == "a"
    for bad in ("", "a#", "#3", "a#-1", "a#x"):
        with pytest.raises(ValueError, match="unit"):
            parse_unit(bad)


def test_expand_units_by_config() -> None:
    assert expand_units(["a", "b#2"], "family") == ["a", "b#2"]
    assert expand_units(["a", "b#2"], "instance", instances_per_family=3) == ["a#0", "a#1", "a#2", "b#2"]
    with pytest.raises(ValueError, match="instances_per_family"):
        expand_units(["a"], "instance")
    assert expand_units(["a"], "task") == ["a"]  # alias of "family"
    with pytest.raises(ValueError, match="known: family, task, instance"):
        expand_units(["a"], "episode")
    with pytest.raises(ValueError, match="single string"):
        expand_units("abc")


def test_unit_set_maps_outcomes_instance_first() -> None:
    units = UnitSet(["a", "a#3", "b#1"])
    assert units.unit_of(Outcome("a", 3, True, 1.0)) == "a#3"
    assert units.unit_of(Outcome("a", 4, True, 1.0)) == "a"
    assert units.unit_of(Outcome("b", 1, True, 1.0)) == "b#1"
    with pytest.raises(ValueError, match="unknown unit b#2"):
        units.unit_of(Outcome("b", 2, True, 1.0))
    with pytest.raises(ValueError, match="split 'heldout'"):
        units.unit_of(Outcome("a", 0, True, 1.0, split="heldout"))
    with pytest.raises(ValueError, match="duplicate units"):
        UnitSet(["a", "a"])
    with pytest.raises(ValueError, match="at least one unit"):
        UnitSet([])


def test_requests_are_train_with_indices_in_range() -> None:
    units = UnitSet(["a", "b#5"], num_instances=7)
    reqs = units.requests(["a"] * 50 + ["b#5"] * 3, np.random.default_rng(0))
    assert all(r.split == "train" for r in reqs)
    assert {r.index for r in reqs[:50]} <= set(range(7)) and len({r.index for r in reqs[:50]}) > 1
    assert [r.index for r in reqs[50:]] == [5, 5, 5]
    assert unit_requests("b#5", 2, np.random.default_rng(0)) == [TaskRequest("b", 5)] * 2
    fam = unit_requests("a", 5, np.random.default_rng(0), num_instances=5)
    assert sorted(r.index for r in fam) == [0, 1, 2, 3, 4]  # distinct while there are enough


def test_train_split_check_with_mapping() -> None:
    check_train_split(["a", "b"], {"a": ("train", "heldout"), "b": ["train"]})
    with pytest.raises(ValueError, match="no 'train' split"):
        check_train_split(["a"], {"a": ("heldout",)})
    with pytest.raises(ValueError, match="no splits given for task 'c'"):
        check_train_split(["c"], {"a": ("train",)})


def test_train_split_check_asks_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = []

    def task_splits(task_id: str) -> tuple[str, ...]:
        asked.append(task_id)
        return ("heldout",) if task_id == "only-heldout" else ("train", "heldout")

    fake = types.ModuleType("toolgym.envs.registry")
    fake.task_splits = task_splits
    monkeypatch.setitem(sys.modules, "toolgym.envs.registry", fake)
    check_train_split(["a", "b", "a"])
    assert asked == ["a", "b"]  # each task asked once
    with pytest.raises(ValueError, match="'only-heldout' has no 'train' split"):
        check_train_split(["only-heldout"])


def test_train_split_check_with_real_registry() -> None:
    check_train_split(["toolgym/arith-v0"])
    with pytest.raises(Exception, match="no-such-task"):
        check_train_split(["toolgym/no-such-task-v0"])


def test_stats_counts_recency_and_confidence() -> None:
    stats = SuccessStats(["u", "v"], half_life=2.0, min_samples=1.5)
    stats.record("u", False, 0.0)
    assert stats.rate("u") is None  # one sample < min_samples
    stats.record("u", True, 1.0)
    d = 0.5 ** 0.5
    assert stats.rate("u") == pytest.approx(1.0 / (1.0 + d))  # newest outcome weighs most
    summary = stats.summary("u")
    assert (summary.attempts, summary.successes) == (2, 1)
    assert summary.confidence == pytest.approx(1.0 + d)
    assert np.isnan(stats.rates()[1]) and stats.measured().tolist() == [True, False]
    with pytest.raises(ValueError, match="unknown unit 'w'"):
        stats.record("w", True)


def test_stats_state_round_trip_through_json() -> None:
    stats = SuccessStats(["u", "v"], half_life=3.0)
    rng = np.random.default_rng(1)
    stats.record_many((["u", "v"][i % 2], bool(rng.random() < 0.3), float(rng.random())) for i in range(40))
    other = SuccessStats(["u", "v"], half_life=3.0)
    other.load_state_dict(json.loads(json.dumps(stats.state_dict())))
    assert other.rates().tolist() == stats.rates().tolist()
    with pytest.raises(ValueError, match="half_life"):
        SuccessStats(["u", "v"], half_life=4.0).load_state_dict(stats.state_dict())
    with pytest.raises(ValueError, match="different units"):
        SuccessStats(["u"], half_life=3.0).load_state_dict(stats.state_dict())


def test_potential_score() -> None:
    assert [improvement_potential(p) for p in (0.5, 0.0, 1.0)] == [1.0, 0.0, 0.0]
    assert improvement_potential(0.25) == pytest.approx(0.75)
    assert improvement_potential(np.array([0.1, 0.9])).tolist() == pytest.approx([0.36, 0.36])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        improvement_potential(1.5)


def test_run_probe_calls_each_mode_and_validates() -> None:
    calls = []

    def probe(units: list[str], n: int, mode: str) -> list[Outcome]:
        calls.append((tuple(units), n, mode))
        return [Outcome(u, i, mode == "code", 1.0) for u in units for i in range(n)]

    out = run_probe(probe, ["a", "b"], 3, modes=PROMPT_MODES)
    assert [c[2] for c in calls] == ["text", "code", "free"] and len(out) == 18
    assert sum(o.success for o in out) == 6
    with pytest.raises(ValueError, match="known: text, code, free"):
        run_probe(probe, ["a"], 1, modes=("vision",))
    with pytest.raises(ValueError, match="n >= 1"):
        run_probe(probe, ["a"], 0)
    with pytest.raises(TypeError, match=r"list of toolgym\.envs\.types\.Outcome"):
        run_probe(lambda u, n, m: [{"success": True}], ["a"], 1)


def test_a_batch_of_outcomes_is_equally_recent_whatever_its_order() -> None:
    batch = [("u", True, 1.0)] * 10 + [("u", False, 0.0)] * 10
    a, b = SuccessStats(["u"], half_life=5.0), SuccessStats(["u"], half_life=5.0)
    a.record_many(batch)
    b.record_many(batch[::-1])
    assert a.rate("u") == b.rate("u") == pytest.approx(0.5)  # per outcome, the order moved it by ~0.2
    one = SuccessStats(["u"], half_life=5.0)
    one.record("u", True, 1.0)
    many = SuccessStats(["u"], half_life=5.0)
    many.record_many([("u", True, 1.0)])
    assert one.summary("u") == many.summary("u")  # a batch of one is one outcome
    a.record_many([("u", True, 1.0)] * 20)
    assert a.summary("u").confidence == pytest.approx(20 * 0.5 ** 4 + 20)  # the past decays by decay ** 20
