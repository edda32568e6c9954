"""Rollout throughput on `toolgym/arith-v0` with the tiny model on CPU: sequential vs in-flight.

Sequential: one episode at a time (`max_inflight=1`), so every model call has batch size 1.
In-flight: all episodes alive at once (`max_inflight=N`): one batched call per round for every
episode waiting for the model, environment steps in a thread pool. Same requests, same sampling
settings, same model; the sampled text differs between runs (it is random), so generated tokens are
counted from the episodes themselves.

    python benchmarks/rollout_throughput.py [--episodes 32] [--out benchmarks/results/rollout_throughput.json]

JSON keys: `inflight_speedup` (in-flight episodes/s over sequential), `episodes_per_s` and
`tokens_per_s` (in-flight), and a per-mode breakdown under `modes`.
"""

from __future__ import annotations

import argparse
import time

from _results import write_json  # benchmarks/_results.py (scripts run from benchmarks/)


def _run(engine, tokenizer, requests, sampling, max_inflight: int, max_turns: int) -> dict[str, float]:
    from toolgym.agents.rollout import RolloutRunner

    with RolloutRunner(engine, tokenizer, sampling=sampling, max_inflight=max_inflight,
                       env_kwargs={"max_turns": max_turns}) as runner:
        started = time.perf_counter()
        episodes = runner.run(requests)
        elapsed = time.perf_counter() - started
    tokens = sum(e.num_policy_tokens for e in episodes)
    errors = [e.error for e in episodes if e.finish_reason == "error"]
    if errors:
        raise RuntimeError(f"{len(errors)} episodes failed, first: {errors[0]}")
    return {"seconds": elapsed, "episodes": len(episodes), "generated_tokens": tokens,
            "turns": sum(e.turns for e in episodes), "episodes_per_s": len(episodes) / elapsed,
            "tokens_per_s": tokens / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=48, help="per turn")
    parser.add_argument("--max-turns", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 avoids OpenMP oversubscription on shared machines)")
    parser.add_argument("--out", default="benchmarks/results/rollout_throughput.json")
    args = parser.parse_args()

    import torch
    from toolgym.agents.engine import SamplingParams
    from toolgym.agents.hf_engine import HFEngine
    from toolgym.agents.tiny import cached_tiny_model
    from toolgym.envs.types import TaskRequest

    torch.set_num_threads(args.threads)
    engine = HFEngine.from_pretrained(cached_tiny_model())
    sampling = SamplingParams(temperature=1.0, max_tokens=args.max_tokens, seed=0)
    requests = [TaskRequest("toolgym/arith-v0", i, "train") for i in range(args.episodes)]
    _run(engine, engine.tokenizer, requests[:2], sampling, 2, 1)  # warm-up: sandbox pool, first forward
    modes = {"sequential": _run(engine, engine.tokenizer, requests, sampling, 1, args.max_turns),
             "inflight": _run(engine, engine.tokenizer, requests, sampling, args.episodes, args.max_turns)}
    result = {
        "inflight_speedup": modes["inflight"]["episodes_per_s"] / modes["sequential"]["episodes_per_s"],
        "episodes_per_s": modes["inflight"]["episodes_per_s"],
        "tokens_per_s": modes["inflight"]["tokens_per_s"],
        "modes": modes,
        "config": {"task": "toolgym/arith-v0", "model": "tiny (build_tiny_model defaults)",
                   "params": sum(p.numel() for p in engine.model.parameters()), "device": "cpu",
                   "torch_threads": args.threads, "episodes": args.episodes, "max_tokens": args.max_tokens,
                   "max_turns": args.max_turns},
    }
    print("| mode | episodes/s | generated tokens/s | seconds | episodes | tokens |")
    print("|---|---|---|---|---|---|")
    for name, m in modes.items():
        print(f"| {name} | {m['episodes_per_s']:.2f} | {m['tokens_per_s']:.0f} | {m['seconds']:.1f} | "
              f"{m['episodes']} | {m['generated_tokens']} |")
    print(f"\ninflight_speedup = {result['inflight_speedup']:.1f}x")
    write_json(result, args.out)


if __name__ == "__main__":
    main()
