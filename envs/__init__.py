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
    "ToolEnv": "toolgym.envs.env",
    "EnvConfig": "toolgym.envs.config",
    "StepInfo": "toolgym.envs.info",
    "ResetInfo": "toolgym.envs.info",
    "FINISH_REASONS": "toolgym.envs.info",
    "ParsedTurn": "toolgym.envs.parsers",
    "ToolParser": "toolgym.envs.parsers",
    "get_parser": "toolgym.envs.parsers",
    "ChatMessages": "toolgym.envs.spaces",
    "ChatText": "toolgym.envs.spaces",
    "register": "toolgym.envs.registry",
    "register_suite": "toolgym.envs.registry",
    "make": "toolgym.envs.registry",
    "make_family": "toolgym.envs.registry",
    "list_tasks": "toolgym.envs.registry",
    "list_suites": "toolgym.envs.registry",
    "suite_tasks": "toolgym.envs.registry",
    "task_splits": "toolgym.envs.registry",
    "task_spec": "toolgym.envs.registry",
    "load_plugins": "toolgym.envs.registry",
    "TaskSpec": "toolgym.envs.registry",
    "UnknownNameError": "toolgym.envs.registry",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
