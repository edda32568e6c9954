"""The dependency direction of DESIGN.md, checked from the source's import statements.

    toolgym (cli)  ->  trainers  ->  curriculum, agents, tasks  ->  envs

and inside trainers/, five rooms with a one-way rule:

    run  ->  learner  ->  config  ->  algo          report: on its own
    (run may import every room and is the only one with Ray; algo and report import no other room)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"envs": "envs", "tasks": "tasks", "agents": "agents", "curriculum": "curriculum",
           "trainers": "trainers", "toolgym": "toolgym"}
# package -> toolgym subpackages it may import
ALLOWED = {
    "envs": set(),
    "tasks": {"envs"},
    "agents": {"envs"},
    "curriculum": {"envs"},
    "trainers": {"envs", "tasks", "agents", "curriculum"},
    "toolgym": {"envs", "tasks", "agents", "curriculum", "trainers"},
}
HEAVY_FORBIDDEN_IN_ENVS = {"torch", "ray", "transformers", "vllm"}
SUBPACKAGES = {"envs", "tasks", "agents", "curriculum", "trainers"}


def imported_modules(path: Path, package: str) -> list[tuple[int, str]]:
    """Absolute module names imported by a file, with relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    rel = path.relative_to(ROOT / FOLDERS[package]).with_suffix("")
    own = ["toolgym", *([] if package == "toolgym" else [package]), *rel.parts]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = own[: len(own) - node.level]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return found


def violations(package: str) -> list[str]:
    problems = []
    for path in sorted((ROOT / FOLDERS[package]).rglob("*.py")):
        for lineno, module in imported_modules(path, package):
            parts = module.split(".")
            where = f"{path.relative_to(ROOT)}:{lineno} imports {module}"
            if parts[0] == "toolgym" and len(parts) > 1 and parts[1] in SUBPACKAGES:
                target = parts[1]
                if target != package and target not in ALLOWED[package]:
                    problems.append(where)
            if package == "envs" and parts[0] in HEAVY_FORBIDDEN_IN_ENVS:
                problems.append(where + " (envs must not import heavy frameworks)")
    return problems


# trainers room -> the other rooms it may import (the top-level trainers/__init__ is the lazy public map)
ROOMS = ("algo", "config", "learner", "run", "report")
ROOM_ALLOWED = {
    "algo": set(),
    "config": {"algo"},
    "learner": {"algo", "config"},
    "run": {"algo", "config", "learner", "report"},
    "report": set(),
}
RAY_ROOMS = {"run"}


def room_violations(trainers: Path = ROOT / "trainers") -> list[str]:
    """Imports that break the room rules, as 'file:line imports module' strings."""
    problems = []
    for room in ROOMS:
        for path in sorted((trainers / room).rglob("*.py")):
            for lineno, module in imported_modules(path, "trainers"):
                parts = module.split(".")
                where = f"{path.relative_to(trainers.parent)}:{lineno} imports {module}"
                if parts[:2] == ["toolgym", "trainers"]:
                    target = parts[2] if len(parts) > 2 else "(the trainers package)"
                    if target != room and target not in ROOM_ALLOWED[room]:
                        problems.append(where)
                if parts[0] == "ray" and room not in RAY_ROOMS:
                    problems.append(where + " (only trainers/run may import Ray)")
    return problems


def test_trainers_top_level_holds_only_the_rooms() -> None:
    top = {p.name for p in (ROOT / "trainers").iterdir() if p.name != "__pycache__"}
    assert top == {"__init__.py", *ROOMS}


def test_trainers_rooms_import_one_way() -> None:
    assert room_violations() == []


def test_room_checker_catches_a_backward_import() -> None:
    """The room checker must flag a backward import and Ray outside run/ (it is not vacuous)."""
    bad = ROOT / "trainers" / "algo" / "_layering_probe_tmp.py"
    bad.write_text("from toolgym.trainers.run import driver\nimport ray\n")
    try:
        found = room_violations()
    finally:
        bad.unlink()
    assert any("imports toolgym.trainers.run" in v for v in found)
    assert any("only trainers/run may import Ray" in v for v in found)


@pytest.mark.parametrize("package", sorted(FOLDERS))
def test_no_upward_imports(package: str) -> None:
    assert violations(package) == []


def test_checker_catches_an_upward_import(tmp_path: Path) -> None:
    """The checker itself must flag a violation (guards against a checker that finds nothing)."""
    bad = ROOT / "envs" / "_layering_probe_tmp.py"
    bad.write_text("from toolgym.trainers import losses\nimport torch\n")
    try:
        found = violations("envs")
    finally:
        bad.unlink()
    assert any("toolgym.trainers" in v for v in found)
    assert any("heavy" in v for v in found)
