"""Shared by the benchmark scripts: write a result dict as JSON to `--out` (folders created)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_json(result: dict[str, Any], out: str | Path) -> Path:
    """Write `result` as indented JSON to `out`, print where, and return the path."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return path
