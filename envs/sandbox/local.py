"""The `local` backend: stateful Python sessions forked from a pre-warmed zygote, inside bubblewrap.

Why a zygote: starting Python (and importing numpy) costs tens of milliseconds; forking an
interpreter that already did so costs about one. Every session is a process tree forked from the
zygote; `Session.fork()` forks the *session* process, so all G samples of a GRPO group start from
the same interpreter state copy-on-write.

`backend.isolation` is the mode in effect ("bwrap" or "none"); `backend.isolation_report` (also
`describe_isolation(backend)`) says what was actually obtained -- namespaces, capabilities, cgroups,
work-dir quota -- as one printable line (`.summary`) and a dict to record (`.to_dict()`).
isolation="auto" that cannot use bubblewrap falls back to "none" with an `IsolationWarning` (and a
log warning) saying what to do; it never degrades silently.

What is isolated with isolation="bwrap" (the default where bubblewrap works):
- file system: a whitelist view (see _view.py): system directories, /etc minus its secrets, the
  interpreter's prefixes and site-packages, the sandbox code -- all read-only -- and the session's
  own directory. /root, /home, /tmp, /run, /var, /sys and the project tree do not exist inside, so
  neither do host pathname Unix sockets (/var/run/docker.sock, the system bus);
- namespaces per session group: user, mount (other groups' directories are invisible), PID (it
  cannot see or signal the host or other groups; `os.kill(os.getppid(), 9)` hits nothing),
  network (only a down loopback: no TCP, no abstract Unix sockets shared with other groups), IPC
  (SysV queues, semaphores, shared memory) and UTS;
- privileges: the session holds no capability in any set, cannot create user namespaces (so it
  cannot regain any), and runs with no_new_privs;
- environment: scrubbed (PATH, locale, thread-count variables, and what you pass in `env`);
- resources: wall timeout per call (kills the session's process group; the next call starts a
  fresh session and says `state_lost=True`), RLIMIT_AS, RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_NOFILE,
  RLIMIT_NPROC (per group thanks to the user namespace), output capped per call with a truncation
  marker, a private 64 MiB /dev/shm per group; and where the host lets us (root, see
  `isolation_report`): a pids and a memory cgroup per group (`group_memory_bytes` counts every
  process of the group, forks and children included, and the memfd, tmpfs and /dev/shm pages they
  hold; an OOM kill inside it is reported as `crashed` + `memory_exceeded`), and a tmpfs work
  directory per group limited to `workdir_bytes` and `workdir_files` (shared by its forks);
- the protocol: every byte from the session is checked on the host (see _reply.py); forged,
  malformed or deeply nested frames and server errors become crashed results, never exceptions.

What is NOT isolated:
- reading the whitelisted directories (/usr, /etc without its secrets, the Python installation);
- the kernel: a kernel exploit escapes (bubblewrap is not a VM; use the e2b backend for that);
- CPU time and memory bandwidth (no CPU quota; RLIMIT_CPU bounds a session's total CPU seconds);
- siblings made by `Session.fork()` share their group's namespaces, cgroups and tmpfs: they can see
  and signal each other and read each other's directories. They are copies of one interpreter
  working on the same prompt, so there is nothing to hide between them, and sharing is what makes
  fork a plain fork(). Their process, memory and disk budgets are shared by the group. fork()
  copies the work directory (about 50 us per file: a 20,000-file directory takes about a second).

Fallbacks where the host does not allow cgroups or mounts (not root, read-only cgroupfs): no memory
cgroup (RLIMIT_AS per process only: memfd/tmpfs pages and children are not counted together), the
work directory is a plain directory under the temp dir (only RLIMIT_FSIZE bounds single files; no
total or inode quota), and without namespaces, processes are killed through the keeper (below)
rather than the cgroup.

Lifetime: nothing outlives the host. Closing a session kills its process group; closing the last
session of a group kills every process of the group through its cgroup and its PID namespace (or,
without namespaces, its keeper: a child subreaper that every escaped process -- setsid, double
fork -- is re-parented to, and that kills them all). The zygote exits when the host closes its
control socket or dies, and takes every group with it (parent-death signals along the chain). A
host killed with SIGKILL leaves its temp root and cgroups behind; the next backend to start sweeps
those of hosts that no longer run (they are named after the host's PID).

With isolation="none" there are no namespaces: sessions share the host's network, see its whole
file system and its processes. As root, each group then runs as an unprivileged uid of its own
(never shared by two live groups of this process; above 1.9e9) that keeps only CAP_DAC_READ_SEARCH:
it can read the host's files (the Python installation under /root, but also any secret there) but
not write them, and it cannot signal or ptrace host processes or other groups. Not as root,
sessions run as your user: they can read and write what you can and signal your processes;
RLIMIT_NPROC then counts all processes of your user (the limit is raised by the number you already
run).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from typing import Any

from toolgym.envs.sandbox import _isolation, _reply, _wire
from toolgym.envs.sandbox._cgroup import GroupCgroups
from toolgym.envs.sandbox._cgroup import sweep_stale as sweep_stale_cgroups
from toolgym.envs.sandbox._files import (
    make_root,
    mount_workdir,
    remove_tree,
    sweep_stale_roots,
    unmount,
)
from toolgym.envs.sandbox._isolation import (
    IsolationReport,
    bwrap_command,
    count_user_processes,
    local_report,
    resolve_isolation,
)
from toolgym.envs.sandbox._lifecycle import cleanup, expect_hello, release_host, scrubbed_env, stop_keeper
from toolgym.envs.sandbox._proc import Group, Proc, exited
from toolgym.envs.sandbox.base import SANDBOX_BACKENDS, SandboxError
from toolgym.envs.sandbox.limits import SandboxLimits
from toolgym.envs.sandbox.local_session import LocalSession

_ZYGOTE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_zygote.py")
_START_TIMEOUT = 60.0  # seconds for the zygote to import its preloaded modules
_SPAWN_TIMEOUT = 30.0
_UID_BASE = 1_900_000_000  # isolation "none" as root: group uids, 10,000 per host process, unused on hosts
_UIDS_PER_HOST = 10_000
_uids_lock = threading.Lock()
_uids_in_use: set[int] = set()  # across every backend of this process: no two live groups share a uid


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
        self._drop_uid = False  # isolation "none" as root: each group runs as an unprivileged uid
        self._tmpfs = False  # group directories are size-limited tmpfs mounts
        self._lock = threading.RLock()  # re-entered when a failed spawn releases its group
        self._ids = itertools.count()
        self._sessions: set[LocalSession] = set()
        self._zygote: subprocess.Popen | None = None
        self._control: socket.socket | None = None
        self._root: str | None = None
        self._cgroup: GroupCgroups | None = None
        self._closed = False
        self._log: Any = None
        self.preload_failures: dict[str, str] = {}  # preloaded module -> why its import failed
        self.zygote_pid: int | None = None
        self._finalizer: weakref.finalize | None = None
        self._holder: list[subprocess.Popen | None] = [None]  # the live zygote, for the finalizer

    # ------------------------------------------------------------------ public API
    @property
    def isolation(self) -> str:
        """The mode in effect: "bwrap" or "none" ("auto" is resolved on first use)."""
        if self._isolation is None:
            self._isolation = resolve_isolation(self._requested)
        return self._isolation

    @property
    def isolation_report(self) -> IsolationReport:
        """What isolation sessions actually get here (prepares the host's directories and cgroups,
        starts no process). `report.summary` is one line to print; `report.to_dict()` to record."""
        mode = self.isolation
        with self._lock:
            self._prepare_host()
        cgroup = self._cgroup
        memory = cgroup is not None and cgroup.limits_memory and self.limits.group_memory_bytes is not None
        fell_back = self._requested == "auto" and mode == "none"
        return local_report(
            requested=self._requested, mode=mode, drop_uid=self._drop_uid,
            fallback_reason=_isolation.bwrap_problem() if fell_back else None,
            memory_cgroup=memory, pids_cgroup=cgroup is not None, workdir_quota=self._tmpfs)

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
        release_host(self._root, self._cgroup)

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ zygote
    def _prepare_host(self) -> None:
        """Once per backend: sweep what dead hosts left, make our root directory and cgroups."""
        if self._root is not None:
            return
        sweep_stale_roots()
        sweep_stale_cgroups()
        self._root, self._tmpfs = make_root()
        self._drop_uid = self.isolation == "none" and os.geteuid() == 0
        if os.geteuid() == 0:
            cgroup = GroupCgroups(f"toolgym-{os.getpid()}-{id(self):x}",
                                  memory=self.limits.group_memory_bytes is not None)
            self._cgroup = cgroup if cgroup.available else None
        self._finalizer = weakref.finalize(self, cleanup, self._holder, self._root, self._cgroup)

    def _start_zygote(self) -> None:
        isolation = self.isolation
        self._prepare_host()
        host, child = socket.socketpair()
        uid = os.getuid()
        nproc_base = 0
        if isolation == "none" and not self._drop_uid and self.limits.max_processes is not None:
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
            try:
                cmd = bwrap_command(self._root, self._python) + cmd
            except RuntimeError as exc:  # ViewError: the interpreter cannot be shown safely
                raise SandboxError(str(exc)) from None
        log = tempfile.TemporaryFile()  # noqa: SIM115  (kept open for the zygote's lifetime)
        proc = subprocess.Popen(
            cmd,
            pass_fds=[child.fileno()],
            env=scrubbed_env(self._python, self._extra_env),
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
            raise SandboxError(f"the sandbox zygote failed to start ({exc}); its output:\n{detail}") from None
        host.settimeout(_SPAWN_TIMEOUT)
        self.preload_failures = dict(ready.get("failed", {}))
        self.zygote_pid = int(ready["pid"])  # host PID (bwrap does not unshare the PID namespace)
        self._zygote, self._control, self._log = proc, host, log
        self._holder[0] = proc

    def _stop_zygote(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._zygote is not None:
            self._zygote.kill()
            self._zygote.wait()
            self._zygote = None
        if self._log is not None:
            self._log.close()
            self._log = None

    # ------------------------------------------------------------------ session processes
    def spawn_proc(self) -> Proc:
        """A session in a new group, forked from the zygote; raises only SandboxError."""
        try:
            return self._spawn()
        except SandboxError:
            raise
        except Exception as exc:  # OSError (no descriptors left, disk full), WireError, TimeoutError
            detail = f"{type(exc).__name__}: {_reply.clean(str(exc))[:500]}"
            raise SandboxError(f"could not start a sandbox session: {detail}. If descriptors or processes "
                               "ran out, close sessions you no longer use (or raise `ulimit -n`)") from None

    def _spawn(self) -> Proc:
        """Fork a new session group from the zygote (restarting the zygote once if it died)."""
        with self._lock:
            if self._closed:
                raise SandboxError("this sandbox backend is closed; create a new one with make_sandbox()")
            for attempt in range(2):
                if self._zygote is None or self._zygote.poll() is not None:
                    self._stop_zygote()
                    self._start_zygote()
                group = self._new_group(f"g{next(self._ids)}")
                try:
                    host = self._request_group(group)
                    break
                except (_wire.WireError, TimeoutError, OSError) as exc:  # the zygote died or hangs
                    self._release_group(group)
                    self._stop_zygote()
                    if attempt:
                        raise SandboxError(f"the sandbox zygote is not responding: {exc}") from exc
        return self._await_session(host, os.path.join(group.directory, "s0"), group)

    def _new_group(self, name: str) -> Group:
        """The host side of a group: its directory (a tmpfs where possible) and cgroups."""
        group = Group(name, os.path.join(self._root or "", name), None)
        if self._drop_uid:
            uid = _take_uid()
            group.ids = (uid, uid)
        try:
            os.mkdir(group.directory, 0o700)
            if self._tmpfs:
                ids = group.ids or (os.getuid(), os.getgid())
                group.mounted = mount_workdir(group.directory, self.limits.workdir_bytes,
                                              self.limits.workdir_files, *ids)
            self._prepare_dir(group.directory, group)
            os.mkdir(os.path.join(group.directory, "s0"))
            self._prepare_dir(os.path.join(group.directory, "s0"), group)
            if self._cgroup is not None:
                group.cgroup = self._cgroup.create(name, self.limits)
        except OSError as exc:
            self._release_group(group)
            raise SandboxError(f"could not prepare a session group on the host: {exc}. If descriptors or "
                               "disk space ran out, close sessions you no longer use (or raise `ulimit -n`)"
                               ) from None
        return group

    def _request_group(self, group: Group) -> socket.socket:
        """Ask the zygote to fork the group's first session; returns the host end of its socket."""
        assert self._control is not None
        try:
            host, child = socket.socketpair()
            fds = [child.fileno(), *(self._cgroup.procs_fds(group.cgroup) if self._cgroup else [])]
        except OSError as exc:
            raise SandboxError(f"could not start a session: {exc}. If descriptors ran out, close sessions "
                               "you no longer use (or raise `ulimit -n`)") from None
        host.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        try:
            request = {"op": "new", "dir": os.path.join(group.directory, "s0"), "group_dir": group.directory,
                       "ids": group.ids}
            _wire.send(self._control, request, fds)
            reply, _ = _wire.recv(self._control, deadline=time.monotonic() + _SPAWN_TIMEOUT)
        except BaseException:
            host.close()
            raise
        finally:
            for fd in fds:
                os.close(fd)
            child.detach()
        if not reply.get("ok"):
            host.close()
            raise SandboxError(f"the sandbox zygote could not fork: {_reply.clean(str(reply.get('error')))}")
        return host

    def _await_session(self, host: socket.socket, directory: str, group: Group) -> Proc:
        deadline = time.monotonic() + _SPAWN_TIMEOUT
        try:
            group.keeper_pidfd = os.pidfd_open(expect_hello(host, "init", deadline))
            pid = expect_hello(host, "session", deadline)
            host.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 0)
            return Proc(host, pid, directory, group)
        except BaseException:
            host.close()
            self._release_group(group)
            raise

    def fork_proc(self, parent: Proc, deadline: float) -> Proc:
        """Fork `parent` (Session.fork); raises SandboxError, and kills `parent` if it broke the protocol."""
        with self._lock:
            directory = os.path.join(parent.group.directory, f"s{next(self._ids)}")
            parent.group.refs += 1
        host: socket.socket | None = None
        try:
            host, child = socket.socketpair()
            host.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            os.mkdir(directory)
            self._prepare_dir(directory, parent.group)
            request_id = _reply.new_id()
            try:
                _wire.send(parent.sock, {"op": "fork", "id": request_id, "dir": directory}, [child.fileno()])
            finally:
                child.close()
            error = _reply.check_fork_reply(_reply.receive(parent.sock, request_id, deadline, 1 << 16))
            if error is not None:
                raise SandboxError(f"Session.fork() failed inside the sandbox: {error}")
            pid = expect_hello(host, "session", deadline)
            host.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 0)
            return Proc(host, pid, directory, parent.group)
        except BaseException as exc:
            if host is not None:
                host.close()
            remove_tree(directory)
            self._release_group(parent.group)
            if isinstance(exc, SandboxError) or not isinstance(exc, Exception):
                raise
            if isinstance(exc, (TimeoutError, _wire.WireError)) and not exited(parent.pidfd):
                os.killpg(parent.pid, signal.SIGKILL)  # it did not answer or broke the protocol: untrusted
            detail = f"{type(exc).__name__}: {_reply.clean(str(exc))[:300]}"
            raise SandboxError(f"Session.fork() failed: {detail}; the parent session keeps running unless "
                               "it broke the protocol (then its next run starts fresh with state_lost=True)"
                               ) from None

    @staticmethod
    def _prepare_dir(path: str, group: Group) -> None:
        """Hand a new session directory to the uid its group runs as (when root drops privileges)."""
        if group.ids is not None:
            os.chown(path, *group.ids)

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
        remove_tree(proc.directory)
        self._release_group(proc.group)

    def _release_group(self, group: Group) -> None:
        with self._lock:
            group.refs -= 1
            if group.refs > 0:
                return
        if self._cgroup is not None and group.cgroup is not None:
            self._cgroup.kill(group.cgroup)  # every process of the group, whatever it did to escape
        if group.keeper_pidfd is not None:
            stop_keeper(group.keeper_pidfd, namespaced=self.isolation == "bwrap")
        if group.mounted:
            unmount(group.directory)
        remove_tree(group.directory)
        if self._cgroup is not None and group.cgroup is not None:
            self._cgroup.remove(group.cgroup)
        if group.ids is not None:
            with _uids_lock:
                _uids_in_use.discard(group.ids[0])  # its processes are dead: the uid can be reused

    def memory_killed(self, proc: Proc) -> bool:
        """True when the kernel OOM-killed a process of `proc`'s group since the last time we asked."""
        if self._cgroup is None or proc.group.cgroup is None:
            return False
        kills = self._cgroup.oom_kills(proc.group.cgroup)
        seen, proc.group.oom_kills = proc.group.oom_kills, kills
        return kills > seen

    def adopt(self, session: LocalSession) -> None:
        with self._lock:
            self._sessions.add(session)

    def forget(self, session: LocalSession) -> None:
        with self._lock:
            self._sessions.discard(session)


def _take_uid() -> int:
    """A uid for a new group that no live group of this process uses (isolation "none" as root)."""
    base = _UID_BASE + (os.getpid() % 10_000) * _UIDS_PER_HOST
    with _uids_lock:
        for uid in range(base, base + _UIDS_PER_HOST):
            if uid not in _uids_in_use:
                _uids_in_use.add(uid)
                return uid
    raise SandboxError(f"{_UIDS_PER_HOST} session groups are open in this process; close some first")
