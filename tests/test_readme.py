"""The README starts with exactly the two commands a new user runs, and CI runs the second one."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    first_block = re.search(r"```(?:bash|sh)?\n(.*?)```", text, re.S)
    assert first_block, "README.md must start with a code block holding the two commands"
    before = text[: first_block.start()]
    assert "```" not in before
    return [line for line in first_block.group(1).splitlines() if line.strip()]


def test_readme_starts_with_two_commands() -> None:
    commands = readme_commands()
    assert len(commands) == 2
    run_cmd, test_cmd = commands
    assert "toolgym" in run_cmd and "pytest" in test_cmd
    for command in commands:  # each does its own set-up, CPU torch first
        assert command.startswith("pip install -q torch==2.13.0")


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in ci


def test_readme_sandbox_example_runs_as_written() -> None:
    import subprocess
    import sys

    text = (ROOT / "README.md").read_text()
    section = text.split("## The sandbox", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["42", "22"]
