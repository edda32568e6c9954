"""Scheduler registry: one name per scheduler, one constructor signature `(units, **cfg)`.

    make_scheduler("potential", ["toolgym/arith-v0", ...], steps_per_stage=100)

Built-in schedulers register themselves when their module is imported (every `scheduler_*` module
of this package, found on first lookup); a third-party package registers its own through the
entry-point group `toolgym.schedulers` (`my-sched = "my_pkg.sched:MyScheduler"`). An unknown name
raises `UnknownNameError` with the closest names; an unknown config key lists the keys the scheduler
accepts.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from toolgym.curriculum.base import Scheduler

from toolgym.registry import Registry

DEFAULT_SCHEDULER = "potential"
SCHEDULERS: Registry[type[Scheduler]] = Registry(
    "curriculum scheduler", builtins=["toolgym.curriculum.scheduler_*"], entry_points="toolgym.schedulers",
    hint="`toolgym.curriculum.list_schedulers()` lists them; plugins register through the entry-point "
         "group 'toolgym.schedulers'.")


def register_scheduler(name: str) -> Callable[[type[Scheduler]], type[Scheduler]]:
    """Class decorator: register a `Scheduler` subclass under `name` (a duplicate name raises)."""

    def decorator(cls: type[Scheduler]) -> type[Scheduler]:
        _check_scheduler_class(name, cls)
        SCHEDULERS.register(name, cls)
        cls.name = name
        return cls

    return decorator


def _check_scheduler_class(name: str, cls: object) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Scheduler)):
        raise TypeError(f"register_scheduler({name!r}) needs a Scheduler subclass, got {cls!r}")


def list_schedulers() -> list[str]:
    """Names of all registered schedulers."""
    return SCHEDULERS.names()


def get_scheduler(name: str) -> type[Scheduler]:
    """The scheduler class registered under `name` (an entry-point plugin is checked here)."""
    cls = SCHEDULERS.get(name)
    _check_scheduler_class(name, cls)
    cls.name = name
    return cls


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
