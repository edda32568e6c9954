"""Does the curriculum pay? Real `toolgym train` runs of five schedulers at an equal generated-token budget.

    python benchmarks/curriculum_real.py [--seeds 3] [--budget 120000] [--parallel 2] [--out FILE]

Every arm is a real training run (`toolgym train --no-ray`: the trainer, its rollout worker, the
sandbox, the learner) from one shared warm start, stopped by `run.token_budget` (generated policy
tokens, the curriculum's probe and the filter's refills included), with a held-out eval every
`--budget / 16` tokens (`eval.every_tokens`) on held-out instances no run or scheduler trains on:
pass@1 as the mean success of 4 samples at T = 1 per instance (the policy's success rate).

The task mix (fixed before the runs; five family units, R1-Code-Interpreter's grain):
  - already solved:   `toolgym/jsonl-v0` on an echo file ("Write down the number N."), taught
                      without guesses in the warm start (measured p = 0.97 at T = 1, 32 x 8 samples);
  - half solved:      `toolgym/arith-v0` (level 1): the quickstart's imperfect warm start (tool demos
                      plus tool-free wrong guesses), measured p = 0.27 at T = 1;
  - out of reach:     `toolgym/arith-l2-v0`, `toolgym/arith-l3-v0`, `toolgym/countdown-v0` (the warm
                      model was never shown their programs; measured p = 0 on 32 x 8 samples each).
So 1/5 of the units is learnable, 1/5 is solved, 3/5 cannot be learnt within the budget: the regime
R1-Code-Interpreter's curriculum is built for (many of its 144 tasks are too hard or solved).

Arms (the quickstart recipe's GPPO otherwise; the zero-variance filter off unless stated):
  potential        probed (20 samples per family), 4 stages 25/50/75/100% of units, 10 steps each
  uniform          every unit equally often, no filter
  dapo_filter      uniform + zero-variance group filter with up to 3 refill rounds (DAPO)
  difficulty_band  probed, units with p in [0.05, 0.95]
  solved_drop      uniform passes, units solved on every try of an epoch dropped

JSON (default benchmarks/results/curriculum_real.json): per arm `final_heldout_mean`,
`final_heldout_std`, `tokens_to_uniform_final` (null when never reached), `seeds`, the curve on the
token grid (mean and std per checkpoint), and overall `token_ratio_potential_vs_uniform` and
`token_ratio_potential_vs_dapo_filter`; the plot goes next to it (`.png`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _results import write_json  # benchmarks/_results.py (scripts run from benchmarks/)

ARITH, ECHO = "toolgym/arith-v0", "toolgym/jsonl-v0"
MIX = {ECHO: "solved", ARITH: "half solved", "toolgym/arith-l2-v0": "out of reach",
       "toolgym/arith-l3-v0": "out of reach", "toolgym/countdown-v0": "out of reach"}
NO_FILTER = {"rollout.filter_zero_variance": False, "rollout.max_refill_rounds": 0}
# Held-out pass@1 is the mean success of EVAL_SAMPLES samples at the training temperature (T = 1) per
# held-out instance: the policy's success rate. Greedy pass@1 was tried first (the reduced 40k run in
# benchmarks/results/curriculum_real_40k.json): it is a threshold on the argmax answer and flipped from
# 0 to ~0.8 on arith within three steps in every arm, so it could not tell the arms apart.
EVAL_SAMPLES, CHECKPOINTS = 4, 16
ARMS: dict[str, dict] = {
    "potential": {**NO_FILTER, "curriculum.scheduler": "potential",
                  "curriculum.options": {"unit": "family", "stages": 4, "steps_per_stage": 10}},
    "uniform": {**NO_FILTER, "curriculum.scheduler": "uniform", "curriculum.options": {}},
    "dapo_filter": {"curriculum.scheduler": "uniform", "curriculum.options": {},
                    "rollout.filter_zero_variance": True, "rollout.max_refill_rounds": 3},
    "difficulty_band": {**NO_FILTER, "curriculum.scheduler": "difficulty_band",
                        "curriculum.options": {"lo": 0.05, "hi": 0.95}},
    "solved_drop": {**NO_FILTER, "curriculum.scheduler": "solved_drop", "curriculum.options": {}},
}


# ---- the shared warm start ------------------------------------------------------------------------
def write_echo_file(path: Path, train: int = 1000, heldout: int = 200, seed: int = 0) -> Path:
    """The solved family's rows: copy a 4-6 digit number from the question into the answer."""
    rng, rows = random.Random(seed), []
    for i in range(train + heldout):
        number = rng.randint(1000, 999999)
        rows.append({"question": f"Write down the number {number}.", "answer": str(number),
                     "split": "train" if i < train else "heldout"})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def base_config(echo: Path, overrides: dict | None = None):
    """The quickstart recipe on the mix (echo rows checked numerically), plus `overrides`."""
    from toolgym.trainers.config.recipes import load_config

    cfg = load_config("quickstart")
    data = cfg.to_dict()
    data["run"]["tasks"] = list(MIX)
    data["run"]["task_options"] = {ECHO: {"path": str(echo), "verifier": "numeric"}}
    for key, value in (overrides or {}).items():
        section, name = key.split(".", 1)
        data[section][name] = value
    return data


def build_warm_start(work: Path, echo: Path) -> str:
    """The quickstart's warm start (tool demos, then the guess mix) on arith, plus echo demos without
    guesses; WORK/warm/warm_model (reused when it exists)."""
    from toolgym.agents.episode import write_jsonl
    from toolgym.trainers.config.schema import TrainConfig
    from toolgym.trainers.config.yaml_io import from_dict
    from toolgym.trainers.run.runstate import base_model_path
    from toolgym.trainers.run.warm_start import make_demos, warm_start

    run_dir = work / "warm"
    data = base_config(echo)
    cfg = from_dict(TrainConfig, data)
    if not (run_dir / "demos.jsonl").exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        base = base_model_path(cfg, run_dir)
        arith = cfg.replace(run=dataclasses.replace(cfg.run, tasks=[ARITH]))
        echo_cfg = cfg.replace(run=dataclasses.replace(cfg.run, tasks=[ECHO]))
        demos = make_demos(base, arith, cfg.sft.demos, guess_fraction=cfg.quickstart.guess_fraction)
        demos += make_demos(base, echo_cfg, 1000)  # rows repeat beyond the file's 1000 train rows
        write_jsonl(demos, run_dir / "demos.jsonl")
    warm, _ = warm_start(cfg, run_dir, progress=True)
    return warm


# ---- the arms -------------------------------------------------------------------------------------
def arm_recipe(work: Path, arm: str, seed: int, warm: str, echo: Path, budget: int, problems: int) -> Path:
    """A full recipe file for one run of `arm` with `seed`."""
    import yaml

    data = base_config(echo, {**ARMS[arm], "model.name_or_path": warm, "run.seed": seed,
                              "run.steps": 10_000, "run.token_budget": budget, "run.ray": "off",
                              "eval.every_tokens": budget // CHECKPOINTS, "eval.problems": problems,
                              "eval.n": EVAL_SAMPLES, "eval.ks": [1], "eval.temperature": 1.0,
                              "checkpoint.every": 0, "sft.steps": 0, "quickstart.guess_fraction": 0.0,
                              "quickstart.guess_steps": 0, "quickstart.budget_s": None})
    data.pop("tiny", None)
    path = work / "recipes" / f"{arm}_s{seed}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_arm(recipe: Path, out: Path) -> dict:
    """`toolgym train` on the recipe (one process, one torch thread); its curve and wall time."""
    if not (out / "summary_curve.json").exists():
        started = time.monotonic()
        log = out.with_suffix(".log")
        out.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "toolgym.cli", "train", "--recipe", str(recipe), "--output", str(out),
               "--overwrite", "--no-ray"]
        with open(log, "w") as fh:
            code = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env).returncode
        if code != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({code}); see {log}")
        curve = read_curve(out)
        (out / "summary_curve.json").write_text(json.dumps({"curve": curve,
                                                            "wall_s": time.monotonic() - started}))
    return json.loads((out / "summary_curve.json").read_text())


def read_curve(run_dir: Path) -> list[dict]:
    """(policy tokens, overall held-out pass@1, per-task pass@1) of every eval of a run, in order."""
    points = []
    for path in sorted((run_dir / "eval").glob("step_*.json")):
        record = json.loads(path.read_text())
        points.append({"step": record["step"], "tokens": record["policy_tokens"],
                       "pass@1": record["overall"]["pass@1"],
                       "per_task": {t: r["pass@1"] for t, r in record["per_task"].items()}})
    return points


# ---- analysis -------------------------------------------------------------------------------------
def value_at(curve: list[dict], tokens: float) -> float:
    """The run's held-out pass@1 at `tokens`, linear between its evals (the last eval beyond them)."""
    xs, ys = [p["tokens"] for p in curve], [p["pass@1"] for p in curve]
    if tokens <= xs[0]:
        return ys[0]
    for (x0, y0), (x1, y1) in zip(zip(xs, ys, strict=True), zip(xs[1:], ys[1:], strict=True), strict=False):
        if tokens <= x1:
            return y0 + (y1 - y0) * (tokens - x0) / max(x1 - x0, 1e-9)
    return ys[-1]


def mean_curve(curves: list[list[dict]], grid: list[float]) -> tuple[list[float], list[float]]:
    """Mean and (population) std over seeds of held-out pass@1 at each token checkpoint."""
    import numpy as np

    values = np.array([[value_at(c, x) for x in grid] for c in curves])
    return values.mean(axis=0).tolist(), values.std(axis=0).tolist()


def tokens_to_reach(grid: list[float], mean: list[float], target: float) -> float | None:
    """The first token count at which the mean curve reaches `target` (linear between checkpoints)."""
    for i, (x, y) in enumerate(zip(grid, mean, strict=True)):
        if y >= target - 1e-9:
            if i == 0:
                return x
            x0, y0 = grid[i - 1], mean[i - 1]
            return x0 + (x - x0) * (target - y0) / max(y - y0, 1e-9)
    return None


def summarize(runs: dict[str, list[dict]], budget: int) -> dict:
    """Per-arm finals, curves on the token grid and the token ratios the issue asks for."""
    import numpy as np

    grid = [budget * k / CHECKPOINTS for k in range(CHECKPOINTS + 1)]
    arms = {}
    for arm, results in runs.items():
        curves = [r["curve"] for r in results]
        mean, std = mean_curve(curves, grid)
        finals = [c[-1]["pass@1"] for c in curves]
        arms[arm] = {"seeds": len(curves), "final_heldout_mean": float(np.mean(finals)),
                     "final_heldout_std": float(np.std(finals)), "finals": finals,
                     "spent_tokens_mean": float(np.mean([c[-1]["tokens"] for c in curves])),
                     "grid_tokens": grid, "curve_mean": mean, "curve_std": std,
                     "final_per_task": {t: float(np.mean([c[-1]["per_task"][t] for c in curves]))
                                        for t in curves[0][-1]["per_task"]},
                     "wall_s_mean": float(np.mean([r["wall_s"] for r in results]))}
    for arm in arms.values():
        arm["tokens_to_uniform_final"] = tokens_to_reach(grid, arm["curve_mean"],
                                                         arms["uniform"]["final_heldout_mean"])

    def ratio(other: str) -> float | None:
        if "potential" not in arms or other not in arms:
            return None
        reached = tokens_to_reach(grid, arms["potential"]["curve_mean"], arms[other]["final_heldout_mean"])
        return None if reached is None else reached / arms[other]["spent_tokens_mean"]

    return {"arms": arms, "token_ratio_potential_vs_uniform": ratio("uniform"),
            "token_ratio_potential_vs_dapo_filter": ratio("dapo_filter")}


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, arm in summary["arms"].items():
        xs = [x / 1000 for x in arm["grid_tokens"]]
        mean, std = arm["curve_mean"], arm["curve_std"]
        ax.plot(xs, mean, marker="o", ms=3, label=f"{name} ({arm['seeds']} seeds)")
        low = [m - s for m, s in zip(mean, std, strict=True)]
        high = [m + s for m, s in zip(mean, std, strict=True)]
        ax.fill_between(xs, low, high, alpha=0.15)
    ax.set_xlabel("generated policy tokens (thousands; probe and refills included)")
    ax.set_ylabel("held-out pass@1 (4 samples at T = 1, 5 families)")
    ax.set_title("Real training from one warm start: held-out pass@1 vs tokens (mean ± std)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_table(summary: dict) -> None:
    print(f"{'arm':<16} {'final held-out':>16} {'tokens to uniform final':>24} {'min/run':>8}")
    for name, arm in summary["arms"].items():
        reach = arm["tokens_to_uniform_final"]
        text = f"{reach:,.0f}" if reach is not None else "never"
        print(f"{name:<16} {arm['final_heldout_mean']:>8.3f} ± {arm['final_heldout_std']:.3f} {text:>24} "
              f"{arm['wall_s_mean'] / 60:>8.1f}")
    for key, other in (("token_ratio_potential_vs_uniform", "uniform"),
                       ("token_ratio_potential_vs_dapo_filter", "dapo_filter")):
        value, ran = summary[key], {"potential", other} <= set(summary["arms"])
        print(f"{key}: {f'{value:.2f}' if value is not None else 'not reached' if ran else 'arm not run'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=120_000, help="generated policy tokens per run")
    parser.add_argument("--problems", type=int, default=32, help="held-out instances per family per eval")
    parser.add_argument("--parallel", type=int, default=2, help="runs at once (one CPU each)")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--work", default="runs/curriculum_real", help="run directories (kept, reused)")
    parser.add_argument("--out", default="benchmarks/results/curriculum_real.json")
    args = parser.parse_args()
    if "uniform" not in args.arms:
        parser.error("--arms must include uniform (every ratio is read against its final pass@1)")
    started, work = time.monotonic(), Path(args.work).resolve()
    echo = write_echo_file(work / "echo.jsonl")
    warm = build_warm_start(work, echo)
    jobs = [(arm, seed) for seed in range(args.seeds) for arm in args.arms]
    recipes = {job: arm_recipe(work, *job, warm, echo, args.budget, args.problems) for job in jobs}
    with ThreadPoolExecutor(args.parallel) as pool:
        futures = {job: pool.submit(run_arm, recipes[job], work / "runs" / f"{job[0]}_s{job[1]}")
                   for job in jobs}
        results = {job: f.result() for job, f in futures.items()}
    runs = {arm: [results[(arm, s)] for s in range(args.seeds)] for arm in args.arms}
    summary = summarize(runs, args.budget)
    summary.update({"mix": MIX, "arms_config": {a: ARMS[a] for a in args.arms}, "budget_tokens": args.budget,
                    "eval_problems_per_family": args.problems, "wall_s": time.monotonic() - started,
                    "cpu_count": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]})
    print_table(summary)
    out = write_json(summary, args.out)
    plot(summary, out.with_suffix(".png"))


if __name__ == "__main__":
    main()
