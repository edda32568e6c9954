"""One name -> object registry for every name-keyed extension point of toolgym.

Losses, advantage estimators, curriculum schedulers, tool-call parsers, sandbox backends, verifiers
and metric sinks are all looked up by a name written in a recipe or on the command line. They share
this class so that they behave the same way for users:

- registering a name twice raises (a silent overwrite would make the trained algorithm depend on
  import order); registering the very same object again is a no-op;
- an unknown name raises `UnknownNameError`, naming the closest registered names first;
- built-ins are found without a hand-kept list: `builtins` names modules, or a package pattern
  `"pkg.prefix*"` meaning every public module of `pkg` whose name starts with `prefix` (`"pkg.*"`:
  every public module; names starting with "_" are private and skipped), imported on first lookup so
  that `import toolgym` stays light;
- third-party packages register from their own distribution through an entry-point group
  (`[project.entry-points."toolgym.schedulers"] my-sched = "my_pkg.sched:MyScheduler"`): the entry
  point's object is registered under its name (or, when it is a module, importing it is enough).

This module sits on the ground floor beside `_lazy.py`: every subpackage, `envs` included, may use it.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import pkgutil
import threading
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class UnknownNameError(LookupError, ValueError):
    """An unknown registered name; the message names close matches and the known names.

    A `LookupError` by nature, and a `ValueError` because the name came from user input.
    """


def did_you_mean(name: object, known: Sequence[str], n: int = 1) -> str:
    """`" Did you mean 'x' or 'y'?"` for the names in `known` closest to `name`, else ``""``."""
    close = difflib.get_close_matches(str(name), list(known), n=n, cutoff=0.6)
    return f" Did you mean {' or '.join(map(repr, close))}?" if close else ""


class Registry(Generic[T]):
    """Maps names to objects of one kind (`kind` names the extension point in messages)."""

    def __init__(self, kind: str, builtins: Sequence[str] = (), entry_points: str | None = None,
                 hint: str = "") -> None:
        self.kind = kind
        self.entry_point_group = entry_points
        self.hint = hint  # appended to the unknown-name message: where to look, what to do
        self._entries: dict[str, T] = {}
        self._builtins = tuple(builtins)
        self._builtins_loaded = not self._builtins
        self._plugins_loaded = entry_points is None
        self._lock = threading.RLock()

    # ---- registration -----------------------------------------------------------------------
    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T) -> T: ...

    def register(self, name: str, obj: Any = None) -> Any:
        """`@registry.register("name")` as a decorator, or `registry.register("name", obj)`."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a {self.kind} name must be a non-empty string; got {name!r}")
        if obj is not None:
            return self._add(name, obj)
        return lambda target: self._add(name, target)

    def _add(self, name: str, obj: T) -> T:
        with self._lock:
            if not self._is_builtin(obj):  # a plugin: built-ins first, so that a clash is caught
                self._load_builtins()
            existing = self._entries.get(name)
            if existing is not None and existing is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered (by {_describe(existing)}); "
                                 f"pick another name for {_describe(obj)}")
            self._entries[name] = obj
        return obj

    def unregister(self, name: str) -> None:
        """Remove `name` (a plugin's tests clean up with this); an unknown name raises."""
        with self._lock:
            self._load_all()
            if name not in self._entries:
                raise self._unknown(name)
            del self._entries[name]

    # ---- lookup -----------------------------------------------------------------------------
    def get(self, name: str) -> T:
        """The object registered as `name`; an unknown name raises `UnknownNameError`."""
        self._load_all()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise self._unknown(name) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        self._load_all()
        return sorted(self._entries)

    def check(self, name: object) -> None:
        """Raise `UnknownNameError` unless `name` is registered (for up-front config checks)."""
        if name not in self:
            raise self._unknown(name)

    def unknown_message(self, name: object) -> str:
        known = self.names()
        listing = ", ".join(known) or "(none)"
        hint = f" {self.hint}" if self.hint else ""
        return f"unknown {self.kind} {name!r}.{did_you_mean(name, known)} Registered: {listing}.{hint}"

    def __contains__(self, name: object) -> bool:
        self._load_all()
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} registered)"

    def _unknown(self, name: object) -> UnknownNameError:
        return UnknownNameError(self.unknown_message(name))

    # ---- discovery --------------------------------------------------------------------------
    def _load_all(self) -> None:
        self._load_builtins()
        self._load_plugins()

    def _is_builtin(self, obj: object) -> bool:
        module = getattr(obj, "__module__", None) or getattr(obj, "__name__", "")
        return any(module == b or (b.endswith("*") and module.startswith(b[:-1])) for b in self._builtins)

    def _load_builtins(self) -> None:
        with self._lock:
            if self._builtins_loaded:
                return
            self._builtins_loaded = True  # set first: the built-in modules register while importing
            try:
                for module in _expand(self._builtins):
                    importlib.import_module(module)
            except BaseException:
                self._builtins_loaded = False  # a broken built-in is a bug: raise again next time
                raise

    def _load_plugins(self) -> None:
        with self._lock:
            if self._plugins_loaded:
                return
            self._plugins_loaded = True
            for ep in importlib.metadata.entry_points(group=self.entry_point_group or ""):
                self._load_entry_point(ep)

    def _load_entry_point(self, ep: importlib.metadata.EntryPoint) -> None:
        group = self.entry_point_group
        where = f"the {self.kind} plugin {ep.name!r} ({ep.value}, entry-point group {group!r})"
        try:
            obj = ep.load()
        except Exception as exc:
            raise ImportError(f"{where} failed to import: {type(exc).__name__}: {exc}. Fix or uninstall "
                              "the package that provides it.") from exc
        if isinstance(obj, types.ModuleType):
            return  # importing the module registered what it holds
        if self._entries.get(ep.name) is not obj:
            self._add(ep.name, obj)


def _expand(builtins: Sequence[str]) -> list[str]:
    """Module names from `builtins`, patterns `"pkg.prefix*"` expanded over the package's modules."""
    modules: list[str] = []
    for item in builtins:
        if not item.endswith("*"):
            modules.append(item)
            continue
        package_name, _, prefix = item[:-1].rpartition(".")
        package = importlib.import_module(package_name)
        found = sorted(m.name for m in pkgutil.iter_modules(package.__path__)
                       if m.name.startswith(prefix) and not m.name.startswith("_"))
        modules += [f"{package_name}.{name}" for name in found]
    return modules


def _describe(obj: object) -> str:
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    return f"{module}.{qualname}" if module and qualname else repr(obj)
