"""Inside the sandbox: one session process serving `run` and `fork` requests from the host.

Runs as a child of the zygote (see _zygote.py), never in the host process, and imports only the
standard library (it is loaded by file path, not through the toolgym package).

Output capture: file descriptors 1 and 2 point to anonymous memory files (memfd), so output written
by Python, by C extensions and by child processes lands in one place per stream, in order.
`sys.stdout`/`sys.stderr` stop storing bytes past the output cap, so `print("x" * 10**8)` never
fills anything; raw writes to fd 1/2 are bounded by RLIMIT_FSIZE. Only the first
`max_output_bytes` of each stream are read back and sent to the host, so the host's memory use per
call is bounded whatever the code prints.
"""

from __future__ import annotations

import ast
import builtins
import io
import linecache
import os
import shutil
import signal
import socket
import stat
import sys
import traceback

import _wire

_THIS_FILE = __file__


class _CappedFD(io.RawIOBase):
    """A raw writer on fd `fd` that stores at most `cap` bytes per call and counts the rest."""

    def __init__(self, fd: int, cap: int) -> None:
        super().__init__()
        self.fd, self.cap, self.dropped = fd, cap, 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        size = len(view)
        room = self.cap - os.lseek(self.fd, 0, os.SEEK_CUR)
        chunk = view[: max(room, 0)]
        while len(chunk):
            chunk = chunk[os.write(self.fd, chunk) :]
        self.dropped += size - min(size, max(room, 0))
        return size


class _Stream:
    """One captured stream: a memfd on fd `fd` plus the text wrapper installed as sys.stdout/err."""

    def __init__(self, fd: int, name: str, cap: int) -> None:
        self.fd, self.name, self.cap = fd, name, cap
        self._attach()
        self._open_text()

    def _attach(self) -> None:
        """Put a fresh memfd on our descriptor number (again, when user code closed or replaced it)."""
        memfd = os.memfd_create(f"toolgym-{self.name}", os.MFD_CLOEXEC)
        if memfd != self.fd:
            os.dup2(memfd, self.fd, inheritable=True)
            os.close(memfd)
        else:
            os.set_inheritable(memfd, True)
        self.inode = os.fstat(self.fd).st_ino

    def _ensure_ours(self) -> bool:
        """Re-attach a memfd when user code closed or replaced our descriptor; False when it had to."""
        try:
            if os.fstat(self.fd).st_ino == self.inode:
                return True
        except OSError:
            pass
        self._attach()
        self._open_text()
        return False

    def reset(self) -> None:
        """Start a call with an empty stream on our own memfd, whatever user code did to fd 1/2."""
        self._ensure_ours()
        self.ensure_open()
        try:
            self.text.flush()
        except Exception:  # a broken wrapper: replace it
            self._open_text()
        if os.lseek(self.fd, 0, os.SEEK_CUR) or os.fstat(self.fd).st_size:  # usually empty: no truncate
            os.ftruncate(self.fd, 0)
            os.lseek(self.fd, 0, os.SEEK_SET)
        self.raw.dropped = 0

    def ensure_open(self) -> io.TextIOWrapper:
        """The text stream, reopened if user code closed it (`sys.stdout.close()`)."""
        if self.text.closed:
            dropped = self.raw.dropped
            self._open_text()
            self.raw.dropped = dropped
        return self.text

    def _open_text(self) -> None:
        self.raw = _CappedFD(self.fd, self.cap)
        self.text = io.TextIOWrapper(
            io.BufferedWriter(self.raw, 8192),
            encoding="utf-8",
            errors="backslashreplace",
            line_buffering=False,
        )

    def collect(self) -> tuple[str, bool]:
        try:
            self.text.flush()
        except Exception:  # the user may have closed or broken the stream; output so far still counts
            pass
        if not self._ensure_ours():
            return f"[the code closed or replaced file descriptor {self.fd}; its output is lost]\n", False
        size = os.fstat(self.fd).st_size
        data = os.pread(self.fd, min(size, self.cap), 0)
        total = size + self.raw.dropped
        truncated = total > len(data)
        os.ftruncate(self.fd, 0)
        os.lseek(self.fd, 0, os.SEEK_SET)
        self.raw.dropped = 0
        text = data.decode("utf-8", "backslashreplace")
        if truncated:
            text += f"\n[... output truncated: showing the first {len(data)} of {total} bytes]"
        return text, truncated


class Server:
    """The request loop of one session."""

    def __init__(self, chan: socket.socket, workdir: str, cap: int) -> None:
        self.chan, self.workdir, self.cap = chan, workdir, cap
        self.namespace: dict = {"__name__": "__main__", "__builtins__": builtins}
        self.cells = 0
        self.forks: set[int] = set()  # our Session.fork() children: we are their parent and must reap them
        signal.signal(signal.SIGCHLD, self._reap_forks)
        self._install_streams()

    def _reap_forks(self, _signum: int = 0, _frame: object = None) -> None:
        """Reap exited fork children (only ours: user code waits for its own subprocesses)."""
        for pid in list(self.forks):
            try:
                done, _status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.forks.discard(pid)

    def _install_streams(self) -> None:
        self.out = _Stream(1, "stdout", self.cap)
        self.err = _Stream(2, "stderr", self.cap)
        sys.stdout, sys.stderr = self.out.text, self.err.text

    def hello(self) -> None:
        _wire.send_credentials(self.chan, {"hello": "session"}, os.getpid(), os.getuid(), os.getgid())

    def serve(self) -> None:
        self.execute("None")  # fault in the exec path now, so the first real call is as fast as later ones
        self.cells = 0
        self.hello()
        while True:
            try:
                message, fds = _wire.recv(self.chan, max_fds=1)
            except (_wire.WireError, OSError):
                os._exit(0)  # the host went away: nothing left to serve
            request_id = message.pop("id", None)
            try:
                self._handle(message, fds, request_id)
            except BaseException as exc:  # our own code failed (user code broke the process): stop here
                self._internal_error(request_id, exc)

    def _handle(self, message: dict, fds: list[int], request_id: object) -> None:
        self._reap_forks()  # in case user code replaced our SIGCHLD handler
        op = message.get("op")
        if op == "run":
            reply = self.execute(str(message.get("code", "")))
            reply["id"] = request_id
            _wire.send(self.chan, reply)
            if "exit" in reply:
                os._exit(0)
        elif op == "fork" and fds:
            self.fork(str(message["dir"]), fds[0], request_id)
        else:
            _wire.send(self.chan, {"id": request_id, "internal_error": f"unknown request {op!r}"})

    def _internal_error(self, request_id: object, exc: BaseException) -> None:
        """Tell the host (best effort) and exit: a server that failed once cannot be trusted to reply."""
        try:
            detail = _clean(f"{type(exc).__name__}: {exc}")[:500]
            _wire.send(self.chan, {"id": request_id, "internal_error": detail})
        finally:
            os._exit(70)

    def execute(self, code: str) -> dict:
        self.cells += 1
        reply: dict = {}
        owner = os.getpid()
        for stream in (self.out, self.err):
            stream.reset()  # drop what background threads wrote since the last call
        sys.stdout, sys.stderr = self.out.text, self.err.text
        try:
            self._exec_cell(code, f"<cell {self.cells}>")
        except SystemExit as exc:
            reply["exit"] = _clean(repr(exc.code))
        except BaseException as exc:
            reply.update(self._describe(exc))
        finally:
            if os.getpid() != owner:  # a child the code forked fell through to us: it must not reply
                _flush_quietly()
                os._exit(0)
            sys.stdout, sys.stderr = self.out.ensure_open(), self.err.ensure_open()
        reply["stdout"], out_truncated = self.out.collect()
        reply["stderr"], err_truncated = self.err.collect()
        reply["truncated"] = out_truncated or err_truncated
        return reply

    def _exec_cell(self, code: str, filename: str) -> None:
        """Run a cell like a notebook: the value of a final bare expression is printed (if not None)."""
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        tree = ast.parse(code, filename, "exec")
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(compile(tree, filename, "exec"), self.namespace)
        if last is not None:
            value = eval(compile(ast.Expression(last.value), filename, "eval"), self.namespace)
            if value is not None:
                print(repr(value))

    def _describe(self, exc: BaseException) -> dict:
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == _THIS_FILE:
            tb = tb.tb_next  # hide our own frames: the model should see only its code
        text = "".join(traceback.format_exception(type(exc), exc, tb))
        try:
            message = str(exc)
        except Exception:
            message = "<unprintable exception>"
        return {
            "error_type": type(exc).__name__,
            "error_message": _clean(message)[: self.cap],
            "traceback": _clean(text)[-self.cap :],
            "memory": isinstance(exc, MemoryError),
        }

    def fork(self, new_dir: str, new_fd: int, request_id: object) -> None:
        """Copy-on-write snapshot: the child continues serving on `new_fd` in its own directory."""
        for stream in (self.out, self.err):
            stream.reset()  # drop anything pending so the child starts clean
        try:
            pid = os.fork()
        except OSError as exc:  # e.g. the process limit is reached
            os.close(new_fd)
            _wire.send(self.chan, {"id": request_id, "ok": False, "error": f"fork failed: {exc}"})
            return
        if pid:
            self.forks.add(pid)
            os.close(new_fd)
            _wire.send(self.chan, {"id": request_id, "ok": True})
            return
        try:
            self.forks = set()
            self.chan.close()
            self.chan = socket.socket(fileno=new_fd)
            os.setsid()
            copy_tree(self.workdir, new_dir)
            enter_workdir(new_dir)
            self.workdir = new_dir
            self._install_streams()
            self.hello()
        except BaseException as exc:
            try:
                detail = _clean(f"copying the work directory failed: {type(exc).__name__}: {exc}")[:500]
                _wire.send(self.chan, {"hello": "failed", "error": detail})
            finally:
                os._exit(71)


def copy_tree(source: str, target: str) -> None:
    """Copy a work directory without recursion; FIFOs are recreated, sockets and devices skipped.

    (`shutil.copytree` recurses once per level and blocks forever opening a FIFO.)
    """
    stack = [(source, target)]
    while stack:
        src, dst = stack.pop()
        os.makedirs(dst, exist_ok=True)
        with os.scandir(src) as entries:
            for entry in entries:
                mode = entry.stat(follow_symlinks=False).st_mode
                to = os.path.join(dst, entry.name)
                if stat.S_ISDIR(mode):
                    stack.append((entry.path, to))
                elif stat.S_ISLNK(mode):
                    os.symlink(os.readlink(entry.path), to)
                elif stat.S_ISREG(mode):
                    shutil.copyfile(entry.path, to, follow_symlinks=False)
                    os.chmod(to, stat.S_IMODE(mode))
                elif stat.S_ISFIFO(mode):
                    os.mkfifo(to, stat.S_IMODE(mode))


def _flush_quietly() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def enter_workdir(path: str) -> None:
    os.chdir(path)
    for key in ("HOME", "TMPDIR", "PWD"):
        os.environ[key] = path


def _clean(text: str) -> str:
    """Make a string safe for JSON and UTF-8 (user code can put lone surrogates in messages)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
