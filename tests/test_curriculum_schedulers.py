"""Behaviour of each scheduler, the registry's errors, and what every scheduler must guarantee:
train-only requests, determinism given a seed, and exact resumption from a JSON state mid-stage.

Outcomes come from a stand-in policy with a fixed success probability per unit (no model needed:
the scheduler only ever sees outcomes).
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from toolgym.curriculum import (
    Scheduler,
    SequenceScheduler,
    Stage,
    list_schedulers,
    make_scheduler,
    scheduler_options,
)
from toolgym.envs.types import Outcome, TaskRequest

UNITS = [f"t{i}" for i in range(8)]
SPLITS = {u: ("train", "heldout") for u in UNITS}
# hidden success probabilities of the stand-in policy; potentials 1, .96, .84, .64, .36, .36, 0, 0
P = {"t0": 0.5, "t1": 0.4, "t2": 0.7, "t3": 0.2, "t4": 0.9, "t5": 0.1, "t6": 0.0, "t7": 1.0}
G = 4  # samples per request (a GRPO group)


def outcomes_for(batch: list[TaskRequest], rng: np.random.Generator, p=P) -> list[Outcome]:
    return [Outcome(r.task_id, r.index, bool(rng.random() < p[r.task_id]), 1.0 * (rng.random() < 0.5))
            for r in batch for _ in range(G)]


def exact_probe(units: list[str], n: int, mode: str) -> list[Outcome]:
    """Exactly round(p*n) successes per unit, spread evenly (so estimates equal P)."""
    out = []
    for u in units:
        k = round(P[u] * n)
        out += [Outcome(u, i, (i * k) % n < k if k < n else True, 0.0) for i in range(n)]
    return out


def build(name: str, **cfg) -> Scheduler:
    if name == "sequence":
        cfg.setdefault("stages", [{"units": UNITS[:3], "steps": 3, "max_response_length": 64},
                                  {"units": UNITS, "max_response_length": 128}])
    return make_scheduler(name, UNITS, splits=SPLITS, half_life=1e9, **cfg)


def drive(s: Scheduler, rng: np.random.Generator, steps: int, n: int = 4) -> list[list[TaskRequest]]:
    batches = []
    for _ in range(steps):
        batch = s.next_batch(n, rng)
        batches.append(batch)
        s.update(outcomes_for(batch, rng))
    return batches


ALL = ["potential", "uniform", "difficulty_band", "solved_drop", "sequence"]


def test_registry_lists_builtins_and_rejects_unknowns() -> None:
    assert set(ALL) <= set(list_schedulers())
    with pytest.raises(ValueError, match=r"Did you mean 'potential'\?.*Registered: .*potential.*uniform"):
        make_scheduler("potentail", UNITS, splits=SPLITS)
    with pytest.raises(ValueError, match=r"unknown config key.*'lo_band'.*allowed: .*hi"):
        make_scheduler("difficulty_band", UNITS, splits=SPLITS, lo_band=0.1)
    options = set(scheduler_options("potential"))
    assert {"stages", "fractions", "steps_per_stage", "splits", "half_life"} <= options


@pytest.mark.parametrize("name", ALL)
def test_requests_are_train_only_and_deterministic(name: str) -> None:
    a, b = build(name), build(name)
    batches_a = drive(a, np.random.default_rng(7), 6)
    batches_b = drive(b, np.random.default_rng(7), 6)
    assert batches_a == batches_b
    assert all(r.split == "train" and r.task_id in UNITS for batch in batches_a for r in batch)
    assert a.describe() == b.describe() or _nan_equal(a.describe(), b.describe())


@pytest.mark.parametrize("name", ALL)
def test_state_dict_round_trip_mid_stage(name: str) -> None:
    cfg = {"steps_per_stage": 5} if name == "potential" else {}
    rng = np.random.default_rng(3)
    original = build(name, **cfg)
    if name in ("potential", "difficulty_band"):
        original.probe(exact_probe, n=10)
    drive(original, rng, 7, n=3)  # potential: stage 1 after 5 steps, 2 steps into it
    state = json.loads(json.dumps(original.state_dict()))  # must be JSON-serialisable
    rng_state = json.loads(json.dumps(rng.bit_generator.state))

    resumed = build(name, **cfg)
    resumed.load_state_dict(state)
    rng2 = np.random.default_rng()
    rng2.bit_generator.state = rng_state
    assert _nan_equal(resumed.describe(), original.describe())
    assert drive(resumed, rng2, 6, n=3) == drive(original, rng, 6, n=3)
    assert _nan_equal(resumed.describe(), original.describe())


def test_resume_into_a_different_scheduler_or_units_fails() -> None:
    state = build("uniform").state_dict()
    with pytest.raises(ValueError, match=r"scheduler 'uniform'.*'potential'"):
        build("potential").load_state_dict(state)
    other = make_scheduler("uniform", UNITS[:4], splits=SPLITS)
    with pytest.raises(ValueError, match="different units"):
        other.load_state_dict(state)


@pytest.mark.parametrize("name", ALL)
def test_constructing_with_a_heldout_only_unit_fails(name: str) -> None:
    splits = {**SPLITS, "t3": ("heldout",)}
    cfg = {"stages": [{"units": UNITS}]} if name == "sequence" else {}
    with pytest.raises(ValueError, match="'t3' has no 'train' split"):
        make_scheduler(name, UNITS, splits=splits, **cfg)


def test_update_rejects_unknown_units_and_heldout_outcomes_atomically() -> None:
    s = build("uniform")
    with pytest.raises(ValueError, match="unknown unit zz#0"):
        s.update([Outcome("t0", 0, True, 1.0), Outcome("zz", 0, True, 1.0)])
    with pytest.raises(ValueError, match="split 'heldout'"):
        s.update([Outcome("t0", 0, True, 1.0, split="heldout")])
    assert s.step == 0 and s.stats.summary("t0").attempts == 0  # nothing half-recorded
    with pytest.raises(ValueError, match="n >= 1"):
        s.next_batch(0, np.random.default_rng(0))
    with pytest.raises(TypeError, match="numpy Generator"):
        s.next_batch(2, 0)


def test_uniform_covers_every_unit_once_per_epoch() -> None:
    s = build("uniform")
    batches = drive(s, np.random.default_rng(0), 4, n=4)  # 16 requests = 2 epochs of 8 units
    for epoch in (batches[0] + batches[1], batches[2] + batches[3]):
        assert sorted(r.task_id for r in epoch) == UNITS
    assert s.describe()["curriculum/epoch"] == 1


def test_instance_units_by_config() -> None:
    s = make_scheduler("uniform", ["t0"], unit="instance", instances_per_family=3, splits=SPLITS)
    assert s.units.names == ["t0#0", "t0#1", "t0#2"]
    batch = s.next_batch(3, np.random.default_rng(0))
    assert sorted(r.index for r in batch) == [0, 1, 2]
    s.update([Outcome("t0", 1, True, 1.0)])
    assert s.stats.summary("t0#1").attempts == 1


def test_difficulty_band_keeps_units_inside_the_band() -> None:
    s = build("difficulty_band", lo=0.15, hi=0.8)
    assert s.active_units() == UNITS  # nothing measured yet: unknown units are kept
    s.probe(exact_probe, n=10)
    assert s.active_units() == ["t0", "t1", "t2", "t3"]
    batch = s.next_batch(8, np.random.default_rng(0))
    assert Counter(r.task_id for r in batch) == {"t0": 2, "t1": 2, "t2": 2, "t3": 2}
    # t2 becomes solved during training: it leaves the band
    s.update([Outcome("t2", 0, True, 1.0)] * 200)
    assert s.active_units() == ["t0", "t1", "t3"]
    assert s.describe()["curriculum/units_above_band"] == 3


def test_difficulty_band_never_empties_and_validates() -> None:
    s = build("difficulty_band", lo=0.45, hi=0.45, min_active=3)
    s.probe(exact_probe, n=10)
    assert s.active_units() == ["t0", "t1", "t2"]  # p = .5, .4, .7: nearest to the band
    unknown_out = build("difficulty_band", include_unknown=False)
    assert len(unknown_out.active_units()) == 1
    with pytest.raises(ValueError, match="0 <= lo <= hi <= 1"):
        build("difficulty_band", lo=0.6, hi=0.4)
    with pytest.raises(ValueError, match="min_active"):
        build("difficulty_band", min_active=9)


def test_solved_drop_removes_units_solved_every_time_in_an_epoch() -> None:
    s = build("solved_drop")
    p = {**P, "t2": 1.0, "t4": 0.5}  # t2 and t7 always solved; the others fail sometimes
    rng = np.random.default_rng(0)
    for _ in range(2):  # one epoch = 8 requests
        batch = s.next_batch(4, rng)
        s.update(outcomes_for(batch, rng, p))
    assert s.active_units() == UNITS  # decided at the epoch boundary, on the next draw
    batch = s.next_batch(4, rng)
    assert s.dropped == ["t2", "t7"] and {r.task_id for r in batch}.isdisjoint({"t2", "t7"})
    assert s.describe()["curriculum/units_dropped"] == 2


def test_solved_drop_keeps_min_active() -> None:
    s = build("solved_drop", min_active=7)
    rng = np.random.default_rng(0)
    batch = s.next_batch(8, rng)
    s.update(outcomes_for(batch, rng, {u: 1.0 for u in UNITS}))
    s.next_batch(1, rng)
    assert len(s.active_units()) == 7


def test_potential_stages_grow_from_the_highest_potential() -> None:
    s = build("potential", steps_per_stage=2, plateau_window=None)
    s.probe(exact_probe, n=10)
    assert s.active_units() == ["t0", "t1"]  # top 25%: potentials 1.0, .96
    rng = np.random.default_rng(0)
    sizes = []
    for _ in range(8):
        batch = s.next_batch(4, rng)
        assert {r.task_id for r in batch} <= set(s.active_units())
        sizes.append(len(s.active_units()))
        s.update(outcomes_for(batch, rng))
    assert sizes == [2, 2, 4, 4, 6, 6, 8, 8]  # 25/50/75/100%, the last stage never ends
    assert [a["reason"] for a in s.advances] == ["steps"] * 3
    assert s.describe()["curriculum/stage"] == 4 and s.stage == 3  # logs count stages from 1


def test_potential_reranks_from_training_outcomes_at_stage_start() -> None:
    s = build("potential", steps_per_stage=1, plateau_window=None)
    s.probe(exact_probe, n=10)
    # training shows t0 is now always solved: it drops out of the next stage's top 50%
    s.update([Outcome("t0", 0, True, 1.0)] * 1000)
    active = s.active_units()
    assert "t0" not in active and active[:3] == ["t1", "t2", "t3"]
    assert active[3] in ("t4", "t5")  # t4 and t5 tie at 0.36: either completes the top half


def test_potential_advances_on_a_reward_plateau() -> None:
    s = build("potential", steps_per_stage=None, plateau_window=3, plateau_tol=0.01)
    flat = [Outcome("t0", 0, False, 0.5)] * 4
    for _ in range(5):
        s.update(flat)
    assert s.stage == 0  # needs 2 windows of history
    s.update(flat)
    assert s.stage == 1 and s.advances[-1] == {"step": 6, "stage": 1, "reason": "plateau"}
    for reward in np.linspace(0, 1, 6):  # a rising reward is not a plateau
        s.update([Outcome("t0", 0, False, float(reward))] * 4)
    assert s.stage == 1


def test_potential_without_probe_uses_unit_order_then_probe_reselects() -> None:
    s = build("potential")
    assert s.active_units() == ["t0", "t1"]  # all unmeasured: potential 1, ties in unit order
    s.update([Outcome("t0", 0, True, 1.0)] * 10)
    assert s.active_units() == ["t0", "t1"]  # membership is fixed within a stage

    def probe(units: list[str], n: int, mode: str) -> list[Outcome]:
        hits = {"t5": n // 2, "t6": n // 2 - 1}  # every other unit: never solved
        return [Outcome(u, i, i < hits.get(u, 0), 0.0) for u in units for i in range(n)]

    fresh = build("potential")
    assert fresh.active_units() == ["t0", "t1"]
    fresh.probe(probe, n=10, modes=("text", "code"))
    assert fresh.active_units() == ["t5", "t6"] and fresh.probe_episodes == 160
    assert fresh.step == 0  # probing is not a training step


def test_potential_weighting_within_a_stage() -> None:
    counts = {}
    for weighting in ("potential", "uniform"):
        s = build("potential", fractions=[1.0], weighting=weighting, weight_floor=0.05)
        s.probe(exact_probe, n=10)
        rng = np.random.default_rng(0)
        counts[weighting] = Counter(r.task_id for _ in range(500) for r in s.next_batch(4, rng))
    weighted = counts["potential"]  # weights max(P, .05): 1, .96, .84, .64, .36, .36, .05, .05
    assert weighted["t0"] > weighted["t3"] > weighted["t5"] > weighted["t6"] > 0
    assert weighted["t6"] / 2000 == pytest.approx(0.05 / 4.26, abs=0.006)
    assert all(200 < c < 300 for c in counts["uniform"].values())  # even: 250 each in expectation


@pytest.mark.parametrize("cfg, match", [
    ({"fractions": [0.5, 0.25, 1.0]}, "strictly increasing"),
    ({"fractions": [0.5, 0.5]}, "strictly increasing"),
    ({"fractions": [0.0, 1.0]}, r"\(0, 1\]"),
    ({"fractions": []}, "fractions is empty"),
    ({"stages": 0}, "stages must be an integer >= 1"),
    ({"stages": 3, "fractions": [0.5, 1.0]}, "disagrees with the 2 fractions"),
    ({"steps_per_stage": None, "plateau_window": None}, "never leaves its first stage"),
    ({"steps_per_stage": 0}, "steps_per_stage must be >= 1"),
    ({"plateau_window": 0}, "plateau_window must be >= 1"),
    ({"weighting": "softmax"}, "known: uniform, potential"),
    ({"weight_floor": 0.0}, r"weight_floor must lie in \(0, 1\]"),
])
def test_potential_config_errors(cfg: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build("potential", **cfg)


def test_sequence_stages_and_max_response_length() -> None:
    s = build("sequence")
    assert isinstance(s, SequenceScheduler) and s.max_response_length == 64
    rng = np.random.default_rng(0)
    for batch in drive(s, rng, 3, n=3):
        assert sorted(r.task_id for r in batch) == ["t0", "t1", "t2"]
    assert s.stage == 1 and s.max_response_length == 128
    assert s.describe()["curriculum/max_response_length"] == 128
    assert sorted(r.task_id for r in s.next_batch(8, rng)) == UNITS


def test_sequence_family_entries_expand_to_instance_units() -> None:
    s = make_scheduler("sequence", ["t0", "t1"], unit="instance", instances_per_family=2, splits=SPLITS,
                       stages=[Stage(units=("t1",), steps=1), Stage(units=("t0#1", "t1"))])
    assert s.active_units() == ["t1#0", "t1#1"]
    s.update([])
    assert s.active_units() == ["t0#1", "t1#0", "t1#1"]


@pytest.mark.parametrize("stages, match", [
    ([], "non-empty list"),
    ([{"units": []}], "stage 0 .* is empty"),
    ([{"units": ["t0"], "length": 3}], "unknown key.*'length'.*allowed"),
    ([{"steps": 3}], "stage 0 has no 'units'"),
    ([{"units": ["nope"]}], "unknown unit 'nope'; known: t0"),
    ([{"units": ["t0"]}, {"units": ["t1"]}], "stage 0 .* would never end"),
    ([{"units": ["t0"], "steps": 0}], "steps must be a positive integer"),
])
def test_sequence_config_errors(stages: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build("sequence", stages=stages)


def _nan_equal(a: dict, b: dict) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
