"""benchmarks/rl_signal.py at toy size with the tiny local model: the halves' gradient agreement, the
engine/learner mismatch and the displacement controls run end to end; and its arithmetic (the
signal-to-noise read-off, the agreement of known gradients, the controls' sizes) on known inputs.
(The figures are the benchmark's, on SmolLM2.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from bench_support import BENCHMARKS, benchmark_script
from toolgym.agents.tiny import cached_tiny_model

SCRIPT = str(BENCHMARKS / "rl_signal.py")


def _toy_run(tmp_path: Path) -> Path:
    """A run directory whose config is the quickstart's tiny variant with every group kept (an untrained
    model rarely mixes successes; its groups still differ in format reward)."""
    from toolgym.trainers.config import load_config

    cfg = load_config("quickstart", tiny=True).to_dict()
    cfg["rollout"].update(group_size=4, filter_zero_variance=False)
    cfg["sampling"].update(max_new_tokens=12, temperature=1.0)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "metrics.jsonl").write_text("\n".join(json.dumps({"step": s, "filter/kept_groups": k})
                                                 for s, k in ((1, 1.0), (2, 3.0))) + "\n")
    return run


def test_rl_signal_runs_end_to_end_with_displacement_controls(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The script as a user runs it. The untrained tiny model earns one reward on every episode, so the
    gradient section says why it has no halves; the displacement section evaluates its controls."""
    model = cached_tiny_model(tmp_path_factory.getbasetemp() / "toolgym-cache")
    run = _toy_run(tmp_path)
    moved = tmp_path / "moved"  # a stand-in "RL" checkpoint: the tiny model with every weight nudged
    from transformers import AutoModelForCausalLM, AutoTokenizer

    m = AutoModelForCausalLM.from_pretrained(model)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(1e-3)
    m.save_pretrained(moved)
    AutoTokenizer.from_pretrained(model).save_pretrained(moved)
    out = tmp_path / "signal.json"
    args = ["--model", str(model), "--env-from", str(run), "--task", "toolgym/arith-v0", "--prompts", "4",
            "--rl", str(moved), "--controls", "1", "--dev-count", "2", "--threads", "1", "--out", str(out)]
    proc = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| informative_groups |" in proc.stdout
    result = json.loads(out.read_text())
    g = result["gradient"]
    assert g["episodes"] == 16 and g["groups"] == 4 and g["kept_groups"] == 4  # the filter is off
    if g["informative_groups"] < 2:
        assert "no halves to compare" in g["note"] and "grad_cosine_halves" not in g
    d = result["displacement"]
    assert set(d["models"]) == {"sft", "rl", "sft_minus_d", "sft_plus_shuffled_d_0"}
    assert d["mean_abs_displacement"] == pytest.approx(1e-3, rel=1e-2) and d["moved_fraction"] > 0.99
    assert all(sum(row["problems"] for row in r["per_kind"].values()) == 2 for r in d["models"].values())


def test_halves_gradients_and_mismatch_on_real_episodes(tmp_path: Path,
                                                         tmp_path_factory: pytest.TempPathFactory) -> None:
    """Real episodes of the tiny model through the engine, with rewards assigned (one success per
    group, as a policy that sometimes solves would give): the halves' gradients are real gradients of
    the run's loss, the engine's log-probs equal the learner's, and the counts add up."""
    import argparse

    from toolgym.agents.hf_engine import HFEngine

    model = cached_tiny_model(tmp_path_factory.getbasetemp() / "toolgym-cache")
    run = _toy_run(tmp_path)
    with benchmark_script("rl_signal") as bench:
        cfg = bench.run_config(str(run))
        engine = HFEngine.from_pretrained(model)
        args = argparse.Namespace(task="toolgym/arith-v0", start=300_000, prompts=6, seed=0)
        episodes = bench.rollout_batch(engine, cfg, args)
        for e in episodes:  # the first sample of each group succeeds
            e.success, e.reward = e.sample == 0, 1.0 if e.sample == 0 else 0.0
        g = bench.measure_halves(engine, episodes, cfg, seed=0, kept_per_update=2.0)
        same = bench.measure_halves(engine, episodes, cfg, seed=0, kept_per_update=2.0)
    assert g["episodes"] == 24 and g["informative_groups"] == 6 and g["groups_per_half"] == 3.0
    assert g["success_rate"] == pytest.approx(0.25)
    assert -1.0 <= g["grad_cosine_halves"] <= 1.0 and 0.0 < g["sign_agreement_halves"] < 1.0
    assert g["grad_cosine_halves"] == pytest.approx(same["grad_cosine_halves"], abs=1e-6)  # deterministic
    assert g["logprob_mismatch_mean"] < 1e-4
    assert set(g["by_kind"]) >= {"embedding", "norm", "q_proj", "down_proj"}
    weights = sum(p.numel() for p in engine.model.parameters())
    assert sum(k["weights"] for k in g["by_kind"].values()) == weights
    rows = g["embedding_rows"]
    assert 0 < rows["seen_rows"] < rows["rows"]
    assert rows["mean_abs_grad_unseen"] < rows["mean_abs_grad_seen"]
    if g["signal_to_noise_per_group"] is not None:
        assert g["steps_to_signal_equals_noise"] == pytest.approx(1 / (2.0 * g["signal_to_noise_per_group"]))


def test_signal_to_noise_and_agreement_on_known_gradients() -> None:
    with benchmark_script("rl_signal") as bench:
        # cos = k r / (1 + k r): k = 4 groups a half, r = 0.25 -> cos = 0.5
        assert bench.signal_to_noise(0.5, 4) == pytest.approx(0.25)
        assert bench.signal_to_noise(0.0, 4) is None and bench.signal_to_noise(-0.1, 4) is None
        ga = {"w": torch.tensor([1.0, 2.0, -1.0, 0.5])}
        gb = {"w": torch.tensor([1.0, -2.0, -1.0, 0.5])}
        same = bench.agreement(ga, ga, ["w"])
        assert same["cosine"] == pytest.approx(1.0) and same["sign_agreement"] == 1.0
        mixed = bench.agreement(ga, gb, ["w"])
        assert mixed["cosine"] == pytest.approx((1 - 4 + 1 + 0.25) / (1 + 4 + 1 + 0.25))
        assert mixed["sign_agreement"] == 0.75
        assert bench.parameter_kind("model.layers.3.mlp.up_proj.weight") == "up_proj"
        assert bench.parameter_kind("lm_head.weight") == "embedding"
        assert bench.parameter_kind("model.layers.0.input_layernorm.weight") == "norm"


def test_rl_signal_refuses_a_model_that_is_not_a_folder(tmp_path: Path) -> None:
    args = ["--model", str(tmp_path / "none"), "--env-from", str(tmp_path)]
    proc = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "give a model folder" in proc.stderr


def test_rl_signal_refuses_bad_sample_counts_and_a_run_without_a_config(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    args = ["--model", str(model), "--env-from", str(tmp_path), "--dev-n", "0"]
    proc = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--dev-n >= 1" in proc.stderr
    with benchmark_script("rl_signal") as bench:
        with pytest.raises(SystemExit, match=r"no training config\.yaml"):
            bench.run_config(str(tmp_path))
        run = _toy_run(tmp_path)
        assert bench.run_config(str(run)).rollout.group_size == 4  # a run directory, as before
        assert bench.run_config(str(run / "config.yaml")).rollout.group_size == 4
