"""The `local` backend: stateful Python sessions forked from a pre-warmed zygote, inside bubblewrap.

Why a zygote: starting Python (and importing numpy) costs tens of milliseconds; forking an
interpreter that already did so costs about one. Every session is a process tree forked from the
zygote; `Session.fork()` forks the *session* process, so all G samples of a GRPO group start from
the same interpreter state copy-on-write.

What is isolated (isolation="bwrap", the default when bubblewrap works):
- network: none (own network namespace with only a down loopback);
- file system: the host file system is read-only; home directories (/root, /home, ~) are hidden
  except the Python installation; the only writable places are the session's private directory
  (deleted on close) and a private, size-limited /dev/shm;
- processes: each session group has its own PID namespace (it cannot see or signal the host or
  other groups; `os.kill(os.getppid(), 9)` hits nothing) and its own user and mount namespace (it
  cannot see other groups' directories); the session itself holds no capabilities;
- environment: scrubbed (PATH, locale, thread-count variables, and what you pass in `env`);
- resources: wall timeout per call (kills the session's process group; the next call starts a
  fresh session and says `state_lost=True`), RLIMIT_AS, RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_NOFILE,
  RLIMIT_NPROC (counted per group thanks to the user namespace; when running as root, where the
  kernel ignores RLIMIT_NPROC, a pids cgroup per group is used if /sys/fs/cgroup is writable),
  output capped per call with a truncation marker.

What is NOT isolated:
- reading the host file system outside home directories (code can read /etc, /usr, /work, ...);
- the kernel: a kernel exploit escapes (bubblewrap is not a VM; use the e2b backend for that);
- CPU time and memory bandwidth (no CPU quota; RLIMIT_CPU bounds a session's total CPU seconds);
- siblings made by `Session.fork()` share their group's namespaces: they can see and signal each
  other and read each other's directories. They are copies of one interpreter working on the same
  prompt, so there is nothing to hide between them, and sharing is what makes fork a plain fork().
  Their process limit (RLIMIT_NPROC / the pids cgroup) is a budget shared by the group.

Lifetime: nothing outlives the host. The zygote exits when the host closes its control socket (or
dies), and every session process dies with the zygote (parent-death signals along the chain), so a
killed zygote takes its sessions with it; their next `run` reports `state_lost=True` and starts a
fresh interpreter from a new zygote.

With isolation="none" only the rlimits, the scrubbed environment, the private directory and the
timeout apply; RLIMIT_NPROC then counts all processes of your user (the limit is raised by the
number you already run), and root is not limited at all unless a pids cgroup is available. Sessions
then share the host's network, file system and PID namespace: one can kill the zygote (its parent)
and with it every other session, read other sessions' directories, and signal your processes.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from typing import Any

from toolgym.envs.sandbox import _wire
from toolgym.envs.sandbox._isolation import PidsCgroup, bwrap_command, count_user_processes, resolve_isolation
from toolgym.envs.sandbox._proc import Group, Proc, exited
from toolgym.envs.sandbox.base import SANDBOX_BACKENDS
from toolgym.envs.sandbox.limits import SandboxLimits
from toolgym.envs.sandbox.local_session import LocalSession

_ZYGOTE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_zygote.py")
_START_TIMEOUT = 60.0  # seconds for the zygote to import its preloaded modules
_SPAWN_TIMEOUT = 30.0


@SANDBOX_BACKENDS.register("local")
class LocalBackend:
    """Creates sessions forked from a zygote; see the module docstring for what is isolated."""

    name = "local"
    stateful = True

    def __init__(
        self,
        *,
        isolation: str = "auto",
        limits: SandboxLimits | dict[str, Any] | None = None,
        preload: tuple[str, ...] | list[str] = ("math",),
        env: dict[str, str] | None = None,
        python: str | None = None,
    ) -> None:
        if isolation not in ("auto", "bwrap", "none"):
            raise ValueError(f"unknown isolation {isolation!r}; choose one of ['auto', 'bwrap', 'none']")
        self.limits = SandboxLimits.from_options(limits)
        self.preload = tuple(preload)
        self._requested = isolation
        self._extra_env = dict(env or {})
        self._python = python or sys.executable
        self._isolation: str | None = None
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._sessions: set[LocalSession] = set()
        self._zygote: subprocess.Popen | None = None
        self._control: socket.socket | None = None
        self._root: str | None = None
        self._cgroup: PidsCgroup | None = None
        self._closed = False
        self.preload_failures: dict[str, str] = {}  # preloaded module -> why its import failed
        self.zygote_pid: int | None = None
        self._finalizer: weakref.finalize | None = None

    # ------------------------------------------------------------------ public API
    @property
    def isolation(self) -> str:
        """The mode in effect: "bwrap" or "none" ("auto" is resolved on first use)."""
        if self._isolation is None:
            self._isolation = resolve_isolation(self._requested)
        return self._isolation

    def new_session(self) -> LocalSession:
        session = LocalSession(self, self.spawn_proc())
        self.adopt(session)
        return session

    def close(self) -> None:
        """Close every session, stop the zygote, delete all session directories. Idempotent."""
        with self._lock:
            sessions, self._sessions = list(self._sessions), set()
            self._closed = True
        for session in sessions:
            session.close()
        self._stop_zygote()
        if self._finalizer is not None:
            self._finalizer.detach()
        if self._cgroup is not None:
            self._cgroup.close()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ zygote
    def _start_zygote(self) -> None:
        isolation = self.isolation
        if self._root is None:
            self._root = os.path.realpath(tempfile.mkdtemp(prefix="toolgym-sandbox-"))
            if os.geteuid() == 0 and self.limits.max_processes is not None:
                cgroup = PidsCgroup(f"toolgym-{os.getpid()}-{id(self):x}")
                self._cgroup = cgroup if cgroup.available else None
        host, child = socket.socketpair()
        uid = os.getuid()
        nproc_base = 0
        if isolation == "none" and uid != 0 and self.limits.max_processes is not None:
            nproc_base = count_user_processes(uid)
        config = {
            "fd": child.fileno(),
            "preload": list(self.preload),
            "limits": self.limits.to_dict(),
            "ns": isolation == "bwrap",
            "uid": uid,
            "gid": os.getgid(),
            "root": self._root,
            "nproc_base": nproc_base,
        }
        cmd = [self._python, "-E", "-s", "-B", _ZYGOTE, json.dumps(config)]
        if isolation == "bwrap":
            cmd = bwrap_command(self._root) + cmd
        log = tempfile.TemporaryFile()  # noqa: SIM115  (kept open for the zygote's lifetime)
        proc = subprocess.Popen(
            cmd,
            pass_fds=[child.fileno()],
            env=self._scrubbed_env(),
            cwd=self._root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        child.close()
        try:
            ready, _ = _wire.recv(host, deadline=time.monotonic() + _START_TIMEOUT)
        except (TimeoutError, _wire.WireError, OSError) as exc:
            proc.kill()
            proc.wait()
            log.seek(0)
            detail = log.read()[-4000:].decode(errors="replace")
            raise RuntimeError(f"the sandbox zygote failed to start ({exc}); its output:\n{detail}") from None
        host.settimeout(_SPAWN_TIMEOUT)
        self.preload_failures = dict(ready.get("failed", {}))
        self.zygote_pid = int(ready["pid"])  # host PID (bwrap does not unshare the PID namespace)
        self._zygote, self._control, self._log = proc, host, log
        self._finalizer = weakref.finalize(self, _cleanup, proc, self._root, self._cgroup)

    def _scrubbed_env(self) -> dict[str, str]:
        bin_dir = os.path.dirname(self._python)
        env = {
            "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "NUMEXPR_NUM_THREADS": "1",
            "PYTHONIOENCODING": "utf-8",
        }
        env.update(self._extra_env)
        return env

    def _stop_zygote(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._zygote is not None:
            self._zygote.kill()
            self._zygote.wait()
            self._zygote = None

    # ------------------------------------------------------------------ session processes
    def spawn_proc(self) -> Proc:
        """Fork a new session group from the zygote (restarting the zygote once if it died)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this sandbox backend is closed; create a new one with make_sandbox()")
            name = f"g{next(self._ids)}"
            for attempt in range(2):
                try:
                    if self._zygote is None or self._zygote.poll() is not None:
                        self._stop_zygote()
                        self._start_zygote()
                    group_dir = os.path.join(self._root or "", name)
                    host, group = self._request_group(group_dir, name)
                    break
                except (_wire.WireError, OSError) as exc:
                    self._stop_zygote()
                    if attempt:
                        raise RuntimeError(f"the sandbox zygote is not responding: {exc}") from exc
                    name += "r"
        return self._await_session(host, os.path.join(group_dir, "s0"), group)

    def _request_group(self, group_dir: str, name: str) -> tuple[socket.socket, Group]:
        assert self._control is not None
        os.mkdir(group_dir)
        os.mkdir(os.path.join(group_dir, "s0"))
        host, child = socket.socketpair()
        host.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        fds, cgroup_path = [child.fileno()], None
        if self._cgroup is not None:
            cgroup_path, procs_fd = self._cgroup.create(name, int(self.limits.max_processes or 0))
            fds.append(procs_fd)
        try:
            request = {"op": "new", "dir": os.path.join(group_dir, "s0"), "group_dir": group_dir}
            _wire.send(self._control, request, fds)
            reply, _ = _wire.recv(self._control, deadline=time.monotonic() + _SPAWN_TIMEOUT)
        finally:
            for fd in fds:
                os.close(fd)
            child.detach()
        if not reply.get("ok"):
            raise RuntimeError(f"the sandbox zygote could not fork: {reply.get('error')}")
        return host, Group(name, group_dir, cgroup_path)

    def _await_session(self, host: socket.socket, directory: str, group: Group) -> Proc:
        deadline = time.monotonic() + _SPAWN_TIMEOUT
        try:
            if self.isolation == "bwrap":
                group.keeper_pidfd = os.pidfd_open(_expect_hello(host, "init", deadline))
            pid = _expect_hello(host, "session", deadline)
            host.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 0)
            return Proc(host, pid, directory, group)
        except BaseException:
            host.close()
            self._release_group(group)
            raise

    def fork_proc(self, parent: Proc, deadline: float) -> Proc:
        with self._lock:
            directory = os.path.join(parent.group.directory, f"s{next(self._ids)}")
            parent.group.refs += 1
        host, child = socket.socketpair()
        host.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        try:
            os.mkdir(directory)
            try:
                _wire.send(parent.sock, {"op": "fork", "dir": directory}, [child.fileno()])
            finally:
                child.close()
            reply, _ = _wire.recv(parent.sock, deadline=deadline)
            if not reply.get("ok"):
                raise RuntimeError(f"Session.fork() failed inside the sandbox: {reply.get('error')}")
            pid = _expect_hello(host, "session", deadline)
            host.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 0)
            return Proc(host, pid, directory, parent.group)
        except BaseException:
            host.close()
            shutil.rmtree(directory, ignore_errors=True)
            self._release_group(parent.group)
            raise

    def kill_proc(self, proc: Proc) -> None:
        """Kill the session's process group, close its socket, delete its directory."""
        if not exited(proc.pidfd):
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the leader is alive, so the group id is still ours
            except (ProcessLookupError, PermissionError):
                pass
            exited(proc.pidfd, timeout=1.0)  # synchronous close: its process slot is free on return
        os.close(proc.pidfd)
        proc.sock.close()
        shutil.rmtree(proc.directory, ignore_errors=True)
        self._release_group(proc.group)

    def _release_group(self, group: Group) -> None:
        with self._lock:
            group.refs -= 1
            if group.refs > 0:
                return
        if group.keeper_pidfd is not None:
            try:
                signal.pidfd_send_signal(group.keeper_pidfd, signal.SIGKILL)  # PID 1 dies: the namespace dies
            except ProcessLookupError:
                pass
            os.close(group.keeper_pidfd)
        shutil.rmtree(group.directory, ignore_errors=True)
        if self._cgroup is not None and group.cgroup is not None:
            self._cgroup.remove(group.cgroup)

    def adopt(self, session: LocalSession) -> None:
        with self._lock:
            self._sessions.add(session)

    def forget(self, session: LocalSession) -> None:
        with self._lock:
            self._sessions.discard(session)


def _expect_hello(sock: socket.socket, kind: str, deadline: float) -> int:
    message, pid = _wire.recv_credentials(sock, deadline)
    if message.get("hello") != kind:
        raise RuntimeError(f"a sandbox session failed to start: {message.get('error', message)}")
    return pid


def _cleanup(proc: subprocess.Popen, root: str, cgroup: PidsCgroup | None) -> None:
    """At garbage collection or interpreter exit, for a backend that was never closed."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    shutil.rmtree(root, ignore_errors=True)
    if cgroup is not None:
        cgroup.close()
