"""benchmarks/dev_eval.py at toy size with the tiny local model: it runs as a script, evaluates
train instances from --start (never a demo's), reports per problem kind, and refuses a model path that
is not a folder. (Its figures are the benchmark's.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from bench_support import BENCHMARKS
from toolgym.agents.tiny import cached_tiny_model

SCRIPT = str(BENCHMARKS / "dev_eval.py")


def test_dev_eval_reports_per_kind_greedy_and_sampled(tmp_path: Path,
                                                     tmp_path_factory: pytest.TempPathFactory) -> None:
    model = cached_tiny_model(tmp_path_factory.getbasetemp() / "toolgym-cache")
    out = tmp_path / "dev.json"
    args = ["--model", f"a={model}", "--model", f"b={model}", "--task", "toolgym/math-v0", "--count", "3",
            "--start", "500", "--temperature", "1.0", "-n", "2", "--max-tokens", "8", "--threads", "1",
            "--out", str(out)]
    proc = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "| model | all |" in proc.stdout
    result = json.loads(out.read_text())
    assert result["config"]["start"] == 500 and result["config"]["split"] == "train"
    assert set(result["models"]) == {"a", "b"}
    from toolgym.tasks.mathgen import make_math

    kinds = {make_math().problem("train", i).metadata["kind"] for i in range(500, 503)}
    for r in result["models"].values():
        assert set(r["per_kind"]) == kinds
        assert sum(row["problems"] for row in r["per_kind"].values()) == 3
        assert all(0.0 <= row["pass_sampled"] <= 1.0 and 0 <= row["mixed"] <= row["problems"]
                   for row in r["per_kind"].values())
    # the same model twice: the same greedy figures
    greedy = [{k: row["pass_greedy"] for k, row in r["per_kind"].items()} for r in result["models"].values()]
    assert greedy[0] == greedy[1]


def test_dev_eval_refuses_a_model_that_is_not_a_folder(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, SCRIPT, "--model", f"x={tmp_path / 'none'}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "LABEL=PATH with PATH a model folder" in proc.stderr
