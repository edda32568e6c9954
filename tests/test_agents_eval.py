"""Evaluation: the unbiased pass@k estimator against brute force, reports, and the CLI commands."""

from __future__ import annotations

import itertools
import json
from math import comb
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from toolgym.agents.episode import Episode, read_jsonl
from toolgym.agents.evaluate import evaluate, markdown_table, pass_at_k, summarize, write_report
from toolgym.agents.policies import RandomAgent, TeacherAgent
from toolgym.agents.tiny import cached_tiny_model
from toolgym.envs.sandbox import make_sandbox


@given(st.integers(1, 8).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_equals_the_average_over_all_k_subsets(nck) -> None:
    n, c, k = nck
    outcomes = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    brute = sum(any(outcomes[i] for i in s) for s in subsets) / len(subsets)
    assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12)
    assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k), abs=1e-12)


def test_summarize_groups_problems_and_counts() -> None:
    def ep(index: int, success: bool, reason: str = "answered") -> Episode:
        return Episode("t", index, "heldout", "g", success=success, reward=float(success), turns=2,
                       tool_calls=2, tool_errors=1 if not success else 0, finish_reason=reason)

    s = summarize([ep(0, True), ep(0, False), ep(1, False, "max_turns"), ep(1, False)], ks=(1, 2))
    assert s["problems"] == 2 and s["pass@1"] == 0.25 and s["pass@2"] == 0.5
    assert s["tool_error_rate"] == 3 / 8 and s["finish_reasons"] == {"answered": 3, "max_turns": 1}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(cached_tiny_model(tmp_path_factory.getbasetemp() / "toolgym-cache"))


def test_evaluate_teacher_and_random_agents(tokenizer, tmp_path: Path) -> None:
    teacher = evaluate(TeacherAgent(tokenizer), tokenizer, "quickstart", n=2, ks=(1, 2), num_problems=3,
                       progress=False)
    assert teacher["overall"]["pass@1"] == 1.0 and teacher["overall"]["problems"] == 3
    assert teacher["per_task"]["toolgym/arith-v0"]["avg_tool_calls"] == 1.0
    rand = evaluate(RandomAgent(tokenizer, seed=0), tokenizer, ["toolgym/arith-v0"], n=4, ks=(1, 4, 8),
                    num_problems=3, progress=False)
    assert rand["config"]["ks"] == [1, 4]  # k > n dropped
    assert rand["overall"]["pass@1"] < 0.5 and rand["overall"]["episodes"] == 12
    json_path, md_path = write_report(rand, tmp_path)
    assert json.loads(json_path.read_text())["overall"]["episodes"] == 12
    assert md_path.read_text() == markdown_table(rand) and "| **overall** |" in md_path.read_text()


def test_a_jsonl_task_s_held_out_size_is_its_own_file_s(tokenizer, tmp_path: Path) -> None:
    """The number of held-out problems of a finite family comes from the run's options for it (here a
    JSONL `path` with 6 held-out rows), not from the registered default file (4 held-out rows)."""
    rows = [{"question": f"Write down the number {k}.", "answer": str(k), "split": "heldout"}
            for k in range(6)]
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = evaluate(TeacherAgent(tokenizer), tokenizer, ["toolgym/jsonl-v0"], n=1, ks=(1,),
                      num_problems=10, progress=False, task_kwargs={"toolgym/jsonl-v0": {"path": str(path)}})
    assert result["overall"]["problems"] == 6 and result["overall"]["pass@1"] == 1.0


def test_eval_and_demos_commands(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, capsys) -> None:
    from toolgym.cli import main

    model = cached_tiny_model(tmp_path_factory.getbasetemp() / "toolgym-cache")
    out = tmp_path / "demos.jsonl"
    assert main(["demos", str(out), "-n", "3", "--model", str(model)]) == 0
    demos = list(read_jsonl(out))
    assert len(demos) == 3 and all(d.success and d.messages for d in demos)
    assert main(["eval", "--model", str(model), "-n", "2", "-k", "1,2", "--num-problems", "2", "--max-tokens",
                 "8", "--max-turns", "2", "--out", str(tmp_path / "ev"), "--no-progress"]) == 0
    result = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert result["overall"]["episodes"] == 4 and "pass@2" in result["overall"]
    printed = capsys.readouterr().out
    assert "| toolgym/arith-v0 |" in printed
    isolation = result["config"]["sandbox"]  # the isolation the episodes ran under, printed and recorded
    assert isolation["backend"] == "local" and isolation["mode"] == make_sandbox("local").isolation
    assert isolation["summary"] in printed
    assert main(["eval", "--model", "openai:gpt", "--no-progress"]) == 2
    assert main(["eval", "--model", str(model), "--suite", "no-such-suite", "--no-progress"]) == 2
