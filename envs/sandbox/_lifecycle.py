"""Host-side life cycle helpers of the local backend: environment, hellos, ending groups and backends.

Kept apart from local.py so that the backend class reads as the sequence of steps; these are the
pieces each step calls.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess

from toolgym.envs.sandbox import _reply, _wire
from toolgym.envs.sandbox._cgroup import GroupCgroups
from toolgym.envs.sandbox._files import remove_root
from toolgym.envs.sandbox._proc import exited
from toolgym.envs.sandbox.base import SandboxError


def scrubbed_env(python: str, extra: dict[str, str]) -> dict[str, str]:
    """The whole environment of the zygote and its sessions: nothing is inherited from the host."""
    bin_dir = os.path.dirname(python)
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
    env.update(extra)
    return env


def expect_hello(sock: socket.socket, kind: str, deadline: float) -> int:
    message, pid = _wire.recv_credentials(sock, deadline)
    if message.get("hello") != kind:
        detail = _reply.clean(str(message.get("error", message)))[:500]
        raise SandboxError(f"a sandbox session failed to start: {detail}")
    return pid


def stop_keeper(pidfd: int, namespaced: bool) -> None:
    """End a group: SIGKILL to PID 1 kills its namespace; a plain keeper kills its descendants on SIGTERM."""
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL if namespaced else signal.SIGTERM)
        if not namespaced and not exited(pidfd, timeout=2.0):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.close(pidfd)


def release_host(root: str | None, cgroup: GroupCgroups | None) -> None:
    if cgroup is not None:
        cgroup.close()
    if root is not None:
        remove_root(root)


def cleanup(holder: list[subprocess.Popen | None], root: str, cgroup: GroupCgroups | None) -> None:
    """At garbage collection or interpreter exit, for a backend that was never closed."""
    proc = holder[0]
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()
    release_host(root, cgroup)
