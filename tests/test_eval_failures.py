"""Failures are not results: episode errors are printed, infrastructure errors (an endpoint that
refuses connections) exit non-zero with the error text, an unknown split is a clear error, and the
transcripts can be kept. Real tiny model, real sandbox, a real closed port on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest
from toolgym.agents.episode import read_jsonl
from toolgym.agents.tiny import cached_tiny_model
from toolgym.envs.registry import register
from toolgym.envs.task import Problem, Score

from toolgym.cli import main


def closed_port() -> int:
    with socket.socket() as s:  # bound then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_tiny_model(tmp_path_factory.getbasetemp() / "toolgym-cache")


BASE = ["--suite", "toolgym/arith-v0", "-n", "1", "-k", "1", "--num-problems", "2", "--max-tokens", "8",
        "--max-turns", "1", "--no-progress"]


def test_an_endpoint_refusing_connections_fails_the_command_with_its_error(tmp_path: Path, capsys) -> None:
    url = f"openai:tiny@http://127.0.0.1:{closed_port()}/v1"
    assert main(["eval", "--model", url, *BASE, "--out", str(tmp_path / "a")]) == 1
    captured = capsys.readouterr()
    assert "2 of 2 episodes could not be run" in captured.err and "cannot reach" in captured.err
    result = json.loads((tmp_path / "a" / "results.json").read_text())
    assert result["overall"]["infrastructure_errors"] == 2 and "cannot reach" in result["errors"][0]["error"]
    # --fail-on-error never: the same run reports the errors and exits 0
    never = ["--fail-on-error", "never", "--out", str(tmp_path / "b")]
    assert main(["eval", "--model", url, *BASE, *never]) == 0
    assert "episode(s) failed" in capsys.readouterr().out


@dataclass
class BrokenSetup:
    """Every instance's set-up code raises in the sandbox: an episode error that is not the engine's."""

    name: str = "broken-setup"
    splits: tuple[str, ...] = ("train", "heldout")
    tool_format: str = "fenced"

    def problem(self, split: str, index: int) -> Problem:
        return Problem(prompt="Compute 1 + 1.", answer=2, index=index, split=split, setup_code="1 / 0")

    def verify(self, problem: Problem, answer: str, new_session) -> Score:
        return Score(1.0 if answer.strip() == "2" else 0.0)


def test_fail_on_error_any_counts_task_errors_and_infra_does_not(model: Path, tmp_path: Path, capsys) -> None:
    register("test/broken-setup-v0", BrokenSetup, description="set-up code raises")
    args = ["eval", "--model", str(model), *BASE, "--suite", "test/broken-setup-v0"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0  # default: infra only
    assert "ZeroDivisionError" in capsys.readouterr().out  # but the error is shown
    assert main([*args, "--fail-on-error", "any", "--out", str(tmp_path / "b")]) == 1
    assert "ZeroDivisionError" in capsys.readouterr().err


def test_an_unknown_split_of_a_task_is_a_clear_error(model: Path, capsys) -> None:
    assert main(["eval", "--model", str(model), *BASE, "--split", "test"]) == 2
    assert "has no split 'test'; its splits: train, heldout" in capsys.readouterr().err


def test_keep_episodes_writes_the_transcripts(model: Path, tmp_path: Path) -> None:
    assert main(["eval", "--model", str(model), *BASE, "--keep-episodes", "--out", str(tmp_path)]) == 0
    episodes = list(read_jsonl(tmp_path / "episodes.jsonl"))
    assert len(episodes) == 2 and all(ep.messages for ep in episodes)


def test_k_larger_than_n_is_an_error_not_a_silent_drop(model: Path, capsys) -> None:
    assert main(["eval", "--model", str(model), "-n", "2", "-k", "1,4", "--no-progress"]) == 2
    assert "every k must be between 1 and -n 2" in capsys.readouterr().err
