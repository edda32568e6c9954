"""`eval.background`: held-out evaluations on a worker of their own, on a weight snapshot, while training
goes on (trainers/run/background_eval.py).

Real tiny model, real sandbox, real local Ray (2 CPUs: one rollout worker and the evaluator).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_trainer_driver import tiny_config
from toolgym.trainers.report.metrics import read_metrics
from toolgym.trainers.run.driver import fit

RAY = ["run.ray=local", "rollout.num_workers=1", "run.steps=3", "eval.every=1"]


def test_evaluations_run_beside_training_and_carry_their_weights_step(local_ray, tmp_path: Path) -> None:
    out = fit(tiny_config(*RAY, "eval.background=true"), tmp_path / "bg")
    assert sorted(out["evals"]) == [0, 1, 2, 3]
    for step in range(4):
        record = json.loads((tmp_path / "bg" / "eval" / f"step_{step:06d}.json").read_text())
        assert record["step"] == record["policy_version"] == step  # the weights synced after that step
    records = read_metrics(tmp_path / "bg" / "metrics.jsonl")
    start = [r for r in records if r.get("step") == 0]
    assert not any("eval/pass@1" in r for r in start)  # the first evaluation was not waited for
    versions = [r["eval/policy_version"] for r in records if "eval/policy_version" in r]
    assert versions and versions == sorted(versions)  # collected in order, each tagged
    fit(tiny_config(*RAY), tmp_path / "fg")
    fg_records = read_metrics(tmp_path / "fg" / "metrics.jsonl")
    assert any("eval/pass@1" in r for r in fg_records if r.get("step") == 0)  # the setting acts
    assert not any("eval/policy_version" in r for r in fg_records)


def test_an_evaluator_that_does_not_fit_in_local_ray_is_a_clear_error(local_ray, tmp_path: Path) -> None:
    cfg = tiny_config("run.ray=local", "rollout.num_workers=2", "eval.background=true", "run.steps=1")
    with pytest.raises(ValueError, match=r"eval\.background needs one more rollout worker's CPUs"):
        fit(cfg, tmp_path / "short")


def test_without_ray_the_evaluations_are_made_at_once(tmp_path: Path) -> None:
    cfg = tiny_config("run.ray=off", "run.steps=2", "eval.every=1", "eval.background=true")
    out = fit(cfg, tmp_path / "x")
    assert sorted(out["evals"]) == [0, 1, 2]
    assert all(json.loads((tmp_path / "x" / "eval" / f"step_{s:06d}.json").read_text())["policy_version"] == s
               for s in range(3))
