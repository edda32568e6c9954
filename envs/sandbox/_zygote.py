"""Inside the sandbox: the pre-warmed "zygote" that forks one process tree per new session.

Started once per LocalBackend as `python -E -s -B _zygote.py CONFIG_JSON` (inside bubblewrap when
isolation is on). It imports the preloaded modules once, freezes the GC (so forked children share
those pages copy-on-write), then serves "new session" requests on its control socket. Standard
library only; never runs user code itself.

Process tree per session group (isolation "bwrap"):

    zygote ── C (keeper: holds the group's namespaces alive, waits for I)
                └── I (PID 1 of a new PID namespace; new user + mount namespace; mounts; reaps)
                      └── S (the session: drops all privileges by entering one more user namespace)
                            └── forks of S made by Session.fork() share I's namespaces

With isolation "none" the zygote forks S directly.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import json
import os
import resource
import select
import signal
import socket
import sys

import _privileges
import _session
import _wire

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID = 0x00020000, 0x10000000, 0x20000000
CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWNET = 0x04000000, 0x08000000, 0x40000000
# Each group gets its own mount, PID, network (loopback down), IPC (SysV queues, semaphores, shared
# memory; abstract Unix sockets live in the network namespace) and UTS namespace.
_GROUP_NAMESPACES = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 4, 36, 38

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _prctl(option: int, value: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0), f"prctl({option})")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    result = _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data))
    _check(result, f"mount {target}")


def _enter_user_namespace(flags: int, uid: int, gid: int) -> None:
    """unshare(CLONE_NEWUSER | flags) and map our own uid/gid to themselves."""
    _check(_libc.unshare(CLONE_NEWUSER | flags), "unshare")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as handle:
            handle.write(text)


def _die_with_parent(signum: int = signal.SIGKILL) -> None:
    parent = os.getppid()
    _prctl(PR_SET_PDEATHSIG, signum)
    if os.getppid() != parent:
        os._exit(0)


def _apply_limits(limits: dict, nproc_base: int) -> None:
    table = {
        "memory_bytes": resource.RLIMIT_AS,
        "cpu_seconds": resource.RLIMIT_CPU,
        "max_file_bytes": resource.RLIMIT_FSIZE,
        "max_open_files": resource.RLIMIT_NOFILE,
    }
    for key, which in table.items():
        if limits.get(key) is not None:
            value = int(limits[key])
            soft = value if key != "cpu_seconds" else max(1, value - 1)
            resource.setrlimit(which, (soft, value))
    if limits.get("max_processes") is not None:
        value = int(limits["max_processes"]) + nproc_base
        resource.setrlimit(resource.RLIMIT_NPROC, (value, value))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a segfault must not write core files
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # oversized writes fail with EFBIG instead of killing


def _become_session(chan: socket.socket, request: dict, config: dict) -> None:
    """Turn this process into session S; never returns."""
    try:
        os.setsid()
        if config["ns"]:
            _enter_user_namespace(0, config["uid"], config["gid"])
            _privileges.drop_namespace_privileges()  # no capabilities, no new user namespaces
        elif request.get("ids"):
            _privileges.drop_to_uid(*request["ids"])  # root host: the host's files become read-only
        _die_with_parent()  # after the credential changes, which clear the parent-death signal
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        _session.enter_workdir(request["dir"])
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.closerange(3, chan.fileno())
        os.closerange(chan.fileno() + 1, 1 << 16)
        _apply_limits(config["limits"], config["nproc_base"])
        server = _session.Server(chan, request["dir"], int(config["limits"]["max_output_bytes"]))
    except BaseException as exc:
        _report(chan, exc)
        os._exit(72)
    server.serve()
    os._exit(0)


def _report(chan: socket.socket, exc: BaseException) -> None:
    try:
        _wire.send(chan, {"hello": "failed", "error": f"{type(exc).__name__}: {exc}"})
    except Exception:
        pass


def _init_main(chan: socket.socket, group_fd: int, request: dict, config: dict) -> None:
    """Process I: PID 1 of the group's namespaces. Private mounts, then fork S, then reap forever."""
    try:
        _die_with_parent()
        _prctl(PR_SET_DUMPABLE, 0)  # S runs as the same uid: it must not ptrace us (we hold CAP_SYS_ADMIN)
        root, group_dir = config["root"], request["group_dir"]
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=755")  # hide other groups
        os.makedirs(group_dir)
        _mount(f"/proc/self/fd/{group_fd}", group_dir, None, MS_BIND)
        os.close(group_fd)
        _mount(None, root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
        if os.path.isdir("/dev/shm"):
            _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=1777")
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        _wire.send_credentials(chan, {"hello": "init"}, os.getpid(), config["uid"], config["gid"])
        if os.fork() == 0:
            _become_session(chan, request, config)
        chan.close()
    except BaseException as exc:
        _report(chan, exc)
        os._exit(73)
    while True:
        try:
            os.wait()
        except ChildProcessError:
            os._exit(0)
        except InterruptedError:
            continue


def _keeper_main(chan: socket.socket, fds: list[int], request: dict, config: dict) -> None:
    """Process C, forked by the zygote for one new session group; never returns."""
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in fds[1:]:  # the host opened `cgroup.procs` of this group's cgroups for us
            os.write(fd, b"0")
            os.close(fd)
        if not config["ns"]:
            _plain_keeper_main(chan, request, config)
        _die_with_parent()
        _enter_user_namespace(_GROUP_NAMESPACES, config["uid"], config["gid"])
        group_fd = os.open(request["group_dir"], os.O_RDONLY | os.O_DIRECTORY)
        init_pid = os.fork()
        if init_pid == 0:
            _init_main(chan, group_fd, request, config)
        chan.close()
        os.close(group_fd)
        os.waitpid(init_pid, 0)
    except BaseException as exc:
        _report(chan, exc)
    os._exit(0)


class _Stop(Exception):
    """Raised by the SIGTERM handler of a plain keeper: time to kill the group."""


def _stop(_signum: int, _frame: object) -> None:
    raise _Stop


def _plain_keeper_main(chan: socket.socket, request: dict, config: dict) -> None:
    """Process C without namespaces: a child subreaper, so every process of the group -- setsid and
    double-fork daemons included -- stays its descendant; on SIGTERM (group closed) or the zygote's
    death it kills them all. Never returns."""
    try:
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        signal.signal(signal.SIGTERM, _stop)
        _die_with_parent(signal.SIGTERM)
        _wire.send_credentials(chan, {"hello": "init"}, os.getpid(), os.getuid(), os.getgid())
        if os.fork() == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _become_session(chan, request, config)
        chan.close()
        while True:
            os.wait()
    except ChildProcessError:
        os._exit(0)
    except BaseException:
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _kill_children_until_none()
    os._exit(0)


def _kill_children_until_none() -> None:
    """SIGKILL our children again and again: orphans of killed ones are re-parented to us (subreaper)."""
    while True:
        for pid in _children(os.getpid()):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return
        except InterruptedError:
            continue


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(p) for p in handle.read().split()]
    except OSError:  # no /proc/PID/task/TID/children on this kernel: scan every process's parent
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    if int(handle.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


_KEEPERS: set[int] = set()  # our children that are group keepers; any other child is an escaped orphan


def _reap(_signum: int, _frame: object) -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _KEEPERS.discard(pid)


def _kill_orphans() -> None:
    """Kill processes re-parented to us (we are a subreaper) that are not keepers: they escaped a
    group whose keeper was killed (same-uid hosts, isolation "none")."""
    for pid in _children(os.getpid()):
        if pid not in _KEEPERS:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _shut_down() -> None:
    """The host is gone: plain keepers kill their groups on SIGTERM (namespaced groups die with us)."""
    for pid in list(_KEEPERS):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    _kill_orphans()
    os._exit(0)


def _preload(names: list[str]) -> dict[str, str]:
    failed = {}
    for name in names:
        try:
            importlib.import_module(name)
        except BaseException as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"
    return failed


def main() -> None:
    config = json.loads(sys.argv[1])
    sys.path.remove(os.path.dirname(os.path.abspath(__file__)))  # user code must not import our files
    control = socket.socket(fileno=config["fd"])
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    if config["ns"]:
        _die_with_parent()  # our parent is bwrap; with isolation "none" it is a host *thread*, which
        # may exit long before the host does: then we rely on EOF on the control socket instead
    failed = _preload(config["preload"])
    gc.collect()
    gc.freeze()
    signal.signal(signal.SIGCHLD, _reap)
    _wire.send(control, {"ready": True, "pid": os.getpid(), "failed": failed})
    poller = select.poll()  # not select(): the host may hand us a descriptor number above 1024
    poller.register(control, select.POLLIN)
    while True:
        if not poller.poll(1000):
            _kill_orphans()
            continue
        try:
            request, fds = _wire.recv(control, max_fds=4)
        except (_wire.WireError, OSError):
            _shut_down()
        if request.get("op") != "new" or not fds:
            for fd in fds:
                os.close(fd)
            _wire.send(control, {"ok": False, "error": f"bad request {request.get('op')!r}"})
            continue
        chan = socket.socket(fileno=fds[0])
        try:
            pid = os.fork()
        except OSError as exc:
            _wire.send(control, {"ok": False, "error": f"fork failed: {exc}"})
            pid = -1
        if pid == 0:
            control.close()
            _keeper_main(chan, fds, request, config)
        chan.close()
        for fd in fds[1:]:
            os.close(fd)
        if pid > 0:
            _KEEPERS.add(pid)
            _wire.send(control, {"ok": True})


if __name__ == "__main__":
    main()
