"""The `subprocess` backend: a fresh `python -c CODE` per call, no state between calls.

This is the naive baseline many RL frameworks use (GEM, SkyRL): simple and obviously isolated
from the previous call, but each call pays a full interpreter start-up, and variables do not
survive between turns (the backend says so with `stateful = False`). Kept for comparison in
benchmarks/sandbox_latency.py and as the simplest fallback. It applies the same rlimits, scrubbed
environment, private directory and output cap as `local`, but no namespaces.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

from toolgym.envs.sandbox._isolation import IsolationReport
from toolgym.envs.sandbox.base import SANDBOX_BACKENDS, ExecResult
from toolgym.envs.sandbox.limits import SandboxLimits

_ERROR_PREFIX = "Traceback (most recent call last):"


class SubprocessSession:
    """Runs each call in a new interpreter inside the session's private directory."""

    def __init__(self, backend: SubprocessBackend) -> None:
        self._backend = backend
        self.workdir = tempfile.mkdtemp(prefix="toolgym-subprocess-")
        self._closed = False

    def run(self, code: str, timeout: float | None = None) -> ExecResult:
        if self._closed:
            raise RuntimeError("this session is closed; get a new one with backend.new_session()")
        limits = self._backend.limits
        timeout = limits.timeout if timeout is None else float(timeout)
        start = time.monotonic()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(
                [self._backend.python, "-E", "-s", "-B", "-c", code],
                cwd=self.workdir,
                env=self._backend.env(self.workdir),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                preexec_fn=_limiter(limits),
                start_new_session=True,
            )
            try:
                returncode, timed_out = proc.wait(timeout), False
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # the whole process group, not just the interpreter
                proc.wait()
                returncode, timed_out = None, True
            stdout, out_cut = _read_capped(out, limits.max_output_bytes)
            stderr, err_cut = _read_capped(err, limits.max_output_bytes)
        result = ExecResult(
            stdout=stdout,
            stderr=stderr,
            timed_out=timed_out,
            output_truncated=out_cut or err_cut,
            duration=time.monotonic() - start,
        )
        if returncode:
            _describe_failure(result, returncode)
        return result

    def fork(self) -> SubprocessSession:
        """Stateless, so a fork is a new session with a copy of the directory."""
        child = SubprocessSession(self._backend)
        shutil.copytree(self.workdir, child.workdir, symlinks=True, dirs_exist_ok=True)
        return child

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            shutil.rmtree(self.workdir, ignore_errors=True)


@SANDBOX_BACKENDS.register("subprocess")
class SubprocessBackend:
    """Sessions that start a new interpreter per call (the baseline)."""

    name = "subprocess"
    stateful = False

    def __init__(
        self,
        *,
        limits: SandboxLimits | dict[str, Any] | None = None,
        python: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.limits = SandboxLimits.from_options(limits)
        self.python = python or sys.executable
        self._extra_env = dict(env or {})
        self.isolation = "none"

    def env(self, workdir: str) -> dict[str, str]:
        env = {
            "PATH": f"{os.path.dirname(self.python)}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": workdir,
            "TMPDIR": workdir,
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "PYTHONIOENCODING": "utf-8:backslashreplace",
        }
        env.update(self._extra_env)
        return env

    @property
    def isolation_report(self) -> IsolationReport:
        """No namespaces, no privilege drop: the rlimits, the private directory and the timeout."""
        root = os.geteuid() == 0
        return IsolationReport(backend=self.name, requested="none", mode="none", fallback_reason=None,
                               filesystem="host file system with your user's permissions"
                               + (" (root: writable everywhere)" if root else ""),
                               namespaces=(), capabilities="all of root's" if root else "those of your user",
                               memory_cgroup=False, pids_cgroup=False, workdir_quota=False)

    def new_session(self) -> SubprocessSession:
        return SubprocessSession(self)

    def close(self) -> None:
        """Nothing is kept warm."""


def _limiter(limits: SandboxLimits):
    def apply() -> None:
        for value, which in (
            (limits.memory_bytes, resource.RLIMIT_AS),
            (limits.cpu_seconds, resource.RLIMIT_CPU),
            (limits.max_file_bytes, resource.RLIMIT_FSIZE),
            (limits.max_open_files, resource.RLIMIT_NOFILE),
        ):
            if value is not None:
                resource.setrlimit(which, (value, value))

    return apply


def _read_capped(handle, cap: int) -> tuple[str, bool]:
    size = handle.seek(0, os.SEEK_END)
    handle.seek(0)
    data = handle.read(cap)
    text = data.decode("utf-8", "backslashreplace")
    if size > cap:
        text += f"\n[... output truncated: showing the first {cap} of {size} bytes]"
    return text, size > cap


def _describe_failure(result: ExecResult, returncode: int) -> None:
    """Fill the error fields from the exit status and the traceback Python printed on stderr."""
    if returncode < 0:
        result.crashed = True
        result.error_message = f"the interpreter was killed by signal {-returncode}"
        return
    lines = result.stderr.rstrip().splitlines()
    if _ERROR_PREFIX in result.stderr and lines:
        last = lines[-1]
        name, _, message = last.partition(": ")
        result.error_type, result.error_message = name.strip() or "Error", message
        result.traceback = result.stderr[result.stderr.rindex(_ERROR_PREFIX) :]
        result.memory_exceeded = result.error_type == "MemoryError"
    else:
        result.crashed = True
        result.error_type = "SystemExit"
        result.error_message = f"the interpreter exited with status {returncode}"
