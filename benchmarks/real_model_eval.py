"""A real pretrained model's baseline on toolgym's held-out splits, and the engine against model.generate.

    python benchmarks/real_model_eval.py [--model smollm2-135m-instruct] [--problems 6] [--out FILE]

For each task: pass@1 greedy (n=1, temperature 0) and pass@4 at temperature 1 (n=4) on the first
`--problems` held-out instances, tool calls per episode, the answer rate and the finish reasons, with
the environment's defaults except `--max-turns` and `--max-tokens` per turn (a base model that never
answers otherwise spends the whole time budget rambling). Then the engine's throughput: the same 16
first-turn prompts, `--gen-tokens` new tokens each (EOS ignored, so the token counts are equal),
through `HFEngine.generate` (batched, KV cache, prefix sharing) and through a plain loop of
`model.generate` calls, one prompt at a time.

JSON (default benchmarks/results/real_model_eval.json): `per_task` {task: {pass@1, pass@4,
tool_calls, answered_frac, finish_reasons, ...}}, `engine_tokens_per_s`, `generate_tokens_per_s`,
`engine_speedup_vs_generate`, `wall_s`, the machine load.
"""

from __future__ import annotations

import argparse
import os
import time

from _results import write_json  # benchmarks/_results.py (scripts run from benchmarks/)

TASKS = ("toolgym/arith-v0", "toolgym/countdown-v0", "toolgym/math-v0", "toolgym/code-v0",
         "toolgym/rg-base_conversion-v0", "toolgym/rg-count_bits-v0", "toolgym/rg-number_filtering-v0")


def evaluate_tasks(engine, tasks, problems: int, max_tokens: int, max_turns: int) -> dict[str, dict]:
    from toolgym.agents.engine import SamplingParams
    from toolgym.agents.evaluate import evaluate

    env = {"max_turns": max_turns}
    greedy = evaluate(engine, engine.tokenizer, list(tasks), n=1, ks=(1,), num_problems=problems,
                      sampling=SamplingParams(temperature=0.0, max_tokens=max_tokens, seed=0),
                      env_kwargs=env, progress=False)
    sampled = evaluate(engine, engine.tokenizer, list(tasks), n=4, ks=(1, 4), num_problems=problems,
                       sampling=SamplingParams(temperature=1.0, max_tokens=max_tokens, seed=0),
                       env_kwargs=env, progress=False)
    out = {}
    for task in tasks:
        g, s = greedy["per_task"][task], sampled["per_task"][task]
        out[task] = {"problems": g["problems"], "pass@1": g["pass@1"], "pass@1_stderr": g["pass@1_stderr"],
                     "pass@4": s["pass@4"], "pass@1_sampled": s["pass@1"],
                     "tool_calls": g["avg_tool_calls"],
                     "answered_frac": g["answered_frac"], "no_tool_frac": g["no_tool_frac"],
                     "parse_fail_rate": g["parse_fail_rate"], "finish_reasons": g["finish_reasons"],
                     "tool_calls_sampled": s["avg_tool_calls"]}
    return out


def first_turn_prompts(tokenizer, tasks, count: int) -> list[list[int]]:
    """First prompts of held-out episodes (system prompt + problem), rendered with the model's template."""
    from toolgym.agents.chat import ChatRenderer
    from toolgym.envs import registry

    renderer, prompts = ChatRenderer(tokenizer), []
    for i in range(count):
        env = registry.make(tasks[i % len(tasks)], split="heldout")
        messages, _ = env.reset(options={"index": i // len(tasks)})
        prompts.append(renderer.prompt_ids(messages))
        env.close()
    return prompts


def throughput(engine, prompts: list[list[int]], new_tokens: int) -> dict[str, float]:
    """Tokens/s of the engine (one batched call) and of a plain model.generate loop (one prompt at a
    time) asked for exactly as many new tokens per prompt as the engine produced."""
    import torch
    from toolgym.agents.engine import SamplingParams

    started = time.perf_counter()
    out = engine.generate(prompts, SamplingParams(temperature=1.0, max_tokens=new_tokens, seed=0))
    engine_s = time.perf_counter() - started
    lengths = [len(g.ids) for g in out]
    started = time.perf_counter()
    loop_tokens = 0
    with torch.no_grad():
        for p, n in zip(prompts, lengths, strict=True):
            ids = torch.tensor([p])
            gen = engine.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True,
                                        max_new_tokens=n, min_new_tokens=n,
                                        pad_token_id=engine.tokenizer.pad_token_id)
            loop_tokens += gen.shape[1] - ids.shape[1]
    loop_s = time.perf_counter() - started
    engine_rate, loop_rate = sum(lengths) / engine_s, loop_tokens / loop_s
    return {"engine_tokens": sum(lengths), "engine_s": round(engine_s, 2),
            "engine_tokens_per_s": round(engine_rate, 1), "generate_tokens": loop_tokens,
            "generate_s": round(loop_s, 2), "generate_tokens_per_s": round(loop_rate, 1),
            "engine_speedup_vs_generate": round(engine_rate / loop_rate, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="catalogue name or model folder")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--problems", type=int, default=6, help="held-out instances per task")
    parser.add_argument("--max-tokens", type=int, default=128, help="per turn")
    parser.add_argument("--max-turns", type=int, default=3)
    parser.add_argument("--gen-prompts", type=int, default=16)
    parser.add_argument("--gen-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", default="benchmarks/results/real_model_eval.json")
    args = parser.parse_args()

    import torch
    from toolgym.agents.catalogue import resolve_model
    from toolgym.agents.hf_engine import HFEngine

    if args.threads:
        torch.set_num_threads(args.threads)
    started, load = time.perf_counter(), os.getloadavg()[0]
    tasks = [t for t in args.tasks.split(",") if t]
    engine = HFEngine.from_pretrained(resolve_model(args.model))
    per_task = evaluate_tasks(engine, tasks, args.problems, args.max_tokens, args.max_turns)
    prompts = first_turn_prompts(engine.tokenizer, tasks, args.gen_prompts)
    speed = throughput(engine, prompts, args.gen_tokens)
    result = {"model": args.model, "problems_per_task": args.problems, "max_tokens_per_turn": args.max_tokens,
              "max_turns": args.max_turns, "per_task": per_task, **speed,
              "wall_s": round(time.perf_counter() - started, 1), "cpu_count": os.cpu_count(),
              "loadavg_1m_before": round(load, 2), "loadavg_1m_after": round(os.getloadavg()[0], 2)}
    print("| task | pass@1 (greedy) | pass@4 (T=1) | tool calls | answered | finish reasons |")
    print("|---|---|---|---|---|---|")
    for task, r in per_task.items():
        finishes = ", ".join(f"{k}: {v}" for k, v in sorted(r["finish_reasons"].items()))
        print(f"| {task} | {r['pass@1']:.3f} | {r['pass@4']:.3f} | {r['tool_calls']:.2f} | "
              f"{r['answered_frac']:.2f} | {finishes} |")
    print(f"engine {speed['engine_tokens_per_s']:.1f} tok/s vs a model.generate loop "
          f"{speed['generate_tokens_per_s']:.1f} tok/s: {speed['engine_speedup_vs_generate']:.2f}x; "
          f"wall {result['wall_s']} s")
    write_json(result, args.out)


if __name__ == "__main__":
    main()
