"""The learner's invariances: packing and accumulation never change the gradient; 2 gloo ranks = 1 rank.

Real tiny Qwen2 model (built locally), real torch.distributed on gloo in two spawned processes.
"""

from __future__ import annotations

import copy
import math
import os
import socket
import time

import pytest
import torch
import torch.multiprocessing as mp
from model_support import tiny_qwen as _tiny_model
from toolgym.trainers.algo.loss_api import LossNormalisers
from toolgym.trainers.config.schema import OptimizerConfig
from toolgym.trainers.learner.batching import Sample, micro_batches, pack
from toolgym.trainers.learner.learner import Learner, lr_lambda, nll_loss


def _samples(n: int = 8, seed: int = 1) -> list[Sample]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        length = int(torch.randint(6, 20, (1,), generator=g))
        ids = torch.randint(1, 97, (length,), generator=g).tolist()
        prompt = 3
        mask = [0.0] * (prompt - 1) + [1.0] * (length - prompt)
        old = [0.0] * (prompt - 1) + (-torch.rand(length - prompt, generator=g) * 4).tolist()
        adv = [0.0] * (prompt - 1) + [(-1.0) ** i * 0.5] * (length - prompt)
        out.append(Sample(ids=ids, mask=mask, old_logp=old, advantages=adv, positive=i % 2 == 0))
    return out


def _ratio_loss(mb, logp, entropy, norm: LossNormalisers, entropy_coef=None):
    """A PPO-like per-token loss (the learner is loss-agnostic; registry losses are tested elsewhere)."""
    ratio = torch.exp(logp - mb.old_logp)
    per_token = -mb.advantages * torch.clamp(ratio, 0.0, 5.0)
    loss = (per_token * mb.mask).sum() / norm.num_tokens
    return loss, {"loss/policy": float(loss.detach())}


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _run(budget: int, loss_fn=_ratio_loss, samples=None) -> tuple[Learner, dict[str, torch.Tensor]]:
    cfg = OptimizerConfig(lr=1e-3, micro_batch_tokens=budget)
    learner = Learner(_tiny_model(), cfg, loss_fn, total_steps=4)
    metrics = learner.update(samples or _samples())
    assert metrics["learner/nonfinite"] == 0.0
    return learner, _grads(learner.model)


def test_packing_respects_the_token_budget() -> None:
    samples = _samples(12)
    for budget in (1, 20, 40, 1000):
        groups = pack(samples, budget)
        assert sorted(i for g in groups for i in g) == list(range(12))
        for g in groups:
            longest = max(samples[i].num_tokens for i in g)
            assert len(g) == 1 or len(g) * longest <= budget
    assert len(pack(samples, 1000)) == 1 and len(pack(samples, 1)) == 12


def test_padded_microbatch_gives_the_same_logprobs_as_unpadded() -> None:
    from toolgym.trainers.learner.learner import token_logprobs

    model = _tiny_model().eval()
    samples = _samples(4)
    (together,) = micro_batches(samples, 10_000)
    logp_all, _ = token_logprobs(model, together)
    for r, i in enumerate(together.rows):
        (alone,) = micro_batches([samples[i]], 10_000)
        logp_one, _ = token_logprobs(model, alone)
        n = samples[i].num_tokens - 1
        torch.testing.assert_close(logp_all[r, :n], logp_one[0, :n], atol=1e-5, rtol=1e-5)


def test_logprobs_skip_the_prompt_but_match_a_full_forward_where_trained() -> None:
    """Logits are computed only from the first trained column; on trained tokens log-probs and entropy
    equal those of the full [B, T, V] forward (rows with different prompt lengths)."""
    from toolgym.trainers.learner.learner import token_logprobs

    model = _tiny_model().eval()
    samples = _samples(4)
    for k, s in enumerate(samples):  # prompts of 5, 6, 7, 8 tokens: the first trained column is 4
        s.mask = torch.tensor([0.0] * (4 + k) + [1.0] * (len(s.ids) - 5 - k))
    (mb,) = micro_batches(samples, 10_000)
    logp, ent = token_logprobs(model, mb, temperature=0.7, entropy="detached")
    with torch.no_grad():
        full = torch.log_softmax(model(input_ids=mb.input_ids, attention_mask=mb.attention_mask)
                                 .logits[:, :-1].float() / 0.7, dim=-1)  # [B, T-1, V]
    want = full.gather(-1, mb.targets.unsqueeze(-1)).squeeze(-1)
    trained = mb.mask != 0
    torch.testing.assert_close(logp[trained], want[trained], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ent[trained], -(full.exp() * full).sum(-1)[trained], atol=1e-5, rtol=1e-5)
    assert torch.all(logp[:, :4] == 0) and torch.all(want[:, :4] != 0)  # the prompt columns were skipped


def test_microbatch_size_does_not_change_the_gradient() -> None:
    _, one = _run(budget=100_000)  # one micro-batch
    _, many = _run(budget=1)  # one sample per micro-batch, accumulated
    assert one.keys() == many.keys() and one
    for name in one:
        torch.testing.assert_close(one[name], many[name], atol=1e-6, rtol=1e-4)


def test_nonfinite_loss_skips_the_step_and_leaves_weights() -> None:
    def nan_loss(mb, logp, entropy, norm, entropy_coef):
        return (logp * mb.mask).sum() * float("nan"), {}

    learner = Learner(_tiny_model(), OptimizerConfig(lr=1e-2), nan_loss, total_steps=2)
    before = copy.deepcopy(learner.model.state_dict())
    metrics = learner.update(_samples())
    assert metrics["learner/nonfinite"] == 1.0 and learner.steps_skipped == 1 and learner.steps_done == 0
    for k, v in learner.model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_several_updates_recompute_old_logprobs() -> None:
    """With epochs=2 the first step's ratio is exactly 1: old log-probs are recomputed, not the engine's."""
    seen = []

    def spy(mb, logp, entropy, norm, entropy_coef):
        seen.append(float(((logp.detach() - mb.old_logp).abs() * mb.mask).max()))
        return _ratio_loss(mb, logp, entropy, norm)

    learner = Learner(_tiny_model(), OptimizerConfig(lr=1e-2, epochs=2, micro_batch_tokens=100_000), spy,
                      total_steps=1)
    learner.update(_samples())
    assert seen[0] < 1e-5 and seen[1] > 1e-5  # second epoch: the policy moved
    assert learner.steps_done == 2


def test_single_update_uses_the_engine_logprobs() -> None:
    seen = []

    def spy(mb, logp, entropy, norm, entropy_coef):
        seen.append(float(((logp.detach() - mb.old_logp).abs() * mb.mask).max()))
        return nll_loss(mb, logp, entropy, norm)

    Learner(_tiny_model(), OptimizerConfig(micro_batch_tokens=100_000), spy, total_steps=1).update(_samples())
    assert seen[0] > 0.1  # the synthetic "engine" log-probs were used as they are


def test_schedule_warmup_then_cosine_decay() -> None:
    cfg = OptimizerConfig(lr=1.0, warmup_steps=4, schedule="cosine", min_lr_ratio=0.1)
    f = lr_lambda(cfg, total_steps=14)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(4) == pytest.approx(1.0) and f(9) == pytest.approx(0.55) and f(14) == pytest.approx(0.1)
    assert lr_lambda(OptimizerConfig(schedule="linear"), 10)(5) == pytest.approx(0.5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, out_dir: str) -> None:
    from toolgym.trainers.learner.distributed import init_distributed

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    info = init_distributed("gloo", rank=rank, world_size=world)
    learner = Learner(_tiny_model(), OptimizerConfig(lr=1e-3, micro_batch_tokens=40, mini_batches=2),
                      _ratio_loss, total_steps=2, dist=info)
    for _ in range(2):
        learner.update(_samples())
    torch.save({"params": learner.model.state_dict(), "grads": _grads(learner.model)},
               os.path.join(out_dir, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


def test_two_gloo_ranks_stay_identical_and_match_one_process(tmp_path) -> None:
    mp.spawn(_rank_main, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    for k in r0["params"]:
        assert torch.equal(r0["params"][k], r1["params"][k]), k
    single = Learner(_tiny_model(), OptimizerConfig(lr=1e-3, micro_batch_tokens=40, mini_batches=2),
                     _ratio_loss, total_steps=2)
    for _ in range(2):
        single.update(_samples())
    for k, v in single.model.state_dict().items():
        torch.testing.assert_close(r0["params"][k], v, atol=1e-5, rtol=1e-4)
    assert math.isfinite(sum(float(g.abs().sum()) for g in r0["grads"].values()))


def _rank_with_an_empty_share(rank: int, world: int, port: int, out_dir: str) -> None:
    from toolgym.trainers.learner.distributed import init_distributed

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    info = init_distributed("gloo", rank=rank, world_size=world)
    learner = Learner(_tiny_model(), OptimizerConfig(lr=1e-3, micro_batch_tokens=40), _ratio_loss,
                      total_steps=2, dist=info)
    metrics = [learner.update(_samples(1, seed=s)) for s in (3, 4)]  # one sample: rank 1 has none
    torch.save({"params": learner.model.state_dict(), "metrics": metrics},
               os.path.join(out_dir, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


def test_a_rank_without_samples_reduces_the_same_metrics_as_the_others(tmp_path) -> None:
    """One sample on two ranks: rank 1 has no micro-batch, so no metric of its own. Its step must
    still pair its reductions with rank 0's (before: name-by-name reductions misaligned and hung),
    and both ranks must report one process's figures."""
    ctx = mp.spawn(_rank_with_an_empty_share, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=False)
    deadline = time.monotonic() + 120
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("two gloo ranks, one without samples, did not finish their updates in 120 s")
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    single = Learner(_tiny_model(), OptimizerConfig(lr=1e-3, micro_batch_tokens=40), _ratio_loss,
                     total_steps=2)
    expected = [single.update(_samples(1, seed=s)) for s in (3, 4)]
    for ranked in (r0["metrics"], r1["metrics"]):
        for got, want in zip(ranked, expected, strict=True):
            assert set(got) == set(want)
            assert got["loss/policy"] == pytest.approx(want["loss/policy"], rel=1e-5, abs=1e-7)
            assert want["loss/policy"] != 0.0
    for k, v in single.model.state_dict().items():
        assert torch.equal(r0["params"][k], r1["params"][k]), k
        torch.testing.assert_close(r0["params"][k], v, atol=1e-5, rtol=1e-4)


def test_registry_loss_through_the_learner_is_microbatch_invariant() -> None:
    """GPPO + SFT-on-positives + entropy bonus, as the trainer uses them: 1 x N == N x 1."""
    from toolgym.trainers.algo.loss_config import LossConfig
    from toolgym.trainers.learner.learner import policy_loss_fn

    loss_fn = policy_loss_fn(LossConfig(name="gppo", sft_coef=0.1, entropy_coef=0.01))
    grads = []
    for budget in (100_000, 1):
        learner = Learner(_tiny_model(), OptimizerConfig(lr=1e-3, micro_batch_tokens=budget), loss_fn,
                          total_steps=1, entropy="grad")
        metrics = learner.update(_samples())
        assert metrics["loss/sft"] > 0 and metrics["actor/entropy"] > 0
        grads.append(_grads(learner.model))
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-4)


def test_logprob_mismatch_is_measured_and_recompute_old_logprobs_acts() -> None:
    """`rollout/logprob_mismatch` is the mean |engine - learner| gap before the update, the same whether
    read from the first forward or from a recomputation; `recompute_old_logprobs` then trains from
    ratios of exactly 1 (the spy sees no gap on the first micro-batch) where the default does not."""
    seen: list[float] = []

    def spy(mb, logp, entropy, norm, entropy_coef):
        seen.append(float(((logp.detach() - mb.old_logp).abs() * mb.mask).max()))
        return _ratio_loss(mb, logp, entropy, norm)

    plain = Learner(_tiny_model(), OptimizerConfig(lr=1e-2, micro_batch_tokens=100_000), spy, total_steps=1)
    engine_gap = plain.update(_samples())["rollout/logprob_mismatch"]
    assert seen[0] > 0.1 and engine_gap > 0.1  # the synthetic engine log-probs are far off
    seen.clear()
    cfg = OptimizerConfig(lr=1e-2, micro_batch_tokens=100_000, recompute_old_logprobs=True)
    again = Learner(_tiny_model(), cfg, spy, total_steps=1).update(_samples())["rollout/logprob_mismatch"]
    assert seen[0] < 1e-5  # trained from the learner's own log-probs
    assert again == pytest.approx(engine_gap, rel=1e-4)  # the same gap, measured on the recomputation
