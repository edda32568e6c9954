"""benchmarks/learner_prefix.py on a very small batch: it runs as a script, writes the JSON keys it
documents, and its three ways compute the same gradient. (Its timings are the benchmark's, not a test's.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench_support import BENCHMARKS


def test_learner_prefix_benchmark_writes_its_keys_and_equal_gradients(tmp_path: Path) -> None:
    out = tmp_path / "learner_prefix.json"
    args = ["--prompts", "3", "--group", "3", "--system", "40", "--problem", "40", "--response", "12",
            "--budget", "400", "--hidden", "32", "--layers", "1", "--rounds", "1", "--out", str(out)]
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "learner_prefix.py"), *args],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "shared_prefix" in proc.stdout and "packs by" in proc.stdout  # the printed table
    result = json.loads(out.read_text())
    for way in ("plain", "shared_length", "shared_prefix"):
        assert result[f"{way}_s"] > 0 and result[f"{way}_fed_tokens"] > 0
    assert result["max_grad_diff"] < 1e-5
    # each group's 80-token prompt fed once per micro-batch vs every row whole
    fed = [result[f"{way}_fed_tokens"] for way in ("shared_prefix", "shared_length", "plain")]
    assert fed == sorted(set(fed))
    assert result["default_packing"] in ("length", "prefix") and result["micro_batches_prefix"] >= 3
    assert {"speedup_shared_length", "speedup_shared_prefix", "budget"} <= result.keys()
