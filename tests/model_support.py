"""A tiny randomly initialised Qwen2 causal LM for learner tests (vocabulary 97, 2 layers, 4 query heads
sharing 2 key/value heads): small enough to compare gradients exactly on CPU."""

from __future__ import annotations

import torch


def tiny_qwen(seed: int = 0, max_positions: int = 128):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
                      tie_word_embeddings=True)
    return Qwen2ForCausalLM(cfg)
