"""The training loop end to end on CPU: through local Ray, in one process, resumed, and with faults.

Real tiny model, real local sandbox, real local Ray (2 CPUs). Tiny configs: 2 requests x 2 samples,
short turns, a few steps. The untrained model fails every episode (zero advantages), so a small
entropy bonus gives every update a non-zero gradient.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from toolgym.envs.registry import register
from toolgym.envs.task import Problem, Score
from toolgym.envs.types import TaskRequest
from toolgym.trainers.config import TrainConfig, load_config
from toolgym.trainers.report.metrics import METRICS, read_metrics
from toolgym.trainers.run.driver import fit
from toolgym.trainers.run.rollout_pool import LocalPool, RayPool
from toolgym.trainers.run.runstate import base_model_path
from transformers import AutoModelForCausalLM

TINY = ["rollout.prompts_per_step=2", "rollout.group_size=2", "rollout.sandbox_pool=2",
        "rollout.cpus_per_worker=1.0", "rollout.max_turns=2", "sampling.max_new_tokens=12",
        "rollout.filter_zero_variance=false", "optimizer.lr=1e-3", "loss.entropy_coef=0.01",
        "eval.problems=2",
        "curriculum.scheduler=uniform", "run.progress=false", "run.ray_num_cpus=2",
        "model.tiny={hidden_size: 64, intermediate_size: 128, num_layers: 2, num_heads: 4, num_kv_heads: 2}"]


def tiny_config(*overrides: str) -> TrainConfig:
    return load_config(None, [*TINY, *overrides])


def weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint / "model" / "model.safetensors"))


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], exact: bool = False) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if exact:
            assert torch.equal(a[k], b[k]), k
        else:
            torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5)


@pytest.fixture(scope="module")
def ray_run(local_ray, tmp_path_factory) -> Path:
    """A 2-step run through local Ray with a checkpoint after every step."""
    run_dir = tmp_path_factory.mktemp("ray_run")
    out = fit(tiny_config("run.steps=2", "run.ray=local", "checkpoint.every=1"), run_dir)
    assert out["step"] == 2 and not out["interrupted"]
    return run_dir


def test_two_steps_through_ray_write_metrics_eval_and_checkpoints(ray_run: Path) -> None:
    records = read_metrics(ray_run / "metrics.jsonl")
    steps = [r for r in records if "rollout/episodes" in r]
    assert [r["step"] for r in steps] == [1, 2]
    for r in steps:
        assert r["rollout/episodes"] == 4.0 and r["learner/samples"] == 4.0
        assert r["learner/nonfinite"] == 0.0 and r["learner/grad_norm"] > 0.0
        undocumented = [k for k in r if k not in METRICS and k not in ("step", "time")
                        and k.split("/")[0] not in ("loss", "adv", "curriculum")]
        assert undocumented == []
    assert "eval/pass@1" in records[-1]
    assert json.loads((ray_run / "eval" / "step_000002.json").read_text())["overall"]["problems"] == 2
    ckpts = sorted(p.name for p in (ray_run / "checkpoints").glob("step_*"))
    assert ckpts == ["step_000001", "step_000002"]
    # the update changed the policy
    base = load_file(str(ray_run / "base_model" / "model.safetensors"))
    step1 = weights(ray_run / "checkpoints" / "step_000001")
    assert any(not torch.equal(base[k], step1[k]) for k in base)


def test_no_ray_gives_the_same_first_update_as_ray(ray_run: Path, tmp_path: Path) -> None:
    shutil.copytree(ray_run / "base_model", tmp_path / "base_model")  # same initial weights
    fit(tiny_config("run.steps=1", "run.ray=off", "eval.problems=0"), tmp_path)
    assert_same_weights(weights(ray_run / "checkpoints" / "step_000001"),
                        weights(tmp_path / "checkpoints" / "step_000001"))
    # the first *training* record (the Ray run also logs an evaluation record before training)
    ray_first = next(r for r in read_metrics(ray_run / "metrics.jsonl") if "rollout/episodes" in r)
    local_first = next(r for r in read_metrics(tmp_path / "metrics.jsonl") if "rollout/episodes" in r)
    for key in ("reward/mean", "rollout/tokens", "episode/response_tokens", "loss/policy"):
        assert ray_first[key] == pytest.approx(local_first[key], abs=1e-6), key


def test_resume_gives_the_same_next_update(tmp_path: Path) -> None:
    straight = tmp_path / "straight"
    cfg = tiny_config("run.steps=3", "run.ray=off", "checkpoint.every=1", "checkpoint.keep=3",
                      "eval.problems=0", "curriculum.scheduler=potential",
                      "curriculum.options={unit: instance, instances_per_family: 8, stages: 2, "
                      "steps_per_stage: 1}")
    fit(cfg, straight)
    resumed = tmp_path / "resumed"
    shutil.copytree(straight, resumed)
    for late in ("step_000002", "step_000003"):
        shutil.rmtree(resumed / "checkpoints" / late)
    (resumed / "checkpoints" / "latest").write_text("step_000001\n")
    out = fit(cfg, resumed, resume=True)
    assert out["step"] == 3
    for step in ("step_000002", "step_000003"):
        assert_same_weights(weights(straight / "checkpoints" / step), weights(resumed / "checkpoints" / step))
    a = json.loads((straight / "checkpoints" / "step_000003" / "curriculum.json").read_text())
    b = json.loads((resumed / "checkpoints" / "step_000003" / "curriculum.json").read_text())
    assert a == b


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        fit(tiny_config("run.steps=1", "run.ray=off"), tmp_path, resume=True)


# ---- faults ---------------------------------------------------------------------------------------
CRASH_SETUP = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"


@dataclass
class CrashyFamily:
    """Even instances kill their sandbox interpreter during set-up (a sandbox crash mid-rollout)."""

    name: str = "crashy"
    splits: tuple[str, ...] = ("train", "heldout")
    tool_format: str = "fenced"

    def problem(self, split: str, index: int) -> Problem:
        return Problem(prompt="Compute 1 + 1.", answer=2, index=index, split=split,
                       setup_code=CRASH_SETUP if index % 2 == 0 else "x = 1")

    def verify(self, problem: Problem, answer: str, new_session) -> Score:
        return Score(1.0 if answer.strip() == "2" else 0.0)


def make_crashy() -> CrashyFamily:
    return CrashyFamily()


def test_a_sandbox_crash_in_one_episode_is_masked_not_fatal(tmp_path: Path) -> None:
    register("test/crashy-v0", make_crashy, description="test family whose even instances crash")
    cfg = tiny_config("run.steps=2", "run.ray=off", "run.tasks=[test/crashy-v0]", "eval.problems=0",
                      "curriculum.options={unit: instance, instances_per_family: 2}")
    out = fit(cfg, tmp_path)
    assert out["step"] == 2
    for r in read_metrics(tmp_path / "metrics.jsonl"):
        assert r["rollout/error_frac"] == 0.5  # the crashing group, every step; the other group is fine
        assert r["learner/samples"] == 2.0  # only the healthy group is trained on
        assert r["learner/grad_norm"] > 0.0


def test_a_killed_rollout_actor_is_replaced_and_its_requests_retried(local_ray, tmp_path: Path) -> None:
    cfg = tiny_config("run.ray=local")
    path = base_model_path(cfg, tmp_path)
    model = AutoModelForCausalLM.from_pretrained(path)
    torch.manual_seed(0)
    trained = {k: v + 0.05 * torch.randn_like(v) for k, v in model.state_dict().items()}  # "new" weights
    requests = [TaskRequest("toolgym/arith-v0", i) for i in range(2)]
    pool = RayPool(path, cfg)
    try:
        pool.sync(trained)
        before = pool.rollout(requests, seed=7)
        os.kill(local_ray.get(pool.actors[0].pid.remote()), signal.SIGKILL)
        after = pool.rollout(requests, seed=7)
        assert (pool.restarts, pool.retried) == (1, 2)
    finally:
        pool.close()
    # the replacement actor rolled out with the synced weights: the same episodes as before the kill ...
    assert [e.response_ids for e in after] == [e.response_ids for e in before]
    # ... which differ from what the base weights sample (so the comparison can fail)
    local = LocalPool(path, cfg)
    try:
        base = local.rollout(requests, seed=7)
    finally:
        local.close()
    assert [e.response_ids for e in base] != [e.response_ids for e in before]


def test_ctrl_c_finishes_the_step_saves_a_checkpoint_and_returns(tmp_path: Path, monkeypatch,
                                                                  ctrl_c_reaches_python) -> None:
    import toolgym.trainers.run.driver as driver

    real_step = driver.train_step

    def step_then_ctrl_c(run):
        metrics = real_step(run)
        signal.raise_signal(signal.SIGINT)  # what Ctrl-C sends, in the middle of the run
        return metrics

    monkeypatch.setattr(driver, "train_step", step_then_ctrl_c)
    out = fit(tiny_config("run.steps=3", "run.ray=off", "eval.problems=0"), tmp_path)
    assert out["interrupted"] and out["step"] == 1
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "step_000001"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is restored
