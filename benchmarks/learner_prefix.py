"""The learner's forward + backward over a GRPO batch: plain vs the shared-prefix forward, by packing.

A rollout batch of `--prompts` prompts x `--group` responses, each prompt a shared system prompt
(`--system` tokens) plus its own problem (`--problem` tokens), responses of 1/2 to 1 x `--response`
tokens, packed into micro-batches of `--budget` tokens. Three ways to compute the same gradient
(checked: the parameter gradients agree within float tolerance):

    plain            micro-batches packed by length, every row fed whole
    shared_length    packed by length, each micro-batch's common prefix (the system prompt) fed once
    shared_prefix    packed by prefix (a group kept together), each group's whole prompt fed once

`optimizer.share_prefix` (the default) picks the packing of lower `packing_cost` (tokens fed + a cost per
micro-batch). The
model is the quickstart's tiny Qwen2 unless `--hidden/--layers` say otherwise; one torch thread.

    python benchmarks/learner_prefix.py [--prompts 8 --group 8 --system 200 --problem 400
                                         --response 300 --budget 8192 --rounds 3 --out FILE]

JSON keys: `<way>_s` (median seconds of one forward + backward over the batch), `<way>_fed_tokens`,
`speedup_shared_length`, `speedup_shared_prefix` (plain time / that way's time), `default_packing` (what
`optimizer.share_prefix` picks by `packing_cost`), `micro_batches_length`/`_prefix`, `max_grad_diff`,
and the settings.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _results import write_json  # benchmarks/_results.py (scripts run from benchmarks/)
from toolgym.trainers.learner.batching import Sample, collate, fed_tokens, pack, pack_by_prefix, packing_cost
from toolgym.trainers.learner.learner import token_logprobs

WAYS = ("plain", "shared_length", "shared_prefix")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--system", type=int, default=200, help="tokens of the system prompt all rows share")
    p.add_argument("--problem", type=int, default=400, help="tokens of each prompt's own problem")
    p.add_argument("--response", type=int, default=300, help="longest response (tokens)")
    p.add_argument("--budget", type=int, default=8192, help="micro_batch_tokens")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default="benchmarks/results/learner_prefix.json")
    return p.parse_args(argv)


def grpo_batch(a: argparse.Namespace, vocab: int, seed: int = 0) -> list[Sample]:
    g = torch.Generator().manual_seed(seed)
    system = torch.randint(1, vocab, (a.system,), generator=g).tolist()
    out = []
    for _ in range(a.prompts):
        prompt = system + torch.randint(1, vocab, (a.problem,), generator=g).tolist()
        for _ in range(a.group):
            n = int(torch.randint(a.response // 2, a.response + 1, (1,), generator=g))
            ids = prompt + torch.randint(1, vocab, (n,), generator=g).tolist()
            mask = [0.0] * (len(prompt) - 1) + [1.0] * n
            adv = float(torch.randn(1, generator=g))
            out.append(Sample(ids=ids, mask=mask, old_logp=[-m for m in mask],
                              advantages=[adv * m for m in mask]))
    return out


def forward_backward(model: torch.nn.Module, samples: list[Sample], groups: list[list[int]],
                     share: bool) -> tuple[float, dict[str, torch.Tensor]]:
    """Seconds of the token-mean policy-gradient loss's forward + backward over all micro-batches."""
    model.zero_grad(set_to_none=True)
    total = sum(sum(s.mask) for s in samples)
    start = time.perf_counter()
    for rows in groups:
        mb = collate(samples, rows)
        logp, _ = token_logprobs(model, mb, share_prefix=share)
        (-(torch.exp(logp - mb.old_logp) * mb.advantages * mb.mask).sum() / total).backward()
    seconds = time.perf_counter() - start
    return seconds, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    torch.set_num_threads(1)
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=2048, hidden_size=a.hidden, intermediate_size=2 * a.hidden,
                      num_hidden_layers=a.layers, num_attention_heads=4, num_key_value_heads=4,
                      max_position_embeddings=4096, tie_word_embeddings=True)
    model = Qwen2ForCausalLM(cfg).train()
    samples = grpo_batch(a, cfg.vocab_size)
    packings = {"plain": (pack(samples, a.budget), False), "shared_length": (pack(samples, a.budget), True),
                "shared_prefix": (pack_by_prefix(samples, a.budget), True)}
    times: dict[str, list[float]] = {w: [] for w in WAYS}
    grads: dict[str, dict[str, torch.Tensor]] = {}
    for _ in range(a.rounds):  # rounds interleave the ways, so machine noise hits all alike
        for way in WAYS:
            seconds, grads[way] = forward_backward(model, samples, *packings[way])
            times[way].append(seconds)
    result: dict[str, float | int | str] = {}
    for way in WAYS:
        groups, share = packings[way]
        result[f"{way}_s"] = statistics.median(times[way])
        result[f"{way}_fed_tokens"] = fed_tokens(samples, groups) if share else sum(
            len(rows) * max(samples[i].num_tokens for i in rows) for rows in groups)
    for way in WAYS[1:]:
        result[f"speedup_{way}"] = result["plain_s"] / result[f"{way}_s"]
    length, prefix = packings["shared_length"][0], packings["shared_prefix"][0]
    cost = {"length": packing_cost(samples, length), "prefix": packing_cost(samples, prefix)}
    result["default_packing"] = min(cost, key=lambda name: (cost[name], name != "length"))
    result["micro_batches_length"], result["micro_batches_prefix"] = len(length), len(prefix)
    result["max_grad_diff"] = max(float((grads[w][n] - grads["plain"][n]).abs().max())
                                  for w in WAYS[1:] for n in grads["plain"])
    result.update({k: v for k, v in vars(a).items() if k != "out"})
    print(f"{'way':<14} {'s (median)':>10} {'fed tokens':>11} {'speedup':>8}")
    for way in WAYS:
        speed = result.get(f"speedup_{way}", 1.0)
        print(f"{way:<14} {result[f'{way}_s']:>10.3f} {result[f'{way}_fed_tokens']:>11} {speed:>8.2f}")
    print(f"micro-batches by length / by prefix: {len(length)} / {len(prefix)}; "
          f"optimizer.share_prefix packs by {result['default_packing']}")
    print(f"max |grad - plain grad|: {result['max_grad_diff']:.2e}")
    write_json(result, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
