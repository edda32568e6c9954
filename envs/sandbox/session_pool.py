"""SessionPool: warm sandbox sessions ready to hand out, safe to share between threads.

Why: starting a session (a fork from the zygote plus namespace setup) takes a few milliseconds; an
environment's `reset()` should not wait for it. The pool keeps `size` fresh sessions ready, made by
a background thread, and hands them out one caller at a time. A released session is never reused:
it carries the previous episode's variables, so it is closed (in the background) and replaced by a
fresh one. Sessions that crashed or timed out while waiting are dropped and replaced the same way.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from toolgym.envs.sandbox.base import ExecResult, SandboxBackend, SandboxError, Session

# Released sessions waiting for the background closer; past this, release() closes synchronously.
MAX_CLOSE_BACKLOG = 32


class SessionPool:
    """Keeps `size` warm sessions of `backend`; `acquire()`/`release()` from any thread."""

    def __init__(self, backend: SandboxBackend, size: int = 4, *, own_backend: bool = False) -> None:
        if size < 0:
            raise ValueError(f"SessionPool size must be >= 0, got {size}")
        self.backend, self.size, self._own_backend = backend, size, own_backend
        self._ready: collections.deque[Session] = collections.deque()
        self._to_close: list[Session] = []
        self._closing = 0  # sessions the closer thread has taken and not finished closing
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None
        self._closer: threading.Thread | None = None
        self._closed = False
        self.replaced = 0  # sessions found dead in the pool and replaced (crash, external kill)
        self.errors: list[str] = []  # why sessions failed to start or close (background), most recent last

    def start(self) -> None:
        """Start warming sessions now (otherwise the first `acquire()` starts it)."""
        with self._cond:
            if self._closed:
                raise SandboxError("this SessionPool is closed; create a new SessionPool")
            self._ensure_worker()

    def acquire(self) -> Session:
        """A fresh session for exclusive use; from the warm set when one is ready."""
        with self._cond:
            if self._closed:
                raise SandboxError("this SessionPool is closed; create a new SessionPool")
            self._ensure_worker()
            while self._ready:
                session = self._ready.popleft()
                if _is_alive(session):
                    self._cond.notify_all()  # the fill thread makes a replacement
                    return session
                self.replaced += 1
                self._to_close.append(session)
            self._cond.notify_all()
        return self.backend.new_session()

    def release(self, session: Session) -> None:
        """Give a session back; it is closed (its state belongs to one episode) and replaced."""
        with self._cond:
            backlog_full = len(self._to_close) + self._closing >= MAX_CLOSE_BACKLOG
            if not (self._closed or backlog_full):
                self._to_close.append(session)
                self._ensure_worker()
                self._cond.notify_all()
                return
        # Closed pool, or the closer thread is behind (a busy host): close here, so that the sessions
        # waiting to be closed (each holding descriptors and processes) stay bounded.
        session.close()

    @property
    def pending_close(self) -> int:
        """Released sessions not closed yet, queued or being closed (bounded by MAX_CLOSE_BACKLOG)."""
        with self._cond:
            return len(self._to_close) + self._closing

    @contextmanager
    def session(self) -> Iterator[Session]:
        """`with pool.session() as s:` acquires and releases."""
        session = self.acquire()
        try:
            yield session
        finally:
            self.release(session)

    def run_many(
        self, codes: Sequence[str], timeout: float | None = None, workers: int = 8
    ) -> list[ExecResult]:
        """Run each code in its own fresh session, concurrently; results in input order."""

        def one(code: str) -> ExecResult:
            with self.session() as session:
                return session.run(code, timeout=timeout)

        with ThreadPoolExecutor(max_workers=max(1, workers)) as executor:
            return list(executor.map(one, codes))

    def close(self) -> None:
        """Stop the background threads and close every idle session (and the backend if owned)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            threads = [t for t in (self._worker, self._closer) if t is not None]
        for thread in threads:
            thread.join()
        with self._cond:
            leftovers = list(self._ready) + self._to_close
            self._ready.clear()
            self._to_close.clear()
        for session in leftovers:
            session.close()
        if self._own_backend:
            self.backend.close()

    def __enter__(self) -> SessionPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ensure_worker(self) -> None:
        if self._worker is None:
            # two threads: closing a session waits for its processes to exit, and must not delay
            # the creation of replacements
            self._worker = threading.Thread(target=self._fill, name="toolgym-pool-fill", daemon=True)
            self._closer = threading.Thread(
                target=self._close_released, name="toolgym-pool-close", daemon=True
            )
            self._worker.start()
            self._closer.start()

    def _fill(self) -> None:
        while True:
            with self._cond:
                while not self._closed and len(self._ready) >= self.size:
                    self._cond.wait()
                if self._closed:
                    return
            self._add_one()

    def _close_released(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._to_close:
                    self._cond.wait()
                if self._closed:
                    return
                to_close, self._to_close = self._to_close, []
                self._closing = len(to_close)
            for session in to_close:
                try:
                    session.close()
                except Exception as exc:  # the closer thread must survive whatever one session did
                    with self._cond:
                        self.errors = [*self.errors[-9:], f"closing a session: {type(exc).__name__}: {exc}"]
                finally:
                    with self._cond:
                        self._closing -= 1

    def _add_one(self) -> None:
        try:
            session = self.backend.new_session()
        except Exception as exc:  # keep serving: acquire() falls back to a synchronous new_session()
            with self._cond:
                self.errors = [*self.errors[-9:], f"{type(exc).__name__}: {exc}"]
                self._cond.wait(0.5)  # do not spin when the backend is broken
            return
        with self._cond:
            if self._closed:
                session.close()
            else:
                self._ready.append(session)


def _is_alive(session: Session) -> bool:
    alive = getattr(session, "alive", None)
    return True if alive is None else bool(alive)
