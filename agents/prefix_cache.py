"""Prefix KV caching for the transformers engine: a new turn only prefills its new tokens.

Why: in a multi-turn rollout the prompt of turn t+1 is the prompt of turn t, plus the turn the engine
just sampled, plus the rendered observation. Recomputing the whole prefix every turn makes prefill
dominate (quadratic in the number of turns); vLLM avoids it with automatic prefix caching. Here each
finished row's keys/values are kept, keyed by the ids they encode (prompt + sampled ids except the
last, which was never fed); the next prompt that starts with those ids reuses them and prefills only
the rest. Entries are used once (the continuation stores a longer one) and evicted LRU beyond
`capacity`. Weights changing invalidates everything (`clear()`; `HFEngine.update_weights` does it).

Lookup is by a rolling hash of every prefix of the prompt (O(length) per prompt), confirmed by an
exact comparison of the ids.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Sequence

import torch

_MOD = (1 << 61) - 1
_BASE = 1_000_003
KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values [H, n, D]


def _prefix_hashes(ids: Sequence[int]) -> list[int]:
    """h[i] = hash of ids[:i]."""
    out, h = [0], 0
    for t in ids:
        h = (h * _BASE + int(t) + 1) % _MOD
        out.append(h)
    return out


class PrefixCache:
    """Per-sequence KV caches kept between `generate` calls."""

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple[int, int], tuple[tuple[int, ...], KV]] = OrderedDict()
        self.hits = 0
        self.reused_tokens = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def store(self, ids: Sequence[int], kv: KV) -> None:
        if self.capacity <= 0 or not ids:
            return
        key = (len(ids), _prefix_hashes(ids)[-1])
        self._entries[key] = (tuple(ids), kv)
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def take(self, prompt: Sequence[int]) -> tuple[int, KV | None]:
        """(n, kv) for the longest cached proper prefix of `prompt` (removed from the cache), or (0, None)."""
        if not self._entries:
            return 0, None
        hashes = _prefix_hashes(prompt)
        for n in range(len(prompt) - 1, 0, -1):  # at least one token is left to feed
            key = (n, hashes[n])
            entry = self._entries.get(key)
            if entry is not None and entry[0] == tuple(prompt[:n]):
                del self._entries[key]
                self.hits += 1
                self.reused_tokens += n
                return n, entry[1]
        return 0, None


def assemble(kvs: Sequence[KV | None], lengths: Sequence[int], width: int, like: KV) -> KV:
    """Left-pad per-row caches to `width` positions: per layer keys/values [B, H, width, D]."""
    out = []
    for layer, (k0, v0) in enumerate(like):
        h, d = k0.shape[0], k0.shape[-1]
        keys = k0.new_zeros((len(kvs), h, width, d))
        values = v0.new_zeros((len(kvs), h, width, d))
        for row, (kv, n) in enumerate(zip(kvs, lengths, strict=True)):
            if kv is not None and n:
                keys[row, :, width - n:] = kv[layer][0]
                values[row, :, width - n:] = kv[layer][1]
        out.append((keys, values))
    return out


def extract(cache: object, row: int, valid: torch.Tensor) -> KV:
    """Row `row`'s keys/values at the `valid` positions ([W] bool) of a DynamicCache: [H, n, D] each."""
    return [(layer.keys[row][:, valid].clone(), layer.values[row][:, valid].clone())
            for layer in cache.layers]  # type: ignore[attr-defined]


def new_cache() -> object:
    """An empty transformers `DynamicCache` whose layers append into preallocated buffers (see below)."""
    from transformers.cache_utils import DynamicCache

    cache = DynamicCache()
    cache.layer_class_to_replicate = _buffered_layer_class()
    return cache


def buffer_capacity(needed: int) -> int:
    """Positions to allocate when a layer's buffer must hold `needed`: a quarter more (at least 64).

    A turn decodes at most `sampling.max_new_tokens` after its prefill, so the spare room is used
    once per turn, not grown without end: doubling (as it did) held twice the batch's keys and values
    -- 1.5 GB of the rollout actor's 3 GB on SmolLM2 with 16 rows of 1,000 tokens -- for a turn that
    adds 96. Amortised O(1) appends either way (each regrowth copies, then adds a quarter)."""
    return needed + max(64, needed // 4)


@functools.cache
def _buffered_layer_class() -> type:
    """A `DynamicLayer` that appends into a preallocated buffer.

    The stock layer concatenates on every decode step, copying the whole cache (O(length) per token:
    the largest cost of CPU decoding at batch 32). `_BufferedLayer` writes into a buffer with spare
    room (`buffer_capacity`) and exposes a view; after `batch_select_indices` (rows leaving the
    batch) the next update re-seeds a buffer from the selected rows.
    """
    from transformers.cache_utils import DynamicLayer

    class _BufferedLayer(DynamicLayer):
        _kbuf: torch.Tensor | None = None
        _vbuf: torch.Tensor | None = None

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object,
                   **kwargs: object) -> tuple[torch.Tensor, torch.Tensor]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            n, add = self.get_seq_length(), key_states.shape[-2]
            fresh = (self._kbuf is None or n == 0 or self.keys.data_ptr() != self._kbuf.data_ptr()
                     or self.keys.shape[0] != self._kbuf.shape[0])
            if fresh or n + add > self._kbuf.shape[-2]:  # type: ignore[union-attr]
                capacity = buffer_capacity(n + add)
                shape = (*key_states.shape[:2], capacity, key_states.shape[-1])
                kbuf, vbuf = key_states.new_empty(shape), value_states.new_empty(shape)
                if n:
                    kbuf[:, :, :n], vbuf[:, :, :n] = self.keys, self.values
                self._kbuf, self._vbuf = kbuf, vbuf
            self._kbuf[:, :, n:n + add] = key_states  # type: ignore[index]
            self._vbuf[:, :, n:n + add] = value_states  # type: ignore[index]
            self.keys, self.values = self._kbuf[:, :, :n + add], self._vbuf[:, :, :n + add]  # type: ignore[index]
            return self.keys, self.values

    return _BufferedLayer
