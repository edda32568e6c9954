"""Shared answer checks (tasks/verifiers.py) and per-instance seeds (tasks/common.py)."""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import pytest
from toolgym.tasks.common import check_split, instance_seed
from toolgym.tasks.verifiers import (
    TIMED_OUT,
    clean_answer,
    get_verifier,
    parse_integer,
    parse_number,
    run_bounded,
    score_exact,
    score_integer,
    score_math,
    score_numeric,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("  42 ", "42"), ("$42$", "42"), ("\\(x+1\\)", "x+1"), ("\\boxed{7}", "7"),
    ("$\\boxed{\\frac{1}{2}}$", "\\frac{1}{2}"),
    ("42.", "42"), ("\u22123", "-3"), ("...", "..."),
])
def test_clean_answer(text: str, expected: str) -> None:
    assert clean_answer(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("123", 123), ("-7", -7), ("+5", 5), ("1,234,567", 1234567), ("\\boxed{12}", 12), ("12.", 12),
    ("1 000", 1000), ("12.5", None), ("twelve", None), ("", None), ("1,23", None), ("9" * 5000, None),
])
def test_parse_integer(text: str, expected: int | None) -> None:
    assert parse_integer(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("3/4", Fraction(3, 4)), ("-\\frac{3}{4}", Fraction(-3, 4)), ("\\dfrac{6}{8}", Fraction(3, 4)),
    ("0.75", Fraction(3, 4)), (".5", Fraction(1, 2)), ("1e3", Fraction(1000)), ("1,000.5", Fraction(2001, 2)),
    ("1/0", None), ("abc", None), ("1e99999", None), ("", None),
])
def test_parse_number(text: str, expected: Fraction | None) -> None:
    assert parse_number(text) == expected


def test_score_integer_right_and_wrong() -> None:
    assert score_integer("37275972", 37275972).value == 1.0
    assert score_integer("$37,275,972$", 37275972).correct
    wrong = score_integer("37275973", 37275972)
    assert wrong.value == 0.0 and "wrong" in wrong.detail
    garbage = score_integer("the answer is 5", 5)
    assert garbage.value == 0.0 and "plain integer" in garbage.detail


def test_score_exact_normalises_case_whitespace_and_wrappers() -> None:
    assert score_exact("  Paris. ", "paris").correct
    assert score_exact("New   York", "new york").correct
    assert score_exact("\\boxed{B}", "b").correct
    assert not score_exact("Pari", "Paris").correct
    assert not score_exact("Paris", "paris", case_sensitive=True).correct


def test_score_numeric_tolerance_and_bad_reference() -> None:
    assert score_numeric("0.3333333", "1/3").correct
    assert score_numeric("1,000", 1000).correct
    assert not score_numeric("0.33", "1/3").correct
    assert not score_numeric("1048577", "1048576").correct  # integers: no tolerance
    assert score_numeric("1048576.0", "1048576").correct
    assert "expected a number" in score_numeric("a third", "1/3").detail
    with pytest.raises(ValueError, match="not a number"):
        score_numeric("1", "Paris")


@pytest.mark.parametrize("answer", ["7/12", "\\frac{7}{12}", "$\\frac{7}{12}$", "\\boxed{\\frac{7}{12}}",
                                    "The answer is 7/12."])
def test_score_math_accepts_equivalent_forms(answer: str) -> None:
    assert score_math(answer, "\\frac{7}{12}").correct


@pytest.mark.parametrize("answer", ["7/13", "12/7", "", "x" * 2000, "banana"])
def test_score_math_rejects_wrong_answers(answer: str) -> None:
    score = score_math(answer, "\\frac{7}{12}")
    assert score.value == 0.0 and score.detail


def test_score_math_works_off_the_main_thread() -> None:
    results = []
    thread = threading.Thread(target=lambda: results.append(score_math("0.5", "\\frac{1}{2}")))
    thread.start()
    thread.join(30)
    assert results and results[0].correct


def test_score_math_bad_reference_raises() -> None:
    with pytest.raises(ValueError, match="cannot parse the reference"):
        score_math("1", "")


def test_run_bounded_times_out_and_reraises() -> None:
    started = time.monotonic()
    assert run_bounded(lambda: time.sleep(5), timeout=0.2) is TIMED_OUT
    assert time.monotonic() - started < 2
    assert run_bounded(lambda: 3, timeout=5) == 3
    with pytest.raises(ZeroDivisionError):
        run_bounded(lambda: 1 / 0, timeout=5)


def test_get_verifier_lists_known_names() -> None:
    assert get_verifier("math") is score_math
    with pytest.raises(ValueError, match=r"unknown verifier 'fuzzy'.*exact, integer, math, numeric"):
        get_verifier("fuzzy")


def test_instance_seeds_of_splits_are_disjoint() -> None:
    train = {instance_seed("f", "train", i) for i in range(1000)}
    heldout = {instance_seed("f", "heldout", i) for i in range(1000)}
    assert len(train) == len(heldout) == 1000 and not train & heldout


def test_bad_split_and_index_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="known splits: train, heldout"):
        check_split("f", "test", ("train", "heldout"))
    with pytest.raises(ValueError, match="non-negative int"):
        instance_seed("f", "train", -1)
