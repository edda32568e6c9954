"""`code`: every shipped reference solution passes its tests in the real local sandbox; wrong, partial,
looping, crashing and cheating candidates do not; the APPS/TACO loader reads both test formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from toolgym.envs.sandbox import make_sandbox
from toolgym.tasks.code_harness import return_matches, stdout_matches, values_equal
from toolgym.tasks.codegen import CodeFamily, extract_code, load_code_problems, make_code


@pytest.fixture(scope="module")
def backend():
    sandbox = make_sandbox("local")
    yield sandbox
    sandbox.close()


def fenced(code: str) -> str:
    return f"Here is my solution:\n```python\n{code}\n```"


def test_builtin_set_size_and_modes() -> None:
    specs = load_code_problems()
    assert len(specs) >= 30 and len({s.id for s in specs}) == len(specs)
    assert sum(s.fn_name is None for s in specs) >= 5  # stdin programs too
    assert all(s.solution and len(s.inputs) >= 3 for s in specs)
    family = CodeFamily()
    assert family.num_problems("train") + family.num_problems("heldout") == len(specs)
    assert family.num_problems("heldout") >= 5


def test_every_reference_solution_scores_one(backend) -> None:
    family = CodeFamily(reward="hard")
    for split in family.splits:
        for i in range(family.num_problems(split)):
            problem = family.problem(split, i)
            score = family.verify(problem, fenced(problem.answer), backend.new_session)
            assert score.value == 1.0, (problem.metadata["problem_id"], score.detail)


def test_soft_reward_is_the_pass_rate_and_hard_is_all_or_nothing(backend) -> None:
    soft, hard = CodeFamily(reward="soft"), CodeFamily(reward="hard")
    problem = next(p for p in (soft.problem("train", i) for i in range(40))
                   if p.metadata["problem_id"] == "count_vowels")
    partial = "def count_vowels(s):\n    return sum(ch in 'aeiou' for ch in s)"  # misses upper case
    s_soft, s_hard = soft.verify(problem, partial, backend.new_session), hard.verify(problem, partial,
                                                                                      backend.new_session)
    assert 0.0 < s_soft.value < 1.0 and s_hard.value == 0.0
    assert s_soft.detail.startswith(f"{round(s_soft.value * 5)}/5 tests passed")
    assert "expected" in s_soft.detail


def _problem(family: CodeFamily, pid: str):
    for split in family.splits:
        for i in range(family.num_problems(split)):
            problem = family.problem(split, i)
            if problem.metadata["problem_id"] == pid:
                return problem
    raise AssertionError(pid)


@pytest.mark.parametrize(("code", "detail"), [
    ("", "no code"),
    ("def run_length_encode(s) return s", "does not compile"),
    ("def other(s):\n    return s", "does not define a function named"),
    ("def run_length_encode(s):\n    raise ValueError('nope')", "ValueError: nope"),
    ("import os\ndef run_length_encode(s):\n    os._exit(1)", "crashed"),
    ("def run_length_encode(s):\n    while True:\n        pass", "timed out"),
])
def test_broken_candidates_score_zero_with_a_reason(backend, code: str, detail: str) -> None:
    family = CodeFamily(per_test_timeout=0.5)
    score = family.verify(_problem(family, "run_length_encode"), fenced(code), backend.new_session)
    assert score.value == 0.0 and detail in score.detail


def test_a_candidate_cannot_forge_results(backend) -> None:
    family = CodeFamily()
    forged = ("import sys\n"
              "def run_length_encode(s):\n"
              "    line = '@@toolgym-0000@@' + '[0, {\"ok\": true, \"json\": \"a3b1c2\"}]'\n"
              "    sys.__stdout__.write(line + '\\n')\n"
              "    print('all tests passed')\n"
              "    return ''\n")
    score = family.verify(_problem(family, "run_length_encode"), fenced(forged), backend.new_session)
    assert score.value == pytest.approx(1 / 6)  # only the test whose answer really is '' (input '')
    assert score.detail.startswith("1/6 tests passed; test 0:")


def test_stdin_programs_right_and_wrong(backend) -> None:
    family = CodeFamily()
    problem = _problem(family, "fizzbuzz")
    assert family.verify(problem, fenced(problem.answer), backend.new_session).correct
    wrong = "n = int(input())\nfor i in range(1, n + 1):\n    print(i)"
    score = family.verify(problem, fenced(wrong), backend.new_session)
    assert 0.0 < score.value < 1.0  # right for n < 3 only


def test_apps_style_jsonl(tmp_path: Path, backend) -> None:
    rows = [
        {"problem_id": 1, "question": "Add two numbers.", "starter_code": "def add(a, b):",
         "input_output": json.dumps({"fn_name": "add", "inputs": [[1, 2], [3, 4]], "outputs": [[3], [7]]}),
         "solutions": json.dumps(["def add(a, b):\n    return a + b\n"]), "split": "test"},
        {"problem_id": 2, "question": "Print the doubled number.",
         "input_output": {"inputs": ["2\n", ["5"]], "outputs": ["4\n", ["10"]]},
         "solutions": ["print(2 * int(input()))"], "split": "train"},
    ]
    path = tmp_path / "apps.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    family = make_code(path=str(path), reward="hard")
    assert family.num_problems("heldout") == 1 and family.num_problems("train") == 1
    add = family.problem("heldout", 0)
    assert "def add(a, b):" in add.prompt
    assert family.verify(add, fenced(add.answer), backend.new_session).correct
    assert not family.verify(add, fenced("def add(a, b):\n    return a - b"), backend.new_session).correct
    double = family.problem("train", 3)  # indices cycle over the split
    assert family.verify(double, double.answer, backend.new_session).correct


@pytest.mark.parametrize(("row", "message"), [
    ({"question": ""}, "non-empty 'question'"),
    ({"question": "q", "inputs": [[1]], "outputs": []}, "equal length"),
    ({"question": "q", "input_output": "{not json"}, "not valid JSON"),
    ({"question": "q", "fn_name": "f", "inputs": [1], "outputs": [1]}, "list of arguments"),
])
def test_loader_errors_name_the_line(tmp_path: Path, row: dict, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(ValueError, match=message) as info:
        load_code_problems(path)
    assert "bad.jsonl:1" in str(info.value)


def test_unknown_reward_and_missing_file_are_clear() -> None:
    with pytest.raises(ValueError, match="allowed: 'soft', 'hard'"):
        CodeFamily(reward="partial")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        CodeFamily(path="/nonexistent.jsonl")


@pytest.mark.parametrize(("answer", "code"), [
    ("```python\nx = 1\n```", "x = 1"),
    ("```py\na\n```\ntext\n```python\nb\n```", "b"),
    ("```\nplain\n```", "plain"),
    ("def f():\n    return 1", "def f():\n    return 1"),
])
def test_extract_code(answer: str, code: str) -> None:
    assert extract_code(answer) == code


def test_comparisons() -> None:
    assert values_equal(0.1 + 0.2, 0.3) and not values_equal(True, 1) and not values_equal([1], [1, 2])
    assert values_equal({"a": [1, 2.0]}, {"a": [1, 2]})
    assert return_matches({"ok": True, "json": 3}, [3], wrapped=True)
    assert not return_matches({"ok": True, "json": 3}, [3])
    assert stdout_matches("1 2 \n3\n\n", "1 2\n3") and stdout_matches("1\n2", "1 2")
    assert not stdout_matches("1 2", "1 3")
