"""Generation with the transformers engine raises no deprecation warning about the KV cache argument
(transformers 5.2x renamed `past_key_values` to `cache`; every command printed its FutureWarning)."""

from __future__ import annotations

import warnings

from toolgym.agents.engine import SamplingParams
from toolgym.agents.hf_engine import HFEngine
from toolgym.agents.tiny import cached_tiny_model


def test_hf_engine_generates_without_a_cache_deprecation_warning(tmp_path) -> None:
    engine = HFEngine.from_pretrained(str(cached_tiny_model(tmp_path / "cache")))
    prompt = engine.tokenizer.encode("Compute 2 + 2.")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*past_key_values.*")
        warnings.filterwarnings("error", category=FutureWarning)
        out = engine.generate([prompt, prompt[:-1], prompt], SamplingParams(max_tokens=6, seed=0))
    assert len(out) == 3 and all(len(g.ids) >= 1 for g in out)


def test_the_learners_shared_prefix_forward_raises_no_cache_deprecation_warning(tmp_path) -> None:
    import torch
    from toolgym.trainers.learner.prefix_forward import MIN_SHARED_PREFIX, causal_lm_logits, shareable_prefix
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(cached_tiny_model(tmp_path / "cache")))
    prefix = torch.arange(3, 3 + MIN_SHARED_PREFIX + 4)
    ids = torch.stack([torch.cat([prefix, torch.tensor([7, 8])]), torch.cat([prefix, torch.tensor([9, 10])])])
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*past_key_values.*")
        warnings.filterwarnings("error", category=FutureWarning)
        assert shareable_prefix(ids, None, keep=3) > 0  # the shared-prefix path is the one taken
        shared = causal_lm_logits(model, ids, None, keep=3)
    plain = causal_lm_logits(model, ids, None, keep=3, share_prefix=False)
    assert torch.allclose(shared, plain, atol=1e-5)
