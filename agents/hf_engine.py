"""The transformers engine: batched sampling with a KV cache, on CPU or GPU, with our own loop.

Why our own loop rather than `model.generate`: we need the behaviour log-probs of exactly the sampled
tokens under exactly the documented distribution (see `engine.py`), stop strings that keep the
whole token they complete in, rows leaving the batch as soon as they finish, and in-place weight
updates from an in-process learner. The loop is short:

    left-pad the prompts -> one prefill forward (attention mask, position ids = cumsum(mask) - 1),
                            reusing the cached keys/values of a prefix the engine already computed
                            (the previous turn of the same episode: prefix_cache.py), and feeding
                            a long prefix common to the whole batch once (system prompt, GRPO group)
    repeat: logits [b, V] -> log softmax(logits / T) -> sample (top-p) -> record id and log-prob
            -> drop the rows that stopped (from the cache too) -> one decode forward for the rest

Prompts are sorted by length and cut into micro-batches of `max_batch_size` to bound padding and
memory; results come back in the caller's order.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from toolgym.agents.engine import Generation, SamplingParams
from toolgym.agents.prefix_cache import PrefixCache, assemble, extract, new_cache

MIN_SHARED_PREFIX = 32  # tokens: below this, feeding a batch's common prefix separately does not pay


class HFEngine:
    """`Engine` over a transformers causal LM (`model` and `tokenizer` used as given, not copied)."""

    def __init__(self, model: Any, tokenizer: Any, *, max_batch_size: int = 64,
                 stop_token_ids: Sequence[int] | None = None, prefix_cache_size: int = 1024) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        if stop_token_ids is None:
            stop_token_ids = _default_stop_ids(model, tokenizer)
        self.stop_token_ids = tuple(stop_token_ids)
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else self.stop_token_ids[0])
        self.max_context = int(getattr(model.config, "max_position_embeddings", 1 << 30))
        # KV of finished rows, reused when a later prompt extends them (0 disables; see prefix_cache.py)
        self.prefix_cache = PrefixCache(prefix_cache_size) if prefix_cache_size > 0 else None

    @classmethod
    def from_pretrained(cls, path: str | Path, *, device: str = "cpu", dtype: str = "float32",
                        **kwargs: Any) -> HFEngine:
        """Load a checkpoint directory (or hub name when available) onto `device`."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).to(device)
        return cls(model, tokenizer, **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[Generation]:
        """Sample one completion per prompt (see `engine.py` for the conventions)."""
        results: list[Generation | None] = [None] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        gen = None
        if params.seed is not None:
            gen = torch.Generator(device=self.device).manual_seed(params.seed)
        for start in range(0, len(order), self.max_batch_size):
            chunk = order[start:start + self.max_batch_size]
            valid = []
            for i in chunk:
                problem = self._check_prompt(prompts[i])
                if problem is None:
                    valid.append(i)
                else:
                    results[i] = problem
            if valid:
                outs = self._generate_batch([list(prompts[i]) for i in valid], params, gen)
                for i, out in zip(valid, outs, strict=True):
                    results[i] = out
        return [r for r in results if r is not None]

    def update_weights(self, state_dict: Mapping[str, Any]) -> None:
        """Copy `state_dict` into the model's parameters in place (names may carry a DDP/compile prefix)."""
        target = self.model.state_dict()
        unknown = []
        with torch.no_grad():
            for name, value in state_dict.items():
                key = name.removeprefix("module.").removeprefix("_orig_mod.")
                if key not in target:
                    unknown.append(name)
                    continue
                target[key].copy_(value.to(target[key].device, target[key].dtype))
        if self.prefix_cache is not None:
            self.prefix_cache.clear()  # cached keys/values belong to the old weights
        if unknown:
            known = ", ".join(list(target)[:5])
            raise KeyError(f"update_weights: unknown parameter names {unknown[:5]}; "
                           f"the model has e.g. {known}")

    # -- internals --------------------------------------------------------------------------------

    def _check_prompt(self, prompt: Sequence[int]) -> Generation | None:
        if len(prompt) == 0:
            return Generation([], [], "error", "empty prompt: give at least one token")
        if len(prompt) >= self.max_context:
            return Generation([], [], "length", "", {"reason": "prompt fills the model's context"})
        return None

    @torch.inference_mode()
    def _generate_batch(self, prompts: list[list[int]], params: SamplingParams,
                        gen: torch.Generator | None) -> list[Generation]:
        cache, logits, mask, next_pos = self._prefill(prompts)  # logits [B, V], mask [B, W]
        budget = [min(params.max_tokens, self.max_context - len(p)) for p in prompts]
        stop_ids = set(self.stop_token_ids) | set(params.stop_token_ids)
        tokens: list[list[int]] = [[] for _ in prompts]
        logps: list[list[float]] = [[] for _ in prompts]
        finish: list[tuple[str, Any]] = [("length", None)] * len(prompts)
        alive = list(range(len(prompts)))  # row b of the live batch is prompt alive[b]
        while alive:
            tok, tok_logp = _sample(logits, params, gen)  # [b], [b]
            keep = []
            for b, (t, lp) in enumerate(zip(tok.tolist(), tok_logp.tolist(), strict=True)):
                i = alive[b]
                tokens[i].append(t)
                logps[i].append(lp)
                reason = self._stop_reason(tokens[i], t, stop_ids, params.stop)
                if reason is not None:
                    finish[i] = ("stop", reason)
                elif len(tokens[i]) < budget[i]:
                    keep.append(b)
                    continue
                if self.prefix_cache is not None:  # everything fed so far: the prompt and tokens[:-1]
                    self.prefix_cache.store(prompts[i] + tokens[i][:-1], extract(cache, b, mask[b].bool()))
            if not keep:
                break
            if len(keep) < len(alive):
                index = torch.tensor(keep, device=mask.device)
                cache.batch_select_indices(index)
                mask, next_pos, tok = mask[index], next_pos[index], tok[index]
                alive = [alive[b] for b in keep]
            mask = torch.cat([mask, mask.new_ones((len(alive), 1))], dim=1)  # [b, W + t]
            out = self.model(input_ids=tok[:, None], attention_mask=mask, position_ids=next_pos,
                             use_cache=True, **cache_kwarg(self.model, cache))
            cache, logits = output_cache(out), out.logits[:, -1, :].float()
            next_pos = next_pos + 1
        return [self._finish(tokens[i], logps[i], *finish[i]) for i in range(len(prompts))]

    def _prefill(self, prompts: list[list[int]]) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Feed the prompts, reusing cached prefixes. Returns the cache, the last logits [B, V], the
        attention mask [B, W] and the next position ids [B, 1].

        Row layout: [pad | cached prefix (C columns) | pad | uncached suffix (S columns)]; the attention
        mask is 0 on both pads and position ids count only real tokens, so each row sees exactly its ids.
        """
        dev = self.device
        taken = [self.prefix_cache.take(p) if self.prefix_cache is not None else (0, None) for p in prompts]
        shared = self._shared_prefix(prompts, [n for n, _ in taken])
        if shared is not None:  # rows with less cached than the batch's common prefix start from it
            taken = [t if t[0] >= shared[0] else shared for t in taken]
        cached = [n for n, _ in taken]
        width_c = max(cached)
        suffixes = [p[n:] for p, n in zip(prompts, cached, strict=True)]
        width_s = max(len(x) for x in suffixes)
        ids = torch.full((len(prompts), width_s), self.pad_id, dtype=torch.long, device=dev)
        mask = torch.zeros((len(prompts), width_c + width_s), dtype=torch.long, device=dev)
        for row, (suffix, n) in enumerate(zip(suffixes, cached, strict=True)):
            ids[row, width_s - len(suffix):] = torch.tensor(suffix, device=dev)
            mask[row, width_c - n:width_c] = 1
            mask[row, width_c + width_s - len(suffix):] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)  # [B, C + S]
        past = new_cache()
        if width_c:
            like = next(kv for _, kv in taken if kv is not None)
            for layer, (k, v) in enumerate(assemble([kv for _, kv in taken], cached, width_c, like)):
                past.update(k, v, layer)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos[:, width_c:],
                         use_cache=True, **cache_kwarg(self.model, past),
                         logits_to_keep=1)  # only the last position: no [B, L, V] logits
        return output_cache(out), out.logits[:, -1, :].float(), mask, pos[:, -1:] + 1

    def _shared_prefix(self, prompts: list[list[int]], cached: list[int]) -> tuple[int, Any] | None:
        """(n, kv) of the prompts' longest common prefix, fed once, when it is long and rows lack it.

        Why: a batch's first turns share the system prompt and a GRPO group repeats its prompt G times;
        feeding the common prefix once instead of B times is what vLLM's automatic prefix caching does
        for it. Returns None when the prompts share less than `MIN_SHARED_PREFIX` tokens or every
        row already has at least as much from the prefix cache.
        """
        if self.prefix_cache is None or len(prompts) < 2:
            return None
        first, n = prompts[0], min(len(p) for p in prompts) - 1  # at least one token left to feed
        for p in prompts[1:]:
            n = next((i for i in range(n) if p[i] != first[i]), n)
        if n < MIN_SHARED_PREFIX or sum(c < n for c in cached) < 2:
            return None
        ids = torch.tensor([first[:n]], device=self.device)
        out = self.model(input_ids=ids, use_cache=True, logits_to_keep=1,
                         **cache_kwarg(self.model, new_cache()))
        return n, extract(output_cache(out), 0, torch.ones(n, dtype=torch.bool, device=self.device))

    def _stop_reason(self, tokens: list[int], last: int, stop_ids: set[int],
                     stop: tuple[str, ...]) -> Any:
        if last in stop_ids:
            return last
        if stop:
            window = max(len(s) for s in stop) + 2  # tokens: enough to hold the longest stop string
            tail = self.tokenizer.decode(tokens[-window:], skip_special_tokens=False)
            for s in stop:
                if s in tail:
                    return s
        return None

    def _finish(self, ids: list[int], logps: list[float], reason: str, matched: Any) -> Generation:
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        meta = {} if matched is None else {"stop": matched}
        return Generation(ids, logps, reason, text, meta)


def _sample(logits: torch.Tensor, params: SamplingParams,
            gen: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one token per row; return ids [b] and log softmax(logits / T) at those ids [b]."""
    temperature = params.temperature if params.temperature > 0 else 1.0
    logp = torch.log_softmax(logits / temperature, dim=-1)  # [b, V]
    if params.temperature == 0:
        tok = logp.argmax(dim=-1)
    else:
        probs = logp.exp()
        if params.top_k > 0:
            probs = _top_k_filter(probs, params.top_k)
        if params.top_p < 1.0:
            probs = _top_p_filter(probs, params.top_p)
        tok = torch.multinomial(probs, 1, generator=gen).squeeze(-1)  # [b]
    return tok, logp.gather(-1, tok[:, None]).squeeze(-1)


def _top_k_filter(probs: torch.Tensor, top_k: int) -> torch.Tensor:
    """Zero every probability below the row's k-th largest (ties at the k-th are kept), renormalised."""
    kth = probs.topk(min(top_k, probs.shape[-1]), dim=-1).values[:, -1:]  # [b, 1]
    kept = probs.masked_fill(probs < kth, 0.0)
    return kept / kept.sum(-1, keepdim=True)


def _top_p_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero the tail outside the smallest set of tokens whose mass reaches `top_p` (per row)."""
    sorted_p, order = probs.sort(dim=-1, descending=True)  # [b, V]
    before = sorted_p.cumsum(-1) - sorted_p  # mass strictly before each token
    sorted_p = sorted_p.masked_fill(before >= top_p, 0.0)
    return torch.zeros_like(probs).scatter(-1, order, sorted_p)


def _default_stop_ids(model: Any, tokenizer: Any) -> list[int]:
    """The tokenizer's eos plus the generation config's eos ids (end of turn / end of text)."""
    ids: list[int] = []
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for t in gen_eos if isinstance(gen_eos, list) else [gen_eos]:
        if t is not None and int(t) not in ids:
            ids.append(int(t))
    if not ids:
        raise ValueError("the tokenizer has no eos token and the model's generation config names none: "
                         "pass stop_token_ids=[...] to HFEngine")
    return ids


@functools.cache
def _cache_name(forward_owner: type) -> str:
    """The forward's name for the KV cache: `cache` (transformers >= 5.2x, where `past_key_values` is
    deprecated with a FutureWarning on every call) or `past_key_values` (older versions)."""
    return "cache" if "cache" in inspect.signature(forward_owner.forward).parameters else "past_key_values"


def cache_kwarg(model: Any, cache: Any) -> dict[str, Any]:
    """{name: cache} for `model(...)` under the installed transformers' name for it."""
    return {_cache_name(type(model)): cache}


def output_cache(out: Any) -> Any:
    """The KV cache of a model output (`out.cache`, or `out.past_key_values` on older versions)."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values
