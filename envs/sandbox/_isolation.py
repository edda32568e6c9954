"""Host-side helpers for the local backend: bubblewrap detection and its command line.

Kept apart from local.py so the policy (which paths are visible, what is unshared) reads in one place.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys

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
