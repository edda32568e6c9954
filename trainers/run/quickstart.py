"""The CPU quickstart: tiny model -> teacher demos -> warm start -> GPPO + curriculum -> report.

    base   = build_tiny_model()                          random init, local tokenizer (no download)
    demos  = teacher episodes on train instances 0..n-1  reference program through the tool, then
             + guessing episodes (sft.guess_fraction)      the answer; or a wrong guess, no tool
    warm   = SFT(base, tool demos), then SFT(warm, mix)  sft.steps, then sft.guess_steps
    fit(warm)                                            held-out pass@1 before RL, GPPO with the
                                                          potential curriculum, pass@1 after RL
    RUN_DIR/summary.json, reward_curve.png, report.html, eval/, checkpoints/, metrics.jsonl

The warm start is imperfect on purpose, so that RL has something to do. A tiny model cannot multiply
4-digit numbers in its head, only copy them into `print(...)` and copy the output back; the first
phase teaches that skill on the teacher's tool demos. Then `sft.guess_fraction` of the demos (0.6 in
the recipe) skip the interpreter and answer at once with a plausible wrong number (the environment
scores them 0), and the second phase trains on the mix: the warm model has learnt both behaviours
and, for most problems, prefers to guess, so greedy decoding rarely uses the tool. Whether to run
code is decided by the first tokens of the turn; sampled groups mix right code answers with wrong
guesses, and GPPO learns *when to use the tool* -- the behaviour R1-Code-Interpreter's RL stage
improves. `run.time_limit_s` bounds the RL phase so the whole run fits its budget on a loaded machine.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
import warnings
from pathlib import Path
from typing import Any

from toolgym.agents.policies import TeacherAgent, TurnState
from toolgym.trainers.config.schema import TrainConfig
from toolgym.trainers.report.metrics import MetricsLogger, Progress, peak_rss_mb, read_metrics

SUMMARY_KEYS = ("heldout_pass1_warm", "heldout_pass1_rl", "wall_s", "peak_rss_mb")
WARM_DONE = "warm_start.json"  # written when the warm start finished: its figures; a resume skips it




def _guess_answer(answer: Any, rng: random.Random) -> str:
    """A plausible wrong answer: the true integer with every digit after the first redrawn."""
    text = str(int(answer))
    sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
    guess = digits[0] + "".join(rng.choice("0123456789") for _ in digits[1:])
    if guess == digits:  # never right by chance: the demo must score 0
        guess = guess[:-1] + str((int(guess[-1]) + 1) % 10)
    return sign + guess


class GuessingTeacher(TeacherAgent):
    """The teacher, except on the problems in `guess`: there it answers at once, without the tool,
    with a wrong number of the right size (what a model that skips the interpreter produces)."""

    def __init__(self, tokenizer: Any, guess: set[tuple[str, int]], seed: int = 0) -> None:
        super().__init__(tokenizer)
        self.guess = guess
        self.seed = seed

    def turn(self, state: TurnState) -> str:
        if (state.task_id, state.problem.index) not in self.guess:
            return super().turn(state)
        rng = random.Random(f"{self.seed}/{state.task_id}/{state.problem.index}")
        return state.parser.format_answer(_guess_answer(state.problem.answer, rng))


def make_demos(model_path: str, cfg: TrainConfig, count: int, start: int = 0,
               guess_fraction: float = 0.0) -> list[Any]:
    """Warm-start episodes on train instances start..start+count-1 of every training task.

    The last `guess_fraction` share of the instances of each task gets a tool-free guessing episode,
    kept although it fails; the first ones get the teacher's solved episodes (reference program
    through the tool, then its output as the answer), so the RL curriculum's instances 0..k-1 are
    ones the warm start showed solved with the tool. Every demo is a real
    Episode made by the rollout code, scored by the environment.
    """
    from toolgym.agents.rollout import RolloutRunner
    from toolgym.envs.types import TaskRequest
    from toolgym.trainers.config.checks import task_ids, task_kwargs
    from toolgym.trainers.run.workers import env_kwargs
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    requests, guess = [], set()
    first_guess = start + count - round(guess_fraction * count)
    for task in task_ids(cfg):
        requests += [TaskRequest(task, i, "train") for i in range(start, start + count)]
        guess |= {(task, i) for i in range(first_guess, start + count)}
    episodes = []
    teacher = GuessingTeacher(tokenizer, guess, seed=cfg.run.seed)
    with RolloutRunner(teacher, tokenizer, env_kwargs=env_kwargs(cfg), task_kwargs=task_kwargs(cfg),
                       max_inflight=32) as runner:
        for k in range(0, len(requests), 128):
            episodes += runner.run(requests[k:k + 128])
    solved = [e for e in episodes if e.success and (e.task_id, e.index) not in guess]
    if not solved:
        raise RuntimeError("the teacher solved none of the demo instances; first error: "
                           f"{next((e.error for e in episodes if e.error), 'none')}")
    guesses = [e for e in episodes if (e.task_id, e.index) in guess and e.error is None]
    return solved + guesses


def warn_long_turns(demos: list[Any], max_new_tokens: int) -> int:
    """Warn when demo turns are longer than RL may sample (SFT would learn turns RL truncates);
    returns how many demos have such a turn."""
    from toolgym.agents.episode import longest_turn

    lengths = [longest_turn(e) for e in demos]
    long = sum(n > max_new_tokens for n in lengths)
    if long:
        warnings.warn(f"{long} of {len(demos)} warm-start demos have an assistant turn longer than "
                      f"sampling.max_new_tokens={max_new_tokens} (longest: {max(lengths)} tokens): the warm "
                      "start learns turns that RL and the held-out eval cut off. Raise "
                      f"sampling.max_new_tokens to at least {max(lengths)} or shorten the family's "
                      "reference turns.",
                      UserWarning, stacklevel=2)
    return long


def warm_start(cfg: TrainConfig, run_dir: Path, progress: bool) -> tuple[str, dict[str, Any]]:
    """Build the tiny model, write the demos, SFT; returns the warm model dir and SFT figures.

    Two phases when some demos are guesses: `sft.steps` on the tool demos only (the copying skill
    needs all the steps it can get), then `sft.guess_steps` on the whole mix, which teaches the
    habit of guessing without undoing the skill.
    """
    from toolgym.agents.episode import read_jsonl, write_jsonl
    from toolgym.trainers.run.runstate import base_model_path, seed_everything
    from toolgym.trainers.run.sft import mean_nll, run_sft
    from transformers import AutoModelForCausalLM, AutoTokenizer

    warm, done = run_dir / "warm_model", run_dir / WARM_DONE
    if done.exists() and (warm / "config.json").exists():  # resumed after the warm start: keep it
        return str(warm), json.loads(done.read_text())
    seed_everything(cfg.run.seed)
    base = base_model_path(cfg, run_dir)
    started = time.monotonic()
    demos_path = run_dir / "demos.jsonl"
    if demos_path.exists():  # written whole (renamed into place): a resumed warm start reuses them
        demos = list(read_jsonl(demos_path))
    else:
        demos = make_demos(base, cfg, cfg.sft.demos, guess_fraction=cfg.sft.guess_fraction)
        write_jsonl(demos, run_dir / "demos.jsonl.tmp")
        (run_dir / "demos.jsonl.tmp").rename(demos_path)
    demo_s = time.monotonic() - started
    warn_long_turns(demos, cfg.sampling.max_new_tokens)
    (run_dir / "sft_metrics.jsonl").unlink(missing_ok=True)  # SFT (re)starts from its first step
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    # the teacher's solved demos (with the tool, or answering directly where a task's reference is the
    # answer itself, as code tasks' are); the guesses always score 0, so success tells them apart
    tool_demos = [e for e in demos if e.success]
    phases = [(tool_demos, dataclasses.replace(cfg.sft, only_success=False))]
    if len(tool_demos) < len(demos) and cfg.sft.guess_steps:
        # continue at the floor of the first phase's cosine, on the whole mix (tool demos + guesses)
        phases.append((demos, dataclasses.replace(cfg.sft, steps=cfg.sft.guess_steps, lr=0.1 * cfg.sft.lr,
                                                  warmup_steps=0, only_success=False)))
    bar = Progress(sum(p.steps for _, p in phases), enabled=progress, desc="warm start (sft)",
                   fields=(("nll", "loss/nll", ".3f"),))
    with MetricsLogger(run_dir, "sft_metrics.jsonl") as log:
        offset = 0

        def on_step(step: int, metrics: dict[str, float]) -> None:
            log.log(offset + step, metrics)
            bar.update(metrics)

        try:  # the demo lists are curated (solved teacher demos, deliberate guesses): train on all
            for episodes, phase_cfg in phases:
                run_sft(model, episodes, phase_cfg, seed=cfg.run.seed + offset,
                        pad_id=tokenizer.pad_token_id or 0, on_step=on_step)
                offset += phase_cfg.steps
        finally:
            bar.close()
    model.save_pretrained(warm, safe_serialization=True)
    tokenizer.save_pretrained(warm)
    info = {"demos": len(demos), "demo_s": demo_s, "sft_s": time.monotonic() - started - demo_s,
            "guess_demos": sum(1 for e in demos if e.tool_calls == 0),
            "sft_final_nll": mean_nll(model, demos, pad_id=tokenizer.pad_token_id or 0, only_success=False)}
    done.write_text(json.dumps(info, indent=1))  # the stage is complete: a resume skips it
    return str(warm), info


def run_quickstart(cfg: TrainConfig, run_dir: str | Path, *, budget_s: float = 14 * 60,
                   eval_reserve_s: float = 90.0, resume: bool = False) -> dict[str, Any]:
    """The whole quickstart; returns (and writes) RUN_DIR/summary.json.

    Stages: demos (RUN_DIR/demos.jsonl), SFT (RUN_DIR/warm_model + warm_start.json), RL (checkpoints).
    Ctrl-C in the warm start keeps the finished stages and returns {"interrupted": True, "stage":
    "warm_start"}; `resume=True` skips the finished stages and continues RL from its latest checkpoint.
    The summary holds what was measured: `heldout_pass1_rl` is None unless the final eval ran."""
    import torch
    import yaml
    from toolgym.trainers.run.checkpoint import latest_checkpoint
    from toolgym.trainers.run.driver import fit

    started = time.monotonic()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / "config.yaml").exists():  # the run's environment, for `eval --model RUN_DIR/warm_model`
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    try:
        warm, sft_info = warm_start(cfg, run_dir, cfg.run.progress)
    except KeyboardInterrupt:
        kept = [name for name in ("base_model", "demos.jsonl") if (run_dir / name).exists()]
        return {"interrupted": True, "stage": "warm_start", "kept": kept}
    left = budget_s - (time.monotonic() - started) - eval_reserve_s
    limit = left if cfg.run.time_limit_s is None else min(left, cfg.run.time_limit_s)
    rl_cfg = cfg.replace(model=dataclasses.replace(cfg.model, name_or_path=warm),
                         run=dataclasses.replace(cfg.run, time_limit_s=max(0.0, limit)))
    result = fit(rl_cfg, run_dir, resume=resume and latest_checkpoint(run_dir) is not None)
    summary = {**measured_summary(run_dir, result), "wall_s": round(time.monotonic() - started, 1),
               "peak_rss_mb": round(peak_rss_mb() + sum(result.get("worker_peak_rss_mb", [])), 1),
               "driver_peak_rss_mb": round(peak_rss_mb(), 1),
               "worker_peak_rss_mb": result.get("worker_peak_rss_mb", []),
               **{f"warm_start_{k}": v for k, v in sft_info.items()}}
    if resume:
        summary["resumed"] = True  # wall_s and peak memory are this process's
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    plot_reward_curve(run_dir, summary)
    return summary


def measured_summary(run_dir: Path, result: dict[str, Any]) -> dict[str, Any]:
    """Held-out figures from RUN_DIR/eval/step_*.json (every process's evals, resumed runs included):
    the warm start's (step 0) and the final one only if it ran at the run's last step."""
    evals = {int(f.stem.split("_")[1]): json.loads(f.read_text())
             for f in (run_dir / "eval").glob("step_*.json")}
    first = evals.get(0)
    last = evals.get(result["step"]) if not result["interrupted"] and result["step"] > 0 else None
    out: dict[str, Any] = {
        "heldout_pass1_warm": first["overall"]["pass@1"] if first else None,
        "heldout_pass1_rl": last["overall"]["pass@1"] if last else None,
        "rl_steps": result["step"],
        "heldout_problems": (first or last or {"overall": {"problems": 0}})["overall"]["problems"],
        "heldout_tasks": (first or last or {"config": {"tasks": []}})["config"]["tasks"],
    }
    if result["interrupted"]:
        out["interrupted_at_step"] = result["step"]  # no final eval: resume with --resume
    return out


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
    ax.set_title(f"{tasks}: held-out pass@1 {_figure(summary['heldout_pass1_warm'])} (warm start) -> "
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
