"""`jsonl`: any user file of question/answer pairs, with a chosen verifier (exact, numeric, math).

Why: the quickest way to bring your own data (a benchmark, a homework set) into an environment,
without writing a family. One JSON object per line with a question and an answer field (names
configurable). Splits: the row's split field when it has one ("train", or "heldout"/"test"/
"validation"/...), else a stable hash of the question (`heldout_fraction` of rows held out), so the
split of a row never depends on the order or size of the file. The file is finite: instance `index`
of a split is row `index % n` of that split.

Verifiers: "exact" (normalised text: delimiters, `\\boxed{}`, trailing full stop, whitespace and
case), "numeric" (exact rationals with a relative tolerance of 1e-6, none between two integers;
every reference answer must be a number, checked at load time), "math" (math-verify equivalence,
time-bounded).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from toolgym.envs.task import Problem, Score, SessionFactory
from toolgym.tasks.common import DEFAULT_SPLITS, check_choice, check_index, check_split
from toolgym.tasks.verifiers import get_verifier, parse_number

VERIFIER_NAMES = ("exact", "numeric", "math")
HELDOUT_NAMES = ("heldout", "held-out", "test", "eval", "validation", "valid", "dev")
EXAMPLE_FILE = "data/example_qa.jsonl"


def example_path() -> str:
    """The path of the small example file shipped with toolgym (the default of toolgym/jsonl-v0)."""
    return str(resources.files("toolgym.tasks").joinpath(EXAMPLE_FILE))


@dataclass(frozen=True)
class QARow:
    question: str
    answer: Any
    split: str


def split_name(value: Any, where: str) -> str:
    """'train' or 'heldout' from a split field's value; other values are an error naming the allowed."""
    text = str(value).lower()
    if text == "train":
        return "train"
    if text in HELDOUT_NAMES:
        return "heldout"
    raise ValueError(f"{where}: unknown split {value!r}; use 'train' or one of {', '.join(HELDOUT_NAMES)}")


def hashed_split(key: str, heldout_fraction: float) -> str:
    """'heldout' for a stable `heldout_fraction` of keys, 'train' for the rest."""
    bucket = int(hashlib.sha256(f"toolgym-jsonl:{key}".encode()).hexdigest(), 16) % 10_000
    return "heldout" if bucket < heldout_fraction * 10_000 else "train"


def load_qa(path: str | Path, question_field: str = "question", answer_field: str = "answer",
            split_field: str = "split", heldout_fraction: float = 0.2) -> list[QARow]:
    """Rows of a question/answer JSONL file, each with its split."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"jsonl task file {path} does not exist (JSONL: one object per line with "
                                f"{question_field!r} and {answer_field!r} fields)")
    rows = []
    for line_no, line in enumerate(file.read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{where}: not valid JSON ({exc})") from exc
        missing = [f for f in (question_field, answer_field) if not isinstance(row, dict) or f not in row]
        if missing:
            raise ValueError(f"{where}: missing field(s) {missing}; set question_field=/answer_field= to "
                             "the names your file uses")
        question = str(row[question_field])
        split = (split_name(row[split_field], where) if split_field in row
                 else hashed_split(question, heldout_fraction))
        rows.append(QARow(question=question, answer=row[answer_field], split=split))
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


@dataclass
class JsonlFamily:
    """Question/answer pairs from `path`, scored by `verifier` ("exact", "numeric" or "math")."""

    path: str
    verifier: str = "exact"
    question_field: str = "question"
    answer_field: str = "answer"
    split_field: str = "split"
    heldout_fraction: float = 0.2
    name: str = "jsonl"
    splits: tuple[str, ...] = DEFAULT_SPLITS
    tool_format: str = "fenced"
    description: str = field(init=False, default="")
    rows: dict[str, list[QARow]] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        check_choice(self.name, "verifier", self.verifier, VERIFIER_NAMES)
        loaded = load_qa(self.path, self.question_field, self.answer_field, self.split_field,
                         self.heldout_fraction)
        if self.verifier == "numeric":
            bad = [r.answer for r in loaded if parse_number(str(r.answer)) is None]
            if bad:
                raise ValueError(f"{self.path}: verifier 'numeric' needs numeric answers; not numbers: "
                                 f"{bad[:5]}; use verifier='exact' or 'math'")
        self.rows = {s: [r for r in loaded if r.split == s] for s in self.splits}
        counts = ", ".join(f"{len(v)} {k}" for k, v in self.rows.items())
        self.description = f"Questions from {self.path} ({counts}), {self.verifier} answer check."

    def num_problems(self, split: str) -> int:
        check_split(self.name, split, self.splits)
        return len(self.rows[split])

    def problem(self, split: str, index: int) -> Problem:
        check_split(self.name, split, self.splits)
        check_index(self.name, index)
        pool = self.rows[split]
        if not pool:
            raise ValueError(f"{self.name}: split {split!r} has no rows in {self.path}; add rows with "
                             f"{self.split_field}={split!r} or change heldout_fraction")
        row = pool[index % len(pool)]
        return Problem(prompt=row.question, answer=row.answer, index=index, split=split,
                       metadata={"verifier": self.verifier, "row": index % len(pool)})

    def verify(self, problem: Problem, answer: str, new_session: SessionFactory) -> Score:
        return get_verifier(self.verifier)(answer, problem.answer)


def make_jsonl(path: str, verifier: str = "exact", question_field: str = "question",
               answer_field: str = "answer", split_field: str = "split",
               heldout_fraction: float = 0.2) -> JsonlFamily:
    """Factory for `toolgym/jsonl-v0` (registered with the shipped example file as default `path`)."""
    return JsonlFamily(path=path, verifier=verifier, question_field=question_field,
                       answer_field=answer_field, split_field=split_field, heldout_fraction=heldout_fraction)
