"""The `e2b` backend: a stateful Jupyter kernel in E2B's cloud (a Firecracker micro-VM per session).

Use it when the code must be isolated by a VM rather than by namespaces, or when the training
machine cannot run bubblewrap. Needs `pip install 'toolgym[e2b]'` and the `E2B_API_KEY`
environment variable; the SDK is imported only when a session is created.

`fork()` cannot snapshot a remote kernel, so it starts a new sandbox and replays the cells run so
far (deterministic code gives the same state; side effects such as file writes happen again).
"""

from __future__ import annotations

import os
import time
from typing import Any

from toolgym.envs.sandbox._isolation import IsolationReport
from toolgym.envs.sandbox.base import SANDBOX_BACKENDS, ExecResult
from toolgym.envs.sandbox.limits import SandboxLimits

_INSTALL_HINT = "the e2b backend needs the e2b extra: pip install 'toolgym[e2b]'"


def execution_to_result(execution: Any, duration: float, cap: int) -> ExecResult:
    """Convert an `e2b_code_interpreter.Execution` (results, logs, error) into an ExecResult.

    The text of the main result (the value of the cell's last expression) is appended to stdout,
    like the local backend prints it.
    """
    stdout = "".join(execution.logs.stdout)
    for result in execution.results:
        if getattr(result, "is_main_result", False) and result.text is not None:
            stdout += result.text + "\n"
    stderr = "".join(execution.logs.stderr)
    out, out_cut = _cap(stdout, cap)
    err, err_cut = _cap(stderr, cap)
    result = ExecResult(stdout=out, stderr=err, output_truncated=out_cut or err_cut, duration=duration)
    error = execution.error
    if error is not None:
        result.error_type, result.error_message, result.traceback = error.name, error.value, error.traceback
        result.memory_exceeded = error.name == "MemoryError"
    return result


def _cap(text: str, cap: int) -> tuple[str, bool]:
    data = text.encode("utf-8", "backslashreplace")
    if len(data) <= cap:
        return text, False
    kept = data[:cap].decode("utf-8", "ignore")
    return kept + f"\n[... output truncated: showing the first {cap} of {len(data)} bytes]", True


class E2BSession:
    """One E2B sandbox (a remote Jupyter kernel)."""

    def __init__(self, backend: E2BBackend) -> None:
        self._backend = backend
        self._sandbox = backend.create_sandbox()
        self._cells: list[str] = []
        self._lost = False

    def run(self, code: str, timeout: float | None = None) -> ExecResult:
        from e2b_code_interpreter import TimeoutException

        limits = self._backend.limits
        timeout = limits.timeout if timeout is None else float(timeout)
        start = time.monotonic()
        restarted = self._sandbox is None
        try:
            if self._sandbox is None:
                self._sandbox = self._backend.create_sandbox()
            execution = self._sandbox.run_code(code, timeout=timeout)
        except TimeoutException as exc:
            self._restart()
            return ExecResult(
                timed_out=True, state_lost=True, error_message=str(exc), duration=time.monotonic() - start
            )
        except Exception as exc:  # network or service errors are outcomes, not exceptions
            self._restart()
            return ExecResult(
                crashed=True,
                state_lost=True,
                error_type=type(exc).__name__,
                error_message=str(exc),
                duration=time.monotonic() - start,
            )
        self._cells.append(code)
        result = execution_to_result(execution, time.monotonic() - start, limits.max_output_bytes)
        result.state_lost = restarted or self._lost
        self._lost = False
        return result

    def _restart(self) -> None:
        self._kill()
        self._cells.clear()
        self._lost = True

    def fork(self) -> E2BSession:
        child = E2BSession(self._backend)
        for code in self._cells:
            child.run(code)
        return child

    def _kill(self) -> None:
        if self._sandbox is not None:
            try:
                self._sandbox.kill()
            except Exception:
                pass
            self._sandbox = None

    def close(self) -> None:
        self._kill()


@SANDBOX_BACKENDS.register("e2b")
class E2BBackend:
    """Creates E2B sandboxes; `template` and other options go to `Sandbox.create`."""

    name = "e2b"
    stateful = True
    isolation = "e2b"

    @property
    def isolation_report(self) -> IsolationReport:
        return IsolationReport(backend=self.name, requested="e2b", mode="e2b", fallback_reason=None,
                               filesystem="a remote Firecracker micro-VM per session (nothing of this host)",
                               namespaces=("vm",), capabilities="inside the VM only", memory_cgroup=False,
                               pids_cgroup=False, workdir_quota=False)

    def __init__(
        self,
        *,
        limits: SandboxLimits | dict[str, Any] | None = None,
        api_key: str | None = None,
        template: str | None = None,
        sandbox_timeout: int = 600,
        **create_options: Any,
    ) -> None:
        self.limits = SandboxLimits.from_options(limits)
        self._api_key = api_key
        self._create_options = dict(create_options, timeout=sandbox_timeout)
        if template is not None:
            self._create_options["template"] = template

    def create_sandbox(self) -> Any:
        try:
            from e2b_code_interpreter import Sandbox
        except ImportError as exc:
            raise ImportError(f"{_INSTALL_HINT} ({exc})") from exc
        api_key = self._api_key or os.environ.get("E2B_API_KEY")
        if not api_key:
            raise RuntimeError(
                "the e2b backend needs an API key: set E2B_API_KEY (https://e2b.dev) "
                "or pass api_key=... to make_sandbox('e2b', ...)"
            )
        return Sandbox.create(api_key=api_key, **self._create_options)

    def new_session(self) -> E2BSession:
        return E2BSession(self)

    def close(self) -> None:
        """Sessions own their sandboxes; nothing is kept warm here."""
