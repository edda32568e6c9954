"""Lazy attribute exports for package `__init__` modules (PEP 562).

Heavy modules (torch, transformers, ray) load only when a name that needs them is first used, which
keeps `import toolgym` fast and lets it work without optional extras installed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """Return a module `__getattr__` resolving `name` from `exports[name]` (a module path)."""

    def __getattr__(name: str) -> Any:
        module_name = exports.get(name)
        if module_name is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module_name), name)

    return __getattr__
