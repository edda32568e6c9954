"""toolgym.envs: Gymnasium tool-use environments, tool-call parsers, sandboxes and the task registry.

The bottom layer: it imports no other toolgym package and none of torch, ray or transformers.
"""

from toolgym._lazy import lazy_exports

_EXPORTS = {
    # shared records
    "TaskRequest": "toolgym.envs.types",
    "Outcome": "toolgym.envs.types",
    "Problem": "toolgym.envs.task",
    "Score": "toolgym.envs.task",
    "TaskFamily": "toolgym.envs.task",
    # sandboxes
    "ExecResult": "toolgym.envs.sandbox.base",
    "Session": "toolgym.envs.sandbox.base",
    "SandboxBackend": "toolgym.envs.sandbox.base",
    "make_sandbox": "toolgym.envs.sandbox",
    "SessionPool": "toolgym.envs.sandbox",
    # environments and registry (see env.py, parsers.py, registry.py)
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
