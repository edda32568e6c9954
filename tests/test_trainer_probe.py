"""The trainer probes a success-ranked curriculum before its first RL step (R1-Code-Interpreter).

`probe_curriculum` is driven here by a scripted rollout pool: a stand-in for a policy with known
success rates per family (solved, unsolvable, half-solved), which a tiny untrained model cannot give.
The end-to-end test then runs the real thing (`fit`, `--no-ray`, real tiny model, real sandbox).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from toolgym.agents.episode import Episode
from toolgym.curriculum.registry import make_scheduler
from toolgym.envs.types import TaskRequest
from toolgym.trainers.config import load_config
from toolgym.trainers.run.driver import fit
from toolgym.trainers.run.probe import probe_curriculum

SOLVED, UNSOLVABLE, HALF = "test/solved-v0", "test/unsolvable-v0", "test/half-v0"
SPLITS = {t: ("train", "heldout") for t in (SOLVED, UNSOLVABLE, HALF)}


class ScriptedPool:
    """Episodes with success by family: always, never, or on even instance indices (rate 1/2)."""

    def __init__(self, group_size: int) -> None:
        self.group_size, self.requests = group_size, []

    def rollout(self, requests: list[TaskRequest], seed: int, group_size: int | None = None) -> list[Episode]:
        self.requests += requests
        out = []
        for r, request in enumerate(requests):
            for g in range(self.group_size if group_size is None else group_size):
                half = (request.index + g) % 2 == 0
                success = {SOLVED: True, UNSOLVABLE: False}.get(request.task_id, half)
                out.append(Episode(request.task_id, request.index, request.split, f"{seed}-{r}", [1, 2],
                                   [3, 4], [1, 1], [-0.5, -0.5], reward=float(success), success=success,
                                   finish_reason="answered"))
        return out


def _run(probe: bool = True, samples: int | None = None) -> SimpleNamespace:
    cfg = load_config(None, [f"curriculum.probe={str(probe).lower()}", "rollout.group_size=4",
                             *([f"curriculum.probe_samples={samples}"] if samples else [])])
    scheduler = make_scheduler("potential", [UNSOLVABLE, SOLVED, HALF], splits=SPLITS, stages=3,
                               steps_per_stage=5)
    return SimpleNamespace(cfg=cfg, curriculum=scheduler, pool=ScriptedPool(4), rng=np.random.default_rng(0))


def test_the_probe_puts_the_half_solved_family_in_stage_one() -> None:
    run = _run()
    lines: list[str] = []
    metrics = probe_curriculum(run, say=lines.append)
    assert run.curriculum.active_units() == [HALF]  # stage 1 of 3 = the top third by 4p(1-p)
    assert metrics["curriculum/probe_episodes"] == 3 * 20  # 20 per family unit, one per request
    assert metrics["curriculum/probe_tokens"] == 3 * 20 * 2  # two policy tokens per scripted episode
    assert {r.split for r in run.pool.requests} == {"train"} and "probed 3 units" in lines[0]
    assert probe_curriculum(run) == {}  # probed once: a resumed scheduler is not probed again


def test_probe_samples_sets_the_episodes_per_unit_each_on_its_own_instance() -> None:
    """Not whole GRPO groups (4 here): a family is measured on `probe_samples` instances, not on
    ceil(9 / 4) = 3 instances sampled 4 times each."""
    run = _run(samples=9)
    assert probe_curriculum(run, say=lambda _: None)["curriculum/probe_episodes"] == 3 * 9
    for family in (SOLVED, UNSOLVABLE, HALF):
        indices = [r.index for r in run.pool.requests if r.task_id == family]
        assert len(indices) == 9 and len(set(indices)) >= 8  # instances drawn per request


def test_without_the_probe_stage_one_is_list_order_and_the_log_says_so() -> None:
    run = _run(probe=False)
    lines: list[str] = []
    assert probe_curriculum(run, say=lines.append) == {} and run.pool.requests == []
    assert run.curriculum.active_units() == [UNSOLVABLE]  # unmeasured: the first unit in list order
    assert "no probe" in lines[0] and "list order" in lines[0]


def test_fit_probes_through_the_real_rollout_pool_and_resume_does_not_probe_again(tmp_path: Path) -> None:
    overrides = ["rollout.prompts_per_step=2", "rollout.group_size=2", "rollout.sandbox_pool=1",
                 "rollout.max_turns=1", "sampling.max_new_tokens=6", "rollout.filter_zero_variance=false",
                 "loss.entropy_coef=0.01", "eval.problems=0", "run.progress=false", "run.ray=off",
                 "curriculum.scheduler=potential", "curriculum.probe_samples=2", "checkpoint.every=1",
                 "curriculum.options={unit: instance, instances_per_family: 3}",
                 "model.tiny={hidden_size: 32, intermediate_size: 64, num_layers: 1, num_heads: 2, "
                 "num_kv_heads: 1}"]
    fit(load_config(None, [*overrides, "run.steps=1"]), tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["step"] == 0 and records[0]["curriculum/probe_episodes"] == 3 * 2  # 3 instance units
    assert records[0]["curriculum/probe_tokens"] > 0
    fit(load_config(None, [*overrides, "run.steps=2"]), tmp_path, resume=True)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1, 2]  # no second probe record at step 0
    assert records[-1]["curriculum/probe_episodes"] == 3 * 2


def test_length_stages_cap_the_rollouts_from_the_step_their_stage_starts(tmp_path: Path) -> None:
    """The sequence scheduler's `max_response_length` reaches the rollout workers: a real `--no-ray` run
    logs the cap of each step's stage, and no episode samples more policy tokens than its cap."""
    stages = ("[{name: short, units: [toolgym/arith-v0], steps: 1, max_response_length: 3}, "
              "{name: long, units: [toolgym/arith-v0], max_response_length: 7}]")
    cfg = load_config(None, [
        "rollout.prompts_per_step=2", "rollout.group_size=2", "rollout.sandbox_pool=1", "rollout.max_turns=3",
        "sampling.max_new_tokens=6", "rollout.filter_zero_variance=false", "loss.entropy_coef=0.01",
        "eval.problems=0", "run.progress=false", "run.ray=off", "run.steps=2", "run.tasks=[toolgym/arith-v0]",
        "curriculum.scheduler=sequence", f"curriculum.options={{stages: {stages}}}",
        "model.tiny={hidden_size: 32, intermediate_size: 64, num_layers: 1, num_heads: 2, num_kv_heads: 1}"])
    fit(cfg, tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["step"] > 0]
    assert [r["rollout/max_response_tokens"] for r in steps] == [3.0, 7.0]
    for r, cap in zip(steps, (3, 7), strict=True):
        assert r["rollout/tokens"] <= cap * r["rollout/episodes"]
    assert steps[0]["rollout/truncated_frac"] == 1.0  # 3 tokens end every episode of the short stage


def test_training_prints_and_records_the_sandbox_isolation_it_got(tmp_path: Path, capsys) -> None:
    from toolgym.envs.sandbox import make_sandbox

    cfg = load_config(None, [
        "rollout.prompts_per_step=1", "rollout.group_size=2", "rollout.sandbox_pool=1", "rollout.max_turns=1",
        "sampling.max_new_tokens=4", "rollout.filter_zero_variance=false", "eval.problems=0", "run.steps=1",
        "run.progress=false", "run.ray=off", "curriculum.scheduler=uniform", "run.tasks=[toolgym/arith-v0]",
        "model.tiny={hidden_size: 32, intermediate_size: 64, num_layers: 1, num_heads: 2, num_kv_heads: 1}"])
    fit(cfg, tmp_path)
    report = json.loads((tmp_path / "sandbox.json").read_text())
    expected = make_sandbox("local").isolation  # "bwrap" where bubblewrap works, else "none"
    assert report["backend"] == "local" and report["mode"] == expected
    assert report["summary"] in capsys.readouterr().err  # printed at start-up


def test_training_without_bubblewrap_warns_and_records_the_fallback(tmp_path: Path, capsys,
                                                                     monkeypatch) -> None:
    """A machine without a usable bubblewrap (simulated by the probe's answer; the rest is real): the
    run warns with what to do, prints the fallback and records it in RUN_DIR/sandbox.json."""
    from toolgym.envs.sandbox import IsolationWarning, _isolation

    monkeypatch.setattr(_isolation, "bwrap_problem", lambda: "bubblewrap is not installed (test)")
    cfg = load_config(None, [
        "rollout.prompts_per_step=1", "rollout.group_size=2", "rollout.sandbox_pool=1", "rollout.max_turns=1",
        "sampling.max_new_tokens=4", "rollout.filter_zero_variance=false", "eval.problems=0", "run.steps=1",
        "run.progress=false", "run.ray=off", "curriculum.scheduler=uniform", "run.tasks=[toolgym/arith-v0]",
        "model.tiny={hidden_size: 32, intermediate_size: 64, num_layers: 1, num_heads: 2, num_kv_heads: 1}"])
    with pytest.warns(IsolationWarning, match="(?i)install bubblewrap"):
        fit(cfg, tmp_path)
    report = json.loads((tmp_path / "sandbox.json").read_text())
    assert report["mode"] == "none" and report["fallback_reason"] == "bubblewrap is not installed (test)"
    assert "FELL BACK" in report["summary"] and report["summary"] in capsys.readouterr().err
