"""`code`: "write a function / a program" problems scored by unit tests run in the sandbox.

Why: code is the second pillar of the recipes this project follows (Klear-Reasoner, DeepCoder,
AceReason): rewards come from executing hidden unit tests. `reward="soft"` gives the pass rate,
`reward="hard"` gives 1 only when every test passes; only a perfect score counts as correct.

Problems: 41 of our own ship in tasks/data/code_problems.jsonl (35 function problems, 6 stdin
programs), and any APPS/TACO-style JSONL a user supplies loads with `load_code_problems(path)`:
`question`, tests either as `input_output` (JSON string or object with `inputs`, `outputs`, optional
`fn_name`, as in APPS/TACO) or as flat `inputs`/`outputs`/`fn_name`, optional `starter_code`,
`solution`/`solutions`, `id`/`problem_id`, and an optional `split` field. With `fn_name` each input is
the list of positional arguments; without it inputs and outputs are stdin/stdout texts.

Splits: a row's `split` field ("train", or "heldout"/"test"/"validation"/...) when present, else a
stable hash of the problem id (a fifth held out). Finite sets cycle: instance `index` of a split is
problem `index % n`. The reference solution, when known, is `Problem.answer` (the teacher answers with
it; there is no separate program to run, so `reference_code` is None).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from toolgym.envs.task import Problem, Score, SessionFactory
from toolgym.tasks.code_harness import run_tests
from toolgym.tasks.common import DEFAULT_SPLITS, check_choice, check_index, check_split

BUILTIN_FILE = "data/code_problems.jsonl"
MAX_CODE_CHARS = 100_000
_FENCE_RE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_HELDOUT_NAMES = {"heldout", "held-out", "test", "eval", "validation", "valid", "dev"}


@dataclass(frozen=True)
class CodeSpec:
    """One code problem with its tests (outputs never leave this process)."""

    id: str
    question: str
    inputs: list[Any]
    outputs: list[Any]
    fn_name: str | None = None  # None: stdin/stdout program
    starter_code: str = ""
    solution: str | None = None
    split: str | None = None
    wrapped_outputs: bool = False  # APPS call-based data: expected value may be wrapped in a 1-list


def _maybe_json(value: Any, what: str, where: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise ValueError(f"{where}: field {what!r} is a string but not valid JSON ({exc})") from exc
    return value


def _as_text(value: Any) -> str:
    return "\n".join(map(str, value)) if isinstance(value, list) else str(value)


def normalize_record(row: dict[str, Any], where: str = "record") -> CodeSpec:
    """A CodeSpec from one JSONL row in our flat format or the APPS/TACO format."""
    if not isinstance(row, dict) or not row.get("question"):
        raise ValueError(f"{where}: needs a non-empty 'question' (and tests as 'input_output' or "
                         "'inputs'/'outputs')")
    tests, wrapped = row, False
    if "input_output" in row:
        tests, wrapped = _maybe_json(row["input_output"], "input_output", where), True
    inputs, outputs = tests.get("inputs"), tests.get("outputs")
    lists = isinstance(inputs, list) and isinstance(outputs, list)
    if not lists or not inputs or len(inputs) != len(outputs):
        raise ValueError(f"{where}: tests need non-empty lists 'inputs' and 'outputs' of equal length")
    fn_name = tests.get("fn_name") or row.get("fn_name") or None
    if fn_name is None:
        inputs, outputs = [_as_text(x) for x in inputs], [_as_text(y) for y in outputs]
    elif not all(isinstance(x, list) for x in inputs):
        raise ValueError(f"{where}: with fn_name {fn_name!r} each input must be a list of arguments")
    solutions = _maybe_json(row.get("solutions"), "solutions", where) if row.get("solutions") else None
    solution = row.get("solution") or (solutions[0] if isinstance(solutions, list) and solutions else None)
    pid = str(row.get("id", row.get("problem_id", hashlib.sha256(row["question"].encode()).hexdigest()[:12])))
    return CodeSpec(id=pid, question=row["question"], inputs=inputs, outputs=outputs, fn_name=fn_name,
                    starter_code=row.get("starter_code") or "", solution=solution, split=row.get("split"),
                    wrapped_outputs=wrapped)


def load_code_problems(path: str | Path | None = None) -> list[CodeSpec]:
    """Problems from a JSONL file (one object per line), or the built-in set when `path` is None."""
    if path is None:
        text, name = resources.files("toolgym.tasks").joinpath(BUILTIN_FILE).read_text("utf-8"), BUILTIN_FILE
    else:
        if not Path(path).is_file():
            raise FileNotFoundError(f"code problems file {path} does not exist (JSONL, one problem a line)")
        text, name = Path(path).read_text("utf-8"), str(path)
    specs = []
    for line_no, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{name}:{line_no}: not valid JSON ({exc})") from exc
            specs.append(normalize_record(row, f"{name}:{line_no}"))
    if not specs:
        raise ValueError(f"{name}: no problems found")
    return specs


def extract_code(answer: str) -> str:
    """The last fenced Python block of the answer, or the whole answer when it has no fence."""
    blocks = _FENCE_RE.findall(answer)
    return (blocks[-1] if blocks else answer).strip("\n")


def _split_of(spec: CodeSpec, heldout_fraction: float) -> str:
    if spec.split is not None:
        value = str(spec.split).lower()
        if value == "train":
            return "train"
        if value in _HELDOUT_NAMES:
            return "heldout"
        raise ValueError(f"problem {spec.id}: unknown split {spec.split!r}; use 'train' or one of "
                         f"{sorted(_HELDOUT_NAMES)}")
    bucket = int(hashlib.sha256(f"toolgym-code:{spec.id}".encode()).hexdigest(), 16) % 10_000
    return "heldout" if bucket < heldout_fraction * 10_000 else "train"


@dataclass
class CodeFamily:
    """Code problems from `path` (JSONL) or the built-in set; `reward` is "soft" or "hard"."""

    path: str | None = None
    reward: str = "soft"
    per_test_timeout: float = 4.0
    heldout_fraction: float = 0.2
    name: str = "code"
    splits: tuple[str, ...] = DEFAULT_SPLITS
    tool_format: str = "fenced"
    description: str = field(init=False, default="")
    by_split: dict[str, list[CodeSpec]] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        check_choice(self.name, "reward", self.reward, ["soft", "hard"])
        specs = load_code_problems(self.path)
        split_of = {p.id: _split_of(p, self.heldout_fraction) for p in specs}
        self.by_split = {s: [p for p in specs if split_of[p.id] == s] for s in self.splits}
        self._by_id = {p.id: p for p in specs}
        source = self.path or "the built-in set"
        counts = ", ".join(f"{len(v)} {k}" for k, v in self.by_split.items())
        self.description = (f"Write Python code that passes hidden unit tests ({source}: {counts}); "
                            f"{self.reward} reward.")

    def num_problems(self, split: str) -> int:
        """How many distinct problems `split` has (indices beyond it cycle)."""
        check_split(self.name, split, self.splits)
        return len(self.by_split[split])

    def problem(self, split: str, index: int) -> Problem:
        check_split(self.name, split, self.splits)
        check_index(self.name, index)
        pool = self.by_split[split]
        if not pool:
            source = self.path or "the built-in set"
            raise ValueError(f"{self.name}: split {split!r} has no problems in {source}")
        spec = pool[index % len(pool)]
        return Problem(prompt=_prompt(spec), answer=spec.solution, index=index, split=split,
                       metadata={"problem_id": spec.id, "fn_name": spec.fn_name, "n_tests": len(spec.inputs)})

    def verify(self, problem: Problem, answer: str, new_session: SessionFactory) -> Score:
        spec = self._by_id[problem.metadata["problem_id"]]
        code = extract_code(answer)
        if not code.strip():
            return Score(0.0, "no code in the answer")
        if len(code) > MAX_CODE_CHARS:
            return Score(0.0, f"code too long ({len(code)} > {MAX_CODE_CHARS} chars)")
        try:
            compile(code, "<answer>", "exec")
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            return Score(0.0, f"the code does not compile: {type(exc).__name__}: {exc}"[:300])
        report = run_tests(code, spec.inputs, spec.outputs, spec.fn_name, new_session, self.per_test_timeout,
                           wrapped_outputs=spec.wrapped_outputs)
        n_pass, n = sum(report.passed), len(report.passed)
        value = report.pass_rate if self.reward == "soft" else float(n_pass == n)
        detail = f"{n_pass}/{n} tests passed" + (f"; {report.first_failure}" if report.first_failure else "")
        return Score(value, detail)


def _prompt(spec: CodeSpec) -> str:
    parts = [spec.question.strip()]
    if spec.starter_code.strip():
        parts.append(f"Starter code:\n```python\n{spec.starter_code.rstrip()}\n```")
    if spec.fn_name:
        parts.append(f"Answer with the complete Python code defining `{spec.fn_name}` (in a ```python "
                     "block). It will be run against hidden unit tests.")
    else:
        parts.append("Answer with a complete Python program (in a ```python block) that reads standard input "
                     "and writes standard output. It will be run against hidden tests.")
    return "\n\n".join(parts)


def make_code(path: str | None = None, reward: str = "soft", per_test_timeout: float = 4.0,
              heldout_fraction: float = 0.2) -> CodeFamily:
    """Factory for `toolgym/code-v0`: built-in problems, or an APPS/TACO-style JSONL at `path`."""
    return CodeFamily(path=path, reward=reward, per_test_timeout=per_test_timeout,
                      heldout_fraction=heldout_fraction)
