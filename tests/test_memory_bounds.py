"""What keeps a real model's run inside its memory: weights through Ray's object store without copies,
and learner samples that end at their last policy token (no overflowing tool output fed to the learner).
Real local Ray, real tiny transformer."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from toolgym.agents.episode import Episode
from toolgym.trainers.learner.batching import sample_from_episode, trained_length
from toolgym.trainers.learner.learner import token_logprobs
from toolgym.trainers.run.weight_payload import WeightPayload


def _state() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {"w": torch.randn(3, 5, generator=gen), "b16": torch.randn(4, generator=gen).to(torch.bfloat16),
            "scalar": torch.tensor(2.5), "strided": torch.randn(4, 6, generator=gen).t(),
            "big": torch.randn(60_000, generator=gen)}  # 240 kB: Ray keeps it in shared memory, not inline


def test_weight_payload_round_trips_every_dtype_and_shape() -> None:
    state = _state()
    back = WeightPayload.from_tensors(state).tensors()
    assert back.keys() == state.keys()
    for name, tensor in state.items():
        assert back[name].dtype == tensor.dtype and back[name].shape == tensor.shape
        torch.testing.assert_close(back[name], tensor, rtol=0, atol=0)


def test_weight_payload_views_the_parameters_without_copying() -> None:
    weight = torch.zeros(1000)
    payload = WeightPayload.from_tensors({"w": weight})
    weight += 1.0  # the payload is a view of the parameter's memory until the store copies it
    assert payload.tensors()["w"].sum().item() == 1000.0
    assert payload.nbytes() == 4000


def test_weights_through_the_object_store_are_read_in_place(local_ray) -> None:
    state = _state()
    ref = local_ray.put(WeightPayload.from_tensors(state))
    got = local_ray.get(ref)
    assert not any(a.flags.writeable for a in got.arrays.values() if a.nbytes > 64)  # store memory
    back = got.tensors()
    for name, tensor in state.items():
        torch.testing.assert_close(back[name], tensor, rtol=0, atol=0)


def _episode(response: list[int], mask: list[float]) -> Episode:
    return Episode(task_id="t", index=0, split="train", group_id="g", prompt_ids=[5, 6, 7],
                   response_ids=response, loss_mask=mask, logprobs=[-0.5 * m for m in mask], reward=1.0)


def test_a_sample_ends_at_its_last_policy_token() -> None:
    # sampled 2, observation 2, sampled 1, then an overflowing observation of 6 tokens
    mask = [1.0, 1.0, 0.0, 0.0, 1.0] + [0.0] * 6
    episode = _episode(list(range(10, 21)), mask)
    sample = sample_from_episode(episode, [0.1 * i for i in range(11)])
    assert trained_length(mask) == 5
    assert sample.ids.tolist() == [5, 6, 7, 10, 11, 12, 13, 14]
    assert sample.mask.tolist() == [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0]
    assert sample.advantages[2:].tolist() == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert sample.old_logp[-1].item() == -0.5
    untrained = sample_from_episode(_episode([10, 11], [0.0, 0.0]), 1.0)  # nothing to cut at
    assert untrained.num_tokens == 5


def test_cutting_the_tail_leaves_the_trained_log_probs_unchanged() -> None:
    from toolgym.agents.tiny import cached_tiny_model
    from toolgym.trainers.learner.batching import Sample, micro_batches
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(cached_tiny_model()).eval()
    mask = [1.0, 1.0, 0.0, 0.0, 1.0] + [0.0] * 6
    episode = _episode([20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30], mask)
    cut = sample_from_episode(episode, 1.0)
    whole = Sample(ids=episode.prompt_ids + episode.response_ids, mask=[0.0, 0.0, *mask],
                   old_logp=[0.0] * 13, advantages=[1.0] * 13)
    lp_cut, _ = token_logprobs(model, micro_batches([cut], 1024)[0])
    lp_whole, _ = token_logprobs(model, micro_batches([whole], 1024)[0])
    trained = cut.mask.bool()
    torch.testing.assert_close(lp_cut[0][trained], lp_whole[0][: cut.num_tokens - 1][trained])


@pytest.mark.parametrize("entropy", ["detached", "grad"])
def test_log_probs_and_entropy_without_a_log_softmax_match_it(entropy: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """token_logprobs computes log pi as logit - logsumexp and the entropy a few positions at a time;
    both equal the log-softmax formulas (values and gradients)."""
    from toolgym.agents.tiny import cached_tiny_model
    from toolgym.trainers.learner import learner
    from toolgym.trainers.learner.batching import Sample, micro_batches
    from transformers import AutoModelForCausalLM

    monkeypatch.setattr(learner, "ENTROPY_CHUNK", 3)  # several chunks, the last one short
    model = AutoModelForCausalLM.from_pretrained(cached_tiny_model())
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(3, model.config.vocab_size, (2, 12), generator=gen)
    rows = [Sample(ids=ids[r], mask=[0.0] * 3 + [1.0] * 8, old_logp=[0.0] * 11, advantages=[1.0] * 11)
            for r in range(2)]
    mb = micro_batches(rows, 1024)[0]
    logp, ent = learner.token_logprobs(model, mb, temperature=0.7, entropy=entropy)
    (logp.sum() + (ent.sum() if entropy == "grad" else 0)).backward()
    ours = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()

    logits = model(input_ids=mb.input_ids).logits[:, :-1].float() / 0.7
    all_logp = torch.log_softmax(logits, -1)
    want_logp = all_logp.gather(-1, mb.targets.unsqueeze(-1)).squeeze(-1)
    want_ent = -(all_logp.exp() * all_logp).sum(-1)
    trained = mb.mask.bool()
    torch.testing.assert_close(logp[trained], want_logp[trained], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ent[:, 3:], want_ent[:, 3:], rtol=1e-5, atol=1e-5)
    (want_logp[:, 3:].sum() + (want_ent[:, 3:].sum() if entropy == "grad" else 0)).backward()
    for mine, theirs in zip(ours, (p.grad for p in model.parameters()), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)


def test_the_decode_buffer_keeps_a_quarter_spare_not_double() -> None:
    """A prefill of 1,000 positions then 96 decoded ones: one buffer of 1,250 (it was 2,000), and the
    keys read back are exactly those written."""
    from toolgym.agents.prefix_cache import buffer_capacity, new_cache

    cache = new_cache()
    keys = torch.randn(2, 3, 1000, 8)
    cache.update(keys, keys.clone(), 0)
    for t in range(96):
        step = torch.full((2, 3, 1, 8), float(t))
        cache.update(step, step.clone(), 0)
    layer = cache.layers[0]
    assert buffer_capacity(1000) == 1250 and buffer_capacity(10) == 74
    assert layer._kbuf.shape[-2] == 1250 and layer.keys.shape[-2] == 1096
    torch.testing.assert_close(layer.keys[:, :, :1000], keys)
    assert layer.keys[0, 0, 1000 + 95, 0].item() == 95.0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's (Linux)")
def test_freed_heap_memory_goes_back_to_the_system() -> None:
    """64 kB tensors come from glibc's heap; freeing 19 of every 20 leaves the resident size where it
    was (the heap keeps them) until release_free_memory returns the free pages."""
    from toolgym.trainers.run.heap import release_free_memory

    def resident_mb() -> float:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    keep, junk = [], []
    for i in range(4000):
        (keep if i % 20 == 0 else junk).append(torch.ones(16_000))  # 245 MB freed below
    junk.clear()
    before = resident_mb()
    assert release_free_memory()
    assert resident_mb() < before - 150
    assert len(keep) == 200
