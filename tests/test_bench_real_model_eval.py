"""benchmarks/real_model_eval.py at toy size with the tiny local model: it runs as a script, prints its
table and writes the keys the README quotes. (Its figures come from the real model, in the benchmark.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from bench_support import BENCHMARKS
from toolgym.agents.tiny import cached_tiny_model


def test_real_model_eval_benchmark_writes_its_keys(tmp_path: Path,
                                                   tmp_path_factory: pytest.TempPathFactory) -> None:
    model = cached_tiny_model(tmp_path_factory.getbasetemp() / "toolgym-cache")
    out = tmp_path / "real_model_eval.json"
    args = ["--model", str(model), "--tasks", "toolgym/arith-v0,toolgym/math-v0", "--problems", "2",
            "--max-tokens", "8", "--max-turns", "1", "--gen-prompts", "3", "--gen-tokens", "6",
            "--out", str(out)]
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "real_model_eval.py"), *args],
                          capture_output=True, text=True, timeout=300, cwd=BENCHMARKS)
    assert proc.returncode == 0, proc.stderr
    assert "| toolgym/math-v0 |" in proc.stdout and "model.generate loop" in proc.stdout
    result = json.loads(out.read_text())
    for task in ("toolgym/arith-v0", "toolgym/math-v0"):
        row = result["per_task"][task]
        assert row["problems"] == 2 and {"pass@1", "pass@4", "tool_calls", "answered_frac"} <= row.keys()
    assert result["engine_tokens"] == result["generate_tokens"] > 0  # equal token counts, both ways
    assert result["engine_speedup_vs_generate"] > 0
