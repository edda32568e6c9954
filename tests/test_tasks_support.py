"""Helpers for the task-family tests (no tests here): run our own reference programs.

`run_programs` executes reference programs in one child interpreter, each in a fresh namespace with
its stdout captured, so a sample of a few dozen instances costs one process start.
"""

from __future__ import annotations

import json
import subprocess
import sys

_RUNNER = r"""
import contextlib, io, json, sys
outputs = []
for code in json.load(sys.stdin):
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(compile(code, "<reference>", "exec"), {"__name__": "__main__"})
    outputs.append(buffer.getvalue())
print(json.dumps(outputs))
"""


def run_programs(codes: list[str], timeout: float = 120.0) -> list[str]:
    """The stdout of each program, run one after another in a single child interpreter."""
    out = subprocess.run([sys.executable, "-I", "-c", _RUNNER], input=json.dumps(codes), text=True,
                         capture_output=True, timeout=timeout, check=True)
    return json.loads(out.stdout)
