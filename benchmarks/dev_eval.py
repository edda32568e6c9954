"""A development set that is not the held-out set: pass rate per problem kind on train-split instances
that neither the SFT demos nor RL draw, for several checkpoints side by side.

Why: choosing RL settings by their held-out score tunes the held-out set. The train split's instances
from `--start` on (default 100,000) are never a teacher demo (those are instances 0..sft.demos-1) and
RL draws its instances from 2**31 indices, so a few dozen of them are a fair dev set; the held-out
split stays for the one final measurement. Per kind (`Problem.metadata["kind"]`, "all" where a family
has none) it reports the greedy pass rate and, with `-n N --temperature T`, the sampled one and how
many problems had mixed outcomes (the groups GRPO learns from).

    python benchmarks/dev_eval.py --model sft=RUN/warm_model --model rl=RUN/checkpoints/step_000020/model \
        --env-from RUN --task toolgym/math-v0 --count 48 [--temperature 0.7 -n 8] [--out FILE]

Prints a table; writes JSON (default benchmarks/results/dev_eval.json) with, per label, `pass_greedy`
(overall), `per_kind` {kind: {"problems", "pass_greedy", "pass_sampled", "mixed"}}.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path(__file__).parent / "results" / "dev_eval.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", required=True, metavar="LABEL=PATH",
                   help="a label and a model folder (repeatable)")
    p.add_argument("--task", default="toolgym/math-v0")
    p.add_argument("--start", type=int, default=100_000, help="first train-split instance index")
    p.add_argument("--count", type=int, default=48, help="instances")
    p.add_argument("--temperature", type=float, default=0.0, help="also sample at this temperature (> 0)")
    p.add_argument("-n", type=int, default=8, help="samples per instance at --temperature")
    p.add_argument("--env-from", default=None, help="run directory or config.yaml: its training environment")
    p.add_argument("--max-tokens", type=int, default=96)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    if args.count < 1 or args.start < 0 or args.n < 1:
        p.error("--count and -n must be >= 1 and --start >= 0")
    for spec in args.model:
        if "=" not in spec or not Path(spec.split("=", 1)[1]).is_dir():
            p.error(f"--model {spec!r}: give LABEL=PATH with PATH a model folder")
    return args


def environment(env_from: str | None) -> dict[str, Any]:
    """The training environment's settings (EnvConfig fields) of a run, else the defaults ({})."""
    if env_from is None:
        return {}
    from toolgym.commands._trained import trained_env

    return dict(trained_env(env_from).env_kwargs)


def pass_rates(engine: Any, args: argparse.Namespace, env: dict[str, Any], temperature: float,
               n: int) -> dict[str, list[float]]:
    """kind -> per-instance success fractions over `n` samples at `temperature`."""
    from toolgym.agents.engine import SamplingParams
    from toolgym.agents.rollout import RolloutRunner
    from toolgym.envs import registry
    from toolgym.envs.types import TaskRequest

    family = registry.make_family(args.task)
    indices = range(args.start, args.start + args.count)
    kinds = {i: str(family.problem("train", i).metadata.get("kind", "all")) for i in indices}
    sampling = SamplingParams(temperature=temperature, max_tokens=args.max_tokens, seed=0)
    with RolloutRunner(engine, engine.tokenizer, group_size=n, sampling=sampling, env_kwargs=env,
                       max_inflight=32) as runner:
        episodes = runner.run([TaskRequest(args.task, i, "train") for i in indices])
    wins: dict[int, list[bool]] = defaultdict(list)
    for ep in episodes:
        wins[ep.index].append(bool(ep.success))
    out: dict[str, list[float]] = defaultdict(list)
    for i in indices:
        out[kinds[i]].append(sum(wins[i]) / len(wins[i]))
    return dict(out)


def evaluate(path: str, args: argparse.Namespace, env: dict[str, Any]) -> dict[str, Any]:
    from toolgym.agents.hf_engine import HFEngine

    engine = HFEngine.from_pretrained(path, device="cpu", max_batch_size=16)
    greedy = pass_rates(engine, args, env, 0.0, 1)
    sampled = pass_rates(engine, args, env, args.temperature, args.n) if args.temperature > 0 else {}
    per_kind = {}
    for kind in sorted(greedy):
        row: dict[str, Any] = {"problems": len(greedy[kind]), "pass_greedy": _mean(greedy[kind])}
        if sampled:
            row["pass_sampled"] = _mean(sampled[kind])
            row["mixed"] = sum(0.0 < v < 1.0 for v in sampled[kind])
        per_kind[kind] = row
    every = [v for values in greedy.values() for v in values]
    return {"path": path, "pass_greedy": _mean(every), "per_kind": per_kind}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def table(results: dict[str, dict[str, Any]]) -> str:
    kinds = sorted({k for r in results.values() for k in r["per_kind"]})
    lines = ["| model | all | " + " | ".join(kinds) + " |", "|---|---|" + "---|" * len(kinds)]
    for label, r in results.items():
        cells = [f"{r['per_kind'][k]['pass_greedy']:.2f}" if k in r["per_kind"] else "-" for k in kinds]
        lines.append(f"| {label} | {r['pass_greedy']:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    env = environment(args.env_from)
    results = {}
    for spec in args.model:
        label, path = spec.split("=", 1)
        results[label] = evaluate(path, args, env)
        print(f"{label}: greedy pass {results[label]['pass_greedy']:.3f}", file=sys.stderr, flush=True)
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    config = {"task": args.task, "split": "train", "start": args.start, "count": args.count,
              "temperature": args.temperature, "n": args.n, "env": env, "max_tokens": args.max_tokens}
    args.out.write_text(json.dumps({"config": config, "models": results}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
