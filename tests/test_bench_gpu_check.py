"""benchmarks/gpu_check.sh, the prepared GPU check: its settings are valid for the shipped recipe, and
without a GPU it stops with a clear message before training. (Its figures come from a GPU machine; none
is lent to this test run.)"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from bench_support import BENCHMARKS

SCRIPT = BENCHMARKS / "gpu_check.sh"


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OUT": str(tmp_path / "run"), **env})


def test_the_gpu_checks_settings_are_valid(tmp_path: Path) -> None:
    done = _run(tmp_path, GPU_CHECK_VALIDATE_ONLY="1")
    assert done.returncode == 0, done.stderr
    assert "settings ok" in done.stdout and not (tmp_path / "run").exists()


def test_without_a_gpu_it_stops_before_training(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: the check would run for minutes")
    done = _run(tmp_path)
    assert done.returncode != 0 and "torch sees no CUDA GPU" in done.stderr
    assert not (tmp_path / "run").exists()
