"""`toolgym train` runs the quickstart pipeline end to end (here scaled down to seconds, in one process).

The full-size quickstart is a 15-minute run; its figures are measured by running `toolgym train` and
reported in the README, not asserted here.
"""

from __future__ import annotations

import json

from toolgym.trainers.report.metrics import read_metrics
from toolgym.trainers.run.quickstart import SUMMARY_KEYS

from toolgym.cli import main

SMALL = ["run.steps=1", "sft.steps=3", "quickstart.guess_steps=2", "sft.demos=5", "sft.batch_size=4",
         "rollout.prompts_per_step=2", "rollout.group_size=2", "rollout.num_workers=1", "eval.problems=2",
         "sampling.max_new_tokens=12", "model.tiny={hidden_size: 64, intermediate_size: 128, num_layers: 2}",
         "run.progress=false", "quickstart.guess_fraction=0.6"]


def test_train_without_a_model_runs_the_quickstart_and_writes_the_run_directory(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", "--no-ray", "--output", str(out), *SMALL]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    for key in SUMMARY_KEYS:
        assert key in summary and f"{key}:" in printed
    assert 0.0 <= summary["heldout_pass1_sft"] <= 1.0 and 0.0 <= summary["heldout_pass1_rl"] <= 1.0
    assert summary["wall_s"] > 0 and summary["peak_rss_mb"] > 50
    for name in ("reward_curve.png", "demos.jsonl", "sft_metrics.jsonl", "warm_model/config.json",
                 "eval/step_000000.json", "eval/step_000001.json", "checkpoints/latest", "config.yaml"):
        assert (out / name).exists(), name
    steps = [r for r in read_metrics(out / "metrics.jsonl") if "reward/mean" in r]
    assert [r["step"] for r in steps] == [1]
    # guess_fraction 0.6: 3 of 5 demos guess; SFT = 3 steps on tool demos + 2 on the mix
    assert summary["warm_start_guess_demos"] == 3 and 3 < summary["warm_start_demos"] <= 5
    assert [r["step"] for r in read_metrics(out / "sft_metrics.jsonl")] == [1, 2, 3, 4, 5]


def test_bad_override_is_reported_with_the_allowed_keys(tmp_path, capsys) -> None:
    assert main(["train", "--output", str(tmp_path), "optimizer.lrr=1"]) == 2
    err = capsys.readouterr().err
    assert "optimizer.lrr" in err and "Did you mean 'lr'" in err


def test_guess_fraction_mixes_in_tool_free_demos_that_the_environment_scores_wrong(tmp_path) -> None:
    from toolgym.agents.tiny import build_tiny_model
    from toolgym.trainers.config import load_config
    from toolgym.trainers.run.warm_start import make_demos

    model_dir = tmp_path / "tiny"
    build_tiny_model(model_dir, hidden_size=32, intermediate_size=64, num_layers=1)
    cfg = load_config("quickstart")
    demos = make_demos(str(model_dir), cfg, count=10, start=50, guess_fraction=0.6)
    guesses = [e for e in demos if e.tool_calls == 0]
    taught = [e for e in demos if e.tool_calls > 0]
    assert len(guesses) == 6 and len(taught) == 4
    assert all(e.finish_reason == "answered" and e.score == 0.0 and not e.success and e.turns == 1
               for e in guesses)
    assert all(e.success and e.score == 1.0 for e in taught)
    assert sorted(e.index for e in demos) == list(range(50, 60))
    assert sorted(e.index for e in guesses) == list(range(54, 60))  # the last ones: RL trains on the first


def test_guess_fraction_is_validated() -> None:
    import pytest
    from toolgym.trainers.config import load_config

    with pytest.raises(ValueError, match="guess_fraction"):
        load_config("quickstart", ["quickstart.guess_fraction=1.5"])
