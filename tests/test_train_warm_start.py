"""`toolgym train` warm-starts any model whose recipe has SFT steps (issue 16's SFT cold start).

Real runs through the CLI in one process (--no-ray): a locally built tiny model stands in for a named
model (`--model DIR`), its teacher demos come from the rollout code and its own chat template, SFT,
step-0 held-out eval, then RL from the warm model. `--skip-sft`, `sft.data` and `quickstart.budget_s`
each change what happens.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from toolgym.agents.episode import read_jsonl, write_jsonl
from toolgym.agents.tiny import cached_tiny_model
from toolgym.trainers.config import load_config
from toolgym.trainers.report.metrics import read_metrics
from transformers import AutoModelForCausalLM

from toolgym.cli import main

SMALL = ["run.steps=1", "sft.steps=2", "sft.demos=3", "sft.batch_size=3", "rollout.prompts_per_step=2",
         "rollout.group_size=2", "rollout.num_workers=1", "eval.problems=2", "sampling.max_new_tokens=24",
         "run.progress=false", "quickstart.guess_fraction=0", "quickstart.guess_steps=0",
         "quickstart.budget_s=null", "curriculum.scheduler=uniform",
         "curriculum.options={unit: instance, instances_per_family: 16}"]


@pytest.fixture(scope="module")
def named_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A save_pretrained folder given as --model, as a hub model would be."""
    return cached_tiny_model(tmp_path_factory.getbasetemp() / "toolgym-cache")


def _rl_start(run: Path) -> str:
    """The model RL started from (recorded in the checkpoint's config)."""
    latest = (run / "checkpoints" / "latest").read_text().strip()
    import yaml

    return yaml.safe_load((run / "checkpoints" / latest / "config.yaml").read_text())["model"]["name_or_path"]


def _first_weight(path: Path | str) -> torch.Tensor:
    model = AutoModelForCausalLM.from_pretrained(str(path))
    return next(iter(model.parameters())).detach().clone()


def test_a_named_model_is_warm_started_then_trained_by_rl(named_model: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["train", "--no-ray", "--model", str(named_model), "--output", str(run), *SMALL]) == 0
    assert [r["step"] for r in read_metrics(run / "sft_metrics.jsonl")] == [1, 2]
    assert len(list(read_jsonl(run / "demos.jsonl"))) >= 1  # teacher demos of the training tasks
    assert (run / "eval" / "step_000000.json").exists()  # held-out pass@1 after the warm start
    assert "eval/pass@1" in next(r for r in read_metrics(run / "metrics.jsonl") if r["step"] == 0)
    assert _rl_start(run) == str(run / "warm_model")  # RL from the warm model, not from --model
    assert not torch.equal(_first_weight(run / "warm_model"), _first_weight(named_model))
    assert json.loads((run / "summary.json").read_text())["rl_steps"] == 1


def test_skip_sft_starts_rl_from_the_model_as_it_is(named_model: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["train", "--no-ray", "--skip-sft", "--model", str(named_model), "--output", str(run),
                 *SMALL]) == 0
    assert not (run / "sft_metrics.jsonl").exists() and not (run / "warm_model").exists()
    assert _rl_start(run) == str(named_model)
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl") if "reward/mean" in r] == [1]


def test_sft_data_replaces_the_teacher_demos(named_model: Path, tmp_path: Path, capsys) -> None:
    data = tmp_path / "mine.jsonl"
    assert main(["demos", str(data), "-n", "2", "--model", str(named_model)]) == 0
    mine = list(read_jsonl(data))
    run = tmp_path / "run"
    assert main(["train", "--no-ray", "--model", str(named_model), "--output", str(run), f"sft.data={data}",
                 *SMALL]) == 0
    assert not (run / "demos.jsonl").exists()  # no teacher demos generated: the user's data was used
    assert json.loads((run / "warm_start.json").read_text())["demos"] == len(mine)
    foreign = mine[0]
    foreign.response_ids = [10**6] * len(foreign.response_ids)  # ids from some other, larger tokenizer
    write_jsonl([foreign], tmp_path / "foreign.jsonl")
    assert main(["train", "--no-ray", "--model", str(named_model), "--output", str(tmp_path / "bad"),
                 f"sft.data={tmp_path / 'foreign.jsonl'}", *SMALL]) == 2
    assert "outside this model's vocabulary" in capsys.readouterr().err


def test_the_quickstart_budget_stops_rl_early(named_model: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    tight = [*SMALL, "quickstart.budget_s=1", "run.steps=3"]
    assert main(["train", "--no-ray", "--model", str(named_model), "--output", str(run), *tight]) == 0
    assert json.loads((run / "summary.json").read_text())["rl_steps"] == 0


def test_guess_fraction_and_guess_steps_go_together() -> None:
    for pair in (["quickstart.guess_fraction=0.5", "quickstart.guess_steps=0"],
                 ["quickstart.guess_fraction=0", "quickstart.guess_steps=10"]):
        with pytest.raises(ValueError, match="go together"):
            load_config("quickstart", pair)


def test_before_warm_start_also_evaluates_the_base_model(named_model: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["train", "--no-ray", "--model", str(named_model), "--output", str(run),
                 "eval.before_warm_start=true", *SMALL]) == 0
    base = json.loads((run / "eval" / "base.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert summary["heldout_pass1_base"] == base["overall"]["pass@1"]
    assert set(summary["heldout_pass1_base_per_task"]) == set(summary["heldout_pass1_sft_per_task"])
    plain = tmp_path / "plain"  # the first test's run, without it: no base eval
    assert main(["train", "--no-ray", "--model", str(named_model), "--output", str(plain), *SMALL]) == 0
    assert not (plain / "eval" / "base.json").exists()
    assert "heldout_pass1_base" not in json.loads((plain / "summary.json").read_text())


def test_the_warm_start_uses_the_recipes_micro_batch_budget(named_model: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The SFT stage packs its micro-batches by optimizer.micro_batch_tokens (it used 8192 whatever the
    recipe said: a real model's activations then outgrew the memory the recipe was sized for)."""
    from toolgym.trainers.learner import batching

    budgets: list[int] = []
    original = batching.micro_batches

    def spy(samples, token_budget, *args, **kwargs):
        budgets.append(token_budget)
        return original(samples, token_budget, *args, **kwargs)

    monkeypatch.setattr("toolgym.trainers.run.sft.micro_batches", spy)
    monkeypatch.setattr("toolgym.trainers.learner.learner.micro_batches", spy)
    run = tmp_path / "run"
    assert main(["train", "--no-ray", "--model", str(named_model), "--output", str(run),
                 "optimizer.micro_batch_tokens=777", *SMALL]) == 0
    assert budgets and set(budgets) == {777}


def test_gradient_checkpointing_acts_in_the_warm_start_and_in_rl(named_model: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`model.gradient_checkpointing` reaches both trainers (SFT ignored it): the SFT model and the RL
    learner's policy are loaded with activation checkpointing on, and only then; SFT's training
    forwards run with it."""
    from toolgym.trainers.learner import prefix_forward
    from toolgym.trainers.run import learner_group

    loaded: list[bool] = []
    forwards: list[bool] = []
    original_load, original_logits = learner_group.load_trainable, prefix_forward.causal_lm_logits

    def load_spy(cfg, path):
        model = original_load(cfg, path)
        loaded.append(prefix_forward._checkpointing(model))
        return model

    def logits_spy(model, *args, **kwargs):
        if model.training:
            forwards.append(prefix_forward._checkpointing(model))
        return original_logits(model, *args, **kwargs)

    monkeypatch.setattr(learner_group, "load_trainable", load_spy)
    monkeypatch.setattr("toolgym.trainers.learner.learner.causal_lm_logits", logits_spy)
    for flag in (True, False):
        loaded.clear()
        forwards.clear()
        assert main(["train", "--no-ray", "--model", str(named_model), "--output", str(tmp_path / str(flag)),
                     f"model.gradient_checkpointing={str(flag).lower()}", *SMALL]) == 0
        assert loaded == [flag, flag]  # the SFT model, then the RL learner's
        assert len(forwards) >= 2 and set(forwards) == {flag}  # SFT's two steps at least
