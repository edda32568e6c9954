"""Every name a package promises in `__all__` imports, and `import toolgym` stays light."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PACKAGES = ["toolgym", "toolgym.envs", "toolgym.envs.sandbox", "toolgym.tasks", "toolgym.agents",
            "toolgym.curriculum", "toolgym.trainers"]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_imports(package: str) -> None:
    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if getattr(module, name, None) is None]
    assert missing == []


def test_import_toolgym_is_light() -> None:
    code = ("import sys, toolgym, toolgym.envs, toolgym.envs.sandbox;"
            "heavy = [m for m in ('torch', 'ray', 'transformers', 'vllm', 'e2b_code_interpreter')"
            " if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_attribute_is_a_clear_error() -> None:
    import toolgym

    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        _ = toolgym.nonexistent
