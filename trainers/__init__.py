"""toolgym.trainers: advantages, policy losses, the learner, the Ray single controller, checkpoints.

May import every other package; only the CLI imports it.
"""

from toolgym._lazy import lazy_exports

_EXPORTS: dict[str, str] = {}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
