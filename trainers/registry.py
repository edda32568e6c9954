"""A small name -> function registry, shared by the advantage and policy-loss extension points.

Why a class and not a bare dict: every registry in toolgym must behave the same way for users —
registering a name twice raises (a silent overwrite would make the trained algorithm depend on
import order), and an unknown name lists the registered ones with the closest match first.
Built-in entries may live in modules that are imported only on first lookup (`builtin_modules`), so
that `import toolgym.trainers` stays light and a plugin can register before or after them.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

F = TypeVar("F", bound=Callable[..., object])


class Registry(Generic[F]):
    """Maps names to callables that all share one signature (`kind` names the extension point)."""

    def __init__(self, kind: str, builtin_modules: Sequence[str] = ()) -> None:
        self.kind = kind
        self._entries: dict[str, F] = {}
        self._builtin_modules = tuple(builtin_modules)
        self._loaded = not self._builtin_modules

    def _load_builtins(self) -> None:
        if self._loaded:
            return
        self._loaded = True  # set first: the built-in modules call register() while importing
        for module in self._builtin_modules:
            importlib.import_module(module)

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator: `@registry.register("name")`; a name already taken raises ValueError."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string; got {name!r}")

        def decorator(fn: F) -> F:
            if fn.__module__ not in self._builtin_modules:  # a plugin: built-ins first, to catch clashes
                self._load_builtins()
            if name in self._entries:
                existing = self._entries[name]
                raise ValueError(
                    f"{self.kind} {name!r} is already registered (by {existing.__module__}."
                    f"{getattr(existing, '__qualname__', existing)}); pick another name")
            self._entries[name] = fn
            return fn

        return decorator

    def get(self, name: str) -> F:
        """The callable registered as `name`; an unknown name raises ValueError listing the known ones."""
        self._load_builtins()
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(self.unknown_message(name)) from None

    def unknown_message(self, name: object) -> str:
        known = self.names()
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.kind} {name!r}.{hint} Registered: {', '.join(known)}"

    def names(self) -> list[str]:
        """Registered names, sorted."""
        self._load_builtins()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_builtins()
        return name in self._entries
