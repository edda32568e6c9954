"""The file system a bubblewrap sandbox sees: a whitelist, not the host with holes punched in it.

Why a whitelist: binding the host's `/` read-only and hiding some directories leaves everything
else readable (the project tree, /var, /srv, mounted data) and every pathname Unix socket
connectable (`connect()` ignores a read-only mount: /var/run/docker.sock is root on the host). And
binding `sys.path` back into hidden directories unmasked them (the host script's folder under
/tmp, `PYTHONPATH=~`, an editable install under a home). So the sandbox sees only:

- the system's programs and libraries: /usr, /bin, /sbin, /lib* (symlinks kept as symlinks) and
  /etc, minus its secrets (shadow files, sudoers, SSH host keys, TLS private keys);
- the interpreter: its prefixes and site-packages (asked of the interpreter the zygote runs);
- the sandbox's own code (this directory), which the zygote runs;
- /dev (bubblewrap's minimal one), /proc (each group mounts its own), an empty read-only /tmp
  holding only the backend's session root.

Nothing else exists inside: /root, /home, /run, /var (with /var/run and /var/tmp), /srv, /mnt,
/opt (unless the interpreter lives there), /sys, the project tree. A whitelisted path that is equal
to or above a directory that must stay hidden (a venv at `~` itself, a prefix of `/`) is refused
with an error instead of being bound, since binding it would unmask that directory.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
_ETC_SECRET_FILES = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers")
_ETC_SECRET_DIRS = ("/etc/ssh", "/etc/sudoers.d", "/etc/ssl/private")
_ALWAYS_HIDDEN = ("/tmp", "/root", "/home", "/run", "/var/run", "/var/tmp", "/var", "/proc", "/sys")
_SANDBOX_CODE = os.path.dirname(os.path.abspath(__file__))

# Not sys.path: .pth files add entries anywhere (an editable install under a home), and those are
# exactly what must stay hidden.
_ASK_INTERPRETER = (
    "import json, site, sys; print(json.dumps([sys.prefix, sys.base_prefix, sys.exec_prefix, "
    "sys.base_exec_prefix, *site.getsitepackages()]))"
)


class ViewError(RuntimeError):
    """A path the sandbox needs cannot be shown without unmasking a hidden directory."""


def view_arguments(root: str, python: str) -> list[str]:
    """bubblewrap arguments for the whitelist view, with `root` (the session root) writable."""
    args: list[str] = []
    for path in _SYSTEM:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in _ETC_SECRET_FILES:
        if os.path.isfile(path):
            args += ["--ro-bind", "/dev/null", path]
    for path in _ETC_SECRET_DIRS:
        if os.path.isdir(path):
            args += ["--tmpfs", path]
    args += ["--dev", "/dev", "--bind", "/proc", "/proc", "--tmpfs", "/tmp"]
    for path in needed_paths(python):
        args += ["--ro-bind", path, path]
    # bubblewrap's own root is a writable tmpfs (holding the mount points, e.g. /root for a
    # venv under it): make it read-only too
    args += ["--bind", root, root, "--remount-ro", "/tmp", "--remount-ro", "/", "--chdir", root]
    return args


def needed_paths(python: str) -> list[str]:
    """The interpreter's directories and the sandbox code that are not already in a system directory."""
    hidden = hidden_dirs()
    wanted = {os.path.realpath(p) for p in (*_interpreter_paths(python), _SANDBOX_CODE) if os.path.isdir(p)}
    paths = []
    for path in sorted(wanted):
        unmasks = [h for h in hidden if h == path or h.startswith(path.rstrip("/") + "/")]
        if unmasks:
            raise ViewError(f"the sandbox needs {path!r} (the Python installation or the sandbox code) but "
                            f"showing it would expose {unmasks[0]!r}; install Python or the venv in a "
                            "directory of its own (e.g. /opt/venv or ~/.venvs/NAME)")
        if not any(path == s or path.startswith(s + "/") for s in map(os.path.realpath, _SYSTEM)):
            paths.append(path)
    return _outermost(paths)


def hidden_dirs() -> list[str]:
    """Directories that must never be visible: homes, temp dirs, runtime sockets, /var, /proc, /sys."""
    homes = {os.path.expanduser("~"), os.path.realpath(os.path.expanduser("~"))}
    return sorted({*_ALWAYS_HIDDEN, *(h for h in homes if h != "/")})


@functools.cache
def _interpreter_paths(python: str) -> tuple[str, ...]:
    """Prefixes, site-packages and the sys.path of `python` run as the zygote runs it (-E -s)."""
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        import site

        return (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *site.getsitepackages())
    out = subprocess.run([python, "-E", "-s", "-c", _ASK_INTERPRETER], capture_output=True, text=True,
                         timeout=60, env={"PATH": os.defpath})
    if out.returncode != 0:
        raise ViewError(f"could not ask {python} for its paths: {out.stderr.strip()[-500:]}")
    return tuple(json.loads(out.stdout))


def _outermost(paths: list[str]) -> list[str]:
    """Drop paths inside another listed path (bubblewrap would bind them twice)."""
    kept: list[str] = []
    for path in sorted(paths):
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept
