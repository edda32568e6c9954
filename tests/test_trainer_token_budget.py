"""`run.token_budget` and `eval.every_tokens`: runs stopped, and evaluated, by generated policy tokens.

Real `--no-ray` runs (tiny model, real sandbox). A scheduler comparison at equal cost needs both: the
budget counts every policy token the run generated (the curriculum's probe, every step, the filter's
refills), and held-out evals at token checkpoints put the arms' curves on one axis.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from toolgym.trainers.config import load_config
from toolgym.trainers.config.yaml_io import ConfigError
from toolgym.trainers.run.driver import fit

TINY = ["rollout.prompts_per_step=2", "rollout.group_size=2", "rollout.sandbox_pool=1",
        "rollout.max_turns=1",
        "sampling.max_new_tokens=6", "rollout.filter_zero_variance=false", "run.progress=false",
        "run.ray=off",
        "run.tasks=[toolgym/arith-v0]", "eval.problems=2", "checkpoint.every=1",
        "model.tiny={hidden_size: 32, intermediate_size: 64, num_layers: 1, num_heads: 2, num_kv_heads: 1}"]


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_the_token_budget_stops_the_run_and_counts_the_probe(tmp_path: Path) -> None:
    """The same run with and without a budget of 30 tokens (a step here makes at most 4 x 6 = 24): the
    budgeted one stops after the step that passes 30, the other runs all its steps; the probe's tokens
    open the count."""
    probe = ["curriculum.scheduler=potential", "curriculum.probe_samples=2",
             "curriculum.options={unit: instance, instances_per_family: 2}"]
    full = fit(load_config(None, [*TINY, *probe, "run.steps=6"]), tmp_path / "full")
    budgeted = load_config(None, [*TINY, *probe, "run.steps=6", "run.token_budget=30"])
    budget = fit(budgeted, tmp_path / "budget")
    assert full["step"] == 6
    records = [r for r in _records(tmp_path / "budget") if "rollout/tokens_total" in r]
    start, steps = records[0], [r for r in records if r["step"] > 0]
    assert start["step"] == 0 and start["rollout/tokens_total"] == start["curriculum/probe_tokens"] > 0
    totals = [r["rollout/tokens_total"] for r in steps]
    assert totals == [start["rollout/tokens_total"] + sum(r["rollout/tokens"] for r in steps[:i + 1])
                      for i in range(len(steps))]
    assert totals[-1] >= 30 and (len(totals) == 1 or totals[-2] < 30)  # stopped by the step passing it
    assert budget["step"] == len(steps) < 6
    final = json.loads((tmp_path / "budget" / "eval" / f"step_{budget['step']:06d}.json").read_text())
    assert final["policy_tokens"] == totals[-1]  # the final eval says where on the token axis it stands


def test_eval_every_tokens_evaluates_after_each_checkpoint_is_passed(tmp_path: Path) -> None:
    """Evals at step 0, after every step whose tokens pass a multiple of 20, and at the end; without
    the setting, only at step 0 and the end."""
    cfg = load_config(None, [*TINY, "curriculum.scheduler=uniform", "run.steps=5", "eval.every_tokens=20"])
    fit(cfg, tmp_path / "every")
    fit(load_config(None, [*TINY, "curriculum.scheduler=uniform", "run.steps=5"]), tmp_path / "ends")
    evals = sorted(p.name for p in (tmp_path / "ends" / "eval").glob("step_*.json"))
    assert evals == ["step_000000.json", "step_000005.json"]
    totals = {r["step"]: r["rollout/tokens_total"] for r in _records(tmp_path / "every")
              if r["step"] > 0 and "rollout/tokens_total" in r}
    passed = [s for s in totals if totals[s] // 20 > totals.get(s - 1, 0) // 20 and s < 5]
    found = sorted(int(p.stem.split("_")[1]) for p in (tmp_path / "every" / "eval").glob("step_*.json"))
    assert found == [0, *passed, 5] and passed  # 5 steps of up to 24 tokens pass 20 at least once


def test_the_token_count_survives_a_resume(tmp_path: Path) -> None:
    cfg = load_config(None, [*TINY, "curriculum.scheduler=uniform", "eval.problems=0", "run.steps=1"])
    fit(cfg, tmp_path)
    first = _records(tmp_path)[-1]["rollout/tokens_total"]
    longer = load_config(None, [*TINY, "curriculum.scheduler=uniform", "eval.problems=0", "run.steps=2"])
    fit(longer, tmp_path, resume=True)
    last = _records(tmp_path)[-1]
    assert last["rollout/tokens_total"] == first + last["rollout/tokens"]


@pytest.mark.parametrize("override, message", [("run.token_budget=0", "token_budget"),
                                               ("eval.every_tokens=-5", "every_tokens")])
def test_bad_token_settings_are_refused(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_the_progress_bar_counts_what_the_run_stops_on() -> None:
    """Under a token budget the bar's total is the budget and it advances by the generated tokens (the
    probe's included, from the first step's running total); without one it counts steps."""
    from types import SimpleNamespace

    from toolgym.trainers.run.driver import train_progress

    budgeted = load_config(None, [*TINY, "run.steps=50", "run.token_budget=300"])
    bar = train_progress(SimpleNamespace(cfg=budgeted, step=0, policy_tokens=12))
    bar.update({"rollout/tokens_total": 40.0})
    bar.update({"rollout/tokens_total": 65.0})
    assert bar.position == 65
    steps = train_progress(SimpleNamespace(cfg=load_config(None, [*TINY, "run.steps=50"]), step=3,
                                           policy_tokens=12))
    steps.update({"rollout/tokens_total": 40.0})
    assert steps.position == 4


def test_the_bar_starts_its_clock_at_the_first_step_not_at_set_up(tmp_path: Path, monkeypatch) -> None:
    """Set-up before the first step (here the curriculum probe and the starting held-out evaluation;
    with a real model many minutes) is not counted in the bar's elapsed time and rate: a bar drawn at
    set-up showed SmolLM2's 80 s steps as 315 s/it with a 1.5-hour ETA for a 25-minute run."""
    import toolgym.trainers.run.driver as driver
    from toolgym.trainers.report.metrics import Progress

    events: list[str] = []

    def logged(name, real):
        def wrapper(*args, **kwargs):
            events.append(name if name != "eval" else f"eval {args[0].step}")
            return real(*args, **kwargs)
        return wrapper

    for name, attr in (("probe", "probe_curriculum"), ("eval", "evaluate"), ("step", "train_step")):
        monkeypatch.setattr(driver, attr, logged(name, getattr(driver, attr)))
    monkeypatch.setattr(Progress, "start", logged("bar", Progress.start))
    probe = ["curriculum.scheduler=potential", "curriculum.probe_samples=2",
             "curriculum.options={unit: instance, instances_per_family: 2}"]
    fit(load_config(None, [*TINY, *probe, "run.steps=2", "run.progress=true"]), tmp_path / "run")
    assert events == ["probe", "eval 0", "bar", "step", "step", "eval 2"]


def test_a_deferred_bar_counts_its_time_from_start(capsys) -> None:
    import time

    from toolgym.trainers.report.metrics import Progress

    bar = Progress(5, initial=2, start=False)
    assert "train" not in capsys.readouterr().err  # nothing drawn yet
    time.sleep(0.5)
    bar.start()
    bar.start()  # idempotent: one bar
    shown = bar._bar.format_dict
    assert shown["n"] == 2 and shown["elapsed"] < 0.4
    bar.update({})
    assert bar._bar.n == 3
    bar.close()
    assert capsys.readouterr().err.count("train:") >= 1
    off = Progress(5, enabled=False, start=False)
    off.start()
    assert off._bar is None
