"""toolgym.tasks: problem families with verifiers, splits and reference solutions; suites.

Imports only `toolgym.envs`. `register_builtin()` registers every built-in family as environment ids.
"""

from toolgym._lazy import lazy_exports

_EXPORTS: dict[str, str] = {}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
