"""TensorBoard / W&B sinks get the JSONL's records under the same metric names (real TensorBoard event
files, read back with tensorboard's own reader); W&B runs offline and skips when wandb is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from toolgym.trainers.report.loggers import LOGGERS, make_loggers, parse_log_option
from toolgym.trainers.report.metrics import MetricsLogger


def test_parse_log_option() -> None:
    assert parse_log_option("tensorboard, wandb,tensorboard") == ["tensorboard", "wandb"]
    assert parse_log_option("") == [] and parse_log_option(None) == []
    suggestion = r"unknown logger 'tensorbord'\. Did you mean 'tensorboard'\?.*Registered: tensorboard, wandb"
    with pytest.raises(ValueError, match=suggestion):
        parse_log_option("tensorbord")
    assert set(LOGGERS) == {"tensorboard", "wandb"}


def test_tensorboard_gets_the_same_names_and_values(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="pip install tensorboard (in the [dev] extra)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sinks = make_loggers(["tensorboard"], tmp_path)
    with MetricsLogger(tmp_path, sinks=sinks) as log:
        for step in (1, 2):
            log.log(step, {"reward/mean": 0.5 * step, "curriculum/stage": 1, "eval/pass@1": float("nan"),
                           "curriculum/unit_potentials": [0.1, 0.9], "note": "text is skipped"})
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()
    assert {"reward/mean", "curriculum/stage"} <= set(tags["scalars"])
    assert "eval/pass@1" not in tags["scalars"] and "note" not in tags["scalars"]  # not finite / not a number
    assert "curriculum/unit_potentials" in tags["histograms"]
    assert [(e.step, e.value) for e in acc.Scalars("reward/mean")] == [(1, 0.5), (2, 1.0)]
    jsonl = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["reward/mean"] for r in jsonl] == [0.5, 1.0]  # the JSONL is written as before


def test_wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb", reason="wandb is not installed (optional: pip install wandb)")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    sinks = make_loggers(["wandb"], tmp_path, config={"loss": {"name": "gppo"}})
    with MetricsLogger(tmp_path, sinks=sinks) as log:
        log.log(1, {"reward/mean": 0.25})
    assert (tmp_path / "wandb").is_dir() and (tmp_path / "wandb_id.txt").exists()


def test_missing_wandb_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_wandb(name: str, *args: object, **kwargs: object) -> object:
        if name == "wandb":
            raise ImportError("No module named 'wandb'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    with pytest.raises(ImportError, match="pip install wandb"):
        make_loggers(["wandb"], tmp_path)


def test_train_log_option_sets_run_log_and_rejects_unknown_names(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from toolgym.trainers.config import load_config

    from toolgym.cli import main
    from toolgym.commands import train

    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    overrides = train._overrides(parser.parse_args(["--log", "wandb,tensorboard"]))
    assert load_config("quickstart", overrides).run.log == ["wandb", "tensorboard"]
    assert main(["train", "--log", "tensorbord"]) == 2
    assert "unknown logger 'tensorbord'. Did you mean 'tensorboard'?" in capsys.readouterr().err
