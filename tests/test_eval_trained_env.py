"""A checkpoint carries its training environment: `eval` / `serve` / `doctor` find the run's config.yaml
from a run directory, `step_N` or its `model/`, use it by default and print it; `--env` overrides it.

Real tiny model, real local sandbox, one in-process training step (`run.ray=off`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from toolgym.trainers.config import load_config
from toolgym.trainers.run.driver import fit

from toolgym.cli import main
from toolgym.commands._trained import parse_env_overrides, resolve_model, trained_env

PROMPT = "Run Python in a ```python block; give the result as <answer>N</answer>."
TINY = ["rollout.prompts_per_step=2", "rollout.group_size=2", "rollout.sandbox_pool=2",
        "rollout.max_turns=2", "rollout.max_tool_calls=1", "sampling.max_new_tokens=10",
        f"rollout.env.system_prompt={PROMPT}", "rollout.filter_zero_variance=false",
        "eval.problems=3", "curriculum.scheduler=uniform", "run.progress=false", "run.ray=off",
        "run.steps=1", "model.tiny={hidden_size: 32, intermediate_size: 64, num_layers: 1}"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "run"
    fit(load_config(None, TINY), out)
    return out


def test_model_paths_resolve_to_the_model_folder_and_the_run_config(run_dir: Path) -> None:
    step = run_dir / "checkpoints" / "step_000001"
    for given in (run_dir, step, step / "model"):
        model, config = resolve_model(given)
        assert model == step / "model" and config is not None and config.parent in (run_dir, step)
    env = trained_env(run_dir)
    assert env.env_kwargs == {"max_turns": 2, "max_tool_calls": 1, "system_prompt": PROMPT}
    assert env.max_tokens == 10 and env.eval["problems"] == 3 and env.tasks["heldout"] == ["toolgym/arith-v0"]
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        resolve_model(run_dir / "nothing")


def test_cli_eval_of_a_checkpoint_equals_the_trainings_own_heldout_eval(run_dir: Path, tmp_path: Path,
                                                                        capsys) -> None:
    training = json.loads((run_dir / "eval" / "step_000001.json").read_text())
    assert main(["eval", "--model", str(run_dir), "--temperature", "0", "-n", "1", "-k", "1",
                 "--out", str(tmp_path / "ev"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "training environment (from" in printed and "max_tool_calls=1" in printed
    ours = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert ours["config"]["env"]["system_prompt"] == PROMPT and ours["config"]["sampling"]["max_tokens"] == 10
    assert ours["overall"] == training["overall"]  # same greedy episodes: every statistic equal
    assert ours["overall"]["episodes"] == 3

    # the environments' defaults (what `eval` used before) are a different evaluation
    assert main(["eval", "--model", str(run_dir), "--no-train-env", "--temperature", "0", "-n", "1",
                 "-k", "1", "--num-problems", "3", "--max-tokens", "10", "--out", str(tmp_path / "d"),
                 "--no-progress"]) == 0
    default = json.loads((tmp_path / "d" / "results.json").read_text())
    assert default["config"]["env"] == {} and default["overall"] != training["overall"]


def test_env_overrides_act_and_unknown_keys_are_named(run_dir: Path, tmp_path: Path, capsys) -> None:
    assert main(["eval", "--model", str(run_dir / "checkpoints" / "step_000001"), "--temperature", "0",
                 "-n", "1", "-k", "1", "--num-problems", "2", "--env", "max_turns=1", "--out",
                 str(tmp_path / "o"), "--no-progress"]) == 0
    result = json.loads((tmp_path / "o" / "results.json").read_text())
    assert result["config"]["env"]["max_turns"] == 1 and result["overall"]["avg_turns"] == 1.0
    assert parse_env_overrides(["system_prompt=Hi {instructions}"]) == {"system_prompt": "Hi {instructions}"}
    capsys.readouterr()
    assert main(["eval", "--model", str(run_dir), "--env", "max_turn=1", "--no-progress"]) == 2
    assert "Did you mean 'max_turns'" in capsys.readouterr().err


def test_serve_and_doctor_accept_a_run_directory(run_dir: Path, capsys) -> None:
    from toolgym.commands.doctor import _check_model

    assert _check_model(str(run_dir)) == []
    out = capsys.readouterr().out
    assert "step_000001/model" in out and "max_tool_calls=1" in out
