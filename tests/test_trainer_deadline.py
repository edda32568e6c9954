"""A whole-run budget holds with the final evaluation included: `fit(deadline=...)` starts a step only
if it (as long as the last one) and the final evaluation (as long as the measured starting one) fit.
A fake clock advances by set amounts in each evaluation and step, so the count of steps is exact;
the training itself is real (the tiny model, the local sandbox, no Ray)."""

from __future__ import annotations

from pathlib import Path

import pytest
from toolgym.trainers.config import load_config
from toolgym.trainers.run import deadline as deadline_mod
from toolgym.trainers.run.deadline import Deadline
from toolgym.trainers.run.driver import fit

TINY = ["rollout.prompts_per_step=2", "rollout.group_size=2", "rollout.sandbox_pool=1", "rollout.max_turns=1",
        "sampling.max_new_tokens=6", "rollout.filter_zero_variance=false", "run.progress=false",
        "run.ray=off", "run.tasks=[toolgym/arith-v0]", "eval.problems=2", "run.steps=20",
        "model.tiny={hidden_size: 32, intermediate_size: 64, num_layers: 1, num_heads: 2, num_kv_heads: 1}"]


@pytest.fixture
def fake_clock(monkeypatch):
    """Evaluations cost `costs['eval']` fake seconds, steps `costs['step']`; everything else is free."""
    import toolgym.trainers.run.driver as driver

    t = [0.0]
    costs = {"eval": 0.0, "step": 10.0}
    monkeypatch.setattr(deadline_mod, "clock", lambda: t[0])

    def costing(kind, real):
        def wrapper(*args, **kwargs):
            out = real(*args, **kwargs)
            t[0] += costs[kind]
            return out
        return wrapper

    monkeypatch.setattr(driver, "evaluate", costing("eval", driver.evaluate))
    monkeypatch.setattr(driver, "train_step", costing("step", driver.train_step))
    return t, costs


@pytest.mark.parametrize("eval_cost, steps", [(50.0, 1), (5.0, 9)])
def test_steps_stop_so_that_the_final_evaluation_fits(tmp_path: Path, fake_clock, eval_cost: float,
                                                      steps: int) -> None:
    """Budget 100 s, steps of 10 s. Starting eval 50 s: step 1 fits (50 + 0 + 50 <= 100; nothing is
    known of a step yet), step 2 would not (60 + 10 + 50). Eval 5 s: steps start at 5, 15, ..., 85
    (85 + 10 + 5 = 100) -- nine; a fixed 90 s reserve would have allowed none after the first."""
    t, costs = fake_clock
    costs["eval"] = eval_cost
    out = fit(load_config(None, TINY), tmp_path, deadline=Deadline(at=100.0, eval_s=90.0))
    assert out["step"] == steps and not out["interrupted"]
    assert sorted(out["evals"]) == [0, steps]  # the final evaluation ran
    assert t[0] == pytest.approx(2 * eval_cost + 10.0 * steps)


def test_without_a_final_evaluation_no_room_is_kept_for_one(tmp_path: Path, fake_clock) -> None:
    out = fit(load_config(None, [*TINY, "eval.problems=0"]), tmp_path, deadline=Deadline(at=100.0))
    assert out["step"] == 10  # steps start at 0..90: 90 + 10 <= 100; the reserve (90 s) is not kept


def test_a_passed_deadline_starts_no_step(tmp_path: Path, fake_clock) -> None:
    out = fit(load_config(None, TINY), tmp_path, deadline=Deadline(at=-1.0))
    assert out["step"] == 0
