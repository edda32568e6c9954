"""The CPU quickstart: tiny model -> teacher demos -> short warm start -> GPPO + curriculum -> report.

    base   = build_tiny_model()                          random init, local tokenizer (no download)
    demos  = teacher episodes on train instances          reference program through the tool, then
                                                          the answer (the same rollout code as RL)
    warm   = SFT(base, demos)                            deliberately short: see `sft.steps`
    fit(warm)                                            held-out pass@1 before RL, GPPO with the
                                                          potential curriculum, pass@1 after RL
    RUN_DIR/summary.json, reward_curve.png, report.html, eval/, checkpoints/, metrics.jsonl

The warm start is imperfect on purpose (few SFT steps on few demos), so the model has learned the
format and the habit of calling the tool but still miscopies digits: RL has something to do.
`run.time_limit_s` bounds the RL phase so the whole run fits its budget on a loaded machine.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from toolgym.trainers.config import TrainConfig
from toolgym.trainers.metrics import MetricsLogger, Progress, peak_rss_mb, read_metrics

SUMMARY_KEYS = ("heldout_pass1_warm", "heldout_pass1_rl", "wall_s", "peak_rss_mb")


def make_demos(model_path: str, cfg: TrainConfig, count: int, start: int = 0) -> list[Any]:
    """Solved teacher episodes on train instances start..start+count-1 of every training task."""
    from toolgym.agents.agents import TeacherAgent
    from toolgym.agents.rollout import RolloutRunner
    from toolgym.envs.types import TaskRequest
    from toolgym.trainers.runstate import train_task_ids
    from toolgym.trainers.workers import env_kwargs
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    requests = [TaskRequest(t, i, "train") for t in train_task_ids(cfg) for i in range(start, start + count)]
    episodes = []
    teacher = TeacherAgent(tokenizer)
    with RolloutRunner(teacher, tokenizer, env_kwargs=env_kwargs(cfg), max_inflight=32) as runner:
        for k in range(0, len(requests), 128):
            episodes += runner.run(requests[k:k + 128])
    solved = [e for e in episodes if e.success]
    if not solved:
        raise RuntimeError("the teacher solved none of the demo instances; first error: "
                           f"{next((e.error for e in episodes if e.error), 'none')}")
    return solved


def warm_start(cfg: TrainConfig, run_dir: Path, progress: bool) -> tuple[str, dict[str, Any]]:
    """Build the tiny model, write teacher demos, SFT; returns the warm model dir and SFT figures."""
    from toolgym.agents.episode import write_jsonl
    from toolgym.trainers.runstate import base_model_path, seed_everything
    from toolgym.trainers.sft import mean_nll, run_sft
    from transformers import AutoModelForCausalLM, AutoTokenizer

    seed_everything(cfg.run.seed)
    base = base_model_path(cfg, run_dir)
    started = time.monotonic()
    demos = make_demos(base, cfg, cfg.sft.demos)
    write_jsonl(demos, run_dir / "demos.jsonl")
    demo_s = time.monotonic() - started
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    bar = Progress(cfg.sft.steps, enabled=progress, desc="warm start (sft)",
                   fields=(("nll", "loss/nll", ".3f"),))
    with MetricsLogger(run_dir, "sft_metrics.jsonl") as log:
        def on_step(step: int, metrics: dict[str, float]) -> None:
            log.log(step, metrics)
            bar.update(metrics)

        try:
            run_sft(model, demos, cfg.sft, seed=cfg.run.seed, pad_id=tokenizer.pad_token_id or 0,
                    on_step=on_step)
        finally:
            bar.close()
    warm = run_dir / "warm_model"
    model.save_pretrained(warm, safe_serialization=True)
    tokenizer.save_pretrained(warm)
    return str(warm), {"demos": len(demos), "demo_s": demo_s, "sft_s": time.monotonic() - started - demo_s,
                       "sft_final_nll": mean_nll(model, demos, pad_id=tokenizer.pad_token_id or 0)}


def run_quickstart(cfg: TrainConfig, run_dir: str | Path, *, budget_s: float = 14 * 60,
                   eval_reserve_s: float = 90.0) -> dict[str, Any]:
    """The whole quickstart; returns (and writes) RUN_DIR/summary.json."""
    import torch
    from toolgym.trainers.driver import fit

    started = time.monotonic()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    warm, sft_info = warm_start(cfg, run_dir, cfg.run.progress)
    left = budget_s - (time.monotonic() - started) - eval_reserve_s
    limit = left if cfg.run.time_limit_s is None else min(left, cfg.run.time_limit_s)
    rl_cfg = cfg.replace(model=dataclasses.replace(cfg.model, name_or_path=warm),
                         run=dataclasses.replace(cfg.run, time_limit_s=max(0.0, limit)))
    result = fit(rl_cfg, run_dir)
    evals = result["evals"]
    first, last = evals[min(evals)], evals[max(evals)]
    summary = {
        "heldout_pass1_warm": first["overall"]["pass@1"],
        "heldout_pass1_rl": last["overall"]["pass@1"],
        "wall_s": round(time.monotonic() - started, 1),
        "peak_rss_mb": round(peak_rss_mb() + sum(result.get("worker_peak_rss_mb", [])), 1),
        "rl_steps": result["step"],
        "heldout_problems": first["overall"]["problems"],
        "driver_peak_rss_mb": round(peak_rss_mb(), 1),
        "worker_peak_rss_mb": result.get("worker_peak_rss_mb", []),
        **{f"warm_start_{k}": v for k, v in sft_info.items()},
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    plot_reward_curve(run_dir, summary)
    return summary


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
    ax.plot([r["step"] for r in evals], [r["eval/pass@1"] for r in evals], "o-", label="held-out pass@1")
    ax.set_xlabel("RL step")
    ax.set_title(f"quickstart: held-out pass@1 {summary['heldout_pass1_warm']:.2f} (warm start) -> "
                 f"{summary['heldout_pass1_rl']:.2f} (after RL)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = run_dir / "reward_curve.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
