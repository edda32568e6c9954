"""The learner's forward with a micro-batch's common prefix fed once.

Why: every episode of a batch starts with the same system prompt (with a tools block, hundreds of
tokens), and a GRPO group repeats its prompt G times. A plain forward/backward computes those positions
once per row: on multi-turn tool tasks that is most of the learner's work, although none of those
positions is trained (their targets are prompt). Feeding the shared prefix once (batch 1) and expanding its
keys and values to the B rows gives the rows exactly the activations of the plain forward, and because
the expansion (`repeat_interleave`) is part of the autograd graph, exactly its gradient too: the prefix's
key/value gradients are summed over the rows, as the plain forward sums the identical per-row copies.
This is the learner's counterpart of the engine's shared-prefix prefill (agents/hf_engine.py) and of
vLLM's automatic prefix caching.

It applies when the rows are right-padded (no attention mask needed), share at least
`MIN_SHARED_PREFIX` tokens, and no logits are needed inside the prefix; not under activation
checkpointing (transformers fills no cache then). The learner uses it on one rank and under DDP (two
gloo ranks give the one-process update: tests/test_trainer_prefix_forward.py), not under FSDP2, whose
backward fails after two forward calls of a sharded module.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from toolgym.agents.hf_engine import cache_kwarg

MIN_SHARED_PREFIX = 32  # tokens: below this the second forward call costs more than it saves


def common_prefix_length(rows: torch.Tensor | Sequence[torch.Tensor]) -> int:
    """Length of the longest prefix all rows share: the rows of `input_ids` [B, T], or 1-D token tensors
    of any lengths (then no longer than the shortest: there the padded tensor has a pad)."""
    width = min(int(r.shape[0]) for r in rows)
    head = torch.stack([r[:width] for r in rows])  # [B, width]
    differs = (head != head[:1]).any(dim=0).nonzero()  # columns where some row differs
    return int(differs[0]) if len(differs) else width


def shareable_prefix(input_ids: torch.Tensor, attention_mask: torch.Tensor | None, keep: int) -> int:
    """How many leading columns can be fed once: 0 unless worth it and exact (see the module docstring)."""
    rows, width = input_ids.shape
    if rows < 2 or attention_mask is not None:
        return 0
    return shareable_length(rows, width, common_prefix_length(input_ids), keep)


def shareable_length(rows: int, width: int, common: int, keep: int) -> int:
    """The rule on plain numbers: `rows` right-padded rows of `width` columns sharing their first `common`
    tokens, logits needed for the last `keep` positions (also used to cost a packing before collating)."""
    n = min(common, width - keep, width - 1) if rows > 1 else 0  # logits start after the prefix
    return n if n >= MIN_SHARED_PREFIX else 0


def first_trained_column(mask: torch.Tensor) -> int:
    """The first column of a loss mask [B, T-1] any row trains on (0 if none): logits are needed from
    that position on."""
    trained = mask.ne(0).any(dim=0).nonzero()
    return int(trained[0]) if len(trained) else 0


def causal_lm_logits(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                     keep: int, *, share_prefix: bool = True) -> torch.Tensor:
    """Logits [B, keep, V] of the last `keep` positions of `input_ids` [B, T], the common prefix fed once
    when `share_prefix` and it applies; otherwise one plain forward."""
    checkpointing = model.training and _checkpointing(model)  # no cache is filled under checkpointing
    n = shareable_prefix(input_ids, attention_mask, keep) if share_prefix and not checkpointing else 0
    if n:
        from transformers import DynamicCache

        cache = DynamicCache()
        model(input_ids=input_ids[:1, :n], use_cache=True, logits_to_keep=1, **cache_kwarg(model, cache))
        n = n if cache.get_seq_length() == n else 0  # a model that ignores the cache: plain forward
    if not n:
        return model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=keep).logits
    cache.batch_repeat_interleave(input_ids.shape[0])  # [1, h, n, d] -> [B, h, n, d], in the graph
    out = model(input_ids=input_ids[:, n:], use_cache=True, logits_to_keep=keep, **cache_kwarg(model, cache))
    return out.logits


def _checkpointing(model: torch.nn.Module) -> bool:
    """Whether activation checkpointing is on (transformers renamed the flag; the old name warns)."""
    flag = getattr(model, "is_activation_checkpointing", None)
    return bool(flag if flag is not None else getattr(model, "is_gradient_checkpointing", False))
