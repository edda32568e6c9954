"""What the local backend and its sessions both need: host views of session processes and groups.

Kept apart so that `local_session.py` depends on this small module and on a `SessionHost` protocol,
not on `local.py` (which imports the session class): no import cycle, and the session's view of its
backend is the few methods listed below.
"""

from __future__ import annotations

import os
import select
import socket
from typing import TYPE_CHECKING, Protocol

from toolgym.envs.sandbox.limits import SandboxLimits

if TYPE_CHECKING:
    from toolgym.envs.sandbox.base import Session


class Group:
    """Host view of one session group (a new session and its forks): namespaces, directory, cgroup."""

    def __init__(self, name: str, directory: str, cgroup: object | None) -> None:
        self.name, self.directory, self.cgroup = name, directory, cgroup
        self.keeper_pidfd: int | None = None  # process that holds the group alive (PID 1 or keeper)
        self.mounted = False  # the directory is a size-limited tmpfs mounted by the host
        self.ids: tuple[int, int] | None = None  # (uid, gid) the group runs as, when not the host's
        self.oom_kills = 0  # OOM kills seen in its memory cgroup so far
        self.refs = 1


class Proc:
    """Host view of one live session process: its control socket, pid (pidfd) and directory."""

    def __init__(self, sock: socket.socket, pid: int, directory: str, group: Group) -> None:
        self.sock, self.pid, self.directory, self.group = sock, pid, directory, group
        self.pidfd = os.pidfd_open(pid)


def exited(pidfd: int, timeout: float = 0.0) -> bool:
    """True once the process behind `pidfd` has exited (waits up to `timeout` seconds)."""
    # poll(), not select(): select() fails for descriptor numbers >= 1024 (FD_SETSIZE), which a
    # busy host reaches with many sessions open or waiting to be closed.
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(max(0.0, timeout) * 1000.0))


class SessionHost(Protocol):
    """The backend as a session sees it (LocalBackend implements it)."""

    limits: SandboxLimits

    def spawn_proc(self) -> Proc:
        """A fresh session process in a new group; raises SandboxError."""
        ...

    def fork_proc(self, parent: Proc, deadline: float) -> Proc:
        """A copy-on-write fork of `parent` in the same group; raises SandboxError."""
        ...

    def kill_proc(self, proc: Proc) -> None:
        """Kill the process (and what it started), close its socket, release its directory."""
        ...

    def memory_killed(self, proc: Proc) -> bool:
        """True when the group's memory cgroup OOM-killed a process since the last call."""
        ...

    def adopt(self, session: Session) -> None:
        """Track `session` so that backend.close() closes it."""
        ...

    def forget(self, session: Session) -> None:
        """Stop tracking a closed session."""
        ...

