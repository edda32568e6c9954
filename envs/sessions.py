"""Where an environment gets its interpreter sessions: a backend, a pool, or the shared default pool.

`ToolEnv(sandbox=...)` accepts a `SandboxBackend` (a new session per episode, closed at its end), a
`SessionPool` (acquired per episode, released at its end) or None: a process-wide pool over the
`local` backend, created on first use (not at import) and closed at interpreter exit. Sessions are
taken lazily -- only when an episode first runs code or has setup code -- so answer-only episodes
and `check_env` never touch the sandbox.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from typing import Any

from toolgym.envs.sandbox.base import SandboxBackend, Session

_default_lock = threading.Lock()
_default_pool: Any = None


def default_pool() -> Any:
    """The shared `SessionPool` over `make_sandbox("local")`, created on first call."""
    global _default_pool
    with _default_lock:
        if _default_pool is None:
            from toolgym.envs.sandbox import SessionPool, make_sandbox

            _default_pool = SessionPool(make_sandbox("local"), own_backend=True)
            atexit.register(_close_default_pool)
        return _default_pool


def _close_default_pool() -> None:
    global _default_pool
    with _default_lock:
        pool, _default_pool = _default_pool, None
    if pool is not None:
        pool.close()  # also closes its backend (own_backend=True)


class SessionSource:
    """Acquire/release sessions from whatever was passed as `sandbox`, and open verifier sessions."""

    def __init__(self, sandbox: Any = None) -> None:
        self._sandbox = sandbox

    def _target(self) -> Any:
        if self._sandbox is None:
            self._sandbox = default_pool()
        return self._sandbox

    def acquire(self) -> tuple[Session, Callable[[], None]]:
        """A fresh session and the callable that gives it back."""
        target = self._target()
        if hasattr(target, "acquire"):
            session = target.acquire()
            return session, lambda: target.release(session)
        if isinstance(target, SandboxBackend) or hasattr(target, "new_session"):
            session = target.new_session()
            return session, session.close
        raise TypeError("sandbox must be a SandboxBackend, a SessionPool or None, "
                        f"got {type(target).__name__}")

    def new_session(self) -> Session:
        """A fresh, independent session for a verifier (the verifier closes it)."""
        target = self._target()
        backend = target if hasattr(target, "new_session") else getattr(target, "backend", None)
        if backend is None:
            raise TypeError(f"cannot open a verifier session from {type(target).__name__}: it has neither "
                            "new_session() nor a .backend")
        return backend.new_session()
