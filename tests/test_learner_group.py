"""`run.learners: 2` -- two learner ranks as Ray actors on gloo, driven by the ordinary `fit()`.

Real tiny model, real local sandbox, real local Ray (2 CPUs: one rollout worker with 1 CPU and two
learner ranks with 0.5 each), real torch.distributed (gloo, tcp:// rendezvous). The tiny settings are
those of tests/test_trainer_driver.py (2 requests x 2 samples, an entropy bonus so that every update
has a gradient although the untrained model fails every episode).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from toolgym.trainers.config import ConfigError, TrainConfig, load_config
from toolgym.trainers.learner.batching import Sample
from toolgym.trainers.report.metrics import read_metrics
from toolgym.trainers.run.driver import fit
from toolgym.trainers.run.learner_group import LearnerDiedError, LearnerGroup, build_learner, learner_device

TINY = ["rollout.prompts_per_step=2", "rollout.group_size=2", "rollout.sandbox_pool=2",
        "rollout.cpus_per_worker=1.0", "rollout.max_turns=2", "sampling.max_new_tokens=12",
        "rollout.filter_zero_variance=false", "optimizer.lr=1e-3", "loss.entropy_coef=0.01",
        "eval.problems=0", "curriculum.scheduler=uniform", "run.progress=false", "run.ray_num_cpus=2",
        "model.tiny={hidden_size: 64, intermediate_size: 128, num_layers: 2, num_heads: 4, num_kv_heads: 2}"]
TWO_RANKS = ["run.ray=local", "run.learners=2", "run.cpus_per_learner=0.5"]


def tiny_config(*overrides: str) -> TrainConfig:
    return load_config(None, [*TINY, *overrides])


def weights(run_dir: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "checkpoints" / f"step_{step:06d}" / "model" / "model.safetensors"))


def test_learners_must_be_at_least_one() -> None:
    with pytest.raises(ConfigError, match=r"run.learners must be >= 1.*got 0"):
        tiny_config("run.learners=0")


def test_several_learners_need_ray() -> None:
    with pytest.raises(ConfigError, match=r"run.learners=2 needs Ray.*run.ray=local"):
        tiny_config("run.learners=2", "run.ray=off")


def test_unknown_strategy_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"'zero' is not allowed; allowed values: 'ddp', 'fsdp2'"):
        tiny_config("run.learner_strategy=zero")


def test_local_ray_too_small_for_learners_and_workers_is_an_error() -> None:
    cfg = tiny_config(*TWO_RANKS, "run.cpus_per_learner=1.0")  # 2 x 1 + 1 worker x 1 > 2 CPUs
    with pytest.raises(ValueError, match=r"lower run.cpus_per_learner"):
        learner_device(cfg, {"CPU": 2.0})
    assert learner_device(tiny_config(*TWO_RANKS), {"CPU": 2.0}) == "cpu"
    with pytest.raises(RuntimeError, match="no GPU"):
        learner_device(tiny_config(*TWO_RANKS, "run.device=cuda"), {"CPU": 8.0})


@pytest.fixture(scope="module")
def two_rank_run(local_ray, tmp_path_factory) -> tuple[Path, list[dict[str, torch.Tensor]]]:
    """A 2-step fit() with 2 learner ranks and a checkpoint after each step; each rank's parameters
    are read just before the group is closed (the real close, spied on, not replaced)."""
    run_dir = tmp_path_factory.mktemp("two_ranks")
    seen: list[list[dict[str, torch.Tensor]]] = []
    real_close = LearnerGroup.close

    def close_after_reading(self: LearnerGroup) -> None:
        if self.actors:
            seen.append(self.rank_parameters())
        real_close(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(LearnerGroup, "close", close_after_reading)
        out = fit(tiny_config("run.steps=2", "checkpoint.every=1", *TWO_RANKS), run_dir)
    assert out["step"] == 2 and not out["interrupted"]
    assert len(seen) == 1
    return run_dir, seen[0]


def test_two_ranks_stay_identical_and_checkpoint_rank_zero(two_rank_run) -> None:
    run_dir, ranks = two_rank_run
    assert len(ranks) == 2
    assert ranks[0].keys() == ranks[1].keys()
    for name in ranks[0]:
        assert torch.equal(ranks[0][name], ranks[1][name]), name
    saved = weights(run_dir, 2)  # the checkpoint is rank 0's model
    for name, value in saved.items():
        assert torch.equal(value, ranks[0][name]), name
    records = [r for r in read_metrics(run_dir / "metrics.jsonl") if "rollout/episodes" in r]
    assert [r["step"] for r in records] == [1, 2]
    for r in records:
        assert r["learner/samples"] == 4.0 and r["learner/grad_norm"] > 0.0 and r["learner/nonfinite"] == 0.0
    base = load_file(str(run_dir / "base_model" / "model.safetensors"))
    assert any(not torch.equal(base[k], saved[k]) for k in base)  # the updates changed the policy


def test_first_update_of_two_ranks_equals_one_learner(two_rank_run, tmp_path: Path) -> None:
    run_dir, _ = two_rank_run
    shutil.copytree(run_dir / "base_model", tmp_path / "base_model")  # same initial weights
    fit(tiny_config("run.steps=1", "run.ray=off"), tmp_path)
    one, two = weights(tmp_path, 1), weights(run_dir, 1)
    assert one.keys() == two.keys()
    base = load_file(str(run_dir / "base_model" / "model.safetensors"))
    assert any(not torch.equal(base[k], one[k]) for k in base)  # a real update, not two copies of base
    for name in one:
        torch.testing.assert_close(two[name], one[name], atol=1e-6, rtol=1e-5)
    first = {p.name: next(r for r in read_metrics(p / "metrics.jsonl") if "rollout/episodes" in r)
             for p in (run_dir, tmp_path)}
    for key in ("loss/policy", "learner/grad_norm"):  # rank 0's metrics are all-reduced over ranks
        assert first[run_dir.name][key] == pytest.approx(first[tmp_path.name][key], rel=1e-4), key


def test_resume_with_two_ranks_gives_the_same_next_update(two_rank_run, tmp_path: Path) -> None:
    """Restores optimizer and schedule into every rank from the step-1 checkpoint."""
    run_dir, _ = two_rank_run
    resumed = tmp_path / "resumed"
    shutil.copytree(run_dir, resumed)
    shutil.rmtree(resumed / "checkpoints" / "step_000002")
    (resumed / "checkpoints" / "latest").write_text("step_000001\n")
    out = fit(tiny_config("run.steps=2", "checkpoint.every=1", *TWO_RANKS), resumed, resume=True)
    assert out["step"] == 2
    straight, again = weights(run_dir, 2), weights(resumed, 2)
    for name in straight:
        torch.testing.assert_close(again[name], straight[name], atol=1e-6, rtol=1e-5)


def test_fsdp2_shards_the_kl_reference_and_pads_a_short_rank_with_forwards(two_rank_run, local_ray) -> None:
    """loss.kl_coef > 0 under FSDP2: the frozen reference is sharded like the policy (each rank holds a
    piece of every weight), and the updates, loss/kl and reference log-probs equal one learner's.
    Three samples of one micro-batch each leave rank 1 a micro-batch short: its padding step must run
    the policy's and the reference's forwards too, or rank 0's all-gathers would wait for it forever."""
    run_dir, _ = two_rank_run
    cfg = tiny_config(*TWO_RANKS, "run.learner_strategy=fsdp2", "loss.kl_coef=0.5",
                      "optimizer.micro_batch_tokens=24")
    model_path = str(run_dir / "base_model")
    samples = _synthetic_samples()[:3]
    single = build_learner(cfg, model_path, device="cpu", pad_id=0)
    group = LearnerGroup(cfg, model_path)
    try:
        for step in range(2):
            ours, theirs = group.update(samples), single.update(samples)
            for key in ("learner/grad_norm", "loss/kl", "loss/policy"):
                assert ours[key] == pytest.approx(theirs[key], rel=1e-4, abs=1e-9), (step, key)
        assert theirs["loss/kl"] > 1e-6  # the second step measures a policy that moved off the reference
        reference_logp = group.reference_logprobs(samples)
        shards = group.rank_parameters(reference=True)
    finally:
        group.close()
    for ours, theirs in zip(reference_logp, single.reference_logprobs(samples), strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)
    full = single.reference.state_dict()
    assert shards[0].keys() == full.keys()
    for name, value in full.items():
        assert shards[0][name].shape[0] < value.shape[0], name  # a piece, not a copy
        torch.testing.assert_close(torch.cat([shards[0][name], shards[1][name]]), value)


def test_a_dead_learner_rank_is_fatal_and_named(two_rank_run, local_ray) -> None:
    """Rank 1's process is killed; rank 0 then blocks in the update's first all-reduce, so the group
    must report rank 1's death instead of waiting for rank 0."""
    run_dir, _ = two_rank_run
    group = LearnerGroup(tiny_config(*TWO_RANKS), str(run_dir / "base_model"))
    try:
        os.kill(group.pids[1], signal.SIGKILL)
        _wait_gone(group.pids[1])
        with pytest.raises(LearnerDiedError, match=r"learner rank 1 of 2 died.*--resume"):
            group.update(_synthetic_samples())
    finally:
        group.close()
    assert group.actors == []


def _wait_gone(pid: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def _synthetic_samples() -> list[Sample]:
    """Four fixed episodes (+1 / -1 advantages) for learner-level comparisons without rollouts."""
    rng = random.Random(0)
    out = []
    for i in range(4):
        n = 16 + 2 * i
        out.append(Sample(ids=[rng.randrange(100) for _ in range(n)], mask=[0.0] * 4 + [1.0] * (n - 5),
                          old_logp=[0.0] * 4 + [-4.0] * (n - 5),
                          advantages=[0.0] * 4 + [1.0 if i % 2 else -1.0] * (n - 5)))
    return out


@pytest.mark.slow
def test_fsdp2_ranks_on_gloo_make_the_one_learner_update(two_rank_run, local_ray, tmp_path: Path) -> None:
    """FSDP2 (sharded parameters, gathered for reads) runs on CPU too: two steps equal one learner's,
    and its checkpoint pieces (full weights, gathered optimizer state) round-trip."""
    run_dir, _ = two_rank_run
    cfg = tiny_config(*TWO_RANKS, "run.learner_strategy=fsdp2")
    model_path = str(run_dir / "base_model")
    single = build_learner(cfg, model_path, device="cpu", pad_id=0)
    group = LearnerGroup(cfg, model_path)
    try:
        for _ in range(2):
            ours, theirs = group.update(_synthetic_samples()), single.update(_synthetic_samples())
            assert ours["learner/grad_norm"] == pytest.approx(theirs["learner/grad_norm"], rel=1e-4)
        full = group.policy_state()
        shards = group.rank_parameters()
        group.load_state_dict(group.state_dict())
        assert group.steps_done == 2
        group.model.save_pretrained(tmp_path / "model", safe_serialization=True)
    finally:
        group.close()
    reference = single.policy_state()
    assert full.keys() == reference.keys()
    for name in reference:
        torch.testing.assert_close(full[name], reference[name], atol=1e-5, rtol=1e-4)  # as 2 DDP ranks
    name = next(iter(reference))
    assert shards[0][name].shape[0] + shards[1][name].shape[0] == reference[name].shape[0]  # sharded
    saved = load_file(str(tmp_path / "model" / "model.safetensors"))
    for name in saved:
        assert torch.equal(saved[name], full[name]), name
