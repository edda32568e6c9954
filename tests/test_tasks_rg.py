"""reasoning-gym families: the shipped split, every generator's reference answer, malformed answers."""

from __future__ import annotations

import pytest
from toolgym.tasks.rg import ReasoningGymFamily, is_heldout_generator, make_rg, rg_split

SPLIT = rg_split()
GENERATORS = SPLIT["train"] + SPLIT["heldout"]
# reasoning-gym gives no answer (nor an example one) for these puzzles with many solutions.
NO_REFERENCE = {"boxnet", "rush_hour"}


def test_split_file_is_consistent_with_its_rule_and_the_installed_generators() -> None:
    from reasoning_gym.factory import DATASETS

    train, heldout, skipped = set(SPLIT["train"]), set(SPLIT["heldout"]), set(SPLIT["skipped"])
    assert not train & heldout and not (train | heldout) & skipped
    assert train | heldout | skipped == set(DATASETS), "update tasks/data/rg_split.json for reasoning-gym"
    assert {g for g in train | heldout if is_heldout_generator(g)} == heldout
    assert len(heldout) >= 15 and len(train) >= 3 * len(heldout) - 10
    assert all(reason for reason in SPLIT["skipped"].values())


@pytest.mark.parametrize("generator", GENERATORS)
def test_reference_answers_score_one_and_wrong_answers_do_not(generator: str) -> None:
    family = make_rg(generator)
    problems = [family.problem(split, i) for split in family.splits for i in range(2)]
    assert len({p.prompt for p in problems}) == len(problems)  # distinct, and train/heldout disjoint
    for problem in problems:
        assert problem.prompt.strip()
        if generator in NO_REFERENCE:
            assert problem.answer is None
        else:
            assert family.verify(problem, problem.answer, new_session=None).value == 1.0, problem.prompt
        wrong = family.verify(problem, "zzz not an answer", new_session=None)
        assert 0.0 <= wrong.value < 1.0 and wrong.detail


def test_instances_are_deterministic_and_distinct_across_chunks() -> None:
    a, b = make_rg("advanced_geometry"), make_rg("advanced_geometry")
    assert a.problem("heldout", 7) == b.problem("heldout", 7)
    for split in a.splits:
        prompts = [a.problem(split, i).prompt for i in range(40)]  # chunks of 16 instances
        assert len(set(prompts)) == 40
    assert a.problem("train", 2**31 - 1).prompt  # far indices stay within numpy's 32-bit seeds


def test_train_and_heldout_questions_are_disjoint_on_a_small_space() -> None:
    family = make_rg("basic_arithmetic", min_terms=2, max_terms=2, min_digits=1, max_digits=1)
    train = {family.problem("train", i).prompt for i in range(60)}
    heldout = {family.problem("heldout", i).prompt for i in range(60)}
    assert not train & heldout


def test_scorer_exception_on_a_model_answer_is_a_zero_score() -> None:
    family = make_rg("prime_factorization")  # its scorer calls int() on the answer text
    score = family.verify(family.problem("train", 0), "junk", new_session=None)
    assert score.value == 0.0 and "ValueError" in score.detail


def test_config_reaches_the_generator() -> None:
    family = make_rg("basic_arithmetic", min_terms=5, max_terms=5)
    assert isinstance(family, ReasoningGymFamily)
    problem = family.problem("train", 0)
    assert sum(problem.prompt.count(op) for op in "+-*/") >= 4


@pytest.mark.parametrize(("generator", "kwargs", "message"), [
    ("basic_arithmatic", {}, "did you mean basic_arithmetic"),
    ("composite", {}, "is skipped"),
    ("game_of_life_halting", {}, "is skipped"),
    ("basic_arithmetic", {"bogus": 1}, "rejected config"),
])
def test_bad_names_and_configs_are_clear_errors(generator: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_rg(generator, **kwargs)
