"""`toolgym demos --suite S -n N out.jsonl`: teacher trajectories, as Episode JSONL, for a warm start.

The teacher runs each problem's reference program through the tool and answers with its output; its
turns are tokenised with the model's tokenizer (`--model`, default: the locally built tiny model), so
each record is exactly the token sequence the model would have to produce (`toolgym sft` trains on
the loss-mask-1 tokens). Only solved episodes are written unless `--keep-failures`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="output JSONL file")
    parser.add_argument("--suite", default="quickstart", help="suite name or task id")
    parser.add_argument("--split", default="train")
    parser.add_argument("-n", type=int, default=100, help="problems per task (instances 0..n-1)")
    parser.add_argument("--start", type=int, default=0, help="first instance index")
    parser.add_argument("--model", default=None, help="tokenizer source (default: the tiny model)")
    parser.add_argument("--keep-failures", action="store_true", help="also write unsolved episodes")


def run(args: argparse.Namespace) -> int:
    from toolgym.agents.episode import write_jsonl
    from toolgym.agents.evaluate import resolve_tasks
    from toolgym.agents.policies import TeacherAgent
    from toolgym.agents.rollout import RolloutRunner
    from toolgym.envs.types import TaskRequest
    from transformers import AutoTokenizer

    from toolgym.commands._trained import model_or_tiny

    try:
        task_ids = resolve_tasks(args.suite, args.split)
    except (LookupError, ValueError) as exc:
        print(f"toolgym demos: {exc}", file=sys.stderr)
        return 2
    source = model_or_tiny(args.model, "demos")
    if source is None:
        return 2
    tokenizer = AutoTokenizer.from_pretrained(source)
    indices = range(args.start, args.start + args.n)
    requests = [TaskRequest(t, i, args.split) for t in task_ids for i in indices]
    with RolloutRunner(TeacherAgent(tokenizer), tokenizer, keep_messages=True) as runner:
        episodes = runner.run(requests)
    kept = [e for e in episodes if e.success or args.keep_failures]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(kept, args.out)
    errors = sum(e.finish_reason == "error" for e in episodes)
    print(f"toolgym demos: wrote {len(kept)} episodes to {args.out} ({sum(e.success for e in episodes)}/"
          f"{len(episodes)} solved, {errors} errors) over {len(task_ids)} task(s)")
    if errors:
        first = next(e for e in episodes if e.finish_reason == "error")
        print(f"first error ({first.task_id} #{first.index}): {first.error}", file=sys.stderr)
    return 0
