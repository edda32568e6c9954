"""`register_builtin()`: the entry point (group `toolgym.tasks`) that registers toolgym's own families.

It imports no heavy library: reasoning-gym ids come from the shipped split file, and families are
registered by "module:factory" strings, so nothing is built until an environment is made.
"""

from __future__ import annotations

from toolgym.envs.registry import register, register_suite
from toolgym.tasks.jsonl import example_path
from toolgym.tasks.rg import rg_split, task_id
from toolgym.tasks.suites import ARITH, ARITH_L2, ARITH_L3, CODE, COUNTDOWN, JSONL, MATH, builtin_suites

_FAMILIES = [
    (ARITH, "toolgym.tasks.arith:make_arith", {},
     "Integer arithmetic (big products, modular powers, series); family kwarg level=1|2|3."),
    (ARITH_L2, "toolgym.tasks.arith:make_arith", {"level": 2},
     "Integer arithmetic at level 2: varied wording, bigger numbers, series (arith-v0 with level=2)."),
    (ARITH_L3, "toolgym.tasks.arith:make_arith", {"level": 3},
     "Integer arithmetic at level 3: multi-step programs (digit sums, Fibonacci, primes; level=3)."),
    (COUNTDOWN, "toolgym.tasks.countdown:make_countdown", {},
     "Reach a target from given numbers with + - * /; family kwarg n_numbers (default 4)."),
    (MATH, "toolgym.tasks.mathgen:make_math", {},
     "Generated math problems with exact answers, checked with math-verify."),
    (CODE, "toolgym.tasks.codegen:make_code", {},
     "Write Python code that passes hidden unit tests; kwargs reward='soft'|'hard', path=APPS/TACO JSONL."),
]


def register_builtin() -> None:
    """Register every built-in task id and suite (idempotent)."""
    for task, entry_point, kwargs, description in _FAMILIES:
        register(task, entry_point, kwargs=kwargs, description=description)
    register(JSONL, "toolgym.tasks.jsonl:make_jsonl", kwargs={"path": example_path()},
             description="Your question/answer JSONL: path=FILE, verifier='exact'|'numeric'|'math' "
                         "(defaults to a 12-question example file).")
    split = rg_split()
    # A held-out family is declared held-out only, so that no trainer or curriculum can sample it:
    # `make(id)` (split "train") refuses it and the curriculum's train-split check rejects it.
    for kind, splits in (("train", ("train", "heldout")), ("heldout", ("heldout",))):
        for generator in split[kind]:
            register(task_id(generator), "toolgym.tasks.rg:make_rg", kwargs={"generator": generator},
                     splits=splits,
                     description=f"reasoning-gym '{generator}' ({kind} family of the reasoning suite).")
    for name, (splits, description) in builtin_suites().items():
        register_suite(name, splits, description)
