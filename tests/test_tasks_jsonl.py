"""`jsonl`: user question/answer files with the exact, numeric and math verifiers; splits; errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from toolgym.tasks.jsonl import JsonlFamily, example_path, hashed_split, make_jsonl


def write(tmp_path: Path, rows: list[dict], name: str = "qa.jsonl") -> str:
    path = tmp_path / name
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(path)


def test_example_file_reference_answers_score_one_and_wrong_zero() -> None:
    family = make_jsonl(example_path(), verifier="numeric")
    assert family.num_problems("train") == 8 and family.num_problems("heldout") == 4
    for split in family.splits:
        for i in range(family.num_problems(split)):
            problem = family.problem(split, i)
            assert family.verify(problem, problem.answer, new_session=None).correct
            assert family.verify(problem, str(int(problem.answer) + 1), new_session=None).value == 0.0


@pytest.mark.parametrize(("verifier", "gold", "right", "wrong"), [
    ("exact", "Paris", " paris. ", "Lyon"),
    ("numeric", "0.5", "1/2", "0.51"),
    ("math", "\\frac{1}{2}", "0.5", "1/3"),
    ("math", "x^2 + 2x + 1", "(x+1)^2", "x^2 + 1"),
])
def test_verifiers(tmp_path: Path, verifier: str, gold: str, right: str, wrong: str) -> None:
    family = JsonlFamily(path=write(tmp_path, [{"question": "q", "answer": gold, "split": "train"}]),
                         verifier=verifier)
    problem = family.problem("train", 0)
    assert family.verify(problem, right, new_session=None).correct
    score = family.verify(problem, wrong, new_session=None)
    assert score.value == 0.0 and score.detail


def test_custom_fields_and_split_synonyms(tmp_path: Path) -> None:
    rows = [{"prompt": f"q{i}", "target": i, "part": "test" if i % 3 == 0 else "train"} for i in range(9)]
    family = make_jsonl(write(tmp_path, rows), verifier="numeric", question_field="prompt",
                        answer_field="target", split_field="part")
    assert [family.problem("heldout", i).prompt for i in range(3)] == ["q0", "q3", "q6"]
    assert family.problem("heldout", 4).prompt == "q3"  # indices cycle


def test_hashed_split_is_stable_and_near_the_fraction(tmp_path: Path) -> None:
    rows = [{"question": f"question {i}", "answer": "a"} for i in range(400)]
    family = make_jsonl(write(tmp_path, rows))
    held = {family.problem("heldout", i).prompt for i in range(family.num_problems("heldout"))}
    assert 50 <= len(held) <= 110
    assert all(hashed_split(q, 0.2) == "heldout" for q in held)
    reordered = make_jsonl(write(tmp_path, rows[::-1], "rev.jsonl"))
    assert {reordered.problem("heldout", i).prompt for i in range(len(held))} == held


@pytest.mark.parametrize(("content", "kwargs", "message"), [
    ('{"question": "q"}', {}, "qa.jsonl:1: missing field"),
    ("not json", {}, "qa.jsonl:1: not valid JSON"),
    ('{"question": "q", "answer": "a", "split": "later"}', {}, "unknown split 'later'"),
    ('{"question": "q", "answer": "Paris"}', {"verifier": "numeric"}, "needs numeric answers"),
    ('{"question": "q", "answer": "a"}', {"verifier": "fuzzy"}, "allowed: 'exact', 'numeric', 'math'"),
    ("", {}, "no rows"),
])
def test_errors_say_what_is_wrong(tmp_path: Path, content: str, kwargs: dict, message: str) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text(content + "\n")
    with pytest.raises(ValueError, match=message):
        make_jsonl(str(path), **kwargs)


def test_missing_file_and_empty_split(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        make_jsonl(str(tmp_path / "nope.jsonl"))
    family = make_jsonl(write(tmp_path, [{"question": "q", "answer": "a", "split": "train"}]))
    with pytest.raises(ValueError, match="has no rows"):
        family.problem("heldout", 0)
