"""`toolgym doctor` run for real in a subprocess: versions, sandbox self-test, --model check, exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "toolgym.cli", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_doctor_passes_on_a_working_install():
    proc = _doctor()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for name in ("gymnasium", "torch", "transformers", "ray", "GPU", "vllm", "E2B_API_KEY", "bubblewrap"):
        assert name in out
    assert "self-test" in out and "state persists, timeout kills, fork copies state" in out
    assert "doctor: all checks passed" in out


def test_doctor_fails_when_the_requested_isolation_is_impossible():
    # an explicit isolation=bwrap with no bwrap on PATH must make the default path report broken
    env = {"PATH": "/nonexistent", "HOME": "/tmp"}
    proc = _doctor("--isolation", "bwrap", env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "self-test" in proc.stdout and "FAILED" in proc.stdout
    assert "bubblewrap is not installed" in proc.stdout


def test_doctor_model_check_reports_a_bad_path(tmp_path):
    proc = _doctor("--model", str(tmp_path / "no-such-model"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "chat template" in proc.stdout and "no-such-model" in proc.stdout
    assert "BROKEN" in proc.stdout


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    tiny = pytest.importorskip("toolgym.agents.tiny")
    path = tmp_path_factory.mktemp("tok")
    tiny.build_tokenizer().save_pretrained(path)
    return path


def test_doctor_model_check_accepts_the_tiny_chat_template(tokenizer_dir):
    proc = _doctor("--model", str(tokenizer_dir))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "chat template ok" in proc.stdout
