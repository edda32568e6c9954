"""toolgym.tasks: problem families with verifiers, splits and reference solutions; suites.

Imports only `toolgym.envs`. `register_builtin()` registers every built-in family as environment ids
(it is the `toolgym.tasks` entry point). Names load lazily: importing this package imports neither
reasoning-gym nor math-verify.
"""

from toolgym._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "register_builtin": "toolgym.tasks.builtin",
    "ArithFamily": "toolgym.tasks.arith",
    "CountdownFamily": "toolgym.tasks.countdown",
    "MathFamily": "toolgym.tasks.mathgen",
    "ReasoningGymFamily": "toolgym.tasks.rg",
    "rg_split": "toolgym.tasks.rg",
    "CodeFamily": "toolgym.tasks.codegen",
    "CodeSpec": "toolgym.tasks.codegen",
    "load_code_problems": "toolgym.tasks.codegen",
    "extract_code": "toolgym.tasks.codegen",
    "run_tests": "toolgym.tasks.code_harness",
    "JsonlFamily": "toolgym.tasks.jsonl",
    "score_exact": "toolgym.tasks.verifiers",
    "score_numeric": "toolgym.tasks.verifiers",
    "score_math": "toolgym.tasks.verifiers",
    "score_integer": "toolgym.tasks.verifiers",
    "get_verifier": "toolgym.tasks.verifiers",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
