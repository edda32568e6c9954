"""The vLLM engine. Without vLLM installed, constructing it must say which extra to install; the real
engine is exercised only on a CUDA machine with vLLM (marked gpu; skipped elsewhere)."""

from __future__ import annotations

import importlib.util

import pytest
from toolgym.agents.engine import SamplingParams
from toolgym.agents.tiny import cached_tiny_model

HAS_VLLM = importlib.util.find_spec("vllm") is not None


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed: the missing-extra error cannot be shown")
def test_missing_vllm_names_the_extra() -> None:
    from toolgym.agents.vllm_engine import VLLMEngine

    with pytest.raises(ImportError, match=r"toolgym\[vllm\]"):
        VLLMEngine("any-model")


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_VLLM, reason="needs vLLM: pip install 'toolgym[vllm]'")
def test_vllm_logprobs_and_in_place_weight_update(tmp_path_factory: pytest.TempPathFactory) -> None:
    import torch
    from toolgym.agents.vllm_engine import VLLMEngine
    from transformers import AutoModelForCausalLM

    path = cached_tiny_model(tmp_path_factory.getbasetemp() / "toolgym-cache")
    engine = VLLMEngine(str(path), dtype="float32", gpu_memory_utilization=0.2, enforce_eager=True)
    hf = AutoModelForCausalLM.from_pretrained(path)
    prompt = engine.tokenizer.encode("Compute 12 * 34.", add_special_tokens=False)
    gens = engine.generate([prompt, prompt], SamplingParams(temperature=0.8, max_tokens=16, seed=0))
    assert gens[0].ids != gens[1].ids or len(gens[0].ids) < 3  # per-prompt seeds differ
    with torch.no_grad():
        logits = hf(torch.tensor([prompt + gens[0].ids])).logits[0].float()
    logp = torch.log_softmax(logits / 0.8, -1)[len(prompt) - 1:-1]  # [n, V]
    logp = logp.gather(-1, torch.tensor(gens[0].ids)[:, None])
    assert torch.allclose(logp.squeeze(-1), torch.tensor(gens[0].logprobs), atol=1e-3)
    greedy = SamplingParams(temperature=0.0, max_tokens=8)
    before = engine.generate([prompt], greedy)[0].ids
    state = {k: v.clone() for k, v in hf.state_dict().items()}
    state["model.norm.weight"] = -state["model.norm.weight"]
    engine.update_weights(state)
    assert engine.generate([prompt], greedy)[0].ids != before
