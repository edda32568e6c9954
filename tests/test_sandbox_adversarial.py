"""Adversarial code against the local backend: each property of the sandbox has its own test.

Everything here is real: real zygote, real bubblewrap namespaces (tests marked `bwrap` skip when
bubblewrap is missing), real signals and process trees, inspected from the host through /proc.
"""

from __future__ import annotations

import os
import resource
import socket
import time
from pathlib import Path

import pytest
from toolgym.envs.sandbox import SessionPool, make_sandbox

LIMITS = {"timeout": 10.0, "memory_bytes": 768 << 20, "max_processes": 32, "max_output_bytes": 4096,
          "group_memory_bytes": 1 << 30, "workdir_bytes": 64 << 20, "workdir_files": 3000}


@pytest.fixture(scope="module", params=["auto", "none"])
def backend(request):
    os.environ["TOOLGYM_TEST_SECRET"] = "hunter2-parent-secret"
    backend = make_sandbox("local", isolation=request.param, limits=LIMITS)
    yield backend
    backend.close()
    os.environ.pop("TOOLGYM_TEST_SECRET", None)


@pytest.fixture(autouse=True)
def _bwrap_tests_need_bwrap_isolation(request):
    needs_bwrap = request.node.get_closest_marker("bwrap") and "backend" in request.fixturenames
    if needs_bwrap and request.getfixturevalue("backend").isolation != "bwrap":
        pytest.skip("this property holds only with isolation='bwrap'")


@pytest.fixture
def session(backend):
    session = backend.new_session()
    yield session
    session.close()


def _descendants(pid: int) -> set[int]:
    """Host PIDs of every live process below `pid` (from /proc; zombies excluded)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, stack = set(), [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def _wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _processes_with_cmdline(marker: bytes) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if marker in handle.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def test_infinite_loop_times_out_and_next_call_works(session):
    session.run("x = 1")
    start = time.monotonic()
    result = session.run("while True:\n    pass", timeout=1.0)
    assert result.timed_out and result.state_lost and not result.ok
    assert time.monotonic() - start < 5.0  # the caller got control back
    after = session.run("print('fresh')")
    assert after.stdout == "fresh\n" and after.state_lost
    assert session.run("'x' in dir()").stdout == "False\n"


def test_memory_bomb_sets_memory_exceeded(session):
    result = session.run("hog = []\nwhile True:\n    hog.append(bytearray(32 << 20))")
    assert result.memory_exceeded and result.error_type == "MemoryError"
    assert session.run("del hog; 'ok'").stdout == "'ok'\n"  # the session survives a caught MemoryError


def test_huge_single_allocation_sets_memory_exceeded(session):
    result = session.run("x = bytearray(10**11)")
    assert result.memory_exceeded


# A fork bomb whose children, once the process limit stops them, hold their slot (a plain
# `while True: os.fork()` child exits on its own BlockingIOError, racing the tree count below).
FORK_BOMB = """
import os, time
root = os.getpid()
while True:
    try:
        os.fork()
    except BlockingIOError:
        if os.getpid() == root:
            raise
        time.sleep(60)
"""


def test_fork_bomb_is_contained(backend, session):
    result = session.run(FORK_BOMB, timeout=3.0)
    # either the process limit stopped it (BlockingIOError) or the timeout did; the host lives on
    assert result.error_type == "BlockingIOError" or result.timed_out, result
    tree = _descendants(backend.zygote_pid)
    assert len(tree) >= 4  # C, I, the session and at least one bomb child still holding its slot
    session.close()
    assert _wait_until(lambda: not (_descendants(backend.zygote_pid) & tree))
    with backend.new_session() as fresh:
        assert fresh.run("1 + 1").stdout == "2\n"


@pytest.mark.parametrize("newlines", [True, False], ids=["with-newlines", "without-newlines"])
def test_100mb_of_output_is_truncated_and_parent_memory_bounded(session, newlines):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    code = "print('x\\n' * (50 << 20))" if newlines else "print('x' * (100 << 20))"
    result = session.run(code, timeout=60)
    assert result.output_truncated and result.ok
    assert "output truncated" in result.stdout
    assert len(result.stdout) < 4096 + 200
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 50, f"the host process grew by {grown_mib:.0f} MiB"


def test_100mb_written_to_the_raw_fd_is_truncated(session):
    result = session.run("import os\nfor _ in range(100):\n    os.write(1, b'y' * (1 << 20))", timeout=60)
    assert result.output_truncated
    assert len(result.stdout) < 4096 + 200
    assert result.stdout.startswith("yyyy")


def test_non_utf8_bytes_on_stdout(session):
    result = session.run(
        "import sys, os\nsys.stdout.buffer.write(b'a\\xff\\xfeb\\n')\nos.write(1, b'\\x80z\\n')"
    )
    assert result.ok
    assert "a\\xff\\xfeb" in result.stdout and "\\x80z" in result.stdout


@pytest.mark.parametrize(
    "code",
    ["import sys; sys.exit(3)", "import os; os._exit(0)", "import ctypes; ctypes.string_at(0)"],
    ids=["sys.exit", "os._exit", "segfault"],
)
def test_interpreter_death_is_crashed_and_pool_replaces_the_session(backend, code):
    with SessionPool(backend, size=1) as pool:
        session = pool.acquire()
        session.run("state = 1")
        result = session.run(code)
        assert result.crashed and result.state_lost, result
        assert not session.alive
        again = session.run("'state' in dir()")  # the same handle transparently restarts
        assert again.stdout == "False\n" and again.state_lost
        pool.release(session)
        fresh = pool.acquire()
        assert fresh is not session and fresh.run("1 + 1").stdout == "2\n"
        pool.release(fresh)


def test_pool_replaces_a_warm_session_that_died(backend):
    with SessionPool(backend, size=1) as pool:
        pool.start()
        assert _wait_until(lambda: len(pool._ready) == 1)
        victim = pool._ready[0]
        os.kill(victim.pid, 9)
        assert _wait_until(lambda: not victim.alive)
        session = pool.acquire()
        assert session is not victim and session.run("2 + 2").stdout == "4\n"
        assert pool.replaced == 1
        pool.release(session)


def test_parent_secrets_are_invisible(session):
    assert os.environ["TOOLGYM_TEST_SECRET"]
    result = session.run(
        "import os\nprint(sorted(os.environ))\nprint(open('/proc/self/environ', 'rb').read())\n"
        "print(os.environ.get('TOOLGYM_TEST_SECRET'))"
    )
    assert "hunter2" not in result.stdout and "TOOLGYM_TEST_SECRET" not in result.stdout


@pytest.mark.bwrap
def test_host_process_environment_is_unreachable(session):
    result = session.run(f"open('/proc/{os.getpid()}/environ', 'rb').read()")
    assert result.error_type in ("FileNotFoundError", "PermissionError"), result
    assert "hunter2" not in result.stdout


@pytest.mark.bwrap
def test_writes_outside_the_session_directory_fail(session):
    assert session.run("open('inside.txt', 'w').write('ok')").ok
    targets = [
        "/tmp/escape.txt",
        "/usr/escape.txt",
        "/etc/escape.txt",
        "/root/escape.txt",
        os.path.join(os.path.dirname(session.workdir), "..", "escape.txt"),
        "/escape.txt",
    ]
    for target in targets:
        result = session.run(f"open({target!r}, 'w').write('x')")
        assert result.error_type in ("OSError", "PermissionError", "FileNotFoundError"), (target, result)
        assert not os.path.exists(target)


@pytest.mark.bwrap
def test_network_connect_fails(session):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        local = session.run(f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)")
        assert local.error_type in ("ConnectionRefusedError", "OSError", "TimeoutError"), local
        remote = session.run("import socket; socket.create_connection(('1.1.1.1', 53), timeout=2)")
        assert remote.error_type is not None and not remote.timed_out, remote
    finally:
        server.close()


@pytest.mark.bwrap
def test_killing_the_parent_cannot_kill_the_host(backend, session):
    zygote = backend.zygote_pid
    result = session.run("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.getppid()")
    assert result.ok, result
    assert session.run("'still here'").ok
    os.kill(zygote, 0)  # the zygote (and this test process) are alive


@pytest.mark.bwrap
def test_kill_all_signal_stays_inside_the_sandbox(backend, session):
    other = backend.new_session()
    other.run("kept = 1")
    session.run("import os, signal\nos.kill(-1, signal.SIGKILL)")
    assert other.run("kept").stdout == "1\n"  # another session is untouched
    os.kill(backend.zygote_pid, 0)
    other.close()


@pytest.mark.bwrap
def test_sessions_cannot_read_each_others_files(backend, session):
    other = backend.new_session()
    other.run("open('secret.txt', 'w').write('s3cret')")
    path = os.path.join(other.workdir, "secret.txt")
    assert os.path.exists(path)  # it exists on the host ...
    result = session.run(f"open({path!r}).read()")  # ... but not in this session's view
    assert result.error_type == "FileNotFoundError", result
    listing = session.run(f"import os; os.listdir({os.path.dirname(os.path.dirname(session.workdir))!r})")
    assert os.path.basename(os.path.dirname(other.workdir)) not in listing.stdout
    other.close()


@pytest.mark.bwrap
def test_sessions_cannot_signal_each_other(backend, session):
    other = backend.new_session()
    other.run("kept = 'yes'")
    result = session.run(f"import os; os.kill({other.pid}, 9)")
    assert result.error_type == "ProcessLookupError", result
    assert other.run("kept").stdout == "'yes'\n"
    other.close()


def test_threads_and_child_processes_are_gone_after_close(backend):
    session = backend.new_session()
    marker = f"{os.getpid()}.{time.monotonic_ns() % 10**6}"
    result = session.run(
        "import subprocess, threading, time\n"
        "threading.Thread(target=lambda: time.sleep(1000), daemon=False).start()\n"
        f"child = subprocess.Popen(['sleep', '{marker}1'])\n"
        "threading.active_count()"
    )
    assert result.stdout == "2\n"
    assert _wait_until(lambda: _processes_with_cmdline(f"{marker}1".encode()))  # exec may still be finishing
    session.close()
    assert _wait_until(lambda: not _processes_with_cmdline(f"{marker}1".encode()))


def test_escaped_daemons_are_gone_after_close(backend):
    session = backend.new_session()
    marker = f"{os.getpid()}.{time.monotonic_ns() % 10**6}7"
    session.run(f"import subprocess; subprocess.Popen(['sleep', '{marker}'], start_new_session=True)")
    assert _wait_until(lambda: _processes_with_cmdline(marker.encode()))
    session.close()
    assert _wait_until(lambda: not _processes_with_cmdline(marker.encode()))


_UNRELATED_FD_SLACK = 3


def test_thousand_sessions_leave_nothing_behind(backend):
    base = backend.new_session()
    base.run("import math")
    zygote = backend.zygote_pid
    base_tree = _descendants(zygote)
    fds_before = len(os.listdir("/proc/self/fd"))
    dirs_before = set(os.listdir(backend._root))
    for i in range(1000):
        session = base.fork() if i % 10 else backend.new_session()  # 900 forks, 100 new sessions
        if i % 50 == 0:
            assert session.run("math.pi" if i % 10 else "1").ok
        session.close()
    # The whole process's fd table: another thread of the test process (a Ray or logging thread an
    # earlier test left) may open one or two of its own meanwhile, and CI saw exactly that (46 vs
    # 45). A leak of the sandbox would be one per session, run or fork: 20 to 1000 fds, not 3.
    assert len(os.listdir("/proc/self/fd")) <= fds_before + _UNRELATED_FD_SLACK
    assert _wait_until(lambda: _descendants(zygote) <= base_tree, timeout=10)
    assert set(os.listdir(backend._root)) == dirs_before
    base_group = os.path.dirname(base.workdir)
    assert os.listdir(base_group) == [os.path.basename(base.workdir)]
    base.close()
    if backend._cgroup is not None:
        backend._cgroup.remove(wait=5.0)
        assert not [d for d in os.listdir(backend._cgroup.base) if d.startswith("g")]


@pytest.mark.bwrap
def test_bwrap_sandbox_works_from_a_venv_under_tmp(tmp_path: Path) -> None:
    """Regression: /tmp is masked inside the sandbox, so a venv living there (a fresh clone's CI, a
    scratch venv) must be bound back or the zygote's interpreter cannot start."""
    import site
    import subprocess
    import venv

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=False, with_pip=False, symlinks=True).create(env_dir)
    # The new venv sees the packages of the interpreter running the tests -- a user's own venv
    # included (system site-packages would skip it: it failed there) -- .pth files and all.
    nested = next(env_dir.glob("lib/python*/site-packages"))
    ours = [d for d in (*site.getsitepackages(), site.getusersitepackages()) if os.path.isdir(d)]
    (nested / "_parent_site.pth").write_text(
        "".join(f"import site; site.addsitedir({d!r})\n" for d in ours))
    code = ("from toolgym.envs.sandbox import make_sandbox\n"
            "backend = make_sandbox('local', isolation='bwrap')\n"
            "s = backend.new_session(); print(s.run('print(6 * 7)').stdout.strip()); backend.close()\n")
    out = subprocess.run([str(env_dir / "bin" / "python"), "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "42"


# ---------------------------------------------------------------- the wire protocol (finding 7)
# Model code can find the session's control socket among its own descriptors and write frames on it.
_SEND_FRAME = (
    "import os, stat, struct, sys\n"
    "def _send_frame(body: bytes) -> None:\n"
    "    for name in os.listdir('/proc/self/fd'):\n"
    "        fd = int(name)\n"
    "        try:\n"
    "            if stat.S_ISSOCK(os.fstat(fd).st_mode):\n"
    "                os.write(fd, struct.pack('>I', len(body)) + body)\n"
    "        except OSError:\n"
    "            pass\n"
    "def _request_id():\n"
    "    frame = sys._getframe()\n"
    "    while frame is not None:\n"
    "        if 'request_id' in frame.f_locals:\n"
    "            return frame.f_locals['request_id']\n"
    "        frame = frame.f_back\n"
)


def test_deeply_nested_reply_frame_is_a_crash_not_an_exception(session):
    session.run("kept = 1")
    result = session.run(_SEND_FRAME + "_send_frame(b'{\"a\":' + b'[' * 200000 + b']' * 200000 + b'}')")
    assert result.crashed and result.state_lost and isinstance(result.error_message, str), result
    after = session.run("print('fresh')")
    assert after.stdout == "fresh\n" and after.state_lost


def test_forged_reply_frame_neither_answers_nor_desynchronises(session):
    result = session.run(_SEND_FRAME + "_send_frame(b'{\"stdout\": \"FORGED\\\\n\", \"stderr\": \"\"}')\n"
                         "print('real')")
    assert result.stdout == "real\n", result
    for i in range(3):  # every later call still gets its own reply
        assert session.run(f"print({i})").stdout == f"{i}\n"


def test_reply_with_wrong_field_types_is_a_crash(session):
    # even with the request id dug out of the server's frames, a reply must match the schema
    code = (_SEND_FRAME + "import json\n"
            "_send_frame(json.dumps({'id': _request_id(), 'stdout': 5, 'stderr': '', "
            "'error_type': ['x']}).encode())\nimport time; time.sleep(0.2)")
    result = session.run(code)
    assert result.crashed and result.error_type in (None, "SandboxError"), result
    assert isinstance(result.stdout, str)
    assert session.run("print(1)").stdout == "1\n"


def test_internal_server_error_is_a_crash_not_a_success(session):
    assert session.run("import _session\n_session.Server.execute = None").ok
    broken = session.run("print('never runs')")
    assert broken.crashed and broken.state_lost and not broken.ok, broken
    assert session.run("print(2)").stdout == "2\n"


def test_closing_stdio_descriptors_keeps_the_session_and_its_state(session):
    first = session.run("x = 3\nimport os\nos.close(0); os.close(1); os.close(2)")
    assert first.ok, first
    after = session.run("print(x)")
    assert after.stdout == "3\n" and not after.state_lost, after


def test_background_output_between_calls_is_not_returned_by_the_next_call(session):
    session.run("import threading, time\n"
                "threading.Thread(target=lambda: (time.sleep(0.2), print('late', flush=True))).start()")
    time.sleep(0.6)
    assert session.run("print('now')").stdout == "now\n"


def test_death_between_calls_restarts_on_the_next_call(session):
    session.run("x = 1")
    os.kill(session.pid, 9)
    assert _wait_until(lambda: not session.alive)
    result = session.run("print(2)")
    assert result.stdout == "2\n" and result.state_lost and not result.crashed, result


def test_thread_exiting_the_interpreter_between_calls_restarts_on_the_next_call(session):
    session.run("import os, threading, time\n"
                "threading.Thread(target=lambda: (time.sleep(0.2), os._exit(0))).start()")
    assert _wait_until(lambda: not session.alive)
    result = session.run("print(3)")
    assert result.stdout == "3\n" and result.state_lost and not result.crashed, result


def test_lone_surrogates_never_reach_the_caller(session):
    result = session.run("print('a\\ud800b')\nraise ValueError('\\udcff')")
    for text in (result.stdout, result.error_message, result.traceback):
        text.encode("utf-8")  # strict: raises on a lone surrogate


# ---------------------------------------------------------------- fork() and its errors (finding 10)
def test_fork_copes_with_fifos_and_sockets_in_the_work_dir(session):
    assert session.run("import os, socket\nos.mkfifo('pipe')\n"
                       "s = socket.socket(socket.AF_UNIX); s.bind('sock')\nopen('f', 'w').write('x')").ok
    start = time.monotonic()
    child = session.fork()
    assert time.monotonic() - start < 5.0
    assert child.run("import os, stat\nprint(stat.S_ISFIFO(os.stat('pipe').st_mode), open('f').read())"
                     ).stdout == "True x\n"
    child.close()


def test_fork_after_the_session_was_killed_gives_a_fresh_session(session):
    session.run("x = 1")
    os.kill(session.pid, 9)
    assert _wait_until(lambda: not session.alive)
    child = session.fork()
    result = child.run("'x' in dir()")
    assert result.stdout == "False\n" and result.state_lost
    child.close()


def test_fork_and_new_session_raise_sandbox_error_when_descriptors_run_out(backend, session):
    from toolgym.envs.sandbox import SandboxError

    session.run("x = 1")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    hog = []
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 8, hard))
        with pytest.raises(SandboxError):
            while True:
                hog.append(os.open(os.devnull, os.O_RDONLY))
                if len(hog) > 100:
                    break
                session.fork().close()
        with pytest.raises(SandboxError, match="descriptors"):
            backend.new_session()
    finally:
        for fd in hog:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert session.run("x").stdout == "1\n"


# ---------------------------------------------------------------- deep directory chains (finding 6)
_DEEP_CHAIN = "import os\nfor _ in range(1200):\n    os.mkdir('d')\n    os.chdir('d')\n"


def test_a_1200_deep_directory_chain_is_deleted_by_close(backend):
    session = backend.new_session()
    assert session.run(_DEEP_CHAIN).ok
    workdir = session.workdir
    session.close()
    assert not os.path.exists(workdir)


def test_a_1200_deep_directory_chain_does_not_kill_the_pool_closer(backend):
    with SessionPool(backend, size=0) as pool:
        first = pool.acquire()
        assert first.run(_DEEP_CHAIN).ok
        pool.release(first)
        assert _wait_until(lambda: pool.pending_close == 0)
        second = pool.acquire()
        pool.release(second)
        assert _wait_until(lambda: pool.pending_close == 0)  # the closer thread is still alive
        assert pool._closer is not None and pool._closer.is_alive()


# ---------------------------------------------------------------- the file-system view (findings 1, 3)
def _run_in_fresh_host(code: str, cwd: Path, env_extra: dict[str, str]) -> str:
    """Run `code` in a new host interpreter (its own sys.path, cwd and PYTHONPATH); returns its stdout."""
    import subprocess
    import sys

    env = {**os.environ, **env_extra}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=cwd,
                         env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout


_PROBE_FILES = (
    "import os, sys\n"
    "from toolgym.envs.sandbox import make_sandbox\n"
    "backend = make_sandbox('local', isolation='bwrap')\n"
    "session = backend.new_session()\n"
    "for path in sys.argv[1:] or {paths!r}:\n"
    "    result = session.run(f'open({{path!r}}).read()')\n"
    "    print(path, result.error_type, repr(result.stdout[:40]))\n"
    "backend.close()\n"
)


@pytest.mark.bwrap
def test_host_script_folder_and_pythonpath_under_tmp_stay_hidden(backend, tmp_path: Path):
    secret = tmp_path / "notes.txt"
    secret.write_text("tmp-secret")
    code = _PROBE_FILES.format(paths=[str(secret)])
    stdout = _run_in_fresh_host(code, cwd=tmp_path, env_extra={"PYTHONPATH": str(tmp_path)})
    assert "tmp-secret" not in stdout and "FileNotFoundError" in stdout, stdout


@pytest.mark.bwrap
def test_home_directory_on_pythonpath_stays_hidden(backend, tmp_path: Path):
    home = Path(os.path.expanduser("~"))
    secret = home / f".toolgym-test-secret-{os.getpid()}"
    secret.write_text("home-secret")
    try:
        code = _PROBE_FILES.format(paths=[str(secret)])
        stdout = _run_in_fresh_host(code, cwd=home, env_extra={"PYTHONPATH": str(home)})
        assert "home-secret" not in stdout and "FileNotFoundError" in stdout, stdout
    finally:
        secret.unlink()


@pytest.mark.bwrap
def test_only_whitelisted_directories_are_visible(session):
    project = str(Path(__file__).resolve().parents[1])
    result = session.run(
        "import os\n"
        f"print(os.path.exists({project!r} + '/pyproject.toml'), os.path.exists('/var'),"
        " os.path.exists('/run'), os.path.exists('/srv'), os.path.exists('/sys/fs'))\n"
        "try:\n    print(repr(open('/etc/shadow').read()))\nexcept OSError as exc:\n    print('unreadable')"
    )
    assert result.stdout.splitlines()[0] == "False False False False False", result
    assert result.stdout.splitlines()[1] in ("''", "unreadable"), result


@pytest.mark.bwrap
def test_host_pathname_unix_sockets_are_unreachable(session):
    base = "/run" if os.path.isdir("/run") and os.access("/run", os.W_OK) else "/var/tmp"
    path = os.path.join(base, f"toolgym-test-{os.getpid()}.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen()
    try:
        result = session.run(f"import socket; socket.socket(socket.AF_UNIX).connect({path!r})")
        assert result.error_type in ("FileNotFoundError", "PermissionError", "ConnectionRefusedError"), result
    finally:
        server.close()
        os.unlink(path)


# ---------------------------------------------------------------- namespaces between groups (finding 8)
@pytest.mark.bwrap
def test_groups_cannot_talk_through_abstract_unix_sockets(backend, session):
    other = backend.new_session()
    name = f"toolgym-test-{os.getpid()}"
    assert other.run(f"import socket\nsrv = socket.socket(socket.AF_UNIX)\nsrv.bind('\\0{name}')\n"
                     "srv.listen()").ok
    result = session.run(f"import socket; socket.socket(socket.AF_UNIX).connect('\\0{name}')")
    assert result.error_type == "ConnectionRefusedError", result
    other.close()


@pytest.mark.bwrap
def test_groups_cannot_talk_through_sysv_message_queues(backend, session):
    other = backend.new_session()
    create = ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
              "qid = libc.msgget(0x7467, 0o1666)\nprint(qid >= 0)")
    assert other.run(create).stdout == "True\n"
    lookup = ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
              "print(libc.msgget(0x7467, 0o666) >= 0)")
    assert session.run(lookup).stdout == "False\n"
    other.close()


# ---------------------------------------------------------------- capabilities (finding 10)
@pytest.mark.bwrap
def test_sessions_hold_no_capabilities_and_cannot_regain_them(session):
    result = session.run(
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "status = open('/proc/self/status').read()\n"
        "caps = {l.split(':')[0]: int(l.split()[1], 16)\n"
        "        for l in status.splitlines() if l.startswith('Cap')}\n"
        "print(caps['CapEff'], caps['CapPrm'], caps['CapBnd'], caps['CapAmb'])\n"
        "print(libc.unshare(0x40000000) == 0, libc.unshare(0x10000000 | 0x40000000) == 0)\n"
        "print(libc.mount(b'tmpfs', b'/tmp', b'tmpfs', 0, None) == 0)"
    )
    assert result.stdout == "0 0 0 0\nFalse False\nFalse\n", result


# ---------------------------------------------------------------- root without bubblewrap (finding 2)
@pytest.fixture
def none_session():
    if os.geteuid() != 0:
        pytest.skip("dropping privileges applies when the host runs as root")
    backend = make_sandbox("local", isolation="none", limits=LIMITS)
    session = backend.new_session()
    yield session
    backend.close()


def test_root_host_without_bwrap_keeps_its_files_and_processes_safe(none_session, tmp_path: Path):
    import site

    target = tmp_path / "project-file.txt"
    target.write_text("original")
    site_packages = site.getsitepackages()[0]
    planted = [os.path.join(site_packages, "evil.pth"), "/etc/evil"]
    assert not any(map(os.path.exists, planted))
    try:
        _check_root_host_is_safe(none_session, target, site_packages)
    finally:  # a failing run must not leave a .pth in the venv (it would run in every later Python)
        for path in planted:
            if os.path.exists(path):
                os.unlink(path)


def _check_root_host_is_safe(none_session, target: Path, site_packages: str) -> None:
    result = none_session.run(
        "import os, signal\nout = []\n"
        f"for path in [{str(target)!r}, {os.path.join(site_packages, 'evil.pth')!r}, '/etc/evil']:\n"
        "    try:\n        open(path, 'w').write('x'); out.append('wrote')\n"
        "    except OSError as exc:\n        out.append(type(exc).__name__)\n"
        f"for action in (lambda: os.kill({os.getpid()}, 0), lambda: open('/proc/{os.getpid()}/mem', 'rb'),"
        f" lambda: open('/proc/{os.getpid()}/environ', 'rb').read()):\n"
        "    try:\n        action(); out.append('done')\n"
        "    except OSError as exc:\n        out.append(type(exc).__name__)\n"
        "print(out, os.getuid() != 0)"
    )
    assert result.stdout == ("['PermissionError', 'PermissionError', 'PermissionError', "
                             "'PermissionError', 'PermissionError', 'PermissionError'] True\n"), result
    assert target.read_text() == "original"
    assert not os.path.exists(os.path.join(site_packages, "evil.pth"))
    # it still imports from the Python installation and runs programs
    assert none_session.run("import json, subprocess; print(subprocess.run(['true']).returncode)"
                            ).stdout == "0\n"


def test_root_host_without_bwrap_groups_of_two_backends_cannot_signal_each_other(none_session):
    other_backend = make_sandbox("local", isolation="none", limits=LIMITS)
    try:
        other = other_backend.new_session()
        other.run("kept = 1")
        uids = {none_session.run("import os; os.getuid()").stdout, other.run("import os; os.getuid()").stdout}
        assert len(uids) == 2, uids
        result = none_session.run(f"import os; os.kill({other.pid}, 9)")
        assert result.error_type == "PermissionError", result
        assert other.run("kept").stdout == "1\n"
    finally:
        other_backend.close()


def test_auto_falling_back_to_none_warns_with_what_to_do(monkeypatch):
    from toolgym.envs.sandbox import IsolationWarning, _isolation

    monkeypatch.setattr(_isolation, "bwrap_problem", lambda: "bubblewrap is not installed (test)")
    backend = make_sandbox("local", isolation="auto")
    with pytest.warns(IsolationWarning, match=r"(?i)install bubblewrap.*isolation='none' explicitly"):
        assert backend.isolation == "none"
    report = backend.isolation_report
    assert report.mode == "none" and report.fallback_reason == "bubblewrap is not installed (test)"
    assert "FELL BACK" in report.summary
    backend.close()
    import warnings

    explicit = make_sandbox("local", isolation="none")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert explicit.isolation == "none" and explicit.isolation_report.fallback_reason is None
    explicit.close()


# ---------------------------------------------------------------- memory and disk budgets (findings 4, 5)
def _needs(backend, what: str) -> None:
    report = backend.isolation_report
    if not getattr(report, what):
        pytest.skip(f"this host does not give the sandbox a {what.replace('_', ' ')} (needs root and a "
                    "writable cgroup / mount); the fallback is documented in local.py")


def _cgroup_peak(session) -> int:
    """Peak memory use of the session's group cgroup (bytes), as the host sees it."""
    peaks = []
    for path in session._proc.group.cgroup or []:
        for name in ("memory.max_usage_in_bytes", "memory.peak"):
            if os.path.exists(os.path.join(path, name)):
                peaks.append(int(Path(path, name).read_text()))
    return max(peaks)


def test_memfd_pages_count_against_the_group_memory_budget(backend, session):
    _needs(backend, "memory_cgroup")
    result = session.run(
        "import os\nfds = []\nchunk = b'm' * (1 << 20)\n"
        "for i in range(24):\n"
        "    fd = os.memfd_create(f'hog{i}')\n"
        "    for _ in range(60):\n        os.write(fd, chunk)\n"
        "    fds.append(fd)\nprint('held', len(fds) * 60, 'MiB')", timeout=60)
    assert not result.ok, result  # 1.4 GiB of memfd pages under a 1 GiB group budget
    assert result.memory_exceeded or result.error_type in ("OSError", "MemoryError"), result
    assert _cgroup_peak(session) <= LIMITS["group_memory_bytes"] if session._proc else True
    assert session.run("print('recovered')").stdout == "recovered\n"


def test_child_processes_share_one_group_memory_budget(backend, session):
    _needs(backend, "memory_cgroup")
    result = session.run(
        "import os, signal, time\npids = []\n"
        "for _ in range(3):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        hog = bytearray(b'c') * (450 << 20)\n        time.sleep(2)\n        os._exit(0)\n"
        "    pids.append(pid)\n"
        "print(sorted(os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids))", timeout=60)
    # each child is under its own 768 MiB RLIMIT_AS; together (1.35 GiB) they exceed the 1 GiB group
    assert result.crashed or "-9" in result.stdout or result.error_type == "MemoryError", result


def test_the_work_dir_has_a_size_and_inode_quota(backend, session):
    _needs(backend, "workdir_quota")
    big = session.run("chunk = b'd' * (1 << 20)\nfor i in range(100):\n"
                      "    open(f'big{i}', 'wb').write(chunk)")
    assert big.error_type == "OSError" and "No space left" in big.error_message, big
    session.run("import os\nfor i in range(100):\n    os.path.exists(f'big{i}') and os.remove(f'big{i}')")
    many = session.run("for i in range(4000):\n    open(f'f{i}', 'w').close()")
    assert many.error_type == "OSError" and "No space left" in many.error_message, many


# ---------------------------------------------------------------- nothing outlives a session (finding 9)
def test_double_fork_daemons_are_gone_after_close(backend):
    session = backend.new_session()
    marker = f"{os.getpid()}.{time.monotonic_ns() % 10**6}8"
    session.run("import os, subprocess\nif os.fork() == 0:\n    os.setsid()\n"
                f"    subprocess.Popen(['sleep', '{marker}'])\n    os._exit(0)\nos.wait()")
    assert _wait_until(lambda: _processes_with_cmdline(marker.encode()))
    session.close()
    assert _wait_until(lambda: not _processes_with_cmdline(marker.encode()))


def test_children_of_a_dead_session_leader_are_gone_after_close(backend):
    session = backend.new_session()
    marker = f"{os.getpid()}.{time.monotonic_ns() % 10**6}9"
    session.run(f"import os, subprocess, threading\nsubprocess.Popen(['sleep', '{marker}'])\n"
                "threading.Timer(0.3, os._exit, (0,)).start()")
    assert _wait_until(lambda: not session.alive)  # the leader died between calls ...
    assert _processes_with_cmdline(marker.encode())  # ... and its child lives on
    session.close()
    assert _wait_until(lambda: not _processes_with_cmdline(marker.encode()))


_HOST_THAT_DIES = (
    "import os, sys, time\n"
    "from toolgym.envs.sandbox import make_sandbox\n"
    "backend = make_sandbox('local', isolation=sys.argv[1])\n"
    "session = backend.new_session()\n"
    "session.run(\"import os, subprocess\\nif os.fork() == 0:\\n    os.setsid()\\n"
    "    subprocess.Popen(['sleep', '\" + sys.argv[2] + \"'])\\n    os._exit(0)\\nos.wait()\")\n"
    "print(backend._root, flush=True)\n"
    "time.sleep(600)\n"
)


def test_kill_9_of_the_host_leaves_no_process_and_the_next_backend_sweeps_its_files(backend, tmp_path):
    import signal
    import subprocess
    import sys

    marker = f"{os.getpid()}.{time.monotonic_ns() % 10**6}5"
    host = subprocess.Popen([sys.executable, "-c", _HOST_THAT_DIES, backend.isolation, marker],
                            stdout=subprocess.PIPE, text=True)
    root = host.stdout.readline().strip()
    assert _wait_until(lambda: _processes_with_cmdline(marker.encode()), timeout=10)
    host.send_signal(signal.SIGKILL)
    host.wait()
    assert _wait_until(lambda: not _processes_with_cmdline(marker.encode()), timeout=10)
    assert os.path.isdir(root)  # the dead host could not clean up ...
    fresh = make_sandbox("local", isolation=backend.isolation, limits=LIMITS)
    fresh.new_session().close()
    try:
        assert not os.path.exists(root)  # ... the next backend swept it
        dead = f"toolgym-{host.pid}-"
        for parent in ("/sys/fs/cgroup", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/memory"):
            if os.path.isdir(parent):
                assert not [n for n in os.listdir(parent) if n.startswith(dead)]
    finally:
        fresh.close()


# ---------------------------------------------------------------- through the environment (findings 6, 7)
def test_tool_env_step_never_raises_on_hostile_frames_or_deep_chains(backend):
    from envs_support import ToyAdd
    from toolgym.envs.env import ToolEnv

    env = ToolEnv(ToyAdd(), sandbox=backend)
    env.reset(seed=0)
    forge = (_SEND_FRAME + "import json\n"
             "_send_frame(json.dumps({'id': _request_id(), 'stdout': {'x': 1}, 'stderr': 7, "
             "'error_type': 3, 'traceback': []}).encode())\nimport time; time.sleep(0.2)")
    obs, _, terminated, truncated, info = env.step(env.parser.format_call(forge))
    assert obs[0]["role"] == "tool" and isinstance(obs[0]["content"], str) and not (terminated or truncated)
    nested = _SEND_FRAME + "_send_frame(b'{\"a\":' + b'[' * 100000 + b']' * 100000 + b'}')"
    obs, *_ = env.step(env.parser.format_call(nested))
    assert obs[0]["role"] == "tool" and isinstance(obs[0]["content"], str)
    env.step(env.parser.format_call(_DEEP_CHAIN))
    _, _, terminated, _, info = env.step("<answer>0</answer>")  # releases (deletes) the deep chain
    assert terminated and info["finish_reason"] == "answered"
    env.close()
