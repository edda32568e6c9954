"""toolgym.curriculum: success statistics, improvement-potential scores, stage schedulers, filters.

Works on task ids and outcomes only; imports only `toolgym.envs`.
"""

from toolgym._lazy import lazy_exports

_EXPORTS: dict[str, str] = {}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
