"""Cgroups per session group: a process budget, a memory budget, and a way to kill everything.

Why cgroups: rlimits are per process and do not see memfd, tmpfs or shared-memory pages (an episode
held 512 MiB under a 256 MiB RLIMIT_AS with 8 memfds), every child gets a limit of its own, and root
is exempt from RLIMIT_NPROC. A memory cgroup counts all of that for the whole group -- its
processes, their children, the forks of Session.fork() and the pages of its tmpfs work dir -- and
the kernel OOM-kills inside the group, never the trainer. A cgroup also holds every process of the
group whatever it did (setsid, double fork, reparenting), so close() can kill them all.

Needs write access to the cgroup file system (root on the host, or a delegated cgroup). Both
layouts are handled: cgroup v2 (one directory, `pids` and `memory` enabled in the parent's
`cgroup.subtree_control`) and cgroup v1 (one directory per controller hierarchy, created below the
cgroup this process is in, so that the limits of an enclosing container still apply). When neither
works the backend falls back to rlimits only (documented in local.py).

Names are `toolgym-<host pid>-<backend id>`, so that a later backend can tell the cgroups of a host
that died (kill -9, OOM) from live ones and sweep them (`sweep_stale`).
"""

from __future__ import annotations

import os
import re
import signal
import time
from typing import Any

_ROOT = "/sys/fs/cgroup"
_STALE = re.compile(r"^toolgym-(\d+)-[0-9a-f]+$")


class GroupCgroups:
    """The cgroups of one backend: a base directory per hierarchy, one child per session group."""

    def __init__(self, name: str, memory: bool) -> None:
        self.bases: dict[str, str] = {}  # controller -> base directory we created
        self._pending: list[str] = []
        for controller, parent in _parents(memory):
            base = os.path.join(parent, name)
            try:
                os.makedirs(base, exist_ok=True)
                if controller == "v2":
                    _write(os.path.join(base, "cgroup.subtree_control"),
                           " ".join(f"+{c}" for c in _v2_controllers(memory)))
            except OSError:
                _try_rmdir(base)
                continue
            self.bases[controller] = base

    @property
    def available(self) -> bool:
        return bool(self.bases)

    @property
    def base(self) -> str | None:
        """The base directory holding group cgroups (the pids hierarchy's one with cgroup v1)."""
        return self.bases.get("v2") or self.bases.get("pids") or next(iter(self.bases.values()), None)

    @property
    def limits_memory(self) -> bool:
        return "memory" in self.bases or ("v2" in self.bases and "memory" in _v2_controllers(True))

    def create(self, group: str, limits: Any) -> list[str]:
        """Make the group's cgroups with their limits; returns their paths."""
        paths = []
        try:
            for controller, base in self.bases.items():
                path = os.path.join(base, group)
                os.mkdir(path)
                paths.append(path)
                _set_limits(controller, path, limits)
        except OSError:
            self.kill(paths)
            self.remove(paths)
            raise
        return paths

    def procs_fds(self, paths: list[str]) -> list[int]:
        """Descriptors of each `cgroup.procs`, opened for writing: the group's keeper joins through them."""
        fds: list[int] = []
        try:
            for path in paths:
                fds.append(os.open(os.path.join(path, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC))
        except OSError:
            for fd in fds:
                os.close(fd)
            raise
        return fds

    def kill(self, paths: list[str] | None, timeout: float = 2.0) -> bool:
        """SIGKILL every process in the cgroups (repeatedly: a dying fork bomb still forks); True if empty."""
        return all(kill_cgroup(path, timeout) for path in paths or [])

    def oom_kills(self, paths: list[str] | None) -> int:
        """How many processes the kernel killed in these cgroups for exceeding their memory budget."""
        total = 0
        for path in paths or []:
            for name in ("memory.events", "memory.oom_control"):
                for line in _read(os.path.join(path, name)).splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and value.strip().isdigit():
                        total += int(value)
        return total

    def remove(self, paths: list[str] | str | None = None, wait: float = 0.0) -> None:
        """rmdir `paths` (and earlier ones still busy); retried later while processes are exiting."""
        if isinstance(paths, str):
            paths = [paths]
        self._pending += list(paths or [])
        deadline = time.monotonic() + wait
        while True:
            self._pending = [p for p in self._pending if not _try_rmdir(p)]
            if not self._pending or time.monotonic() >= deadline:
                return
            time.sleep(0.01)

    def close(self) -> None:
        """Kill what is left in every group cgroup (all ours), remove them, then the bases."""
        for base in self.bases.values():
            if os.path.isdir(base):
                _remove_base(base)
        self.remove(wait=2.0)


def sweep_stale() -> list[str]:
    """Kill and remove the cgroups of toolgym hosts that are no longer running; returns their paths."""
    swept = []
    for _controller, parent in _parents(memory=True):
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for name in names:
            match = _STALE.match(name)
            if match and not _alive(int(match.group(1))):
                _remove_base(os.path.join(parent, name))
                swept.append(os.path.join(parent, name))
    return swept


def kill_cgroup(path: str, timeout: float = 2.0) -> bool:
    """Kill every process of one cgroup; True once it is empty."""
    if os.path.exists(os.path.join(path, "cgroup.kill")):
        try:
            _write(os.path.join(path, "cgroup.kill"), "1")
        except OSError:
            pass
    deadline = time.monotonic() + timeout
    while True:
        pids = [int(p) for p in _read(os.path.join(path, "cgroup.procs")).split() if p.isdigit()]
        if not pids:
            return True
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)


def _remove_base(base: str) -> None:
    try:
        children = [e.path for e in os.scandir(base) if e.is_dir()]
    except OSError:
        children = []
    for child in children:
        kill_cgroup(child)
    deadline = time.monotonic() + 2.0
    while children and time.monotonic() < deadline:
        children = [c for c in children if not _try_rmdir(c)]
        if children:
            time.sleep(0.01)
    _try_rmdir(base)


def _parents(memory: bool) -> list[tuple[str, str]]:
    """(controller, parent directory) pairs where group cgroups can be made on this host."""
    if os.path.exists(os.path.join(_ROOT, "cgroup.controllers")):  # unified (v2) hierarchy
        return [("v2", _ROOT)] if "pids" in _v2_controllers(memory) else []
    found = []
    own = _own_v1_paths()
    for controller in ("pids", "memory") if memory else ("pids",):
        hierarchy = os.path.join(_ROOT, controller)
        if os.path.isdir(hierarchy):
            parent = os.path.join(hierarchy, own.get(controller, "").lstrip("/"))
            found.append((controller, parent if os.path.isdir(parent) else hierarchy))
    return found


def _v2_controllers(memory: bool) -> list[str]:
    available = _read(os.path.join(_ROOT, "cgroup.subtree_control")).split()
    wanted = ["pids", "memory"] if memory else ["pids"]
    return [c for c in wanted if c in available]


def _own_v1_paths() -> dict[str, str]:
    paths = {}
    for line in _read("/proc/self/cgroup").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(","):
                paths[controller] = parts[2]
    return paths


def _set_limits(controller: str, path: str, limits: Any) -> None:
    pids = limits.max_processes
    memory = limits.group_memory_bytes
    if controller in ("v2", "pids") and pids is not None and os.path.exists(os.path.join(path, "pids.max")):
        _write(os.path.join(path, "pids.max"), str(int(pids)))
    if memory is None:
        return
    if controller == "v2" and os.path.exists(os.path.join(path, "memory.max")):
        _write(os.path.join(path, "memory.max"), str(int(memory)))
        if os.path.exists(os.path.join(path, "memory.swap.max")):
            _write(os.path.join(path, "memory.swap.max"), "0")
    elif controller == "memory":
        _write(os.path.join(path, "memory.limit_in_bytes"), str(int(memory)))
        if os.path.exists(os.path.join(path, "memory.memsw.limit_in_bytes")):
            _write(os.path.join(path, "memory.memsw.limit_in_bytes"), str(int(memory)))  # no swap escape


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return ""


def _try_rmdir(path: str) -> bool:
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True
