"""Run a candidate program's unit tests in a sandbox session and compare the results outside it.

Why this shape:
- The expected outputs never enter the sandbox: the harness only sends the candidate's results back
  (JSON lines behind a random per-call marker), and they are compared here. A candidate cannot read
  the answers or print "all tests passed".
- Every harness program is self-contained (it re-executes the candidate source), so it works on
  stateful and stateless sessions alike and survives a session that lost its state.
- Speed with robustness: all tests run in one call, each limited by a SIGALRM timer inside the
  harness (where the session runs code on its main thread, as the local backend does); when that
  call dies anyway (a crash, a swallowed timer, the memory limit), the tests without a result are
  retried one per call, within a total budget.

Two modes, as in APPS/TACO: `fn_name` set -> call the function (or `Solution().fn_name`) with each
input's positional arguments and compare the return value; `fn_name` None -> run the program with
each input on stdin and compare stdout (trailing whitespace per line and trailing blank lines ignored,
then token-wise).
"""

from __future__ import annotations

import json
import math
import secrets
import time
from dataclasses import dataclass
from typing import Any

from toolgym.envs.sandbox.base import ExecResult
from toolgym.envs.task import SessionFactory

_HARNESS = r'''
import contextlib as _tg_cl, io as _tg_io, json as _tg_json, signal as _tg_signal, sys as _tg_sys
_tg_out = _tg_sys.stdout

class _TgTimeout(BaseException):  # not an Exception: a candidate's `except Exception` cannot swallow it
    pass

def _tg_alarm(signum, frame):
    raise _TgTimeout("timed out (more than {per_test}s)")

try:
    _tg_signal.signal(_tg_signal.SIGALRM, _tg_alarm)
    _tg_has_alarm = True
except (ValueError, OSError, AttributeError):  # not the main thread, or no SIGALRM on this platform
    _tg_has_alarm = False

def _tg_limit(seconds):
    if _tg_has_alarm:
        _tg_signal.setitimer(_tg_signal.ITIMER_REAL, seconds)
_tg_src = _tg_json.loads({src!r})
_tg_inputs = _tg_json.loads({inputs!r})
_tg_fn_name = {fn_name!r}

def _tg_emit(i, payload):
    _tg_out.write({marker!r} + _tg_json.dumps([i, payload]) + "\n")
    _tg_out.flush()

def _tg_error(exc):
    if isinstance(exc, _TgTimeout):
        return {{"ok": False, "error": str(exc)}}
    return {{"ok": False, "error": (type(exc).__name__ + ": " + str(exc))[:300]}}

def _tg_run(code, namespace, stdin):
    _tg_sys.stdin = _tg_io.StringIO(stdin)
    buffer = _tg_io.StringIO()
    _tg_limit({per_test})
    try:
        with _tg_cl.redirect_stdout(buffer):
            exec(code, namespace)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise RuntimeError("SystemExit(" + repr(exc.code) + ")")
    finally:
        _tg_limit(0)
    return buffer.getvalue()

def _tg_encode(value):
    try:
        return {{"ok": True, "json": _tg_json.loads(_tg_json.dumps(value))}}
    except (TypeError, ValueError):
        return {{"ok": True, "repr": repr(value)}}

_tg_code = compile(_tg_src, "<solution>", "exec")
if _tg_fn_name is None:
    for _tg_i in {todo!r}:
        try:
            _tg_stdout = _tg_run(_tg_code, {{"__name__": "__main__"}}, _tg_inputs[_tg_i])
            _tg_emit(_tg_i, {{"ok": True, "stdout": _tg_stdout}})
        except BaseException as _tg_exc:
            _tg_emit(_tg_i, _tg_error(_tg_exc))
else:
    _tg_ns = {{"__name__": "__solution__"}}
    try:
        _tg_run(_tg_code, _tg_ns, "")
        _tg_fn = _tg_ns.get(_tg_fn_name)
        if _tg_fn is None and "Solution" in _tg_ns:
            _tg_fn = getattr(_tg_ns["Solution"](), _tg_fn_name)
        if not callable(_tg_fn):
            raise NameError("the program does not define a function named " + repr(_tg_fn_name))
    except BaseException as _tg_exc:
        for _tg_i in {todo!r}:
            _tg_emit(_tg_i, _tg_error(_tg_exc))
    else:
        for _tg_i in {todo!r}:
            try:
                _tg_sys.stdin = _tg_io.StringIO("")
                _tg_limit({per_test})
                try:
                    with _tg_cl.redirect_stdout(_tg_io.StringIO()):
                        _tg_value = _tg_fn(*_tg_json.loads(_tg_json.dumps(_tg_inputs[_tg_i])))
                finally:
                    _tg_limit(0)
                _tg_emit(_tg_i, _tg_encode(_tg_value))
            except BaseException as _tg_exc:
                _tg_emit(_tg_i, _tg_error(_tg_exc))
'''


@dataclass(frozen=True)
class TestReport:
    """Per-test outcomes of one candidate."""

    passed: list[bool]
    first_failure: str  # "" when every test passed

    @property
    def pass_rate(self) -> float:
        return sum(self.passed) / len(self.passed) if self.passed else 0.0


def values_equal(got: Any, expected: Any) -> bool:
    """Equality on JSON values with a float tolerance (rel 1e-6) and bool kept distinct from int."""
    if isinstance(got, bool) or isinstance(expected, bool):
        return type(got) is type(expected) and got == expected
    if isinstance(got, int | float) and isinstance(expected, int | float):
        if isinstance(got, float) or isinstance(expected, float):
            return math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-9)
        return got == expected
    if isinstance(got, list) and isinstance(expected, list):
        return len(got) == len(expected) and all(map(values_equal, got, expected))
    if isinstance(got, dict) and isinstance(expected, dict):
        return got.keys() == expected.keys() and all(values_equal(got[k], expected[k]) for k in got)
    return bool(got == expected)


def return_matches(result: dict[str, Any], expected: Any, wrapped: bool = False) -> bool:
    """The return value equals `expected`; with `wrapped` (APPS call-based data) also `expected[0]`."""
    if "json" not in result:
        return result.get("repr") == repr(expected)
    got = result["json"]
    if values_equal(got, expected):
        return True
    return wrapped and isinstance(expected, list) and len(expected) == 1 and values_equal(got, expected[0])


def stdout_matches(got: str, expected: str) -> bool:
    """Line-wise equality ignoring trailing whitespace; else equality of whitespace-separated tokens."""
    def lines(text: str) -> list[str]:
        rows = [row.rstrip() for row in text.replace("\r\n", "\n").split("\n")]
        while rows and not rows[-1]:
            rows.pop()
        return rows

    return lines(got) == lines(expected) or got.split() == expected.split()


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _harness(source: str, inputs: list[Any], fn_name: str | None, todo: list[int], marker: str,
             per_test: float) -> str:
    return _HARNESS.format(src=json.dumps(source), inputs=json.dumps(inputs), fn_name=fn_name,
                           todo=todo, marker=marker, per_test=float(per_test))


def _collect(stdout: str, marker: str, results: dict[int, dict[str, Any]]) -> None:
    for line in stdout.splitlines():
        if line.startswith(marker):
            try:
                index, payload = json.loads(line[len(marker):])
            except (ValueError, TypeError):
                continue  # a line cut by the output limit
            results.setdefault(int(index), payload)


def run_tests(source: str, inputs: list[Any], outputs: list[Any], fn_name: str | None,
              new_session: SessionFactory, per_test_timeout: float = 4.0, budget: float = 60.0,
              wrapped_outputs: bool = False) -> TestReport:
    """Run `source` on every input in a fresh session; compare with `outputs` here, outside the sandbox.

    `wrapped_outputs`: APPS call-based data, where an expected return value may be wrapped in a list.
    """
    if len(inputs) != len(outputs) or not inputs:
        raise ValueError(f"a code problem needs as many inputs as outputs, at least one ({len(inputs)} vs "
                         f"{len(outputs)})")
    if fn_name is None:
        inputs = ["\n".join(map(str, x)) if isinstance(x, list) else str(x) for x in inputs]
    marker = f"@@toolgym-{secrets.token_hex(8)}@@"
    results: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + budget
    session = new_session()
    try:
        todo = list(range(len(inputs)))
        batch_timeout = min(per_test_timeout * len(todo) + 2.0, budget)
        batch = _harness(source, inputs, fn_name, todo, marker, per_test_timeout)
        _collect(session.run(batch, batch_timeout).stdout, marker, results)
        for i in todo:
            remaining = deadline - time.monotonic()
            if i in results or remaining <= 0:
                continue
            res = session.run(_harness(source, inputs, fn_name, [i], marker, per_test_timeout),
                              min(per_test_timeout + 1.0, remaining))
            _collect(res.stdout, marker, results)
            if i not in results:
                results[i] = {"ok": False, "error": f"the program {_failure(res)} on this test"}
    finally:
        session.close()
    return _judge(inputs, outputs, fn_name, results, wrapped_outputs)


def _failure(res: ExecResult) -> str:
    if res.timed_out:
        return "timed out"
    return "hit the memory limit" if res.memory_exceeded else "crashed"


def _judge(inputs: list[Any], outputs: list[Any], fn_name: str | None,
           results: dict[int, dict[str, Any]], wrapped: bool) -> TestReport:
    passed, first_failure = [], ""
    for i, expected in enumerate(outputs):
        result = results.get(i, {"ok": False, "error": "not run: the verification time budget ran out"})
        if not result.get("ok"):
            ok, got = False, result.get("error", "error")
        elif fn_name is None:
            ok, got = stdout_matches(result.get("stdout", ""), str(expected)), result.get("stdout", "")
        else:
            ok, got = return_matches(result, expected, wrapped), result.get("json", result.get("repr"))
        passed.append(ok)
        if not ok and not first_failure:
            first_failure = (f"test {i}: input {_short(inputs[i])}, expected {_short(expected)}, "
                             f"got {_short(got)}")
    return TestReport(passed=passed, first_failure=first_failure)
