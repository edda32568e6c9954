"""No import circle anywhere in toolgym, lazy imports and lazy-export maps included."""

from __future__ import annotations

from pathlib import Path

from import_graph import build_graph


def test_toolgym_has_no_import_cycle() -> None:
    graph = build_graph()
    assert len(graph.modules) > 100  # the whole package was read, not an empty folder
    assert graph.cycles() == []


def _tree(root: Path, files: dict[str, str]) -> None:
    (root / "pyproject.toml").write_text('[tool.setuptools.package-dir]\n"pkg" = "pkg"\n')
    (root / "pkg").mkdir()
    for name, text in files.items():
        (root / "pkg" / name).write_text(text)


def test_a_lazy_import_cycle_is_found(tmp_path: Path) -> None:
    _tree(tmp_path, {"__init__.py": "", "a.py": "import pkg.b\n",
                     "b.py": "def f():\n    from pkg import a\n    return a\n"})
    assert build_graph(tmp_path).cycles() == [["pkg.a", "pkg.b"]]


def test_a_cycle_through_a_lazy_export_map_is_found(tmp_path: Path) -> None:
    _tree(tmp_path, {"__init__.py": '_EXPORTS = {"thing": "pkg.impl"}\n',
                     "impl.py": "from pkg import other_name\n", "free.py": "from pkg import impl\n"})
    assert build_graph(tmp_path).cycles() == [["pkg", "pkg.impl"]]


def test_an_acyclic_tree_has_no_cycle(tmp_path: Path) -> None:
    _tree(tmp_path, {"__init__.py": "", "a.py": "from pkg import b\n", "b.py": "import importlib\n",
                     "c.py": "import importlib\nimportlib.import_module('pkg.a')\n"})
    graph = build_graph(tmp_path)
    assert graph.cycles() == []
    assert graph.targets("pkg.c") == {"pkg.a"} and graph.targets("pkg.a") == {"pkg.b"}
