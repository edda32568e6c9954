"""The learner's shared-prefix forward (trainers/learner/prefix_forward.py): the common prefix of a
micro-batch is
fed once, and log-probs, entropy and the gradient are those of the plain forward."""

from __future__ import annotations

import pytest
import torch
from model_support import tiny_qwen as _tiny_model
from toolgym.trainers.config.schema import OptimizerConfig
from toolgym.trainers.learner.batching import Sample, collate, fed_tokens, micro_batches, pack, pack_by_prefix
from toolgym.trainers.learner.learner import Learner, token_logprobs
from toolgym.trainers.learner.prefix_forward import (
    MIN_SHARED_PREFIX,
    common_prefix_length,
    shareable_prefix,
)

PREFIX = MIN_SHARED_PREFIX + 8


def _group(n: int = 5, seed: int = 1) -> list[Sample]:
    """Episodes that share a PREFIX-token system prompt, then differ (prompt tail + response)."""
    g = torch.Generator().manual_seed(seed)
    system = torch.randint(1, 97, (PREFIX,), generator=g).tolist()
    out = []
    for i in range(n):
        tail = torch.randint(1, 97, (int(torch.randint(4, 20, (1,), generator=g)),), generator=g).tolist()
        ids = system + tail
        prompt = PREFIX + 2
        mask = [0.0] * (prompt - 1) + [1.0] * (len(ids) - prompt)
        old = [0.0] * (prompt - 1) + (-torch.rand(len(ids) - prompt, generator=g)).tolist()
        adv = [0.0] * (prompt - 1) + [(-1.0) ** i] * (len(ids) - prompt)
        out.append(Sample(ids=ids, mask=mask, old_logp=old, advantages=adv))
    return out


def _grpo_batch(groups: int, size: int, system: int = 4, problem: int = 50, seed: int = 2,
                response: int = 30) -> list[Sample]:
    """`groups` prompts (a short shared system prompt + a long problem) x `size` responses each; the
    rows are listed interleaved, as a rollout batch may arrive."""
    g = torch.Generator().manual_seed(seed)
    head = torch.randint(1, 97, (system,), generator=g).tolist()
    prompts = [head + torch.randint(1, 97, (problem,), generator=g).tolist() for _ in range(groups)]
    out = []
    for k in range(size):
        for p in prompts:
            tail = torch.randint(1, 97, (int(torch.randint(3, response, (1,), generator=g)),), generator=g)
            ids = p + tail.tolist()
            n = len(ids) - 1
            mask = [0.0] * (len(p) - 1) + [1.0] * (n - len(p) + 1)
            out.append(Sample(ids=ids, mask=mask, old_logp=[-1.0 * m for m in mask],
                              advantages=[(-1.0) ** k * m for m in mask]))
    return out


def _forward_batches(model) -> list[tuple[int, int]]:
    """Records the [B, T] shape of every forward call of `model`."""
    shapes: list[tuple[int, int]] = []
    model.register_forward_pre_hook(lambda _m, _a, kw: shapes.append(tuple(kw["input_ids"].shape)),
                                    with_kwargs=True)
    return shapes


def test_common_prefix_and_when_it_is_shared() -> None:
    ids = torch.tensor([[1, 2, 3, 4], [1, 2, 9, 4], [1, 2, 3, 5]])
    assert common_prefix_length(ids) == 2 and common_prefix_length(ids[:1]) == 4
    long = torch.cat([torch.ones(2, PREFIX, dtype=torch.long), torch.tensor([[5, 6], [7, 8]])], dim=1)
    assert shareable_prefix(long, None, keep=2) == PREFIX
    assert shareable_prefix(long, None, keep=6) == PREFIX - 4  # logits needed inside the prefix
    assert shareable_prefix(long, None, keep=PREFIX) == 0  # what is left is too short to pay
    assert shareable_prefix(long, torch.ones_like(long), keep=2) == 0  # a mask: rows not right-padded
    assert shareable_prefix(long[:1], None, keep=2) == 0  # one row: nothing to share


@pytest.mark.parametrize("entropy", ["none", "grad"])
def test_shared_prefix_gives_the_plain_logprobs_entropy_and_gradient(entropy: str) -> None:
    model = _tiny_model()
    shapes = _forward_batches(model)
    (mb,) = micro_batches(_group(), 10_000)
    got = {}
    for share in (False, True):
        shapes.clear()
        model.zero_grad()
        logp, ent = token_logprobs(model, mb, 0.7, entropy, share_prefix=share)
        loss = (logp * mb.mask * mb.advantages).sum() + (0 if ent is None else (ent * mb.mask).sum())
        loss.backward()
        got[share] = (logp.detach(), ent, {n: p.grad.clone() for n, p in model.named_parameters()})
        calls = list(shapes)
    assert calls == [(1, PREFIX), (5, mb.input_ids.shape[1] - PREFIX)]  # the prefix fed once, then the rest
    torch.testing.assert_close(got[True][0], got[False][0], atol=1e-5, rtol=1e-5)
    if entropy == "grad":
        torch.testing.assert_close(got[True][1], got[False][1], atol=1e-5, rtol=1e-5)
    assert got[True][2].keys() == got[False][2].keys()
    for name, grad in got[False][2].items():
        torch.testing.assert_close(got[True][2][name], grad, atol=1e-5, rtol=1e-4)


def test_checkpointed_model_falls_back_to_the_plain_forward() -> None:
    """Under activation checkpointing transformers fills no cache, so the prefix cannot be reused."""
    model = _tiny_model().train()
    (getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable)()
    shapes = _forward_batches(model)
    (mb,) = micro_batches(_group(), 10_000)
    logp, _ = token_logprobs(model, mb, share_prefix=True)
    assert shapes == [tuple(mb.input_ids.shape)]
    want, _ = token_logprobs(_tiny_model(), mb)
    torch.testing.assert_close(logp.detach(), want.detach(), atol=1e-5, rtol=1e-5)


def test_learner_update_is_the_same_with_and_without_prefix_sharing() -> None:
    """Two updates (mini-batches, micro-batches of several rows): identical weights either way."""
    states = []
    for share in (True, False):
        cfg = OptimizerConfig(lr=1e-2, micro_batch_tokens=200, mini_batches=2, share_prefix=share)
        learner = Learner(_tiny_model(), cfg, _ratio_loss, total_steps=2)
        assert learner.share_prefix is share
        shapes = _forward_batches(learner.model)
        for _ in range(2):
            learner.update(_group(8))
        assert any(s == (1, PREFIX) for s in shapes) is share
        states.append(learner.model.state_dict())
    for name, value in states[1].items():
        torch.testing.assert_close(states[0][name], value, atol=1e-5, rtol=1e-4)


def _ratio_loss(mb, logp, entropy, norm, entropy_coef=None):
    ratio = torch.exp(logp - mb.old_logp)
    loss = (-mb.advantages * ratio * mb.mask).sum() / norm.num_tokens
    return loss, {"loss/policy": float(loss.detach())}


def _rank_main(rank: int, world: int, port: int, out: str, strategy: str) -> None:
    import os

    from toolgym.trainers.learner.distributed import init_distributed

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    info = init_distributed("gloo", rank=rank, world_size=world)
    cfg = OptimizerConfig(lr=1e-2, micro_batch_tokens=200, mini_batches=2)
    learner = Learner(_tiny_model(), cfg, _ratio_loss, total_steps=2, dist=info, strategy=strategy)
    shapes = _forward_batches(learner.model)
    for _ in range(2):
        learner.update(_group(8))
    params = {k: getattr(v, "full_tensor", lambda v=v: v)() for k, v in learner.model.state_dict().items()}
    if rank == 0:
        torch.save({"params": params, "shapes": shapes}, out)
    torch.distributed.destroy_process_group()


@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])
def test_two_ranks_make_the_one_process_update(strategy: str, tmp_path) -> None:
    """DDP sees two forward calls per backward with the shared prefix; its gradient sync must still give
    the update of one process that does not share it. FSDP2's backward fails after two forward calls, so
    it is not offered the shared path (trainers/learner/learner.py): it must run, plainly, to the same
    update."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = str(tmp_path / "rank0.pt")
    mp.spawn(_rank_main, args=(2, port, out, strategy), nprocs=2, join=True)
    ranks = torch.load(out)
    assert ((1, PREFIX) in ranks["shapes"]) is (strategy == "ddp")  # the shared path ran under DDP only
    single = Learner(_tiny_model(), OptimizerConfig(lr=1e-2, micro_batch_tokens=200, mini_batches=2,
                                                    share_prefix=False), _ratio_loss, total_steps=2)
    for _ in range(2):
        single.update(_group(8))
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(ranks["params"][name], value, atol=1e-5, rtol=1e-4)



def test_groups_are_packed_together_when_that_feeds_fewer_tokens() -> None:
    """Long per-group prompts: packing by length mixes groups (only a 4-token system prompt in common),
    packing by prefix keeps each group's 54-token prompt in one micro-batch, fed once."""
    samples = _grpo_batch(groups=4, size=4)
    budget = 4 * max(s.num_tokens for s in samples)  # room for one group per micro-batch
    chosen = micro_batches(samples, budget, share_prefix=True)
    by_length = pack(samples, budget)
    prompt_of = [tuple(s.ids[:54].tolist()) for s in samples]
    assert all(len({prompt_of[i] for i in mb.rows}) == 1 for mb in chosen)  # one group each
    assert fed_tokens(samples, [mb.rows for mb in chosen]) < fed_tokens(samples, by_length)
    assert [mb.rows for mb in micro_batches(samples, budget)] == by_length  # no sharing: by length


@pytest.mark.parametrize(("system", "problem"), [(36, 50), (36, 8), (4, 8)])  # shared: both, system, none
def test_the_packing_cost_counts_what_the_forward_feeds(system: int, problem: int) -> None:
    """`fed_tokens` (from the lists, before collating) equals the positions the forward calls get."""
    samples = _grpo_batch(groups=4, size=4, system=system, problem=problem)
    model = _tiny_model()
    shapes = _forward_batches(model)
    for budget in (100_000, 4 * max(s.num_tokens for s in samples)):
        for groups in (pack(samples, budget), pack_by_prefix(samples, budget)):
            shapes.clear()
            with torch.no_grad():
                for rows in groups:
                    token_logprobs(model, collate(samples, rows), share_prefix=True)
            assert fed_tokens(samples, groups) == sum(b * t for b, t in shapes)


def test_length_packing_is_kept_when_nothing_can_be_shared() -> None:
    samples = _grpo_batch(groups=4, size=4, problem=8)  # 12-token prompts: below MIN_SHARED_PREFIX
    budget = 4 * max(s.num_tokens for s in samples)
    assert [mb.rows for mb in micro_batches(samples, budget, share_prefix=True)] == pack(samples, budget)


def test_many_small_groups_stay_in_one_micro_batch() -> None:
    """One micro-batch per group would feed fewer tokens (each 72-token prompt once per group, not the
    32-token system prompt once), but 16 micro-batches cost more than that saves
    (MICRO_BATCH_OVERHEAD_TOKENS): the one mixed micro-batch is kept."""
    samples = _grpo_batch(groups=16, size=4, system=32, problem=40, response=10)
    (mb,) = micro_batches(samples, 100_000, share_prefix=True)
    assert len(mb.rows) == 64
    by_group = [[k + 16 * j for j in range(4)] for k in range(16)]  # rows are listed interleaved
    assert fed_tokens(samples, by_group) < fed_tokens(samples, [mb.rows])


def test_learner_update_with_prefix_packing_is_the_plain_update() -> None:
    samples = _grpo_batch(groups=4, size=4)
    budget = 4 * max(s.num_tokens for s in samples)
    states = []
    for share in (True, False):
        cfg = OptimizerConfig(lr=1e-2, micro_batch_tokens=budget, share_prefix=share)
        learner = Learner(_tiny_model(), cfg, _ratio_loss, total_steps=1)
        shapes = _forward_batches(learner.model)
        learner.update(samples)
        assert ((1, 53) in shapes) is share  # each group's prompt fed once (but its last token: logits)
        states.append(learner.model.state_dict())
    for name, value in states[1].items():
        torch.testing.assert_close(states[0][name], value, atol=1e-5, rtol=1e-4)
