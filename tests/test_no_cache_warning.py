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
