"""toolgym.envs.sandbox: stateful, isolated Python sessions for tool calls (see base.py)."""

from toolgym.envs.sandbox.base import ExecResult, SandboxBackend, Session

__all__ = ["ExecResult", "SandboxBackend", "Session"]
