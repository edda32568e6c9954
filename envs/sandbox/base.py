"""The sandbox contract shared by every backend.

A *session* is a stateful Python interpreter: variables defined by one `run` are visible to the next,
like notebook cells. Every outcome of running code -- success, exception, timeout, memory limit,
crash -- is reported as an `ExecResult`; `run` never raises into the caller, so an environment can
turn any model output into an observation.

Backends are found by name through `SANDBOX_BACKENDS` (a `toolgym.registry.Registry`): the built-in
modules register their classes with `@SANDBOX_BACKENDS.register("name")`, a third-party package adds
one through the entry-point group `toolgym.sandbox_backends`. `make_sandbox(name, **options)` in the
package looks names up there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from toolgym.registry import Registry

SANDBOX_BACKENDS: Registry[Any] = Registry(
    "sandbox backend",
    builtins=[
        "toolgym.envs.sandbox.local",
        "toolgym.envs.sandbox.subproc",
        "toolgym.envs.sandbox.e2b_backend",
    ],
    entry_points="toolgym.sandbox_backends",
    hint="Add one with @SANDBOX_BACKENDS.register(name) (toolgym.envs.sandbox.base) or the "
    "entry-point group 'toolgym.sandbox_backends'.",
)


class SandboxError(RuntimeError):
    """The sandbox itself failed (could not start, fork or reach a session), not the model's code.

    The only error `new_session()`, `fork()` and `SessionPool.acquire()` raise; the message says
    what failed and what to do. Code that runs in a session never raises it: see `ExecResult`.
    """


@dataclass
class ExecResult:
    """The outcome of one `Session.run` call."""

    stdout: str = ""
    stderr: str = ""
    error_type: str | None = None  # e.g. "ZeroDivisionError"; None when the code ran cleanly
    error_message: str | None = None
    traceback: str | None = None  # formatted, user frames only where the backend can tell
    timed_out: bool = False  # the wall timeout fired; the session was killed
    memory_exceeded: bool = False  # the address-space limit was hit (MemoryError or killed)
    crashed: bool = False  # the interpreter died (segfault, os._exit, sys.exit, killed)
    state_lost: bool = False  # the next call runs in a fresh interpreter: variables are gone
    output_truncated: bool = False  # stdout/stderr were cut at the output limit
    duration: float = 0.0  # seconds, wall clock, as seen by the caller

    @property
    def ok(self) -> bool:
        """True when the code ran to completion without an exception or a limit."""
        return not (self.error_type or self.timed_out or self.memory_exceeded or self.crashed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Session(Protocol):
    """A live interpreter. Not thread-safe: one caller at a time (the pool hands out sessions)."""

    def run(self, code: str, timeout: float | None = None) -> ExecResult:
        """Execute `code` in the session; never raises."""
        ...

    def fork(self) -> Session:
        """A copy-on-write snapshot of this session's state, as an independent session."""
        ...

    def close(self) -> None:
        """Kill the interpreter and delete its working directory. Idempotent."""
        ...


@runtime_checkable
class SandboxBackend(Protocol):
    """Creates sessions. `close()` releases whatever the backend keeps warm (e.g. a zygote)."""

    name: str

    def new_session(self) -> Session: ...

    def close(self) -> None: ...
