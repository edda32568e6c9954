"""No knob without an effect: every config field reachable from TrainConfig is read outside the
config modules (an attribute access `.field`, or the field's name as a string for dynamic reads).

A field only the schema mentions would validate and then do nothing; the allow-list names the few
that legitimately live inside the config modules, each with why. The effect of each setting is shown
by its own test (the test that changes it and observes the trainer); this one catches the knob that has
none.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from toolgym.trainers.config.schema import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
CONFIG_MODULES = {ROOT / "trainers" / "config", ROOT / "trainers" / "algo" / "loss_config.py"}
SOURCES = ("trainers", "agents", "envs", "curriculum", "tasks", "toolgym")
# section.field -> why it is read only inside the config modules
ALLOWED: dict[str, str] = {
    "run.task_options": "read by config.checks.task_kwargs, which every environment builder calls",
}


def _config_file(path: Path) -> bool:
    return any(path == c or c in path.parents for c in CONFIG_MODULES)


def names_read_outside_the_config() -> set[str]:
    seen: set[str] = set()
    for folder in SOURCES:
        for path in (ROOT / folder).rglob("*.py"):
            if _config_file(path) or "__pycache__" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Attribute):
                    seen.add(node.attr)
                elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                    seen.add(node.value)
    return seen


def config_fields() -> list[tuple[str, str]]:
    out = []
    for section in dataclasses.fields(TrainConfig):
        cls = type(getattr(TrainConfig(), section.name))
        out += [(section.name, f.name) for f in dataclasses.fields(cls)]
    assert {("loss", "kl_reference"), ("sampling", "top_k")} <= set(out)  # every section was walked
    return out


def test_every_config_field_is_read_outside_the_config_modules() -> None:
    read = names_read_outside_the_config()
    unread = [f"{s}.{f}" for s, f in config_fields() if f not in read and f"{s}.{f}" not in ALLOWED]
    assert unread == [], f"config fields read nowhere outside the config modules: {unread}"


def test_the_check_catches_an_unread_field() -> None:
    """A name no module reads is reported (the check is not vacuous)."""
    assert "no_module_reads_this_field_xyz" not in names_read_outside_the_config()
    assert "top_k" in names_read_outside_the_config()  # read by the engines (it once was not)
