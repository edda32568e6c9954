"""`arith`: reference programs print exactly the answer; the verifier takes right and refuses wrong."""

from __future__ import annotations

import re

import pytest
from test_tasks_support import run_programs
from toolgym.tasks.arith import LEVELS, ArithFamily

SAMPLE = 12  # instances per split and level


@pytest.mark.parametrize("level", sorted(LEVELS))
def test_reference_programs_score_one(level: int) -> None:
    family = ArithFamily(level=level)
    problems = [family.problem(split, i) for split in family.splits for i in range(SAMPLE)]
    outputs = run_programs([p.reference_code for p in problems])
    for problem, out in zip(problems, outputs, strict=True):
        assert out == f"{problem.answer}\n", problem.prompt
        assert family.verify(problem, out, new_session=None).value == 1.0


@pytest.mark.parametrize("level", sorted(LEVELS))
def test_wrong_answers_score_zero(level: int) -> None:
    family = ArithFamily(level=level)
    for i in range(SAMPLE):
        problem = family.problem("train", i)
        for wrong in (str(problem.answer + 1), str(-problem.answer - 1), "", "I don't know", "1e9"):
            score = family.verify(problem, wrong, new_session=None)
            assert score.value == 0.0 and score.detail


def test_answer_formats_accepted() -> None:
    family = ArithFamily()
    problem = family.problem("train", 0)
    answer = problem.answer
    for form in (f"{answer:,}", f"\\boxed{{{answer}}}", f" {answer}. ", f"${answer}$"):
        assert family.verify(problem, form, new_session=None).correct, form


def test_level_one_is_uniform_and_copyable() -> None:
    """Quickstart: 'Compute EXPR.' whose reference is exactly print(EXPR) on one line."""
    family = ArithFamily(level=1)
    templates = set()
    for i in range(200):
        problem = family.problem("train", i)
        match = re.fullmatch(r"Compute ([0-9 *+%]+)\.", problem.prompt)
        assert match, problem.prompt
        assert problem.reference_code == f"print({match.group(1)})"
        assert len(problem.prompt) <= 40
        templates.add(problem.metadata["template"])
    assert templates == {"product", "modpow", "sum_of_products"}


def test_deterministic_and_splits_disjoint() -> None:
    family = ArithFamily(level=2)
    assert family.problem("train", 5) == ArithFamily(level=2).problem("train", 5)
    train = {family.problem("train", i).prompt for i in range(300)}
    heldout = {family.problem("heldout", i).prompt for i in range(300)}
    assert not train & heldout
    assert len(train) > 290  # instances vary


def test_levels_differ_and_unknown_level_is_clear() -> None:
    assert ArithFamily(level=1).problem("train", 0).prompt != ArithFamily(level=3).problem("train", 0).prompt
    with pytest.raises(ValueError, match="allowed: 1, 2, 3"):
        ArithFamily(level=4)
    with pytest.raises(ValueError, match="known splits"):
        ArithFamily().problem("test", 0)


@pytest.mark.parametrize("task_id, level", [("toolgym/arith-v0", 1), ("toolgym/arith-l2-v0", 2),
                                            ("toolgym/arith-l3-v0", 3)])
def test_each_level_has_its_own_task_id(task_id: str, level: int) -> None:
    """One run can mix levels (run.task_options holds one set of kwargs per id): each id draws its
    level's templates, and the same index gives different problems across levels."""
    from toolgym.envs.registry import make_family

    family = make_family(task_id)
    problems = [family.problem("train", i) for i in range(SAMPLE)]
    assert {p.metadata["level"] for p in problems} == {level}
    templates = {t.__name__.lstrip("_") for t in LEVELS[level]}
    assert {p.metadata["template"] for p in problems} <= templates
