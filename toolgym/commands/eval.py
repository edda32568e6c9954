"""`toolgym eval`: evaluate a model on a suite's held-out split -- pass@k per task and overall.

    toolgym eval --model runs/x/checkpoint --suite quickstart --split heldout -n 8 -k 1,4,8
    toolgym eval --model openai:gpt-4o-mini@https://api.openai.com/v1 --suite reasoning
    toolgym eval --model openai:tiny@http://127.0.0.1:8000/v1 --api completions --token-ids

A local checkpoint runs on the transformers engine (`--engine vllm` on a GPU); `openai:NAME@URL`
goes through any OpenAI-compatible endpoint (the key from $OPENAI_API_KEY). Results: a markdown table
on stdout, `results.json` and `results.md` in `--out`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="checkpoint directory, or openai:NAME@URL")
    parser.add_argument("--suite", default="quickstart", help="suite name or task id (default: quickstart)")
    parser.add_argument("--split", default="heldout")
    parser.add_argument("-n", type=int, default=8, help="samples per problem")
    parser.add_argument("-k", default="1,4,8", help="comma-separated k values for pass@k (k <= n)")
    parser.add_argument("--num-problems", type=int, default=20, help="instances per task (the first ones)")
    parser.add_argument("--out", default=None, help="output directory (default: runs/eval-<time>)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--max-tokens", type=int, default=512, help="per assistant turn")
    parser.add_argument("--max-turns", type=int, default=None, help="override the environment's turn limit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engine", choices=["hf", "vllm"], default="hf", help="for a local checkpoint")
    parser.add_argument("--device", default="cpu", help="torch device for --engine hf")
    parser.add_argument("--api", choices=["chat", "completions"], default="chat", help="for openai:NAME@URL")
    parser.add_argument("--token-ids", action="store_true",
                        help="openai: ask the server for token ids (vLLM / toolgym serve extension)")
    parser.add_argument("--no-progress", action="store_true")


def load_policy(args: argparse.Namespace) -> tuple[Any, Any]:
    """(policy, tokenizer) for --model: a local checkpoint or openai:NAME@URL."""
    if args.model.startswith("openai:"):
        from toolgym.agents.openai_engine import OpenAIEngine, parse_model_spec

        name, url = parse_model_spec(args.model)
        tokenizer = None
        if args.api == "completions":
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(getattr(args, "tokenizer", None) or name)
        return OpenAIEngine(url, name, tokenizer=tokenizer, api=args.api, token_ids=args.token_ids), tokenizer
    if not Path(args.model).exists():
        raise FileNotFoundError(f"no checkpoint at {args.model!r}: give a save_pretrained directory or "
                                "openai:NAME@URL")
    if args.engine == "vllm":
        from toolgym.agents.vllm_engine import VLLMEngine

        engine = VLLMEngine(args.model)
        return engine, engine.tokenizer
    from toolgym.agents.hf_engine import HFEngine

    engine = HFEngine.from_pretrained(args.model, device=args.device)
    return engine, engine.tokenizer


def run(args: argparse.Namespace) -> int:
    from toolgym.agents.engine import SamplingParams
    from toolgym.agents.evaluate import evaluate, markdown_table, write_report

    try:
        ks = [int(k) for k in args.k.split(",") if k.strip()]
        policy, tokenizer = load_policy(args)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        print(f"toolgym eval: {exc}", file=sys.stderr)
        return 2
    sampling = SamplingParams(temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens,
                              seed=args.seed)
    env_kwargs = {"max_turns": args.max_turns} if args.max_turns else None
    try:
        result = evaluate(policy, tokenizer, args.suite, split=args.split, n=args.n, ks=ks,
                          num_problems=args.num_problems, sampling=sampling, env_kwargs=env_kwargs,
                          progress=not args.no_progress)
    except (LookupError, ValueError) as exc:
        print(f"toolgym eval: {exc}", file=sys.stderr)
        return 2
    result["config"]["model"] = args.model
    out = Path(args.out or f"runs/eval-{time.strftime('%Y%m%d-%H%M%S')}")
    json_path, _ = write_report(result, out)
    print(markdown_table(result))
    print(f"results: {json_path} and {out / 'results.md'}")
    return 0
