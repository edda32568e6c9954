"""Inside the sandbox: how a session process gives up its privileges (standard library only).

Two situations, one rule -- a session ends up with no capability that lets it change the host:

- isolation "bwrap": the session enters one more user namespace of its own, which hands it a full
  capability set *inside* that namespace (enough to make a network namespace, bring up loopback,
  mount a tmpfs). `drop_namespace_privileges` caps the namespaces it may create at zero
  (user.max_user_namespaces in its own namespace, so a nested user namespace cannot hand the
  capabilities back) and then empties the bounding, permitted, effective, inheritable and ambient
  sets; with no_new_privs set afterwards, no execve can regain any.
- isolation "none" with the host running as root: the session switches to an unprivileged uid of
  its own group (`drop_to_uid`), keeping only CAP_DAC_READ_SEARCH (also across execve, as an ambient
  capability), so it can still read the Python installation under /root and import from it, while
  every write, kill and ptrace is checked as that uid: the host's files are read-only to it.

No seccomp filter: with no capabilities and no new user namespaces, the system calls a filter would
block (mount, unshare, setns, pivot_root) already fail with EPERM.
"""

from __future__ import annotations

import ctypes
import os

CAP_DAC_READ_SEARCH = 2
PR_SET_KEEPCAPS, PR_CAPBSET_DROP, PR_CAP_AMBIENT = 8, 24, 47
PR_CAP_AMBIENT_RAISE, PR_CAP_AMBIENT_CLEAR_ALL = 2, 4
_CAP_VERSION_3 = 0x20080522
_LAST_CAP = 63  # PR_CAPBSET_DROP fails with EINVAL past the kernel's last capability; that is fine

_libc = ctypes.CDLL(None, use_errno=True)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _fail(what: str) -> None:
    errno = ctypes.get_errno()
    raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _prctl(option: int, arg2: int, arg3: int = 0) -> int:
    return _libc.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), 0, 0)


def drop_bounding(keep: tuple[int, ...] = ()) -> None:
    """Remove every capability not in `keep` from the bounding set (needs CAP_SETPCAP: do it first)."""
    for cap in range(_LAST_CAP + 1):
        if cap not in keep and _prctl(PR_CAPBSET_DROP, cap) != 0 and ctypes.get_errno() != 22:  # EINVAL
            _fail(f"dropping capability {cap} from the bounding set")


def set_capabilities(keep: tuple[int, ...] = ()) -> None:
    """Permitted = effective = inheritable = ambient = `keep` (each must still be permitted)."""
    mask = 0
    for cap in keep:
        mask |= 1 << cap
    data = (_CapData * 2)()
    for index in range(2):
        word = (mask >> (32 * index)) & 0xFFFFFFFF
        data[index].effective = data[index].permitted = data[index].inheritable = word
    if _libc.capset(ctypes.byref(_CapHeader(_CAP_VERSION_3, 0)), data) != 0:
        _fail("capset")
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    for cap in keep:
        if _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap) != 0:
            _fail(f"raising ambient capability {cap}")


def drop_namespace_privileges() -> None:
    """In a fresh user namespace: forbid nested user namespaces, then drop every capability."""
    with open("/proc/sys/user/max_user_namespaces", "w") as handle:
        handle.write("0")
    drop_bounding(())
    set_capabilities(())


def drop_to_uid(uid: int, gid: int) -> None:
    """From root: become `uid`/`gid` with no supplementary groups, keeping only CAP_DAC_READ_SEARCH."""
    drop_bounding((CAP_DAC_READ_SEARCH,))
    if _prctl(PR_SET_KEEPCAPS, 1) != 0:
        _fail("prctl(PR_SET_KEEPCAPS)")
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    set_capabilities((CAP_DAC_READ_SEARCH,))
