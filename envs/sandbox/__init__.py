"""toolgym.envs.sandbox: stateful, isolated Python sessions for tool calls.

    from toolgym.envs.sandbox import make_sandbox, SessionPool
    backend = make_sandbox("local", isolation="auto", preload=("math", "numpy"))
    session = backend.new_session()
    session.run("x = 2")
    session.run("x * 21").stdout          # '42\\n'
    group = [session.fork() for _ in range(8)]   # same state, copy-on-write

Backends: "local" (default; zygote fork server, bubblewrap isolation; see local.py for exactly
what is and is not isolated), "subprocess" (a fresh `python -c` per call, stateless baseline),
"e2b" (remote Jupyter kernel, needs the [e2b] extra and E2B_API_KEY). The contract is in base.py.
"""

from __future__ import annotations

from typing import Any

from toolgym.envs.sandbox._isolation import IsolationReport, IsolationWarning
from toolgym.envs.sandbox.base import SANDBOX_BACKENDS, ExecResult, SandboxBackend, SandboxError, Session
from toolgym.envs.sandbox.limits import SandboxLimits

from toolgym._lazy import lazy_exports

# Kept for code that listed backends through the old dict: `name in BACKENDS`, `sorted(BACKENDS)`.
BACKENDS = SANDBOX_BACKENDS


def list_backends() -> list[str]:
    """Names of the registered sandbox backends (built-in and from plugins), sorted."""
    return SANDBOX_BACKENDS.names()


def describe_isolation(backend: Any) -> IsolationReport:
    """The isolation `backend` gives its sessions, for commands to print (`.summary`) and record
    (`.to_dict()`). Backends without a report of their own are described as unknown."""
    report = getattr(backend, "isolation_report", None)
    if isinstance(report, IsolationReport):
        return report
    name = str(getattr(backend, "name", type(backend).__name__))
    return IsolationReport(backend=name, requested="n/a", mode=str(getattr(backend, "isolation", "unknown")),
                           fallback_reason=None, filesystem="unknown (not reported by the backend)",
                           namespaces=(), capabilities="unknown", memory_cgroup=False, pids_cgroup=False,
                           workdir_quota=False)


def make_sandbox(backend: str = "local", **options: Any) -> SandboxBackend:
    """Create a sandbox backend by name; `options` go to its constructor (e.g. limits=, isolation=).

    Nothing is started until the first session is requested. An unknown name raises
    `toolgym.registry.UnknownNameError` (a ValueError) naming the closest registered backends.
    """
    cls = SANDBOX_BACKENDS.get(backend)
    try:
        return cls(**options)
    except TypeError as exc:
        raise TypeError(f"bad option for sandbox backend {backend!r}: {exc}") from None


_EXPORTS = {
    "SessionPool": "toolgym.envs.sandbox.session_pool",
    "LocalBackend": "toolgym.envs.sandbox.local",
    "LocalSession": "toolgym.envs.sandbox.local_session",
    "SubprocessBackend": "toolgym.envs.sandbox.subproc",
    "SubprocessSession": "toolgym.envs.sandbox.subproc",
    "E2BBackend": "toolgym.envs.sandbox.e2b_backend",
    "E2BSession": "toolgym.envs.sandbox.e2b_backend",
    "execution_to_result": "toolgym.envs.sandbox.e2b_backend",
}
__all__ = ["BACKENDS", "SANDBOX_BACKENDS", "ExecResult", "IsolationReport", "IsolationWarning",
           "SandboxBackend", "SandboxError", "SandboxLimits", "Session", "describe_isolation",
           "list_backends", "make_sandbox", *_EXPORTS]
__getattr__ = lazy_exports(__name__, _EXPORTS)
