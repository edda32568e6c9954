"""The dependency direction of DESIGN.md, checked from the source's import statements.

    toolgym (cli)  ->  trainers  ->  curriculum, agents, tasks  ->  envs
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
