"""`run.max_staleness`: rollouts ahead of the learner with a bounded policy lag (trainers/run/ahead.py).

Real tiny model, real sandbox, real local Ray for the overlapped path; `--no-ray` elsewhere (the same
staleness, rolled out at once). The synchronous reference below is the algorithm as DESIGN.md states it,
written out with the run's own parts: K = 0 must reproduce it bit for bit.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from test_trainer_driver import tiny_config, weights
from toolgym.agents.episode import Episode
from toolgym.trainers.report.metrics import read_metrics
from toolgym.trainers.run.ahead import staleness_metrics, step_seed
from toolgym.trainers.run.driver import fit
from toolgym.trainers.run.rollout_pool import make_pool
from toolgym.trainers.run.runstate import RunState
from toolgym.trainers.run.stages import build_samples, group_episodes, outcomes

QUIET = ["run.ray=off", "eval.problems=0"]


def synchronous_reference(cfg, run_dir: Path, steps: int) -> dict[str, torch.Tensor]:
    """Roll out, learn, sync, update the curriculum -- one step after the other."""
    run = RunState.create(cfg, run_dir)
    run.pool = make_pool(run.model_path, cfg)
    try:
        for step in range(1, steps + 1):
            requests = run.curriculum.next_batch(cfg.rollout.prompts_per_step, run.rng)
            episodes = run.pool.rollout(requests, seed=step_seed(cfg.run.seed, step))
            run.learner.update(build_samples(group_episodes(episodes), cfg, None), entropy_coef=None)
            run.pool.sync(run.learner.policy_state())
            run.curriculum.update(outcomes(episodes))
        return {k: v.detach().clone() for k, v in run.learner.model.state_dict().items()}
    finally:
        run.close()


def test_k0_is_the_synchronous_loop_bit_for_bit_and_k1_is_not(tmp_path: Path) -> None:
    reference = synchronous_reference(tiny_config(*QUIET), tmp_path / "ref", steps=3)
    for k in (0, 1):
        fit(tiny_config(*QUIET, "run.steps=3", f"run.max_staleness={k}"), tmp_path / f"k{k}")
    k0, k1 = (weights(tmp_path / f"k{k}" / "checkpoints" / "step_000003") for k in (0, 1))
    assert k0 and set(k0) <= set(reference)  # the checkpoint leaves out the tied lm_head
    assert all(torch.equal(k0[name], reference[name]) for name in k0)
    assert not all(torch.equal(k1[name], reference[name]) for name in k1)  # the setting acts


def _steps(run_dir: Path) -> list[dict]:
    return [r for r in read_metrics(run_dir / "metrics.jsonl") if "rollout/staleness_max" in r]


def test_k1_trains_no_token_older_than_one_update(tmp_path: Path) -> None:
    """Step 1 has nothing ahead of it; from step 2 on every batch was generated one update back."""
    fit(tiny_config(*QUIET, "run.steps=4", "run.max_staleness=1"), tmp_path / "k1")
    records = _steps(tmp_path / "k1")
    assert [r["rollout/staleness_max"] for r in records] == [0.0, 1.0, 1.0, 1.0]
    assert [r["rollout/staleness_mean"] for r in records] == [0.0, 1.0, 1.0, 1.0]
    fit(tiny_config(*QUIET, "run.steps=2"), tmp_path / "k0")
    assert {r["rollout/staleness_max"] for r in _steps(tmp_path / "k0")} == {0.0}


def test_a_staler_token_than_allowed_is_refused() -> None:
    fresh, stale = (Episode("t", 0, "train", "g", response_ids=[1, 2], loss_mask=[1, 1], logprobs=[0.0, 0.0],
                            policy_version=v) for v in (5, 3))
    assert staleness_metrics([fresh, fresh], learner_version=6, bound=1)["rollout/staleness_mean"] == 1.0
    with pytest.raises(RuntimeError, match=r"beyond run\.max_staleness=1"):
        staleness_metrics([fresh, stale], learner_version=6, bound=1)


def test_k1_through_ray_overlaps_and_tags_the_eval_with_its_version(local_ray, tmp_path: Path) -> None:
    """Ray actors run the next batch while the driver learns; the sync queued behind it applies after."""
    out = fit(tiny_config("run.ray=local", "run.steps=3", "run.max_staleness=1"), tmp_path / "ray")
    assert out["step"] == 3
    assert [r["rollout/staleness_max"] for r in _steps(tmp_path / "ray")] == [0.0, 1.0, 1.0]
    final = json.loads((tmp_path / "ray" / "eval" / "step_000003.json").read_text())
    assert final["policy_version"] == 3  # evaluated with the last update's weights, not a stale copy


def test_resume_at_k1_trains_the_saved_batch_once(tmp_path: Path) -> None:
    """The step-1 checkpoint holds step 2's submitted requests; a run resumed from it trains exactly
    those (its curriculum sampler ends where the unbroken run's does: nothing drawn twice or lost),
    regenerated with the restored weights (staleness 0 at step 2)."""
    cfg = tiny_config(*QUIET, "run.steps=3", "run.max_staleness=1", "checkpoint.every=1", "checkpoint.keep=3",
                      "curriculum.options={unit: instance, instances_per_family: 16}")
    straight = tmp_path / "straight"
    fit(cfg, straight)
    driver = json.loads((straight / "checkpoints" / "step_000001" / "driver.json").read_text())
    assert [b["step"] for b in driver["ahead"]] == [2] and len(driver["ahead"][0]["requests"]) == 2
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(straight / "checkpoints" / "step_000001", resumed / "checkpoints" / "step_000001")
    (resumed / "checkpoints" / "latest").write_text("step_000001\n")
    fit(cfg, resumed, resume=True)
    assert [r["rollout/staleness_max"] for r in _steps(resumed)] == [0.0, 1.0]
    a, b = (json.loads((d / "checkpoints" / "step_000003" / "curriculum.json").read_text())
            for d in (straight, resumed))
    assert a["extra"]["sampler"]["position"] == 6  # 3 steps x 2 requests, no batch drawn twice
    for key in ("extra", "episodes"):
        assert a[key] == b[key], key
    assert a["stats"]["attempts"] == b["stats"]["attempts"]
