"""Errors a user can cause are a clear message and exit 2, not a traceback, and say what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_eval_failures import closed_port
from toolgym.agents.tiny import cached_tiny_model

from toolgym.cli import main


@pytest.mark.parametrize(("override", "expected"), [
    ("run.suite=quickstrat", "Did you mean 'quickstart'?"),
    ("curriculum.scheduler=potental", "Did you mean 'potential'?"),
    ("rollout.env.system_promt=Hi", "rollout.env.system_promt: not an environment setting. Did you mean "
                                    "'system_prompt'?"),
    ("rollout.env.format_weight=-1", "format_weight must be a number >= 0"),
])
def test_train_config_mistakes_are_named_before_anything_runs(override: str, expected: str, tmp_path: Path,
                                                              capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", "--output", str(out), override]) == 2
    assert expected in capsys.readouterr().err
    assert not out.exists()  # refused up front: no demos generated, no run directory


def test_train_with_a_missing_model_folder_says_so(tmp_path: Path, capsys) -> None:
    assert main(["train", "--output", str(tmp_path / "r"), "--model", str(tmp_path / "no-model")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_eval_completions_needs_a_tokenizer_and_takes_one(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the served name is not a hub id here: no network lookups
    url = f"openai:tiny@http://127.0.0.1:{closed_port()}/v1"
    common = ["eval", "--model", url, "--api", "completions", "-n", "1", "-k", "1", "--num-problems", "1",
              "--max-tokens", "4", "--max-turns", "1", "--no-progress", "--out", str(tmp_path)]
    assert main(common) == 2
    assert "pass --tokenizer PATH" in capsys.readouterr().err
    model = cached_tiny_model(tmp_path / "cache")
    assert main([*common, "--tokenizer", str(model)]) == 1  # tokenizer loaded; then the endpoint is down
    assert "cannot reach" in capsys.readouterr().err


@pytest.mark.parametrize("warm_start", [True, False], ids=["with-warm-start", "rl-only"])
def test_a_hub_id_without_a_reachable_hub_names_the_package_index_catalogue(warm_start: bool,
                                                                            tmp_path: Path) -> None:
    """A real `toolgym train` process with the hub switched off (HF_HUB_OFFLINE, read at import)."""
    import os
    import subprocess
    import sys

    args = ["train", "--no-ray", "--model", "someorg/no-such-model", "--output", str(tmp_path / "run"),
            "run.progress=false", *([] if warm_start else ["--skip-sft"])]
    done = subprocess.run([sys.executable, "-m", "toolgym.cli", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2, done.stderr[-2000:]
    assert "could not load 'someorg/no-such-model' from the model hub" in done.stderr
    assert "toolgym models list" in done.stderr and "Traceback" not in done.stderr
