"""`import toolgym` then `gymnasium.make(id)`: every registered id is known to Gymnasium at once
(a fresh interpreter, so no earlier lookup in the test process has loaded the registry)."""

from __future__ import annotations

import subprocess
import sys


def test_gymnasium_make_works_right_after_import_toolgym() -> None:
    code = ("import toolgym, gymnasium\n"
            "env = gymnasium.make('toolgym/arith-v0')\n"
            "obs, info = env.reset(seed=0)\n"
            "print(type(env.unwrapped).__name__, obs[-1]['role'])\n"
            "env.close()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ToolEnv", "user"]
