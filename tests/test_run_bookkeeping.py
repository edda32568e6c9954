"""Run bookkeeping: summaries hold what was measured, `--resume` to the end rewrites them, the warm
start is a resumable stage (Ctrl-C in it exits cleanly), an existing run directory is refused.

Real quickstart pipeline scaled down to seconds, in one process; Ctrl-C is a real SIGINT."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from test_trainer_quickstart import SMALL
from toolgym.trainers.report.metrics import read_metrics

from toolgym.cli import main

TRAIN = ["train", "--no-ray", *SMALL]


def test_ctrl_c_in_rl_writes_no_unmeasured_figure_and_resume_rewrites_the_summary(
        tmp_path: Path, capsys, monkeypatch, ctrl_c_reaches_python) -> None:
    import toolgym.trainers.run.driver as driver

    real_step = driver.train_step

    def step_then_ctrl_c(run):
        metrics = real_step(run)
        signal.raise_signal(signal.SIGINT)
        return metrics

    out = tmp_path / "run"
    monkeypatch.setattr(driver, "train_step", step_then_ctrl_c)
    assert main([*TRAIN, "run.steps=2", "--output", str(out)]) == 130
    summary = json.loads((out / "summary.json").read_text())
    assert summary["heldout_pass1_rl"] is None and summary["interrupted_at_step"] == 1
    assert summary["heldout_pass1_sft"] is not None
    assert "heldout_pass1_rl: not measured" in capsys.readouterr().out
    curve = (out / "reward_curve.png").stat().st_mtime_ns

    monkeypatch.setattr(driver, "train_step", real_step)
    assert main([*TRAIN, "run.steps=2", "--output", str(out), "--resume"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    final = json.loads((out / "eval" / "step_000002.json").read_text())
    assert summary["rl_steps"] == 2 and summary["heldout_pass1_rl"] == final["overall"]["pass@1"]
    assert "interrupted_at_step" not in summary and summary["resumed"]
    assert (out / "reward_curve.png").stat().st_mtime_ns > curve
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl") if "reward/mean" in r] == [1, 2]


def test_ctrl_c_in_the_warm_start_exits_cleanly_and_resume_continues(
        tmp_path: Path, capsys, monkeypatch, ctrl_c_reaches_python) -> None:
    import toolgym.trainers.run.sft as sft

    real_sft = sft.run_sft

    def sft_then_ctrl_c(*args, on_step=None, **kwargs):
        def hook(step, metrics):
            on_step(step, metrics)
            if step == 2:
                signal.raise_signal(signal.SIGINT)  # Ctrl-C in the middle of the first SFT phase

        return real_sft(*args, on_step=hook, **kwargs)

    out = tmp_path / "run"
    monkeypatch.setattr(sft, "run_sft", sft_then_ctrl_c)
    assert main([*TRAIN, "--output", str(out)]) == 130
    err = capsys.readouterr().err
    assert "interrupted during the warm start" in err and "--resume" in err and "Traceback" not in err
    assert (out / "demos.jsonl").exists() and not (out / "warm_model").exists()
    demos = (out / "demos.jsonl").read_text()

    monkeypatch.setattr(sft, "run_sft", real_sft)
    assert main([*TRAIN, "--output", str(out), "--resume"]) == 0
    assert (out / "demos.jsonl").read_text() == demos  # the demos stage was kept, not redone
    assert [r["step"] for r in read_metrics(out / "sft_metrics.jsonl")] == [1, 2, 3, 4, 5]
    assert json.loads((out / "summary.json").read_text())["heldout_pass1_rl"] is not None


def test_an_existing_run_directory_is_refused_without_resume_or_overwrite(tmp_path: Path, capsys) -> None:
    (tmp_path / "metrics.jsonl").write_text('{"step": 0}\n')
    assert main(["train", "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--resume" in err and "--overwrite" in err
    assert main(["train", "--output", str(tmp_path / "none"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert main([*TRAIN, "run.steps=1", "--output", str(tmp_path), "--overwrite"]) == 0
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [0, 1, 1]  # no stale lines


def test_print_config_prints_the_resolved_config_and_exits(tmp_path: Path, capsys) -> None:
    import yaml

    assert main(["train", "--print-config", "optimizer.lr=3e-4", "run.tasks=[toolgym/arith-v0]",
                 "--output", str(tmp_path / "r")]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["optimizer"]["lr"] == 3e-4 and cfg["run"]["tasks"] == ["toolgym/arith-v0"]
    assert not (tmp_path / "r").exists()


def test_demo_turns_longer_than_max_new_tokens_warn(tmp_path: Path) -> None:
    import pytest
    from toolgym.agents.episode import Episode, longest_turn
    from toolgym.trainers.run.warm_start import warn_long_turns

    ep = Episode("t", 0, "train", "g", response_ids=[1] * 7, loss_mask=[1, 1, 0, 1, 1, 1, 0],
                 logprobs=[0.0] * 7)
    assert longest_turn(ep) == 3 and warn_long_turns([ep], 3) == 0
    with pytest.warns(UserWarning, match=r"longer than sampling.max_new_tokens=2 \(longest: 3 tokens\)"):
        assert warn_long_turns([ep], 2) == 1
    # the quickstart's real teacher demos, with a turn limit they do not fit
    with pytest.warns(UserWarning, match="warm-start demos have an assistant turn longer"):
        assert main([*TRAIN, "run.steps=1", "sampling.max_new_tokens=4", "eval.problems=1",
                     "--output", str(tmp_path / "r")]) == 0
