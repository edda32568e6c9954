"""The tiny model and the transformers engine: real model, real sampling loop, no mocks.

Behaviour log-probs must equal a fresh full forward pass at the same temperature (what the learner
computes); left padding and rows leaving the batch must not change results; stops keep the token that
completed them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
import torch
from toolgym.agents.engine import SamplingParams
from toolgym.agents.hf_engine import HFEngine
from toolgym.agents.tiny import cached_tiny_model


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    """One torch thread (restored after): on a shared 2-core box OpenMP spinning makes 2 ~10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    path = cached_tiny_model(tmp_path_factory.getbasetemp() / "toolgym-cache")
    yield HFEngine.from_pretrained(path)
    torch.set_num_threads(before)


def _prompts(engine: HFEngine) -> list[list[int]]:
    tok = engine.tokenizer
    chat = tok.apply_chat_template([{"role": "user", "content": "Compute 1234 * 5678."}], tokenize=False,
                                   add_generation_prompt=True)
    return [tok.encode(chat, add_special_tokens=False),
            tok.encode("print(sum(range(10)))\n" * 4, add_special_tokens=False),
            tok.encode("7", add_special_tokens=False)]


def _fresh_logprobs(engine: HFEngine, prompt: list[int], ids: list[int], temperature: float) -> torch.Tensor:
    with torch.no_grad():
        logits = engine.model(torch.tensor([prompt + ids])).logits[0].float()  # [P + n, V]
    logp = torch.log_softmax(logits / temperature, dim=-1)[len(prompt) - 1:-1]  # [n, V]
    return logp.gather(-1, torch.tensor(ids)[:, None]).squeeze(-1)  # [n]


def test_tiny_model_loads_back_with_auto_classes(tmp_path: Path) -> None:
    from toolgym.agents.tiny import build_tiny_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = build_tiny_model(tmp_path / "tiny", hidden_size=64, num_layers=1, intermediate_size=128)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert (path / "model.safetensors").exists()
    assert model.config.model_type == "qwen2"
    text = "Compute 1234 * 5678.\n```python\nprint(1234 * 5678)\n```\n<answer>7006652</answer> é"
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    assert [tok.decode([t]) for t in tok.encode("90210", add_special_tokens=False)] == list("90210")
    messages = [{"role": r, "content": r.upper()} for r in ("system", "user", "assistant", "tool")]
    rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered.endswith("<|im_start|>tool\nTOOL<|im_end|>\n<|im_start|>assistant\n")
    assert tok.eos_token == "<|im_end|>"


def test_default_tiny_model_size(engine: HFEngine) -> None:
    n = sum(p.numel() for p in engine.model.parameters())
    assert 1_000_000 <= n <= 5_000_000


@pytest.mark.parametrize("temperature", [0.7, 1.0, 1.3])
def test_behaviour_logprobs_equal_a_fresh_forward_pass(engine: HFEngine, temperature: float) -> None:
    prompts = _prompts(engine)
    gens = engine.generate(prompts, SamplingParams(temperature=temperature, max_tokens=24, seed=3))
    for prompt, g in zip(prompts, gens, strict=True):
        assert len(g.ids) == len(g.logprobs) > 0
        fresh = _fresh_logprobs(engine, prompt, g.ids, temperature)
        assert torch.allclose(fresh, torch.tensor(g.logprobs), atol=1e-4, rtol=0)


def test_greedy_is_unaffected_by_padding_and_batch_mates(engine: HFEngine) -> None:
    prompts = _prompts(engine)
    params = SamplingParams(temperature=0.0, max_tokens=16)
    batched = engine.generate(prompts, params)
    for prompt, g in zip(prompts, batched, strict=True):
        alone = engine.generate([prompt], params)[0]
        assert alone.ids == g.ids
        assert torch.allclose(torch.tensor(alone.logprobs), torch.tensor(g.logprobs), atol=1e-4)


def test_seed_reproduces_and_results_keep_prompt_order(engine: HFEngine) -> None:
    prompts = _prompts(engine)
    params = SamplingParams(temperature=1.0, max_tokens=12, seed=11)
    a, b = engine.generate(prompts, params), engine.generate(prompts, params)
    assert [g.ids for g in a] == [g.ids for g in b]
    reversed_out = engine.generate(prompts[::-1], SamplingParams(temperature=0.0, max_tokens=8))
    forward_out = engine.generate(prompts, SamplingParams(temperature=0.0, max_tokens=8))
    assert [g.ids for g in reversed_out] == [g.ids for g in forward_out][::-1]


def test_stop_string_and_stop_token_end_the_turn_inclusively(engine: HFEngine) -> None:
    prompt = _prompts(engine)[0]
    free = engine.generate([prompt], SamplingParams(temperature=0.0, max_tokens=40))[0]
    assert free.finish_reason == "length" and len(free.ids) == 40
    k = 10
    # a stop string that completes inside token k: the last character of that token's text
    prefix_text = engine.tokenizer.decode(free.ids[:k + 1])
    stop = prefix_text[-2:]
    expected_end = next(j for j in range(len(free.ids))
                        if stop in engine.tokenizer.decode(free.ids[:j + 1]))
    out = engine.generate([prompt], SamplingParams(temperature=0.0, max_tokens=40, stop=(stop,)))[0]
    assert out.finish_reason == "stop" and out.meta["stop"] == stop
    assert out.ids == free.ids[:expected_end + 1]
    token = free.ids[5]
    first = free.ids.index(token)
    params = SamplingParams(temperature=0.0, max_tokens=40, stop_token_ids=(token,))
    out = engine.generate([prompt], params)[0]
    assert out.finish_reason == "stop" and out.ids == free.ids[:first + 1] and out.ids[-1] == token


def test_update_weights_in_place(engine: HFEngine) -> None:
    prompt = _prompts(engine)[0]
    params = SamplingParams(temperature=0.0, max_tokens=8)
    before = engine.generate([prompt], params)[0]
    original = {k: v.clone() for k, v in engine.model.state_dict().items()}
    param_ids = [id(p) for p in engine.model.parameters()]
    changed = dict(original)
    changed["model.norm.weight"] = -original["model.norm.weight"]
    try:
        engine.update_weights({"module." + k: v for k, v in changed.items()})
        assert [id(p) for p in engine.model.parameters()] == param_ids  # same tensors, new values
        assert torch.equal(engine.model.model.norm.weight, -original["model.norm.weight"])
        assert engine.generate([prompt], params)[0].ids != before.ids
    finally:
        engine.update_weights(original)
    assert engine.generate([prompt], params)[0].ids == before.ids
    with pytest.raises(KeyError, match="unknown parameter names"):
        engine.update_weights({"no.such.weight": torch.zeros(1)})


def test_bad_prompts_are_per_prompt_results(engine: HFEngine) -> None:
    good = _prompts(engine)[2]
    too_long = [5] * engine.max_context
    out = engine.generate([[], good, too_long], SamplingParams(temperature=0.0, max_tokens=3))
    assert [g.finish_reason for g in out] == ["error", "length", "length"]
    assert "empty prompt" in out[0].text and out[2].ids == [] and len(out[1].ids) == 3


def test_top_k_one_samples_the_greedy_token_and_top_k_restricts_sampling(engine: HFEngine) -> None:
    """`sampling.top_k` acts: k = 1 at temperature 1 is greedy; k = 2 only ever picks a top-2 token."""
    prompts = _prompts(engine)
    greedy = engine.generate(prompts, SamplingParams(temperature=0.0, max_tokens=10))
    top1 = engine.generate(prompts, SamplingParams(temperature=1.0, top_k=1, max_tokens=10, seed=3))
    free = engine.generate(prompts, SamplingParams(temperature=1.0, max_tokens=10, seed=3))
    assert [g.ids for g in top1] == [g.ids for g in greedy]
    assert [g.ids for g in free] != [g.ids for g in greedy]  # the untrained model samples widely
    top2 = engine.generate(prompts, SamplingParams(temperature=1.0, top_k=2, max_tokens=10, seed=3))
    for prompt, g in zip(prompts, top2, strict=True):
        with torch.no_grad():
            logits = engine.model(torch.tensor([prompt + g.ids])).logits[0, len(prompt) - 1:-1]  # [n, V]
        allowed = logits.topk(2, dim=-1).indices  # [n, 2]
        assert all(int(t) in allowed[i].tolist() for i, t in enumerate(g.ids))


def test_sampling_params_validate() -> None:
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=-1)
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0)
    with pytest.raises(ValueError, match="top_k must be an integer >= 0"):
        SamplingParams(top_k=-1)
    assert SamplingParams(stop=["a"]).stop == ("a",)
    assert hash(SamplingParams(stop=["a"])) == hash(SamplingParams(stop=("a",)))


def test_prefix_cache_reuse_matches_a_cold_start(engine: HFEngine) -> None:
    """Turn 2 continuing turn 1 (+ new tokens) reuses turn 1's keys/values, with identical results."""
    prompts = _prompts(engine)
    params = SamplingParams(temperature=0.0, max_tokens=10)
    engine.prefix_cache.clear()
    first = engine.generate(prompts, params)
    follow = [p + g.ids + [7, 8, 9] for p, g in zip(prompts, first, strict=True)]
    hits = engine.prefix_cache.hits
    warm = engine.generate(follow, params)
    assert engine.prefix_cache.hits == hits + len(prompts)
    engine.prefix_cache.clear()
    cold = engine.generate(follow, params)
    for w, c, p in zip(warm, cold, follow, strict=True):
        assert w.ids == c.ids
        assert torch.allclose(torch.tensor(w.logprobs), _fresh_logprobs(engine, p, w.ids, 1.0), atol=1e-4)


def test_a_common_prefix_is_fed_once_with_identical_results(engine: HFEngine, monkeypatch) -> None:
    """A batch sharing a long prefix (system prompt, a GRPO group's repeats) feeds it once; the samples
    and their log-probs are those of feeding every row in full."""
    from toolgym.agents import hf_engine

    tok = engine.tokenizer
    system = "Use the Python tool to check your work. Give your final answer in tags. " * 3
    prompts = [tok.apply_chat_template([{"role": "system", "content": system},
                                        {"role": "user", "content": f"Compute {a} * {b}."}],
                                       tokenize=True, add_generation_prompt=True)
               for a, b in ((12, 34), (567, 89), (12, 34))]
    prompts = [list(p["input_ids"]) if isinstance(p, Mapping) else list(p) for p in prompts]
    params = SamplingParams(temperature=0.0, max_tokens=8)
    fed: list[int] = []
    shared = hf_engine.HFEngine._shared_prefix
    monkeypatch.setattr(hf_engine.HFEngine, "_shared_prefix",
                        lambda self, p, c: fed.append(r[0]) or r if (r := shared(self, p, c)) else r)
    engine.prefix_cache.clear()
    once = engine.generate(prompts, params)
    assert fed and fed[0] >= hf_engine.MIN_SHARED_PREFIX  # the common prefix was fed on its own
    cache, engine.prefix_cache = engine.prefix_cache, None
    try:
        full = engine.generate(prompts, params)
    finally:
        engine.prefix_cache = cache
        cache.clear()
    for a, b, p in zip(once, full, prompts, strict=True):
        assert a.ids == b.ids
        assert torch.allclose(torch.tensor(a.logprobs), _fresh_logprobs(engine, p, a.ids, 1.0), atol=1e-4)
