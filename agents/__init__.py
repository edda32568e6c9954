"""toolgym.agents: inference engines, chat rendering, token-faithful rollouts, agents and evaluation.

Imports only `toolgym.envs`.
"""

from toolgym._lazy import lazy_exports

_EXPORTS: dict[str, str] = {}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
