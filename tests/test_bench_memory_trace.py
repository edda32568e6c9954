"""benchmarks/memory_trace.py on small real commands in a real memory cgroup: it sees a child's
memory, and with `--limit-gb` the kernel ends a command that does not fit (an OOM kill it reports).
Skips where this process cannot make a memory cgroup (not root, or no memory controller)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bench_support import BENCHMARKS

V1 = Path("/sys/fs/cgroup/memory/memory.usage_in_bytes")
V2 = Path("/sys/fs/cgroup/cgroup.controllers")


def _can_make_memory_cgroup() -> bool:
    if os.geteuid() != 0:
        return False
    return V1.exists() or (V2.exists() and "memory" in V2.read_text().split())


pytestmark = pytest.mark.skipif(not _can_make_memory_cgroup(),
                                reason="needs root and a memory cgroup controller to make a cgroup")

HOLD = "import time; x = bytearray({mb} << 20); x[::4096] = b'1' * len(x[::4096]); time.sleep(2)"


def _trace(tmp_path: Path, mb: int, limit_gb: float) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "trace.json"
    command = [sys.executable, "-c", HOLD.format(mb=mb)]
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "memory_trace.py"), "--limit-gb", str(limit_gb),
                           "--interval", "0.2", "--out", str(out), "--", *command],
                          capture_output=True, text=True, timeout=120)
    return proc, json.loads(out.read_text())


def test_the_trace_sees_what_a_command_holds(tmp_path: Path) -> None:
    proc, result = _trace(tmp_path, mb=300, limit_gb=2)
    assert proc.returncode == 0, proc.stderr
    assert "peak PSS, summed over processes" in proc.stdout  # the printed table
    assert result["rc"] == 0 and result["oom_kills"] == 0 and result["limit_gb"] == 2
    assert 300 <= result["peak_anon_shmem_mb"] < 600 and 300 <= result["peak_pss_sum_mb"] < 600
    assert result["timeline"] and result["cgroup_peak_mb"] >= result["peak_anon_shmem_mb"] - 1


def test_a_command_over_the_limit_is_killed_and_reported(tmp_path: Path) -> None:
    proc, result = _trace(tmp_path, mb=600, limit_gb=0.25)
    assert proc.returncode == 1 and result["rc"] != 0 and result["oom_kills"] >= 1
    assert not list(Path("/sys/fs/cgroup/memory").glob("toolgym-memory-trace-*"))  # removed afterwards
