"""Solved-prompt dropping of the `sequence` scheduler (Skywork-OR1, AceReason-Nemotron): at a stage
boundary, exactly the units solved on every attempt of the finished stage leave all later stages;
partly solved and untried units stay; the state (per-stage counts included) survives a JSON round trip.

Outcomes come from a scripted policy whose success depends on the unit, the step and the sample (no
model needed: the scheduler only ever sees outcomes). Each batch asks for exactly one pass over the
active units, so every active unit is tried at every step.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
from toolgym.curriculum import SequenceScheduler, make_scheduler
from toolgym.envs.types import Outcome, TaskRequest

UNITS = [f"t{i}" for i in range(6)]
SPLITS = {u: ("train", "heldout") for u in UNITS}
G = 4  # samples per request

# unit -> (step, sample) -> success
ALWAYS: Callable[[int, int], bool] = lambda step, sample: True  # noqa: E731
NEVER: Callable[[int, int], bool] = lambda step, sample: False  # noqa: E731
HALF: Callable[[int, int], bool] = lambda step, sample: sample % 2 == 0  # noqa: E731
POLICY = {"t0": ALWAYS, "t1": HALF, "t2": NEVER, "t3": ALWAYS, "t4": ALWAYS, "t5": HALF}


def build(**cfg) -> SequenceScheduler:
    cfg.setdefault("stages", [{"name": "a", "units": UNITS[:4], "steps": 2},
                              {"name": "b", "units": UNITS, "steps": 2},
                              {"name": "c", "units": UNITS}])
    s = make_scheduler("sequence", UNITS, splits=SPLITS, **cfg)
    assert isinstance(s, SequenceScheduler)
    return s


def outcomes(batch: list[TaskRequest], step: int, policy=POLICY) -> list[Outcome]:
    return [Outcome(r.task_id, r.index, policy[r.task_id](step, k), 1.0) for r in batch for k in range(G)]


def run(s: SequenceScheduler, rng: np.random.Generator, steps: int, policy=POLICY) -> list[list[str]]:
    """`steps` training steps; each batch is one pass over the active units. Returns the drawn units."""
    drawn = []
    for _ in range(steps):
        batch = s.next_batch(len(s.active_units()), rng)
        drawn.append(sorted(r.task_id for r in batch))
        s.update(outcomes(batch, s.step + 1, policy))
    return drawn


def test_exactly_the_all_solved_units_leave_later_stages() -> None:
    s, rng = build(drop_solved=True), np.random.default_rng(0)
    assert run(s, rng, 2) == [UNITS[:4]] * 2  # stage a: every unit tried twice
    assert s.stage == 1
    # t0 and t3 were solved on all 8 attempts; t1 (half) and t2 (never) stay; t4, t5 were not in stage a
    assert s.dropped == ["t0", "t3"]
    assert s.active_units() == ["t1", "t2", "t4", "t5"]
    assert s.describe()["curriculum/units_dropped"] == 2
    assert s.advances[-1] == {"step": 2, "stage": 1, "reason": "steps", "dropped": 2, "restored": 0}
    assert run(s, rng, 2) == [["t1", "t2", "t4", "t5"]] * 2  # dropped units are never drawn
    # stage b -> c: t4 solved every time in stage b; the earlier drops stay dropped
    assert s.stage == 2 and s.dropped == ["t0", "t3", "t4"]
    assert s.active_units() == ["t1", "t2", "t5"]
    assert s.describe()["curriculum/units_dropped"] == 3


def test_one_failure_in_the_stage_keeps_a_unit() -> None:
    policy = {**POLICY, "t0": lambda step, sample: not (step == 2 and sample == 3)}  # 7 of 8
    s = build(drop_solved=True)
    run(s, np.random.default_rng(1), 2, policy)
    assert s.dropped == ["t3"] and "t0" in s.active_units()


def test_off_by_default_and_a_lower_rate_threshold() -> None:
    plain = build()
    run(plain, np.random.default_rng(2), 2)
    assert plain.dropped == [] and plain.active_units() == UNITS
    assert plain.describe()["curriculum/units_dropped"] == 0
    half = build(drop_solved=True, drop_solved_rate=0.5)
    run(half, np.random.default_rng(2), 2)
    assert half.dropped == ["t0", "t1", "t3"]  # pass rate >= 0.5; t2 (0.0) stays


def test_instance_units_drop_single_prompts() -> None:
    s = make_scheduler("sequence", ["t0"], unit="instance", instances_per_family=3, splits=SPLITS,
                       drop_solved=True, stages=[{"units": ["t0"], "steps": 1}, {"units": ["t0"]}])
    batch = s.next_batch(3, np.random.default_rng(3))
    solved = {0: True, 1: False, 2: True}  # instance 1: solved by its first sample only
    s.update([Outcome(r.task_id, r.index, solved[r.index] or k == 0, 1.0) for r in batch for k in range(G)])
    assert s.dropped == ["t0#0", "t0#2"] and s.active_units() == ["t0#1"]


def test_a_stage_never_drops_below_min_active() -> None:
    stages = [{"units": ["t0", "t3", "t4"], "steps": 1}, {"units": ["t0", "t3", "t4", "t2"]}]
    s = build(drop_solved=True, min_active=2, stages=stages)
    run(s, np.random.default_rng(4), 1)
    # t0, t3, t4 all solved; stage 2 would keep only t2: t0 comes back (unit order) to make 2
    assert s.active_units() == ["t0", "t2"] and s.dropped == ["t3", "t4"]
    assert s.advances[-1]["dropped"] == 3 and s.advances[-1]["restored"] == 1
    only_solved = build(drop_solved=True, stages=[{"units": ["t0"], "steps": 1}, {"units": ["t0"]}])
    run(only_solved, np.random.default_rng(4), 1)
    assert only_solved.active_units() == ["t0"] and only_solved.dropped == []  # never an empty stage


def test_state_round_trip_keeps_the_stage_counts() -> None:
    # t1 fails only at step 1 (before the checkpoint) and succeeds after: a resume that lost the stage's
    # counts would drop it at the boundary
    policy = {**POLICY, "t1": lambda step, sample: step != 1}
    original, rng = build(drop_solved=True), np.random.default_rng(5)
    run(original, rng, 1, policy)
    state = json.loads(json.dumps(original.state_dict()))
    rng_state = json.loads(json.dumps(rng.bit_generator.state))
    resumed = build(drop_solved=True)
    resumed.load_state_dict(state)
    rng2 = np.random.default_rng()
    rng2.bit_generator.state = rng_state
    assert run(resumed, rng2, 4, policy) == run(original, rng, 4, policy)
    # t1 stays at a -> b (one failed step in stage a), then goes at b -> c with t4 (solved all of stage b)
    assert resumed.dropped == original.dropped == ["t0", "t3", "t1", "t4"]
    assert resumed.describe() == original.describe()
    again = build(drop_solved=True)  # after a boundary too
    again.load_state_dict(json.loads(json.dumps(original.state_dict())))
    assert again.dropped == original.dropped and again.active_units() == original.active_units()


def test_a_state_saved_before_dropping_existed_loads() -> None:
    s = build()
    run(s, np.random.default_rng(6), 1)
    state = s.state_dict()
    for key in ("dropped", "stage_stats"):
        del state["extra"][key]
    resumed = build(drop_solved=True)
    resumed.load_state_dict(state)
    assert resumed.dropped == [] and resumed.stage == 0 and resumed.stage_stats.attempts.sum() == 0


@pytest.mark.parametrize("cfg, match", [
    ({"drop_solved": "yes"}, "drop_solved must be true or false"),
    ({"drop_solved_rate": 0.0}, r"drop_solved_rate must lie in \(0, 1\]"),
    ({"drop_solved_rate": 1.5}, r"drop_solved_rate must lie in \(0, 1\]"),
    ({"min_active": 0}, "min_active must be an integer >= 1"),
])
def test_bad_drop_options_say_what_is_allowed(cfg: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build(**cfg)


@pytest.mark.parametrize("name", ["skywork-or1", "acereason"])
def test_the_recipes_that_publish_it_turn_it_on(name: str) -> None:
    from toolgym.trainers.config.checks import task_ids as train_task_ids
    from toolgym.trainers.config.recipes import load_recipe

    for tiny in (False, True):
        cfg = load_recipe(name, tiny=tiny)
        s = make_scheduler(cfg.curriculum.scheduler, train_task_ids(cfg), **cfg.curriculum.options)
        assert isinstance(s, SequenceScheduler)
        assert s.drop_solved and s.drop_solved_rate == 1.0
        assert all("#" in u for u in s.units.names)  # instance units: single prompts are dropped
