"""A session of the local backend: the host end of one sandboxed interpreter (see local.py).

`run` never raises: a timeout kills the session's process group and returns `timed_out=True,
state_lost=True`; the next call transparently starts a fresh interpreter from the zygote and
reports `state_lost=True` again, so an environment can tell the model its variables are gone.
"""

from __future__ import annotations

import time

from toolgym.envs.sandbox import _reply, _wire
from toolgym.envs.sandbox._proc import Proc, SessionHost, exited
from toolgym.envs.sandbox.base import ExecResult, SandboxError


class LocalSession:
    """A stateful interpreter. One caller at a time (use SessionPool to share across threads)."""

    def __init__(self, backend: SessionHost, proc: Proc) -> None:
        self._backend = backend
        self._proc: Proc | None = proc
        self._lost = False  # the interpreter died; the next run starts a fresh one
        self._closed = False

    @property
    def alive(self) -> bool:
        """True while the interpreter process is running (False after a timeout or crash)."""
        return self._proc is not None and not self._closed and not exited(self._proc.pidfd)

    @property
    def pid(self) -> int | None:
        """Host PID of the interpreter process (None while none is running)."""
        return self._proc.pid if self._proc else None

    @property
    def workdir(self) -> str | None:
        """The session's private working directory (as a host path)."""
        return self._proc.directory if self._proc else None

    def run(self, code: str, timeout: float | None = None) -> ExecResult:
        """Execute `code`; variables persist across calls. Never raises (except on a closed session)."""
        if self._closed:
            raise SandboxError("this session is closed; get a new one with backend.new_session()")
        timeout = self._backend.limits.timeout if timeout is None else float(timeout)
        start = time.monotonic()
        if self._proc is not None and exited(self._proc.pidfd):
            self._die()  # it died between calls (a thread called os._exit, an outside kill): restart now
        restarted = self._proc is None
        if restarted:
            try:
                self._proc = self._backend.spawn_proc()
            except Exception as exc:
                return ExecResult(
                    crashed=True,
                    state_lost=True,
                    error_type="SandboxError",
                    error_message=f"could not start a fresh interpreter: {exc}",
                    duration=time.monotonic() - start,
                )
        result = self._call(code, start, timeout)
        result.state_lost = result.state_lost or restarted or self._lost
        self._lost = False
        return result

    def _call(self, code: str, start: float, timeout: float) -> ExecResult:
        proc = self._proc
        assert proc is not None
        cap = self._backend.limits.max_output_bytes
        request_id = _reply.new_id()
        try:
            _wire.send(proc.sock, {"op": "run", "id": request_id, "code": code})
            reply = _reply.receive(proc.sock, request_id, start + timeout, max_bytes=32 * cap + (1 << 20))
            result = _reply.to_result(reply, cap, time.monotonic() - start)
        except TimeoutError:
            self._die()
            return ExecResult(
                timed_out=True,
                state_lost=True,
                duration=time.monotonic() - start,
                error_message=f"the code ran longer than {timeout:g} s; the interpreter was "
                "killed and its variables are lost",
            )
        except Exception as exc:  # WireError, ProtocolError, OSError: the interpreter is gone or untrusted
            exited(proc.pidfd, timeout=0.05)  # let the OOM killer's count settle
            memory = self._backend.memory_killed(proc)
            self._die()
            return ExecResult(
                crashed=True,
                memory_exceeded=memory,
                state_lost=True,
                duration=time.monotonic() - start,
                error_message=f"the interpreter died or broke the protocol ({_reply.clean(str(exc))[:300]}); "
                "it was killed and its variables are lost",
            )
        if "exit" in reply:
            self._die()
            result.crashed = result.state_lost = True
            result.error_type = "SystemExit"
            result.error_message = (f"the code called sys.exit({_reply.clean(reply['exit'])[:200]}); the "
                                    "interpreter exited; its variables are lost")
        return result

    def fork(self) -> LocalSession:
        """A copy-on-write snapshot of this session (variables, imports, a copy of its directory)."""
        if self._closed:
            raise SandboxError("cannot fork a closed session; fork it before closing it")
        if self._proc is not None and exited(self._proc.pidfd):
            self._die()  # it died since its last call: there is no state to copy
        if self._proc is None:  # nothing to copy: the state was already lost
            child = LocalSession(self._backend, self._backend.spawn_proc())
            child._lost = True
        else:
            proc = self._backend.fork_proc(self._proc, time.monotonic() + 30.0)
            child = LocalSession(self._backend, proc)
        self._backend.adopt(child)
        return child

    def _die(self) -> None:
        if self._proc is not None:
            self._backend.kill_proc(self._proc)
            self._proc = None
            self._lost = True

    def close(self) -> None:
        """Kill the interpreter and everything it started; delete its directory. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._proc is not None:
            self._backend.kill_proc(self._proc)
            self._proc = None
        self._backend.forget(self)

    def __enter__(self) -> LocalSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

