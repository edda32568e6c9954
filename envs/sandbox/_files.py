"""Host-side file handling for session directories: deletion that cannot recurse, tmpfs work dirs.

Session directories are written by hostile code, so deleting them must survive what it can make:
a directory chain thousands deep (`shutil.rmtree` recurses once per level and raises RecursionError;
full paths pass PATH_MAX), directories without permissions, symlinks pointing anywhere. `remove_tree`
walks with one open directory descriptor at a time, never follows a symlink, and never raises.

Where the host runs as root, each session group's directory is a tmpfs of its own, limited in size
and inode count (SandboxLimits.workdir_bytes / workdir_files); `mount_workdir` / `unmount` do that,
and unmounting frees everything at once. Elsewhere it stays a plain directory (documented fallback:
only RLIMIT_FSIZE bounds single files).
"""

from __future__ import annotations

import ctypes
import os
import re
import stat
import tempfile

_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MNT_DETACH = 2
MS_NOSUID, MS_NODEV, MS_BIND, MS_SHARED = 2, 4, 4096, 1 << 20
_ROOT_PREFIX = "toolgym-sandbox-"
_STALE_ROOT = re.compile(rf"^{_ROOT_PREFIX}(\d+)-")
_libc = ctypes.CDLL(None, use_errno=True)


def remove_tree(path: str) -> None:
    """Delete `path` and everything below it, iteratively; errors are ignored (like ignore_errors=True)."""
    try:
        fd = os.open(path, _OPEN_DIR)
    except FileNotFoundError:
        return
    except OSError:  # a file or a symlink: unlink it, never follow it
        _quiet(os.unlink, path)
        return
    levels: list[tuple[str, list[str]]] = [("", _clear_files(fd))]  # (name in parent, subdirs to visit)
    while levels:
        name, pending = levels[-1]
        if pending:
            child = pending.pop()
            child_fd = _open_child(fd, child)
            if child_fd is None:
                continue
            os.close(fd)
            fd = child_fd
            levels.append((child, _clear_files(fd)))
            continue
        levels.pop()
        if not levels:
            break
        parent = os.open("..", _OPEN_DIR, dir_fd=fd)
        os.close(fd)
        fd = parent
        _quiet(os.rmdir, name, dir_fd=fd)
    os.close(fd)
    _quiet(os.rmdir, path)


def _clear_files(fd: int) -> list[str]:
    """Unlink every non-directory entry of the directory `fd`; return the names of its subdirectories."""
    _quiet(os.fchmod, fd, 0o700)  # the sandbox may have removed our write permission
    subdirs = []
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                try:
                    is_dir = stat.S_ISDIR(entry.stat(follow_symlinks=False).st_mode)
                except OSError:
                    is_dir = False
                if is_dir:
                    subdirs.append(entry.name)
                else:
                    _quiet(os.unlink, entry.name, dir_fd=fd)
    except OSError:
        pass
    return subdirs


def _open_child(fd: int, name: str) -> int | None:
    for _attempt in range(2):
        try:
            return os.open(name, _OPEN_DIR, dir_fd=fd)
        except PermissionError:
            _quiet(os.chmod, name, 0o700, dir_fd=fd, follow_symlinks=False)
        except OSError:
            break
    _quiet(os.rmdir, name, dir_fd=fd)
    return None


def _quiet(function, *args, **kwargs) -> None:
    try:
        function(*args, **kwargs)
    except OSError:
        pass


def mount_workdir(path: str, size_bytes: int | None, inodes: int | None, uid: int, gid: int) -> bool:
    """Mount a size- and inode-limited tmpfs on `path` (root only); False when the host refuses."""
    options = [f"mode=0700,uid={uid},gid={gid}"]
    if size_bytes is not None:
        options.append(f"size={int(size_bytes)}")
    if inodes is not None:
        options.append(f"nr_inodes={int(inodes)}")
    data = ",".join(options).encode()
    return _libc.mount(b"tmpfs", path.encode(), b"tmpfs", ctypes.c_ulong(MS_NOSUID | MS_NODEV), data) == 0


def unmount(path: str) -> bool:
    """Lazily unmount `path` (whatever is still open inside keeps working until closed)."""
    return _libc.umount2(path.encode(), MNT_DETACH) == 0


def mounts_under(prefix: str) -> list[str]:
    """Mount points at or below `prefix`, deepest first (from /proc/self/mountinfo)."""
    found = []
    try:
        with open("/proc/self/mountinfo") as handle:
            for line in handle:
                point = line.split()[4].replace("\\040", " ")
                if point == prefix or point.startswith(prefix.rstrip("/") + "/"):
                    found.append(point)
    except OSError:
        return []
    return sorted(found, key=len, reverse=True)


def make_root() -> tuple[str, bool]:
    """A fresh root for one backend's session directories, named after this host process.

    As root it is also made a shared bind mount of itself, so that the tmpfs mounted later on each
    group directory propagates into bubblewrap's mount namespace (a slave of it). Returns (path,
    whether group directories can be tmpfs mounts).
    """
    root = os.path.realpath(tempfile.mkdtemp(prefix=f"{_ROOT_PREFIX}{os.getpid()}-"))
    if os.geteuid() != 0:
        return root, False
    if _libc.mount(root.encode(), root.encode(), None, ctypes.c_ulong(MS_BIND), None) != 0:
        return root, False
    if _libc.mount(None, root.encode(), None, ctypes.c_ulong(MS_SHARED), None) != 0:
        unmount(root)
        return root, False
    return root, True


def remove_root(root: str) -> None:
    """Unmount everything at or below `root` (deepest first), then delete it."""
    for point in mounts_under(root):
        unmount(point)
    remove_tree(root)


def sweep_stale_roots(parent: str | None = None) -> list[str]:
    """Remove the roots of toolgym hosts that are no longer running (kill -9, crash); returns them."""
    parent = parent or tempfile.gettempdir()
    swept = []
    try:
        names = os.listdir(parent)
    except OSError:
        return []
    for name in names:
        match = _STALE_ROOT.match(name)
        if match and not _alive(int(match.group(1))):
            remove_root(os.path.join(parent, name))
            swept.append(os.path.join(parent, name))
    return swept


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
