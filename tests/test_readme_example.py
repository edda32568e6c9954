"""The README's "Register your own task family" example runs as written and prints what it says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Register your own task family"


def section() -> str:
    text = README.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start:end if end >= 0 else len(text)]


def test_the_example_runs_as_written(tmp_path: Path) -> None:
    body = section()
    code = re.search(r"```python\n(.*?)\n```\n", body, re.DOTALL)
    assert code is not None, "the section has no ```python example"
    script = tmp_path / "example.py"
    script.write_text(code.group(1) + "\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    printed = out.stdout.strip()
    assert printed == "answered True 1.1 {'correctness': 1.0, 'format': 0.1, 'budget': 0.0}"
    assert f"It prints `{printed}`" in body  # the text around the example says what it prints
