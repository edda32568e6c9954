"""Generation overlapped with learning: the quickstart RL at run.max_staleness K = 0 and K = 1.

    python benchmarks/async_overlap.py [--seeds 3] [--budget 80000] [--ks 0 1] [--set KEY=VALUE] [--out FILE]

From one warm start (the quickstart's own, built into WORK/warm and reused; `--warm DIR` takes another),
every run is the quickstart recipe's RL through local Ray (two one-CPU rollout actors, the learner on
one thread in the driver), stopped at the same number of generated policy tokens (`run.token_budget`),
with the same seeds at each K. Runs one after another (each times the whole machine).

Per run: steps per hour (over the steps' wall time), the share of the step time the learner waited for
rollouts (`time/wait_rollout_s`) and spent learning, the share of the run the rollout workers sat idle
(1 - their busy seconds / (workers x run wall), evaluations included in busy), the staleness, and the
final held-out pass@1 (the quickstart's: greedy, 64 problems). JSON (default
benchmarks/results/async_overlap.json): `speedup_k1_vs_k0` (steps per hour at K = 1 over K = 0, seed
means), `heldout_k0`, `heldout_k1` (seed means) with their spreads, and every run's figures.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from _results import write_json  # benchmarks/_results.py (scripts run from benchmarks/)


def warm_model(work: Path, warm: str | None) -> str:
    """The quickstart's warm start (tool demos, then the guess mix), built once into WORK/warm."""
    if warm:
        return warm
    from toolgym.trainers.config.recipes import load_config
    from toolgym.trainers.run.warm_start import warm_start

    path, _ = warm_start(load_config("quickstart"), work / "warm", progress=True)
    return path


def run_config(warm: str, k: int, seed: int, budget: int, extra: list[str] | None = None):
    """The quickstart's RL at K; `extra`: further KEY=VALUE overrides (`--set`), applied last."""
    from toolgym.trainers.config.recipes import load_config

    overrides = [f"model.name_or_path={warm}", f"run.max_staleness={k}", f"run.seed={seed}",
                 "run.steps=10000",
                 f"run.token_budget={budget}", "run.ray=local", "run.progress=false", "sft.steps=0",
                 "quickstart.guess_steps=0", "quickstart.guess_fraction=0", "quickstart.budget_s=null",
                 "checkpoint.every=0", *(extra or [])]
    return load_config("quickstart", overrides)


def one_run(cfg, run_dir: Path) -> dict:
    """fit() on the config; the run's timing shares, staleness and final held-out pass@1."""
    from toolgym.trainers.report.metrics import read_metrics
    from toolgym.trainers.run.driver import fit

    result = fit(cfg, run_dir)
    steps = [r for r in read_metrics(run_dir / "metrics.jsonl") if "time/step_s" in r]
    step_s = sum(r["time/step_s"] for r in steps)
    busy = result["worker_busy_s"]
    return {"steps": len(steps), "tokens": steps[-1]["rollout/tokens_total"], "step_s_total": step_s,
            "steps_per_hour": 3600 * len(steps) / step_s, "wall_s": result["wall_s"],
            "learner_wait_share": sum(r["time/wait_rollout_s"] for r in steps) / step_s,
            "learner_busy_share": sum(r["time/learner_s"] for r in steps) / step_s,
            "worker_idle_share": 1 - sum(busy) / (len(busy) * result["wall_s"]),
            "staleness_mean": sum(r["rollout/staleness_mean"] for r in steps) / len(steps),
            "staleness_max": max(r["rollout/staleness_max"] for r in steps),
            "heldout": result["evals"][result["step"]]["overall"]["pass@1"]}


def summarize(runs: dict[int, list[dict]]) -> dict:
    import numpy as np

    per_k = {}
    for k, results in runs.items():
        keys = ("steps_per_hour", "learner_wait_share", "learner_busy_share", "worker_idle_share",
                "staleness_mean", "heldout", "tokens")
        per_k[k] = {key: float(np.mean([r[key] for r in results])) for key in keys}
        per_k[k]["heldout_std"] = float(np.std([r["heldout"] for r in results]))
        per_k[k]["heldout_range"] = float(np.ptp([r["heldout"] for r in results]))
    out = {"per_k": {str(k): v for k, v in per_k.items()},
           "runs": {str(k): v for k, v in runs.items()}}
    if 0 in per_k and 1 in per_k:
        out["speedup_k1_vs_k0"] = per_k[1]["steps_per_hour"] / per_k[0]["steps_per_hour"]
        out["heldout_k0"], out["heldout_k1"] = per_k[0]["heldout"], per_k[1]["heldout"]
        out["heldout_k0_std"], out["heldout_k1_std"] = per_k[0]["heldout_std"], per_k[1]["heldout_std"]
    return out


def print_table(summary: dict) -> None:
    print(f"{'K':>2} {'steps/h':>8} {'learner waits':>14} {'learner learns':>15} {'workers idle':>13} "
          f"{'staleness':>10} {'held-out':>14}")
    for k, row in summary["per_k"].items():
        print(f"{k:>2} {row['steps_per_hour']:>8.0f} {row['learner_wait_share']:>14.0%} "
              f"{row['learner_busy_share']:>15.0%} {row['worker_idle_share']:>13.0%} "
              f"{row['staleness_mean']:>10.2f} {row['heldout']:>7.3f} ± {row['heldout_std']:.3f}")
    if "speedup_k1_vs_k0" in summary:
        print(f"speedup_k1_vs_k0: {summary['speedup_k1_vs_k0']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=80_000,
                        help="generated policy tokens per run (the quickstart curriculum's probe of 256 "
                             "instances takes ~40k of them)")
    parser.add_argument("--ks", type=int, nargs="+", default=[0, 1], help="run.max_staleness values")
    parser.add_argument("--warm", default=None, help="a warm model folder (default: build the quickstart's)")
    parser.add_argument("--work", default="runs/async_overlap")
    parser.add_argument("--out", default="benchmarks/results/async_overlap.json")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for every run (repeatable), e.g. loss.behaviour_is=truncate")
    args = parser.parse_args()
    started, work = time.monotonic(), Path(args.work).resolve()
    warm = warm_model(work, args.warm)
    runs: dict[int, list[dict]] = {k: [] for k in args.ks}
    for seed in range(args.seeds):
        for k in args.ks:  # interleaved: a drift in the machine's load hits both K alike
            cfg = run_config(warm, k, seed, args.budget, args.set)
            runs[k].append(one_run(cfg, work / f"k{k}_s{seed}"))
            print(json.dumps({"k": k, "seed": seed, **runs[k][-1]}), flush=True)
    summary = summarize(runs)
    summary.update({"budget_tokens": args.budget, "seeds": args.seeds, "overrides": args.set,
                    "wall_s": time.monotonic() - started, "cpu_count": os.cpu_count(),
                    "load_avg_1m": os.getloadavg()[0]})
    print_table(summary)
    write_json(summary, args.out)


if __name__ == "__main__":
    main()
