"""Host-side helpers for the local backend: bubblewrap detection and its command line.

Kept apart from local.py so the policy (which paths are visible, what is unshared) reads in one place.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import sys
import warnings
from dataclasses import asdict, dataclass
from typing import Any

from toolgym.envs.sandbox._view import view_arguments

ISOLATION_MODES = ("auto", "bwrap", "none")
# For the probe only (trusted code): the host file system read-only, a minimal /dev, and /proc.
_PROBE_MOUNTS = ("--ro-bind", "/", "/", "--dev", "/dev", "--bind", "/proc", "/proc")


# What the zygote does for every session group (see _zygote.py), in miniature: a nested user, mount,
# PID, network, IPC and UTS namespace, private mounts, and a fresh /proc. In some containers
# (Docker's masked /proc) bubblewrap itself works but the /proc mount does not; "auto" must then fall
# back to "none".
_PROBE = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
uid, gid = os.getuid(), os.getgid()
if libc.unshare(0x10000000 | 0x00020000 | 0x20000000 | 0x40000000 | 0x08000000 | 0x04000000) != 0:
    print("unshare(user, mount, pid, net, ipc, uts) failed:", os.strerror(ctypes.get_errno())); os._exit(3)
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
        *_PROBE_MOUNTS,
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


class IsolationWarning(RuntimeWarning):
    """isolation="auto" could not use bubblewrap: model code runs without namespaces."""


def resolve_isolation(isolation: str) -> str:
    """Map "auto" to "bwrap" or "none" (warning loudly); check that an explicit "bwrap" can work."""
    if isolation not in ISOLATION_MODES:
        raise ValueError(f"unknown isolation {isolation!r}; choose one of {list(ISOLATION_MODES)}")
    if isolation == "none":
        return "none"
    problem = bwrap_problem()
    if problem is None:
        return "bwrap"
    if isolation == "bwrap":
        raise RuntimeError(f"isolation='bwrap' requested but {problem}; use isolation='auto' or 'none'")
    message = (f"sandbox isolation='auto' fell back to 'none' because {problem}: model code runs without "
               "namespaces (it can read the host's files and use its network). Install bubblewrap "
               "(apt-get install -y bubblewrap; in Docker allow user namespaces, e.g. "
               "--security-opt seccomp=unconfined), or pass isolation='none' explicitly to accept this "
               "and silence the warning.")
    warnings.warn(message, IsolationWarning, stacklevel=3)
    logging.getLogger("toolgym.sandbox").warning(message)
    return "none"


@dataclass(frozen=True)
class IsolationReport:
    """The isolation a backend actually obtained, for commands to print and record."""

    backend: str  # "local", "subprocess", "e2b", ...
    requested: str  # what was asked for ("auto", "bwrap", "none", ...)
    mode: str  # what is in effect ("bwrap", "none", "vm", ...)
    fallback_reason: str | None  # why "auto" did not get bubblewrap; None when it did or was not asked
    filesystem: str
    namespaces: tuple[str, ...]  # unshared per session group
    capabilities: str
    memory_cgroup: bool  # one memory budget per group (counts children, memfd, tmpfs, shm)
    pids_cgroup: bool  # one process budget per group, and kill-all on close
    workdir_quota: bool  # the work dir is a size- and inode-limited tmpfs

    @property
    def summary(self) -> str:
        """One line for humans, e.g. for `toolgym train` to print at start-up."""
        spaces = "+".join(self.namespaces) or "no namespaces"
        flags = (("memory cgroup", self.memory_cgroup), ("pids cgroup", self.pids_cgroup),
                 ("work-dir quota", self.workdir_quota))
        extras = ", ".join(name for name, on in flags if on) or "rlimits only"
        text = (f"sandbox {self.backend}: isolation={self.mode} (requested {self.requested}); "
                f"{self.filesystem}; {spaces}; capabilities: {self.capabilities}; {extras}")
        if self.fallback_reason:
            text += f" -- FELL BACK: {self.fallback_reason}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary}


def local_report(*, requested: str, mode: str, drop_uid: bool, fallback_reason: str | None,
                 memory_cgroup: bool, pids_cgroup: bool, workdir_quota: bool) -> IsolationReport:
    """The report of the local backend (see local.py for what each mode means)."""
    if mode == "bwrap":
        filesystem = "whitelist view (system, interpreter, site-packages, sandbox code, session dir)"
        namespaces: tuple[str, ...] = ("user", "mount", "pid", "network", "ipc", "uts")
        capabilities = "none"
    elif drop_uid:
        filesystem = "host file system, read-only to sessions (each group runs as its own uid)"
        namespaces, capabilities = (), "CAP_DAC_READ_SEARCH only (reads everything, writes nothing)"
    else:
        filesystem = "host file system with your user's permissions"
        namespaces, capabilities = (), "those of your user"
    return IsolationReport(backend="local", requested=requested, mode=mode, fallback_reason=fallback_reason,
                           filesystem=filesystem, namespaces=namespaces, capabilities=capabilities,
                           memory_cgroup=memory_cgroup, pids_cgroup=pids_cgroup, workdir_quota=workdir_quota)


def bwrap_command(root: str, python: str) -> list[str]:
    """bubblewrap arguments: the whitelist view of _view.py, no network, writable session root."""
    return [
        shutil.which("bwrap") or "bwrap",
        "--unshare-user",
        "--unshare-ipc",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "sandbox",
        *view_arguments(root, python),
    ]


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
