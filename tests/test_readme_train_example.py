"""The README's "Train on your own tasks" example runs as written and prints what it says."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Train on your own tasks"


def test_the_train_on_your_own_tasks_example_runs_as_written(tmp_path: Path) -> None:
    text = README.read_text()
    start = text.index(SECTION)
    body = text[start:text.find("\n## ", start + len(SECTION))]
    code = re.search(r"```python\n(.*?)\n```\n", body, re.DOTALL)
    assert code is not None, "the section has no ```python example"
    (tmp_path / "example.py").write_text(code.group(1) + "\n")
    out = subprocess.run([sys.executable, "example.py"], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    printed = out.stdout.strip().splitlines()[-1]
    assert printed == "['me/count-primes-v0'] 4 1" and f"It prints `{printed}`" in body
    run = tmp_path / "runs" / "count-primes"
    evals = json.loads((run / "eval" / "step_000000.json").read_text())
    assert evals["config"]["split"] == "heldout" and evals["config"]["tasks"] == ["me/count-primes-v0"]
    assert "me/count-primes-v0" in (run / "config.yaml").read_text()
