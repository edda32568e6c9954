"""A run with a warm start: SFT cold start -> RL -> summary; the CPU quickstart is its smallest case.

    warm   = warm_start(cfg)                 demos + SFT (warm_start.py); skipped when finished
    fit(warm)                                held-out pass@1 before RL (step 0), RL, pass@1 after RL
    RUN_DIR/summary.json, reward_curve.png, report.html, eval/, checkpoints/, metrics.jsonl

`toolgym train` runs this whenever the recipe's `sft.steps > 0` (any model; the quickstart builds the
tiny one) unless `--skip-sft`. The quickstart's warm start is imperfect on purpose, so that RL has
something to do. A tiny model cannot multiply 4-digit numbers in its head, only copy them into
`print(...)` and copy the output back; the first SFT phase teaches that skill on the teacher's tool
demos. Then `quickstart.guess_fraction` of the demos (0.6 in the recipe) skip the interpreter and
answer at once with a plausible wrong number (the environment scores them 0), and a second phase
(`quickstart.guess_steps`) trains on the mix: the warm model has learnt both behaviours and, for most
problems, prefers to guess, so greedy decoding rarely uses the tool. Whether to run code is decided
by the first tokens of the turn; sampled groups mix right code answers with wrong guesses, and GPPO
learns *when to use the tool* -- the behaviour R1-Code-Interpreter's RL stage improves.
`quickstart.budget_s` bounds the whole run (RL stops early) so it fits its budget on a loaded machine:
a step starts only if it and the final evaluation (timed on the starting one) still fit (deadline.py).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from toolgym.trainers.config.schema import TrainConfig
from toolgym.trainers.report.metrics import peak_rss_mb, read_metrics
from toolgym.trainers.run.deadline import Deadline
from toolgym.trainers.run.deadline import now as deadline_clock
from toolgym.trainers.run.heap import release_free_memory
from toolgym.trainers.run.warm_start import warm_start

SUMMARY_KEYS = ("heldout_pass1_sft", "heldout_pass1_rl", "wall_s", "peak_rss_mb")


def run_warm_start_and_rl(cfg: TrainConfig, run_dir: str | Path, *, eval_reserve_s: float = 90.0,
                          resume: bool = False) -> dict[str, Any]:
    """Warm start, then RL from the warm model; returns (and writes) RUN_DIR/summary.json.

    Stages: demos (RUN_DIR/demos.jsonl), SFT (RUN_DIR/warm_model + warm_start.json), RL (checkpoints).
    Ctrl-C in the warm start keeps the finished stages and returns {"interrupted": True, "stage":
    "warm_start"}; `resume=True` skips the finished stages and continues RL from its latest checkpoint.
    The summary holds what was measured: `heldout_pass1_rl` is None unless the final eval ran."""
    import torch
    import yaml
    from toolgym.trainers.run.checkpoint import latest_checkpoint
    from toolgym.trainers.run.driver import fit

    started = deadline_clock()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / "config.yaml").exists():  # the run's environment, for `eval --model RUN_DIR/warm_model`
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    try:
        base = evaluate_base(cfg, run_dir) if cfg.eval.before_warm_start and cfg.eval.problems > 0 else None
        warm, sft_info = warm_start(cfg, run_dir, cfg.run.progress)
        release_free_memory()  # the SFT model, optimizer and activations, before RL's processes start
    except KeyboardInterrupt:
        kept = [name for name in ("base_model", "demos.jsonl") if (run_dir / name).exists()]
        return {"interrupted": True, "stage": "warm_start", "kept": kept}
    rl_cfg = cfg.replace(model=dataclasses.replace(cfg.model, name_or_path=warm))
    budget = cfg.quickstart.budget_s
    deadline = Deadline(at=None if budget is None else started + budget, eval_s=eval_reserve_s)
    result = fit(rl_cfg, run_dir, resume=resume and latest_checkpoint(run_dir) is not None,
                 deadline=deadline)
    summary = {**measured_summary(run_dir, result), **base_summary(base),
               "wall_s": round(deadline_clock() - started, 1),
               "peak_rss_mb": round(peak_rss_mb() + sum(result.get("worker_peak_rss_mb", [])), 1),
               "driver_peak_rss_mb": round(peak_rss_mb(), 1),
               "worker_peak_rss_mb": result.get("worker_peak_rss_mb", []),
               **{f"warm_start_{k}": v for k, v in sft_info.items()}}
    if resume:
        summary["resumed"] = True  # wall_s and peak memory are this process's
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    plot_reward_curve(run_dir, summary)
    return summary


def evaluate_base(cfg: TrainConfig, run_dir: Path) -> dict[str, Any]:
    """Held-out eval of the model before the warm start (eval.before_warm_start), with the trainer's
    eval settings; RUN_DIR/eval/base.json (a resumed run reuses it)."""
    from toolgym.trainers.config.checks import task_ids
    from toolgym.trainers.run.runstate import base_model_path
    from toolgym.trainers.run.workers import RolloutWorker

    out = run_dir / "eval" / "base.json"
    if out.exists():
        return json.loads(out.read_text())
    e = cfg.eval
    worker = RolloutWorker(base_model_path(cfg, run_dir), cfg.to_dict(), threads=cfg.run.threads)
    try:
        result = worker.evaluate(task_ids(cfg, e.split), e.split, e.problems, e.n, list(e.ks), e.temperature,
                                 cfg.run.seed)
    finally:
        worker.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"step": "base", **result}, indent=1, default=str))
    return result


def base_summary(base: dict[str, Any] | None) -> dict[str, Any]:
    if base is None:
        return {}
    return {"heldout_pass1_base": base["overall"]["pass@1"],
            "heldout_pass1_base_per_task": per_task_pass1(base)}


def measured_summary(run_dir: Path, result: dict[str, Any]) -> dict[str, Any]:
    """Held-out figures from RUN_DIR/eval/step_*.json (every process's evals, resumed runs included):
    the warm start's (step 0) and the final one only if it ran at the run's last step."""
    evals = {int(f.stem.split("_")[1]): json.loads(f.read_text())
             for f in (run_dir / "eval").glob("step_*.json")}
    first = evals.get(0)
    last = evals.get(result["step"]) if not result["interrupted"] and result["step"] > 0 else None
    out: dict[str, Any] = {
        "heldout_pass1_sft": first["overall"]["pass@1"] if first else None,
        "heldout_pass1_rl": last["overall"]["pass@1"] if last else None,
        "heldout_pass1_sft_per_task": per_task_pass1(first),
        "heldout_pass1_rl_per_task": per_task_pass1(last),
        "rl_steps": result["step"],
        "heldout_problems": (first or last or {"overall": {"problems": 0}})["overall"]["problems"],
        "heldout_tasks": (first or last or {"config": {"tasks": []}})["config"]["tasks"],
    }
    if result["interrupted"]:
        out["interrupted_at_step"] = result["step"]  # no final eval: resume with --resume
    return out


def per_task_pass1(result: dict[str, Any] | None) -> dict[str, float | None] | None:
    return {t: r["pass@1"] for t, r in result["per_task"].items()} if result else None


def plot_reward_curve(run_dir: Path, summary: dict[str, Any]) -> Path:
    """RUN_DIR/reward_curve.png: training reward and pass rate per step, held-out pass@1 points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(run_dir / "metrics.jsonl")
    train = [r for r in records if "reward/mean" in r]
    evals = [r for r in records if "eval/pass@1" in r]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot([r["step"] for r in train], [r["reward/mean"] for r in train], label="train reward (mean)")
    ax.plot([r["step"] for r in train], [r["success/rate"] for r in train], label="train pass rate")
    ax.plot([r["step"] for r in evals], [r["eval/pass@1"] for r in evals], "o",
            label="held-out pass@1 (measured)")
    ax.set_xlabel("RL step")
    tasks = ", ".join(summary.get("heldout_tasks") or []) or "quickstart"
    ax.set_title(f"{tasks}: held-out pass@1 {_figure(summary['heldout_pass1_sft'])} (warm start) -> "
                 f"{_figure(summary['heldout_pass1_rl'])} (after RL)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = run_dir / "reward_curve.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _figure(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.2f}"
