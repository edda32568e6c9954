"""Built-in suites: named collections of task ids per split.

A suite's split name is also the instance split to use: `quickstart` trains on arith's "train"
instances and evaluates on its "heldout" instances; `reasoning` trains on the reasoning-gym train
families and evaluates on the held-out families (their "heldout" instances), as R1-Code-Interpreter
evaluates on held-out tasks.
"""

from __future__ import annotations

from toolgym.tasks.rg import rg_split, task_id

ARITH = "toolgym/arith-v0"
ARITH_L2 = "toolgym/arith-l2-v0"  # the same family at level 2 and 3, as their own ids so that one run can
ARITH_L3 = "toolgym/arith-l3-v0"  # mix levels (run.task_options holds one set of kwargs per id)
COUNTDOWN = "toolgym/countdown-v0"
MATH = "toolgym/math-v0"
CODE = "toolgym/code-v0"
JSONL = "toolgym/jsonl-v0"


def builtin_suites() -> dict[str, tuple[dict[str, list[str]], str]]:
    """name -> (split -> task ids, description)."""
    split = rg_split()
    return {
        "quickstart": ({"train": [ARITH], "heldout": [ARITH]},
                       "Integer arithmetic with the interpreter: the CPU quickstart (tiny model)."),
        "reasoning": ({"train": [task_id(g) for g in split["train"]],
                       "heldout": [task_id(g) for g in split["heldout"]]},
                      f"reasoning-gym: {len(split['train'])} train families, {len(split['heldout'])} "
                      "held-out families (tasks/data/rg_split.json)."),
        "math": ({"train": [MATH, COUNTDOWN], "heldout": [MATH, COUNTDOWN]},
                 "Generated math problems (math-verify) and countdown."),
        "code": ({"train": [CODE], "heldout": [CODE]},
                 "Write Python functions and programs that pass hidden unit tests."),
    }
