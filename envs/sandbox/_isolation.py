"""Host-side helpers for the local backend: bubblewrap detection and command line, pids cgroups.

Kept apart from local.py so the policy (which paths are visible, what is unshared) reads in one place.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import time

ISOLATION_MODES = ("auto", "bwrap", "none")
# The host file system read-only, a minimal /dev, and /proc (each session group mounts its own).
_HOST_MOUNTS = ("--ro-bind", "/", "/", "--dev", "/dev", "--bind", "/proc", "/proc")


# What the zygote does for every session group (see _zygote.py), in miniature: a nested user, mount
# and PID namespace, private mounts, and a fresh /proc. In some containers (Docker's masked /proc)
# bubblewrap itself works but the /proc mount does not; "auto" must then fall back to "none".
_PROBE = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
uid, gid = os.getuid(), os.getgid()
if libc.unshare(0x10000000 | 0x00020000 | 0x20000000) != 0:
    print("unshare(user, mount, pid) failed:", os.strerror(ctypes.get_errno())); os._exit(3)
for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
    with open("/proc/self/" + name, "w") as handle:
        handle.write(text)
pid = os.fork()
if pid == 0:
    if libc.mount(None, b"/", None, ctypes.c_ulong(16384 | (1 << 18)), None) != 0:
        print("making mounts private failed:", os.strerror(ctypes.get_errno())); os._exit(4)
    if libc.mount(b"proc", b"/proc", b"proc", ctypes.c_ulong(14), None) != 0:
        print("mounting /proc in a new PID namespace failed:", os.strerror(ctypes.get_errno())); os._exit(5)
    os._exit(0)
os._exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


@functools.cache
def bwrap_problem() -> str | None:
    """None when bubblewrap can create the namespaces the local backend needs, else the reason."""
    exe = shutil.which("bwrap")
    if exe is None:
        return "bubblewrap is not installed (apt-get install -y bubblewrap)"
    probe = [
        exe,
        *_HOST_MOUNTS,
        "--unshare-user",
        "--unshare-net",
        "--unshare-ipc",
        sys.executable,
        "-E",
        "-s",
        "-c",
        _PROBE,
    ]
    try:
        proc = subprocess.run(probe, capture_output=True, timeout=30, env={"PATH": os.defpath})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap failed to start: {exc}"
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).decode(errors="replace").strip()
        detail = output or f"exit status {proc.returncode}"
        return f"bubblewrap cannot create user/PID/mount namespaces here: {detail}"
    return None


def resolve_isolation(isolation: str) -> str:
    """Map "auto" to "bwrap" or "none"; check that an explicit "bwrap" can work."""
    if isolation not in ISOLATION_MODES:
        raise ValueError(f"unknown isolation {isolation!r}; choose one of {list(ISOLATION_MODES)}")
    if isolation == "none":
        return "none"
    problem = bwrap_problem()
    if problem is None:
        return "bwrap"
    if isolation == "bwrap":
        raise RuntimeError(f"isolation='bwrap' requested but {problem}; use isolation='auto' or 'none'")
    return "none"


def bwrap_command(root: str) -> list[str]:
    """bubblewrap arguments: read-only host FS, no network, writable session root, HOME hidden."""
    cmd = [
        shutil.which("bwrap") or "bwrap",
        "--unshare-user",
        "--unshare-ipc",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "sandbox",
        *_HOST_MOUNTS,
    ]
    # /tmp and the home directories are replaced by empty tmpfs; the Python installation (a venv may
    # live in either, e.g. /tmp/venv or ~/.venv) and toolgym's own sandbox code are bound back read-only.
    for masked in ["/tmp", *_hidden_dirs()]:
        cmd += ["--tmpfs", masked]
        for needed in _needed_paths():
            if needed == masked or needed.startswith(masked + os.sep):
                cmd += ["--ro-bind", needed, needed]
    cmd += ["--bind", root, root, "--remount-ro", "/tmp"]
    for hidden in _hidden_dirs():
        cmd += ["--remount-ro", hidden]
    cmd += ["--chdir", root]
    return cmd


def _hidden_dirs() -> list[str]:
    """Home directories (secrets live there: keys, tokens); Python itself is bound back if inside."""
    homes = {os.path.expanduser("~"), "/root", "/home"}
    return sorted(h for h in homes if os.path.isdir(h) and h != "/")


def _needed_paths() -> list[str]:
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.abspath(__file__)),
             os.path.dirname(os.path.realpath(sys.executable))}
    paths.update(p for p in sys.path if p and os.path.isdir(p))
    return sorted(os.path.realpath(p) for p in paths)


def count_user_processes(uid: int) -> int:
    """Processes owned by `uid` now: RLIMIT_NPROC without namespaces counts all of them."""
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                count += os.stat(f"/proc/{entry}").st_uid == uid
            except OSError:
                continue
    return count


class PidsCgroup:
    """A pids cgroup per session group, for root (the kernel exempts root from RLIMIT_NPROC)."""

    def __init__(self, name: str) -> None:
        self.base: str | None = None
        for parent in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup"):  # cgroup v1 pids, else v2 with pids
            if not os.path.isdir(parent):
                continue
            if parent == "/sys/fs/cgroup" and "pids" not in _read(
                os.path.join(parent, "cgroup.subtree_control")
            ):
                continue
            try:
                os.makedirs(os.path.join(parent, name), exist_ok=True)
            except OSError:
                continue
            self.base = os.path.join(parent, name)
            break
        self._pending: list[str] = []

    @property
    def available(self) -> bool:
        return self.base is not None

    def create(self, group: str, max_pids: int) -> tuple[str, int]:
        """Make the group's cgroup; returns (path, fd of its cgroup.procs opened for writing)."""
        assert self.base is not None
        path = os.path.join(self.base, group)
        os.mkdir(path)
        with open(os.path.join(path, "pids.max"), "w") as handle:
            handle.write(str(max_pids))
        return path, os.open(os.path.join(path, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC)

    def remove(self, path: str | None = None, wait: float = 0.0) -> None:
        """rmdir `path` (and earlier ones still busy); retried later while processes are exiting."""
        if path:
            self._pending.append(path)
        deadline = time.monotonic() + wait
        while True:
            self._pending = [p for p in self._pending if not _try_rmdir(p)]
            if not self._pending or time.monotonic() >= deadline:
                return
            time.sleep(0.01)

    def close(self) -> None:
        """Remove every group cgroup (all ours) once its processes are gone, then the base."""
        if self.base is None or not os.path.isdir(self.base):
            return
        with os.scandir(self.base) as entries:
            self._pending += [e.path for e in entries if e.is_dir() and e.path not in self._pending]
        self.remove(wait=2.0)
        _try_rmdir(self.base)


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
