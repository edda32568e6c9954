"""toolgym.registry.Registry: the one registry behind every name-keyed extension point.

Built-in discovery and entry points are tested on real packages written to a temporary folder on
sys.path (a `*.dist-info/entry_points.txt` is what pip writes for an installed plugin).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from toolgym.registry import Registry, UnknownNameError


def test_register_get_duplicates_and_suggestions() -> None:
    reg: Registry[object] = Registry("widget", hint="See the docs.")
    marker = object()

    @reg.register("alpha")
    def alpha() -> None: ...

    reg.register("beta", marker)
    assert reg.get("alpha") is alpha and reg.get("beta") is marker and reg.names() == ["alpha", "beta"]
    reg.register("beta", marker)  # the very same object again: a no-op (e.g. a module imported twice)
    with pytest.raises(ValueError, match=r"widget 'beta' is already registered"):
        reg.register("beta", object())
    with pytest.raises(UnknownNameError, match=r"unknown widget 'alpah'\. Did you mean 'alpha'\? "
                                               r"Registered: alpha, beta\. See the docs\."):
        reg.get("alpah")
    assert isinstance(UnknownNameError("x"), ValueError) and isinstance(UnknownNameError("x"), LookupError)
    with pytest.raises(ValueError, match="non-empty string"):
        reg.register("", marker)
    reg.unregister("beta")
    assert "beta" not in reg and len(reg) == 1


def _package(root: Path, name: str, files: dict[str, str]) -> None:
    (root / name).mkdir()
    for module, text in {"__init__.py": "", **files}.items():
        (root / name / module).write_text(text)


def test_builtins_by_pattern_are_imported_on_first_lookup(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    reg_module = "from toolgym.registry import Registry\nREG = Registry('gadget', builtins=['gpkg.impl_*'])\n"
    _package(tmp_path, "gpkg", {
        "reg.py": reg_module,
        "impl_one.py": "from gpkg.reg import REG\nREG.register('one', 1)\n",
        "impl_two.py": "from gpkg.reg import REG\nREG.register('two', 2)\n",
        "_impl_private.py": "from gpkg.reg import REG\nREG.register('private', 0)\n",
        "other.py": "from gpkg.reg import REG\nREG.register('other', 3)\n",
    })
    from gpkg.reg import REG  # type: ignore[import-not-found]

    assert "gpkg.impl_one" not in sys.modules  # nothing imported before a lookup
    assert REG.names() == ["one", "two"]  # impl_* only; private modules skipped
    assert REG.get("two") == 2


def test_entry_point_plugins_register_under_their_name_and_a_broken_one_is_named(tmp_path: Path,
                                                                               monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    _package(tmp_path, "eppkg", {"things.py": "def fancy():\n    return 'fancy'\n"})
    dist = tmp_path / "eppkg-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: eppkg\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[test.toolgym.things]\nfancy = eppkg.things:fancy\n"
                                           "[test.toolgym.broken]\nbad = eppkg.missing:nothing\n")
    things: Registry[object] = Registry("thing", entry_points="test.toolgym.things")
    assert things.names() == ["fancy"] and things.get("fancy")() == "fancy"
    broken: Registry[object] = Registry("thing", entry_points="test.toolgym.broken")
    with pytest.raises(ImportError, match=r"the thing plugin 'bad' \(eppkg.missing:nothing, entry-point "
                                          r"group 'test.toolgym.broken'\) failed to import"):
        broken.names()
