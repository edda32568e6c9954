"""GPPO vs clipped PPO (clip-higher) vs CISPO at small scale: the quickstart suite, the tiny model, seeds.

Klear-Reasoner (arXiv 2508.07629) reports GPPO ahead of clip-higher and CISPO. This script checks what
we see at our scale: one shared warm start (the quickstart's: teacher demos, short SFT), then for each
loss and seed the same RL budget (steps, prompts, group size, learning rate, curriculum) from those
same weights; held-out pass@1 (greedy) every `--eval-every` steps and the policy entropy per step.

    gppo      eps_low 0.2, eps_high 0.28, gradient kept on clipped tokens (ALGORITHMS.md)
    ppo_clip  eps_low 0.2, eps_high 0.28 (DAPO clip-higher): zero gradient on clipped tokens
    cispo     no lower bound (eps_low 1.0), eps_high 0.28: IS weight clipped and detached

Writes a table, a JSON (`--out`, default benchmarks/results/gppo_vs_clip.json) and a PNG of the
curves beside it. The runs' directories stay in `--work` for `toolgym report`.

    python benchmarks/gppo_vs_clip.py [--seeds 0,1] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ARMS = {"gppo": ["loss.name=gppo", "loss.eps_low=0.2", "loss.eps_high=0.28"],
        "ppo_clip": ["loss.name=ppo_clip", "loss.eps_low=0.2", "loss.eps_high=0.28"],
        "cispo": ["loss.name=cispo", "loss.eps_low=1.0", "loss.eps_high=0.28"]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--steps", type=int, default=20, help="RL steps per run (equal for every arm)")
    p.add_argument("--prompts", type=int, default=4)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--lr", type=float, default=None, help="RL learning rate (default: the quickstart's)")
    p.add_argument("--mini-batches", type=int, default=4,
                   help="optimizer steps per rollout batch; with 1 every update is on-policy (ratio 1), "
                        "nothing is ever clipped and the three losses give the same gradient")
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--eval-problems", type=int, default=48)
    p.add_argument("--model", default=None, help="reuse a warm-started model directory (skips the SFT)")
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--work", default="runs/gppo_vs_clip")
    p.add_argument("--out", default="benchmarks/results/gppo_vs_clip.json")
    p.add_argument("--one", default=None, metavar="ARM:SEED", help=argparse.SUPPRESS)  # internal: one run
    return p.parse_args(argv)


def run_in_subprocess(model: str, arm: str, seed: int, a: argparse.Namespace,
                      run_dir: Path) -> dict[str, Any]:
    """Each run in a fresh process: equal conditions, and no state (threads, file descriptors, caches)
    carried from one arm to the next."""
    import subprocess

    args = [sys.executable, __file__, "--one", f"{arm}:{seed}", "--model", model, "--work", str(a.work),
            "--steps", str(a.steps), "--prompts", str(a.prompts), "--group", str(a.group),
            *(["--lr", str(a.lr)] if a.lr is not None else []), "--mini-batches", str(a.mini_batches),
            "--eval-every", str(a.eval_every), "--eval-problems", str(a.eval_problems)]
    with (run_dir.parent / f"{run_dir.name}.log").open("w") as log:
        subprocess.run(args, check=True, stdout=log, stderr=subprocess.STDOUT)
    return json.loads((run_dir / "result.json").read_text())


def run_arm(model: str, arm: str, seed: int, a: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    from toolgym.trainers.config.recipes import load_recipe
    from toolgym.trainers.run.driver import fit

    cfg = load_recipe("quickstart", overrides=[
        f"model.name_or_path={model}", *ARMS[arm], f"run.seed={seed}", f"run.steps={a.steps}",
        f"rollout.prompts_per_step={a.prompts}", f"rollout.group_size={a.group}",
        *([f"optimizer.lr={a.lr}"] if a.lr is not None else []), f"optimizer.mini_batches={a.mini_batches}",
        f"eval.every={a.eval_every}", f"eval.problems={a.eval_problems}", "run.ray=off",
        "rollout.num_workers=1", "run.progress=false"])
    started = time.monotonic()
    fit(cfg, run_dir)
    recs = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = {int(p.stem.split("_")[1]): json.loads(p.read_text())["overall"]["pass@1"]
             for p in sorted((run_dir / "eval").glob("step_*.json"))}
    return {"pass1": {str(k): v for k, v in sorted(evals.items())},
            "entropy": [[r["step"], r["actor/entropy"]] for r in recs if "actor/entropy" in r],
            "reward": [[r["step"], r["reward/mean"]] for r in recs if "reward/mean" in r],
            "wall_s": time.monotonic() - started}


def summarise(runs: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    table = {}
    for arm, seeds in runs.items():
        first = [next(iter(r["pass1"].values())) for r in seeds.values()]
        final = [list(r["pass1"].values())[-1] for r in seeds.values()]
        ent = [statistics.mean(e for _, e in r["entropy"][-4:]) for r in seeds.values() if r["entropy"]]
        table[arm] = {"pass1_start": statistics.mean(first), "pass1_final_mean": statistics.mean(final),
                      "pass1_final_std": statistics.pstdev(final), "pass1_gain": statistics.mean(
                          f - s for f, s in zip(final, first, strict=True)),
                      "entropy_final": statistics.mean(ent) if ent else float("nan"), "seeds": len(final)}
    return table


def plot(runs: dict[str, dict[str, Any]], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.8), dpi=100)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for color, (arm, seeds) in zip(("#1f77b4", "#d62728", "#2ca02c"), runs.items(), strict=False):
        for k, r in enumerate(seeds.values()):
            label = arm if k == 0 else None
            ax1.plot([int(s) for s in r["pass1"]], list(r["pass1"].values()), "o-", color=color, alpha=0.7,
                     label=label)
            ax2.plot([s for s, _ in r["entropy"]], [e for _, e in r["entropy"]], color=color, alpha=0.7,
                     label=label)
    ax1.set(title="held-out pass@1 (greedy), one line per seed", xlabel="RL step", ylabel="pass@1")
    ax2.set(title="policy entropy on the update tokens", xlabel="RL step", ylabel="nats/token")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.savefig(path, bbox_inches="tight")


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    from toolgym.trainers.config.recipes import load_recipe
    from toolgym.trainers.run.warm_start import warm_start

    work = Path(a.work)
    if a.one:  # internal: one run, result written beside its run directory
        arm, seed = a.one.split(":")
        run_dir = work / f"{arm}_seed{seed}"
        result = run_arm(a.model, arm, int(seed), a, run_dir)
        (run_dir / "result.json").write_text(json.dumps(result))
        return 0
    work.mkdir(parents=True, exist_ok=True)
    model = a.model
    if model is None:  # the quickstart's own warm start (teacher demos + SFT), shared by every run
        model, figures = warm_start(load_recipe("quickstart"), work / "warm", progress=False)
        print(f"warm start: {figures}", flush=True)
    runs: dict[str, dict[str, Any]] = {}
    for arm in a.arms.split(","):
        for seed in (int(s) for s in a.seeds.split(",")):
            result = run_in_subprocess(model, arm, seed, a, work / f"{arm}_seed{seed}")
            runs.setdefault(arm, {})[str(seed)] = result
            print(f"{arm} seed {seed}: pass@1 {result['pass1']} ({result['wall_s']:.0f} s)", flush=True)
    table = summarise(runs)
    print(f"\n{'loss':<9} {'pass@1 start':>12} {'final (mean±std)':>17} {'gain':>6} {'entropy end':>11}")
    for arm, t in table.items():
        final = f"{t['pass1_final_mean']:.3f}±{t['pass1_final_std']:.3f}"
        print(f"{arm:<9} {t['pass1_start']:>12.3f} {final:>17} {t['pass1_gain']:>+6.3f} "
              f"{t['entropy_final']:>11.3f}")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot(runs, out.with_suffix(".png"))
    setup = {"machine": f"{platform.machine()} {os.cpu_count()} cpus (shared), {platform.platform()}",
             "command": " ".join(["python", *sys.argv]), **vars(a)}
    out.write_text(json.dumps({"table": table, "runs": runs, "setup": setup}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
