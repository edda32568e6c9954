"""`toolgym sft`: a short run on real teacher demos (real sandbox) lowers the NLL of their policy tokens."""

from __future__ import annotations

import json
import re

import pytest
from toolgym.agents.episode import Episode, read_jsonl
from toolgym.agents.tiny import cached_tiny_model
from toolgym.trainers.config.schema import SFTConfig
from toolgym.trainers.run.sft import mean_nll, run_sft, sft_samples
from transformers import AutoModelForCausalLM

from toolgym.cli import main


@pytest.fixture(scope="module")
def tiny_path():
    return cached_tiny_model(hidden_size=64, intermediate_size=128, num_layers=2)


@pytest.fixture(scope="module")
def demos(tiny_path, tmp_path_factory):
    path = tmp_path_factory.mktemp("demos") / "demos.jsonl"
    assert main(["demos", str(path), "--suite", "quickstart", "-n", "8", "--model", str(tiny_path)]) == 0
    return path


def test_sft_lowers_the_loss_on_its_data(tiny_path, demos, tmp_path, capsys) -> None:
    out = tmp_path / "sft"
    code = main(["sft", str(demos), "--model", str(tiny_path), "--output", str(out), "--steps", "12",
                 "--batch-size", "4", "--lr", "3e-3", "--quiet"])
    assert code == 0
    before, after = map(float, re.search(r"NLL of the policy tokens ([\d.]+) -> ([\d.]+)",
                                         capsys.readouterr().out).groups())
    assert after < before - 0.5
    episodes = list(read_jsonl(demos))
    model = AutoModelForCausalLM.from_pretrained(out)  # the saved checkpoint is the trained one
    assert mean_nll(model, episodes) == pytest.approx(after, rel=1e-4)
    lines = [json.loads(line) for line in (out / "sft_metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(1, 13)) and all("loss/nll" in r for r in lines)


def test_sft_trains_only_on_policy_tokens_of_successful_episodes(demos) -> None:
    episodes = list(read_jsonl(demos))
    failed = Episode(**{**episodes[0].to_dict(), "success": False})
    errored = Episode(**{**episodes[0].to_dict(), "finish_reason": "error", "error": "boom"})
    assert len(sft_samples([*episodes, failed, errored])) == len(episodes)
    assert len(sft_samples([failed], only_success=False)) == 1
    sample = sft_samples(episodes[:1])[0]
    ep = episodes[0]
    # targets aligned: the mask covers exactly the response's loss-mask-1 tokens, shifted by the prompt
    assert float(sample.mask.sum()) == sum(ep.loss_mask)
    assert sample.mask[len(ep.prompt_ids) - 1:].tolist() == [float(m) for m in ep.loss_mask]


def test_sft_errors_are_clear(tiny_path, tmp_path, capsys) -> None:
    assert main(["sft", str(tmp_path / "missing.jsonl"), "--model", str(tiny_path)]) == 2
    assert "toolgym demos" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "x", "nonsense": 1}\n')
    assert main(["sft", str(bad), "--model", str(tiny_path)]) == 2
    assert "not an Episode record" in capsys.readouterr().err


def test_sft_metrics_hold_no_logprob_mismatch(tiny_path, demos) -> None:
    """SFT samples carry no behaviour log-probs: a mismatch figure there would only repeat the NLL."""
    model = AutoModelForCausalLM.from_pretrained(str(tiny_path))
    history = run_sft(model, list(read_jsonl(demos)), SFTConfig(steps=2, batch_size=2, only_success=True))
    assert len(history) == 2 and all("rollout/logprob_mismatch" not in m and "loss/nll" in m for m in history)
