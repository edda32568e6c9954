"""The e2b backend: conversion of the SDK's own result classes, error messages, and a live test.

The E2B cloud cannot be reached from CI, so `Execution`, `Logs`, `Result` and `ExecutionError`
are built with the installed e2b-code-interpreter classes (not fakes of them); the live test
runs only with E2B_API_KEY set (marker `e2b`, skipped by tests/conftest.py otherwise).
"""

from __future__ import annotations

import pytest

e2b = pytest.importorskip("e2b_code_interpreter", reason="the e2b extra is not installed")

from toolgym.envs.sandbox import make_sandbox  # noqa: E402
from toolgym.envs.sandbox.e2b_backend import execution_to_result  # noqa: E402


def test_successful_execution_becomes_stdout_with_the_main_result():
    execution = e2b.Execution(
        results=[e2b.Result(text="42", is_main_result=True), e2b.Result(text="<side plot>")],
        logs=e2b.Logs(stdout=["hello\n", "world\n"], stderr=["careful\n"]),
    )
    result = execution_to_result(execution, duration=0.5, cap=1000)
    assert result.stdout == "hello\nworld\n42\n"
    assert result.stderr == "careful\n"
    assert result.ok and result.duration == 0.5 and not result.output_truncated


def test_execution_error_fills_error_fields():
    error = e2b.ExecutionError(name="ZeroDivisionError", value="division by zero", traceback="Traceback ...")
    result = execution_to_result(e2b.Execution(error=error), duration=0.1, cap=1000)
    assert result.error_type == "ZeroDivisionError"
    assert result.error_message == "division by zero"
    assert result.traceback == "Traceback ..."
    assert not result.ok and not result.memory_exceeded


def test_memory_error_sets_memory_exceeded():
    error = e2b.ExecutionError(name="MemoryError", value="", traceback="")
    assert execution_to_result(e2b.Execution(error=error), 0.0, 1000).memory_exceeded


def test_long_output_is_truncated_with_a_marker():
    execution = e2b.Execution(logs=e2b.Logs(stdout=["x" * 5000]))
    result = execution_to_result(execution, 0.0, cap=100)
    assert result.output_truncated
    assert result.stdout.startswith("x" * 100) and "output truncated" in result.stdout


def test_missing_api_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("E2B_API_KEY", raising=False)
    backend = make_sandbox("e2b")
    with pytest.raises(RuntimeError, match="E2B_API_KEY"):
        backend.new_session()


@pytest.mark.e2b
def test_live_e2b_session_keeps_state():
    backend = make_sandbox("e2b", limits={"timeout": 60})
    session = backend.new_session()
    try:
        assert session.run("x = 20").ok
        assert session.run("x * 2 + 2").stdout == "42\n"
        assert session.run("1 / 0").error_type == "ZeroDivisionError"
        child = session.fork()
        assert child.run("x").stdout == "20\n"
        child.close()
    finally:
        session.close()
