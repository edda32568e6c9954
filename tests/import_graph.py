"""The import graph of toolgym's own modules, read from the source (not by importing it).

Module names come from pyproject's `package-dir` table, so the graph sees what the wheel ships. An
edge A -> B means that running A can import B:
- every `import` / `from ... import` statement, at module level or inside a function (lazy imports
  are imports all the same); `from P import name` is an edge to `P.name` when that is a module, else
  to `P`;
- `importlib.import_module("literal")`;
- a package `__init__`'s lazy-export map (`_EXPORTS`): every string value naming a module (PEP 562
  `__getattr__` imports it on first attribute access).
Registries import their built-ins by discovery (a package pattern, like plugins), not by naming a
module; those are not edges of the module that defines the registry.
"""

from __future__ import annotations

import ast
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Module name -> source file, for every module of every package pyproject maps."""
    package_dir = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    modules: dict[str, Path] = {}
    for package, folder in package_dir.items():
        for path in sorted((root / folder).glob("*.py")):
            modules[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return modules


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int


@dataclass
class ImportGraph:
    modules: dict[str, Path]
    edges: list[Edge] = field(default_factory=list)

    def targets(self, module: str) -> set[str]:
        return {e.target for e in self.edges if e.source == module}

    def cycles(self) -> list[list[str]]:
        """Strongly connected components with more than one module (or a self-import), sorted."""
        return sorted(sorted(c) for c in _strongly_connected(self.modules, self) if _is_cycle(c, self))


def build_graph(root: Path = ROOT) -> ImportGraph:
    graph = ImportGraph(module_files(root))
    for name, path in graph.modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, target in _imports(tree, name, path.stem == "__init__", graph.modules):
            if target in graph.modules and target != name:
                graph.edges.append(Edge(name, target, line))
    return graph


def _imports(tree: ast.AST, me: str, is_package: bool, modules: dict[str, Path]) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, me, is_package)
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.append((node.lineno, child if child in modules else base))
        elif isinstance(node, ast.Call) and _called_name(node) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
        elif is_package and isinstance(node, ast.Dict):
            found += [(v.lineno, v.value.partition(":")[0]) for v in node.values
                      if isinstance(v, ast.Constant) and isinstance(v.value, str)]
    return found


def _absolute(node: ast.ImportFrom, me: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = me.split(".") if is_package else me.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def _called_name(node: ast.Call) -> str:
    return getattr(node.func, "attr", getattr(node.func, "id", ""))


def _is_cycle(component: list[str], graph: ImportGraph) -> bool:
    return len(component) > 1 or component[0] in graph.targets(component[0])


def _strongly_connected(modules: dict[str, Path], graph: ImportGraph) -> list[list[str]]:
    """Tarjan's algorithm, iterative (the graph is small, but recursion limits are not our concern)."""
    adjacency = {m: sorted(graph.targets(m)) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in adjacency:
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            successors = adjacency[node]
            if i < len(successors):
                work.append((node, i + 1))
                nxt = successors[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
    return components
