"""Simulation study: does the improvement-potential curriculum need fewer episodes than uniform sampling?

The schedulers are the real `toolgym.curriculum` ones; only the policy and the tasks are simulated.

The population (assumed, not measured): `--units` units (default 144, the size of R1-Code-Interpreter's
task set), in three kinds. R1-Code-Interpreter reports that many of its tasks are either out of
reach or already solved by the starting model; we model that with
  - "hard"      (`--frac-hard`, default 35%): initial success p0 in [0.002, 0.03];
  - "solved"    (`--frac-solved`, default 25%): p0 in [0.95, 0.998];
  - "learnable" (the rest, 40%): p0 uniform in [0.05, 0.9].
Every unit also has a hidden learnability lam ~ U(0.1, 1.0), independent of its difficulty.

The learner: one logit theta_u per unit, p_u = sigmoid(theta_u). Training on a group of G samples of
unit u with k successes (m = k/G) applies the GRPO update of a Bernoulli policy with a logit:
with std-normalised advantages A_i = (r_i - m) / sqrt(m(1-m)), the per-sample mean gradient
    (1/G) sum_i A_i * d log pi(y_i)/d theta = (1/G) sum_i A_i (y_i - p) = sqrt(m (1 - m)),
so theta_u += lr * lam_u * sqrt(m (1 - m)). A group that is all solved or all failed (m in {0, 1})
teaches nothing, as in GRPO. What the model leaves out, each of which would change the numbers:
no transfer between units (in real models training on one task helps related ones, which would
let "hard" units become learnable later), no forgetting, no gradient noise (updates never go
backwards), and an SGD-like step per group (with Adam and a fixed batch, a batch with few
informative groups would give each of them a larger step, which narrows the gap).

The comparison: each scheduler spends the same episode budget (steps x groups_per_step x G); the
probe that `potential` and `difficulty_band` run first (`--probe-n` samples per unit, 20 as in the
paper) is counted in their budget and does not train. The metric is the mean true success over
all units (not only the ones a scheduler trains on) against episodes spent. The headline
`episode_ratio_potential_vs_uniform` = episodes `potential` needs to reach uniform's final success
/ uniform's budget (on the seed-averaged curves). Each seed draws its own population; every
scheduler sees the same population and learner seed.

What it shows (defaults, 5 seeds; see benchmarks/results/curriculum_sim.txt): on the R1-CI-like
population the default `potential` reaches uniform's final success with ~0.66 of uniform's episodes,
the probe (15% of this budget) included; the gain is in the share of groups with mixed outcomes
(0.67 vs 0.42). Drawing evenly within a stage as the paper does (`potential_paper`) gets ~0.84:
its last stage is the uniform baseline. A plain `difficulty_band` filter does as well as `potential`
here (~0.62). Early in training the probe's cost dominates (ratio ~0.94 read at a quarter of the
budget). On a population that is mostly learnable (10% hard, 10% solved) no probed curriculum
recovers its probe's cost within the budget; `solved_drop`, which needs no probe, does best there.

    python benchmarks/curriculum_sim.py [--out benchmarks/results/curriculum_sim.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from toolgym.curriculum import make_scheduler
from toolgym.envs.types import Outcome

# label -> (registered scheduler, extra config). "potential" is the library default (draws in proportion
# to potential within a stage); "potential_paper" draws evenly within a stage, as R1-Code-Interpreter.
VARIANTS = {
    "potential": ("potential", {}),
    "potential_paper": ("potential", {"weighting": "uniform"}),
    "uniform": ("uniform", {}),
    "difficulty_band": ("difficulty_band", {}),
    "solved_drop": ("solved_drop", {}),
}
PROBED = ("potential", "difficulty_band")
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "curriculum_sim.json"


@dataclass(frozen=True)
class SimConfig:
    units: int = 144
    frac_hard: float = 0.35
    frac_solved: float = 0.25
    group_size: int = 8  # G samples per request
    groups_per_step: int = 16  # requests per training step
    steps: int = 150  # training steps of the uniform baseline (its whole budget)
    lr: float = 0.5
    probe_n: int = 20  # probe samples per unit (potential, difficulty_band)
    steps_per_stage: int | None = None  # potential: None = steps // 5, about a quarter of the steps
    # left after the probe, per stage ...
    plateau_window: int = 10  # ... or less on a reward plateau (the library default window)
    band_lo: float = 0.05
    band_hi: float = 0.95
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)

    @property
    def budget(self) -> int:
        return self.steps * self.groups_per_step * self.group_size


def make_population(cfg: SimConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Initial logits [U], learnabilities [U] and kinds [U] (0 hard, 1 solved, 2 learnable)."""
    n_hard = round(cfg.frac_hard * cfg.units)
    n_solved = round(cfg.frac_solved * cfg.units)
    kind = np.array([0] * n_hard + [1] * n_solved + [2] * (cfg.units - n_hard - n_solved))
    rng.shuffle(kind)
    p0 = np.where(kind == 0, rng.uniform(0.002, 0.03, cfg.units),
                  np.where(kind == 1, rng.uniform(0.95, 0.998, cfg.units), rng.uniform(0.05, 0.9, cfg.units)))
    lam = rng.uniform(0.1, 1.0, cfg.units)
    return np.log(p0 / (1 - p0)), lam, kind


def simulate(label: str, cfg: SimConfig, seed: int) -> dict:
    """One scheduler variant on one population: the learning curve and where the episodes went."""
    name, extra = VARIANTS[label]
    theta, lam, _ = make_population(cfg, np.random.default_rng([seed, 0]))
    rng = np.random.default_rng([seed, 1])  # the learner's samples (same stream start per scheduler)
    sched_rng = np.random.default_rng([seed, 2])
    names = [f"sim/u{i:03d}" for i in range(cfg.units)]
    position = {n: i for i, n in enumerate(names)}
    kw = {"splits": {n: ("train",) for n in names}, "num_instances": 1}
    if name == "potential":
        kw |= {"steps_per_stage": cfg.steps_per_stage or max(1, cfg.steps // 5),
               "plateau_window": cfg.plateau_window}
    if name == "difficulty_band":
        kw |= {"lo": cfg.band_lo, "hi": cfg.band_hi}
    scheduler = make_scheduler(name, names, **kw, **extra)

    def p_of(i: int) -> float:
        return float(1.0 / (1.0 + np.exp(-theta[i])))

    def probe(units: list[str], n: int, mode: str) -> list[Outcome]:
        return [Outcome(u, 0, bool(s), float(s)) for u in units for s in rng.random(n) < p_of(position[u])]

    if name in PROBED:
        scheduler.probe(probe, n=cfg.probe_n)  # inference only: counted, does not train
    spent = scheduler.probe_episodes
    episodes, success = [spent], [float(np.mean(1 / (1 + np.exp(-theta))))]
    informative = groups = 0
    while spent + cfg.groups_per_step * cfg.group_size <= cfg.budget:
        outcomes = []
        for request in scheduler.next_batch(cfg.groups_per_step, sched_rng):
            i = position[request.task_id]
            wins = rng.random(cfg.group_size) < p_of(i)  # [G]
            m = wins.mean()
            theta[i] += cfg.lr * lam[i] * np.sqrt(m * (1 - m))
            informative += 0 < m < 1
            groups += 1
            outcomes += [Outcome(request.task_id, request.index, bool(w), float(w)) for w in wins]
        scheduler.update(outcomes)
        spent += len(outcomes)
        episodes.append(spent)
        success.append(float(np.mean(1 / (1 + np.exp(-theta)))))
    return {"episodes": episodes, "success": success, "informative_fraction": informative / max(groups, 1),
            "probe_episodes": scheduler.probe_episodes,
            "final_stage": scheduler.describe()["curriculum/stage"]}


def episodes_to_reach(episodes: list[float], success: list[float], target: float) -> float | None:
    """First episode count at which the (linearly interpolated) curve reaches `target`."""
    for k in range(1, len(success)):
        if success[k] >= target:
            lo_e, hi_e, lo_s, hi_s = episodes[k - 1], episodes[k], success[k - 1], success[k]
            frac = 1.0 if hi_s == lo_s else (target - lo_s) / (hi_s - lo_s)
            return float(lo_e + max(0.0, min(1.0, frac)) * (hi_e - lo_e))
    return None


def _value_at(episodes: list[float], success: list[float], budget: float) -> float:
    return float(np.interp(budget, episodes, success))


def mean_curve(runs: list[dict]) -> tuple[list[float], list[float]]:
    grid = runs[0]["episodes"]
    return list(grid), np.mean([r["success"] for r in runs], axis=0).tolist()


def study(cfg: SimConfig) -> dict:
    """All schedulers x seeds; curves, the headline ratio and its reading at smaller budgets."""
    runs = {label: [simulate(label, cfg, s) for s in cfg.seeds] for label in VARIANTS}
    curves = {name: mean_curve(rs) for name, rs in runs.items()}
    uni_e, uni_s = curves["uniform"]
    out: dict = {"config": asdict(cfg), "budget_episodes": cfg.budget, "schedulers": {}}
    for name, (eps, suc) in curves.items():
        reach = episodes_to_reach(eps, suc, uni_s[-1])
        out["schedulers"][name] = {
            "final_success": suc[-1], "initial_success": suc[0],
            "episodes_to_uniform_final": reach,
            "episode_ratio_vs_uniform": None if reach is None else reach / cfg.budget,
            "informative_group_fraction": float(np.mean([r["informative_fraction"] for r in runs[name]])),
            "probe_episodes": runs[name][0]["probe_episodes"],
            "curve": {"episodes": eps, "mean_success": suc}}
    out["episode_ratio_potential_vs_uniform"] = out["schedulers"]["potential"]["episode_ratio_vs_uniform"]
    out["episode_ratio_potential_paper_vs_uniform"] = (
        out["schedulers"]["potential_paper"]["episode_ratio_vs_uniform"])
    per_seed = []
    for pr, ur in zip(runs["potential"], runs["uniform"], strict=True):
        reach = episodes_to_reach(pr["episodes"], pr["success"], ur["success"][-1])
        per_seed.append(None if reach is None else reach / cfg.budget)
    out["episode_ratio_potential_vs_uniform_per_seed"] = per_seed
    out["ratio_at_fraction_of_budget"] = {}
    for frac in (0.25, 0.5, 0.75, 1.0):
        b = frac * cfg.budget
        reach = episodes_to_reach(*curves["potential"], _value_at(uni_e, uni_s, b))
        out["ratio_at_fraction_of_budget"][str(frac)] = None if reach is None or reach > b else reach / b
    return out


def table(result: dict) -> str:
    rows = [f"{'scheduler':<16} {'probe eps':>9} {'start':>6} {'final':>6} {'eps to uniform final':>21} "
            f"{'ratio':>6} {'informative groups':>19}"]
    for name, r in result["schedulers"].items():
        reach = "never" if r["episodes_to_uniform_final"] is None else f"{r['episodes_to_uniform_final']:.0f}"
        ratio = "-" if r["episode_ratio_vs_uniform"] is None else f"{r['episode_ratio_vs_uniform']:.3f}"
        informative = r["informative_group_fraction"]
        rows.append(f"{name:<16} {r['probe_episodes']:>9} {r['initial_success']:>6.3f} "
                    f"{r['final_success']:>6.3f} {reach:>21} {ratio:>6} {informative:>19.2f}")
    return "\n".join(rows)


def plot(results: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 4.5), squeeze=False)
    for ax, (title, result) in zip(axes[0], results.items(), strict=True):
        for name, r in result["schedulers"].items():
            ax.plot(r["curve"]["episodes"], r["curve"]["mean_success"], label=name)
        ax.axhline(result["schedulers"]["uniform"]["final_success"], color="gray", ls=":", lw=1,
                   label="uniform final")
        ratio = result["episode_ratio_potential_vs_uniform"]
        ax.set_title(f"{title}: ratio potential/uniform = {'n/a' if ratio is None else f'{ratio:.2f}'}")
        ax.set_xlabel("episodes spent (probe included)")
        ax.set_ylabel("mean success over all units")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


POPULATIONS = {
    "r1ci_like": {},  # the default mix: 35% hard, 25% solved, 40% learnable
    "mostly_learnable": {"frac_hard": 0.1, "frac_solved": 0.1},  # where a curriculum should matter less
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=SimConfig.steps)
    parser.add_argument("--units", type=int, default=SimConfig.units)
    parser.add_argument("--probe-n", type=int, default=SimConfig.probe_n)
    parser.add_argument("--frac-hard", type=float, default=SimConfig.frac_hard)
    parser.add_argument("--frac-solved", type=float, default=SimConfig.frac_solved)
    args = parser.parse_args(argv)
    base = SimConfig(units=args.units, steps=args.steps, probe_n=args.probe_n, seeds=tuple(range(args.seeds)),
                     frac_hard=args.frac_hard, frac_solved=args.frac_solved)
    results = {name: study(replace(base, **change)) for name, change in POPULATIONS.items()}
    headline = results["r1ci_like"]
    lines = []
    for name, result in results.items():
        budget = f"budget {result['budget_episodes']} episodes, {len(base.seeds)} seeds"
        reading = json.dumps(result["ratio_at_fraction_of_budget"])
        lines += [f"== population {name} ({budget}) ==", table(result),
                  f"ratio potential/uniform read at a fraction of the budget: {reading}", ""]
    ratio = headline["episode_ratio_potential_vs_uniform"]
    lines.append(f"episode_ratio_potential_vs_uniform = {ratio} (target <= 0.7)")
    report = "\n".join(lines)
    print(report)
    summary = {"episode_ratio_potential_vs_uniform": ratio, "target_max_ratio": 0.7, "populations": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1))
    args.out.with_suffix(".txt").write_text(report + "\n")
    plot(results, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and its .txt (table) and .png (plot)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
