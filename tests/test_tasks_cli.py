"""`toolgym tasks list|show|play`, run as real subprocesses (play reads its turns from a pipe)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from toolgym.envs.parsers import get_parser
from toolgym.envs.registry import make_family


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "toolgym.cli", "tasks", *args], input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_list_shows_tasks_and_suites() -> None:
    out = cli("list")
    assert out.returncode == 0, out.stderr
    assert "toolgym/arith-v0" in out.stdout and "Suites:" in out.stdout and "quickstart" in out.stdout
    suite = cli("list", "--suite", "quickstart")
    assert suite.returncode == 0 and suite.stdout.split()[0] == "toolgym/arith-v0"
    assert "toolgym/math-v0" not in suite.stdout


def test_show_prints_prompt_verifier_splits_and_an_example() -> None:
    out = cli("show", "toolgym/arith-v0", "--index", "1")
    assert out.returncode == 0, out.stderr
    problem = make_family("toolgym/arith-v0").problem("train", 1)
    for expected in ("verifier:", "splits:      train, heldout", "--- system ---", "--- user ---",
                     problem.prompt, "--- reference answer ---", str(problem.answer)):
        assert expected in out.stdout


def test_unknown_id_is_a_clear_error() -> None:
    out = cli("show", "toolgym/arth-v0")
    assert out.returncode == 2 and "Did you mean 'toolgym/arith-v0'" in out.stderr


@pytest.mark.parametrize("fmt", ["fenced", "json"])
def test_play_a_scripted_episode_through_a_pipe(fmt: str) -> None:
    problem = make_family("toolgym/arith-v0").problem("train", 4)
    parser = get_parser(fmt)
    turns = ["Let me compute it.\n" + parser.format_call(problem.reference_code),
             "I am thinking\n.\n",  # a malformed turn, sent with a lone "."
             parser.format_answer(str(problem.answer))]
    out = cli("play", "toolgym/arith-v0", "--index", "4", "--tool-format", fmt,
              stdin="".join(t if t.endswith("\n") else t + "\n" for t in turns))
    assert out.returncode == 0, out.stderr
    assert f"--- tool ---\n{problem.answer}\n" in out.stdout
    assert "neither code to run nor a final answer" in out.stdout
    assert "[episode over: answered" in out.stdout and "success True" in out.stdout
    assert "format -0.10" in out.stdout and "turns 3, tool calls 1" in out.stdout


def test_play_ends_cleanly_at_end_of_input() -> None:
    out = cli("play", "toolgym/arith-v0", "--seed", "3", stdin="```python\nx = 1\n```\n")
    assert out.returncode == 0, out.stderr
    assert "--- tool ---\n[no output" in out.stdout and "[end of input: episode abandoned]" in out.stdout
