"""`toolgym sft DATA.jsonl --model M --output DIR`: supervised warm start on Episode JSONL.

Trains on the tokens the policy produced in each episode (loss mask 1), exactly the masks RL uses;
writes DIR/ (save_pretrained model + tokenizer, loadable by `toolgym train model.name_or_path=DIR`
and `toolgym eval`) and DIR/sft_metrics.jsonl. Make demos with `toolgym demos`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="Episode JSONL (from `toolgym demos` or your own trajectories)")
    parser.add_argument("--model", default=None,
                        help="HF model id or directory to start from (default: the locally built tiny model)")
    parser.add_argument("--output", default=None, help="output directory (default: runs/sft-<timestamp>)")
    parser.add_argument("--steps", type=int, default=50, help="optimizer steps")
    parser.add_argument("--batch-size", type=int, default=None, help="episodes per step")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate")
    parser.add_argument("--include-failures", action="store_true",
                        help="train on unsuccessful episodes too (default: successful ones only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import torch
    from toolgym.agents.episode import read_jsonl
    from toolgym.trainers.config.schema import SFTConfig
    from toolgym.trainers.report.metrics import MetricsLogger, Progress
    from toolgym.trainers.run.sft import mean_nll, run_sft
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from toolgym.commands._trained import model_or_tiny

    if not Path(args.data).exists():
        print(f"toolgym sft: {args.data} does not exist (make demos with `toolgym demos OUT.jsonl`)",
              file=sys.stderr)
        return 2
    try:
        episodes = list(read_jsonl(args.data))
    except ValueError as exc:
        print(f"toolgym sft: {exc}", file=sys.stderr)
        return 2
    changes = {k: v for k, v in (("batch_size", args.batch_size), ("lr", args.lr)) if v is not None}
    cfg = dataclasses.replace(SFTConfig(), data=args.data, steps=args.steps,
                              only_success=not args.include_failures, **changes)
    device = "cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and device != "cuda":
        print("toolgym sft: --device cuda but no CUDA GPU is visible", file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)
    source = model_or_tiny(args.model, "sft")
    if source is None:
        return 2
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source).to(device)
    out = Path(args.output or f"runs/sft-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    pad = tokenizer.pad_token_id or 0
    try:
        before = mean_nll(model, episodes, device=device, pad_id=pad, only_success=cfg.only_success)
    except ValueError as exc:
        print(f"toolgym sft: {exc}", file=sys.stderr)
        return 2
    bar = Progress(cfg.steps, enabled=not args.quiet, desc="sft", fields=(("nll", "loss/nll", ".3f"),))
    with MetricsLogger(out, "sft_metrics.jsonl") as log:
        def on_step(step: int, metrics: dict[str, float]) -> None:
            log.log(step, metrics)
            bar.update(metrics)

        try:
            run_sft(model, episodes, cfg, seed=args.seed, device=device, pad_id=pad, on_step=on_step)
        finally:
            bar.close()
    after = mean_nll(model, episodes, device=device, pad_id=pad, only_success=cfg.only_success)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    print(f"toolgym sft: {cfg.steps} steps on {len(episodes)} episodes; NLL of the policy tokens "
          f"{before:.3f} -> {after:.3f}; model written to {out}")
    return 0
