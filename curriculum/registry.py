"""Scheduler registry: one name per scheduler, one constructor signature `(units, **cfg)`.

    make_scheduler("potential", ["toolgym/arith-v0", ...], steps_per_stage=100)

Built-in schedulers register themselves when their module is imported; `make_scheduler` imports
them on first use. An unknown name lists the known ones; an unknown config key lists the keys the
scheduler accepts.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from toolgym.curriculum.base import Scheduler

DEFAULT_SCHEDULER = "potential"
_BUILTIN_MODULES = ("toolgym.curriculum.schedulers", "toolgym.curriculum.staged")
_REGISTRY: dict[str, type[Scheduler]] = {}


def register_scheduler(name: str) -> Callable[[type[Scheduler]], type[Scheduler]]:
    """Class decorator: register a `Scheduler` subclass under `name` (a duplicate name raises)."""

    def decorator(cls: type[Scheduler]) -> type[Scheduler]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"scheduler {name!r} is already registered ({_REGISTRY[name].__qualname__})")
        if not (isinstance(cls, type) and issubclass(cls, Scheduler)):
            raise TypeError(f"register_scheduler({name!r}) needs a Scheduler subclass, got {cls!r}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def list_schedulers() -> list[str]:
    """Names of all registered schedulers."""
    _load_builtins()
    return sorted(_REGISTRY)


def get_scheduler(name: str) -> type[Scheduler]:
    """The scheduler class registered under `name`."""
    _load_builtins()
    if name not in _REGISTRY:
        raise ValueError(f"unknown curriculum scheduler {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def scheduler_options(name: str) -> list[str]:
    """Config keys `make_scheduler(name, units, **cfg)` accepts."""
    cls = get_scheduler(name)
    keys: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(vars(klass)["__init__"]).parameters.values()
        keys += [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in keys]
    return keys


def make_scheduler(name: str, units: Sequence[str], **cfg: Any) -> Scheduler:
    """Build scheduler `name` over `units` (task ids or 'task_id#index') with its config keys."""
    cls = get_scheduler(name)
    allowed = scheduler_options(name)
    unknown = sorted(set(cfg) - set(allowed))
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown} for curriculum scheduler {name!r}; "
                         f"allowed: {', '.join(sorted(allowed))}")
    return cls(units, **cfg)


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
