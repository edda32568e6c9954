"""`math`: reference programs' outputs verify with math-verify; wrong answers do not; splits disjoint."""

from __future__ import annotations

import threading
from fractions import Fraction

import pytest
from test_tasks_support import run_programs
from toolgym.tasks.mathgen import KINDS, MathFamily, latex, make_math


def test_reference_programs_score_one_and_perturbed_answers_zero() -> None:
    family = MathFamily()
    problems = [family.problem(split, i) for split in family.splits for i in range(15)]
    outputs = run_programs([p.reference_code for p in problems])
    kinds = set()
    for problem, out in zip(problems, outputs, strict=True):
        kinds.add(problem.metadata["kind"])
        assert family.verify(problem, out.strip(), new_session=None).value == 1.0, (problem.prompt, out)
        assert family.verify(problem, problem.answer, new_session=None).correct
        off_by_one = Fraction(problem.metadata["value"]) + 1
        wrong = family.verify(problem, str(off_by_one), new_session=None)
        assert wrong.value == 0.0 and wrong.detail
    assert kinds == set(KINDS)


@pytest.mark.parametrize("answer", ["", "no idea", "x" * 5000])
def test_malformed_answers_are_zero_with_a_reason(answer: str) -> None:
    family = MathFamily()
    score = family.verify(family.problem("train", 0), answer, new_session=None)
    assert score.value == 0.0 and score.detail


def test_verify_runs_in_a_worker_thread() -> None:
    family = MathFamily(kinds=("fractions",))
    problem = family.problem("train", 3)
    results = []
    thread = threading.Thread(target=lambda: results.append(family.verify(problem, problem.answer, None)))
    thread.start()
    thread.join(30)
    assert results and results[0].correct


def test_latex_of_rationals() -> None:
    assert latex(Fraction(-3, 4)) == "-\\frac{3}{4}"
    assert latex(Fraction(6, 3)) == "2"


def test_kinds_filter_and_splits_disjoint() -> None:
    family = make_math(kinds=["linear"])
    train = {family.problem("train", i).prompt for i in range(100)}
    heldout = {family.problem("heldout", i).prompt for i in range(100)}
    assert not train & heldout
    assert all(p.startswith("Solve for x") for p in train)
    with pytest.raises(ValueError, match="known kinds: fractions"):
        make_math(kinds=["calculus"])
