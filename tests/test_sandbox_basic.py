"""Behaviour of the sandbox backends: state, errors, fork semantics, pool, options (real processes)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from toolgym.envs.sandbox import (
    BACKENDS,
    SANDBOX_BACKENDS,
    LocalBackend,
    SandboxLimits,
    SessionPool,
    list_backends,
    make_sandbox,
)

from toolgym.registry import UnknownNameError


@pytest.fixture(scope="module", params=["auto", "none"])
def backend(request):
    backend = make_sandbox("local", isolation=request.param, limits={"timeout": 10.0})
    yield backend
    backend.close()


def test_variables_persist_across_calls(backend):
    with backend.new_session() as session:
        assert session.run("x = 40").ok
        result = session.run("x += 2\nprint(x)")
        assert result.stdout == "42\n"
        assert not result.state_lost


def test_last_expression_is_echoed_like_a_notebook(backend):
    with backend.new_session() as session:
        assert session.run("1 + 1").stdout == "2\n"
        assert session.run("None").stdout == ""
        assert session.run("y = 3").stdout == ""


def test_exception_is_reported_not_raised(backend):
    with backend.new_session() as session:
        result = session.run("def f():\n    return 1 / 0\nf()")
        assert result.error_type == "ZeroDivisionError"
        assert result.error_message == "division by zero"
        assert "return 1 / 0" in result.traceback  # user source lines are shown
        assert "_session.py" not in result.traceback  # our own frames are hidden
        assert not result.ok and not result.crashed
        assert session.run("'still alive'").stdout == "'still alive'\n"


def test_syntax_error_is_reported(backend):
    with backend.new_session() as session:
        result = session.run("def (:")
        assert result.error_type == "SyntaxError"


def test_stderr_is_captured(backend):
    with backend.new_session() as session:
        result = session.run("import sys; print('warn', file=sys.stderr); print('out')")
        assert result.stdout == "out\n"
        assert result.stderr == "warn\n"


def test_closing_sys_stdout_does_not_break_the_session(backend):
    with backend.new_session() as session:
        session.run("import sys; print('before'); sys.stdout.close()")
        assert session.run("print('after')").stdout == "after\n"


def test_output_of_child_processes_is_captured(backend):
    with backend.new_session() as session:
        result = session.run("import subprocess; subprocess.run(['echo', 'from-child'])")
        assert "from-child" in result.stdout


def test_preloaded_modules_are_importable_and_fast(backend):
    with backend.new_session() as session:
        assert session.run("import math; math.sqrt(16)").stdout == "4.0\n"


def test_fork_copies_state_and_is_independent(backend):
    with backend.new_session() as parent:
        parent.run("data = [1, 2]\nopen('notes.txt', 'w').write('parent')")
        children = [parent.fork() for _ in range(3)]
        for i, child in enumerate(children):
            child.run(f"data.append({i})\nopen('notes.txt', 'w').write('child{i}')")
        for i, child in enumerate(children):
            assert child.run("data").stdout == f"[1, 2, {i}]\n"
            assert child.run("open('notes.txt').read()").stdout == f"'child{i}'\n"
        assert parent.run("data").stdout == "[1, 2]\n"
        assert parent.run("open('notes.txt').read()").stdout == "'parent'\n"
        for child in children:
            child.close()


def test_fork_survives_closing_its_parent(backend):
    parent = backend.new_session()
    parent.run("z = 'kept'")
    child = parent.fork()
    parent.close()
    assert child.run("z").stdout == "'kept'\n"
    child.close()


def test_close_deletes_the_working_directory(backend):
    session = backend.new_session()
    session.run("open('file.txt', 'w').write('x')")
    workdir = session.workdir
    assert os.path.exists(os.path.join(workdir, "file.txt"))
    session.close()
    assert not os.path.exists(workdir)
    session.close()  # idempotent


def test_closed_session_refuses_to_run(backend):
    session = backend.new_session()
    session.close()
    with pytest.raises(RuntimeError, match="closed"):
        session.run("1")


def test_pool_runs_many_calls_concurrently(backend):
    with SessionPool(backend, size=2) as pool:
        results = pool.run_many([f"import time; time.sleep(0.2); {i} * 2" for i in range(8)], workers=8)
        assert [r.stdout for r in results] == [f"{i * 2}\n" for i in range(8)]


def test_pool_is_thread_safe_and_never_shares_a_session(backend):
    seen: list[int] = []
    lock = threading.Lock()
    with SessionPool(backend, size=3) as pool:

        def worker() -> None:
            for _ in range(5):
                with pool.session() as session:
                    result = session.run("import os; os.getpid()")
                    assert result.ok, result
                    with lock:
                        seen.append(session.pid)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(seen) == 20
    assert len(set(seen)) == 20  # a released session is never handed out again


def test_pool_hands_out_fresh_state(backend):
    with SessionPool(backend, size=1) as pool:
        session = pool.acquire()
        session.run("secret = 1")
        pool.release(session)
        other = pool.acquire()
        assert other.run("'secret' in dir()").stdout == "False\n"
        pool.release(other)


def test_subprocess_backend_is_stateless_baseline():
    backend = make_sandbox("subprocess", limits={"timeout": 5.0})
    assert backend.stateful is False
    session = backend.new_session()
    assert session.run("print(6 * 7)").stdout == "42\n"
    result = session.run("x")
    assert result.error_type == "NameError"
    result = session.run("while True: pass", timeout=0.5)
    assert result.timed_out
    session.close()
    assert not os.path.exists(session.workdir)


def test_unknown_backend_lists_known_ones():
    with pytest.raises(ValueError, match=r"Registered: e2b, local, subprocess\."):
        make_sandbox("docker")
    with pytest.raises(UnknownNameError, match=r"Did you mean 'local'\?"):
        make_sandbox("locl")


def test_backends_are_a_registry_and_third_parties_can_add_one():
    assert list_backends() == ["e2b", "local", "subprocess"] == sorted(BACKENDS)
    assert "local" in BACKENDS and SANDBOX_BACKENDS.get("local") is LocalBackend

    @SANDBOX_BACKENDS.register("test-inprocess")
    class Custom:
        name = "test-inprocess"

        def __init__(self, flavour: str = "plain") -> None:
            self.flavour = flavour

    try:
        assert make_sandbox("test-inprocess", flavour="x").flavour == "x"
        assert "test-inprocess" in list_backends()
    finally:
        SANDBOX_BACKENDS.unregister("test-inprocess")


def test_the_session_module_does_not_import_the_backend_module():
    """No import cycle: local_session.py depends on _proc.py, never on local.py (issue 12)."""
    source = (Path(__file__).parents[1] / "envs" / "sandbox" / "local_session.py").read_text()
    imported = {node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)}
    assert "toolgym.envs.sandbox.local" not in imported
    assert "toolgym.envs.sandbox._proc" in imported


def test_e2b_module_imports_without_the_e2b_package():
    code = ("import sys; sys.modules['e2b_code_interpreter'] = None\n"
            "import toolgym.envs.sandbox.e2b_backend as m; print(m.E2BBackend.name)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "e2b", out.stderr


def test_bad_option_names_the_backend():
    with pytest.raises(TypeError, match="'local'"):
        make_sandbox("local", isolaton="none")


def test_unknown_isolation_lists_modes():
    with pytest.raises(ValueError, match="auto"):
        make_sandbox("local", isolation="chroot")


def test_limits_validation_names_the_field():
    with pytest.raises(ValueError, match="timeout"):
        SandboxLimits(timeout=0)
    with pytest.raises(ValueError, match=r"unknown sandbox limit\(s\) \['memory'\]"):
        SandboxLimits.from_options({"memory": 1})


def test_construction_starts_nothing():
    backend = make_sandbox("local")
    assert backend._zygote is None  # no processes until the first session
    backend.close()


@pytest.mark.parametrize("isolation", ["auto", "none"])
def test_backend_outlives_the_thread_that_started_it(isolation):
    # the zygote must not be tied to the (possibly short-lived) thread that happened to start it
    backend = make_sandbox("local", isolation=isolation)
    sessions = []
    thread = threading.Thread(target=lambda: sessions.append(backend.new_session()))
    thread.start()
    thread.join()
    time.sleep(0.2)
    try:
        assert sessions[0].run("1 + 1").stdout == "2\n"
        with backend.new_session() as other:
            assert other.run("'ok'").stdout == "'ok'\n"
    finally:
        backend.close()


def test_a_dead_zygote_is_restarted_and_its_sessions_report_lost_state():
    # sessions die with their zygote (nothing may outlive the host); they never raise, they restart
    backend = make_sandbox("local")
    try:
        session = backend.new_session()
        session.run("kept = 5")
        old = backend.zygote_pid
        os.kill(old, 9)
        time.sleep(0.2)
        with backend.new_session() as fresh:
            assert fresh.run("1 + 1").stdout == "2\n"
        assert backend.zygote_pid != old
        lost = session.run("kept")
        assert lost.state_lost and not lost.ok
        assert session.run("'back'").stdout == "'back'\n"
    finally:
        backend.close()


def test_session_close_works_with_descriptor_numbers_above_1024() -> None:
    """Regression: waiting on a session's pidfd used select(), which fails for fds >= 1024."""
    import os
    import resource

    from toolgym.envs.sandbox import make_sandbox

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip("the open-file limit is too low to reach descriptor 1024")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    fillers = []
    try:
        while len(fillers) < 1030 and (not fillers or fillers[-1] < 1030):
            fillers.append(os.open(os.devnull, os.O_RDONLY))
        backend = make_sandbox("local", isolation="none")
        try:
            session = backend.new_session()
            assert session.run("print(6 * 7)").stdout.strip() == "42"
            session.close()
            assert not session.alive
        finally:
            backend.close()
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_pool_bounds_the_sessions_waiting_to_be_closed() -> None:
    """Releasing sessions faster than the closer thread can close them must not pile up descriptors
    and processes without bound (seen on a loaded host: over 1,000 open pidfds after 400 episodes)."""
    from toolgym.envs.sandbox import SessionPool, make_sandbox
    from toolgym.envs.sandbox.session_pool import MAX_CLOSE_BACKLOG

    with SessionPool(make_sandbox("local", isolation="none"), size=0, own_backend=True) as pool:
        sessions = [pool.acquire() for _ in range(MAX_CLOSE_BACKLOG + 24)]
        for session in sessions:
            pool.release(session)
            assert pool.pending_close <= MAX_CLOSE_BACKLOG
        deadline = time.monotonic() + 30
        while pool.pending_close and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool.pending_close == 0
        assert not any(s.alive for s in sessions[-10:])


def test_every_backend_reports_the_isolation_it_obtained(backend):
    from toolgym.envs.sandbox import describe_isolation

    report = describe_isolation(backend)
    assert report.mode == backend.isolation and report.backend == "local"
    assert f"isolation={backend.isolation}" in report.summary and "\n" not in report.summary
    record = report.to_dict()
    assert record["summary"] == report.summary and record["mode"] == backend.isolation
    if backend.isolation == "bwrap":
        assert "network" in report.namespaces and report.capabilities == "none"
    subprocess_report = describe_isolation(make_sandbox("subprocess"))
    assert subprocess_report.mode == "none" and subprocess_report.namespaces == ()
