"""The built-in registration: ids, suites, lazy imports, and one episode per non-rg family."""

from __future__ import annotations

import subprocess
import sys

import pytest
from toolgym.envs.registry import list_suites, list_tasks, make, make_family, suite_tasks
from toolgym.tasks.rg import rg_split, task_id

FAMILIES = ["toolgym/arith-v0", "toolgym/countdown-v0", "toolgym/math-v0", "toolgym/code-v0",
            "toolgym/jsonl-v0"]


def test_every_builtin_id_is_registered() -> None:
    split = rg_split()
    rg_ids = {task_id(g) for g in split["train"] + split["heldout"]}
    assert set(FAMILIES) | rg_ids <= set(list_tasks())
    assert not {task_id(g) for g in split["skipped"]} & set(list_tasks())


def test_suites() -> None:
    assert {"quickstart", "reasoning", "code", "math"} <= set(list_suites())
    assert suite_tasks("quickstart", "train") == suite_tasks("quickstart", "heldout") == ["toolgym/arith-v0"]
    train, heldout = suite_tasks("reasoning", "train"), suite_tasks("reasoning", "heldout")
    assert len(train) == len(rg_split()["train"]) and len(heldout) == len(rg_split()["heldout"])
    assert not set(train) & set(heldout)
    assert suite_tasks("code", "heldout") == ["toolgym/code-v0"]


def test_importing_and_registering_stays_light() -> None:
    code = ("import sys, toolgym.tasks; from toolgym.envs.registry import list_tasks; n = len(list_tasks());"
            "print(n, [m for m in ('reasoning_gym', 'math_verify', 'sympy', 'torch') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    count, heavy = out.stdout.split(" ", 1)
    assert int(count) >= 100 and heavy.strip() == "[]"


@pytest.mark.parametrize("task", FAMILIES)
def test_each_family_builds_and_answers_through_the_environment(task: str) -> None:
    family = make_family(task)
    assert family.description and set(family.splits) == {"train", "heldout"}
    problem = family.problem("heldout", 0)
    if task == "toolgym/code-v0":
        answer = f"```python\n{problem.answer}```"
    elif task == "toolgym/countdown-v0":
        answer = problem.metadata["solution"]
    else:
        answer = str(problem.answer)
    with make(task, split="heldout") as env:
        messages, _ = env.reset(options={"index": 0})
        assert messages[-1]["content"] == problem.prompt
        _, _, terminated, truncated, info = env.step(f"<answer>{answer}</answer>")
    assert terminated and not truncated and info["success"], info


def test_family_kwargs_pass_through_make() -> None:
    assert make_family("toolgym/arith-v0", level=3).level == 3
    assert make_family("toolgym/code-v0", reward="hard").reward == "hard"
    assert make_family("toolgym/rg-basic_arithmetic-v0", min_terms=4).config == {"min_terms": 4}
