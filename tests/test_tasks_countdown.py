"""`countdown`: the reference search program's answer scores 1.0; the ast-based verifier refuses cheats."""

from __future__ import annotations

import pytest
from test_tasks_support import run_programs
from toolgym.tasks.countdown import CountdownFamily, evaluate, parse_expression


@pytest.mark.parametrize("n_numbers", [3, 4, 5])
def test_reference_program_and_generating_solution_score_one(n_numbers: int) -> None:
    family = CountdownFamily(n_numbers=n_numbers)
    problems = [family.problem(split, i) for split in family.splits for i in range(8)]
    outputs = run_programs([p.reference_code for p in problems])
    for problem, out in zip(problems, outputs, strict=True):
        assert family.verify(problem, out.strip(), new_session=None).value == 1.0, (problem.prompt, out)
        assert family.verify(problem, problem.metadata["solution"], new_session=None).correct
        assert str(problem.answer) in problem.prompt


@pytest.fixture
def problem_and_family():
    family = CountdownFamily()
    return family.problem("train", 0), family


def test_wrong_value_scores_zero(problem_and_family) -> None:
    problem, family = problem_and_family
    a, b = problem.metadata["numbers"][:2]
    score = family.verify(problem, f"{a} + {b}", new_session=None)
    if a + b != problem.answer:
        assert score.value == 0.0 and "not" in score.detail


def test_reusing_or_inventing_numbers_scores_zero(problem_and_family) -> None:
    problem, family = problem_and_family
    a = problem.metadata["numbers"][0]
    reuse = " + ".join([str(a)] * (problem.metadata["numbers"].count(a) + 1))
    assert "not available" in family.verify(problem, reuse, new_session=None).detail
    assert family.verify(problem, str(problem.answer), new_session=None).value == 0.0


@pytest.mark.parametrize("answer", ['__import__("os").system("true")', "(lambda: 1)()", "2 ** 10",
                                    "-3 + 5", "3.0 * 2", "True + 1", "x + 1", "1 if 1 else 2", "",
                                    "(" * 300 + "1" + ")" * 300, "1 +", "[1, 2]"])
def test_non_arithmetic_answers_are_refused_not_run(problem_and_family, answer: str) -> None:
    problem, family = problem_and_family
    score = family.verify(problem, answer, new_session=None)
    assert score.value == 0.0 and score.detail


def test_division_by_zero_is_a_zero_score() -> None:
    family = CountdownFamily()
    for i in range(50):
        problem = family.problem("train", i)
        numbers = problem.metadata["numbers"]
        if len(set(numbers)) < len(numbers):  # a duplicate lets us write a / (b - b)
            b = next(n for n in numbers if numbers.count(n) > 1)
            a = next(n for n in numbers if n != b)
            score = family.verify(problem, f"{a} / ({b} - {b})", new_session=None)
            assert score.value == 0.0 and "divides by zero" in score.detail
            return
    pytest.skip("no instance with a repeated number in the first 50")


def test_equation_form_and_unicode_operators_accepted(problem_and_family) -> None:
    problem, family = problem_and_family
    solution = problem.metadata["solution"]
    assert family.verify(problem, f"{solution} = {problem.answer}", new_session=None).correct
    assert family.verify(problem, solution.replace("*", "\u00d7"), new_session=None).correct


def test_parse_and_evaluate_exact_fractions() -> None:
    tree, literals = parse_expression("(1 / 3 + 2 / 3) * 6")
    assert sorted(literals) == [1, 2, 3, 3, 6] and evaluate(tree) == 6


def test_bad_size_is_clear() -> None:
    with pytest.raises(ValueError, match="between 2 and 6"):
        CountdownFamily(n_numbers=9)
