"""Is an RL update signal or noise? The policy gradient of two disjoint halves of one rollout batch,
and what a finished RL run's weight change does against a control of the same size.

Why: on SmolLM2-135M after its SFT cold start, RL at lr 1e-5 moved the dev-set pass rate down, not up,
with no engine/learner mismatch to blame. If the gradient of an update is mostly sampling noise, two
independent halves of a batch point in nearly unrelated directions, and an Adam step (which moves
every weight by about lr whatever the gradient's size) is then a random step of the model. This
measures that, on the run's own environment and loss:

    batch   = P prompts x G samples at the run's temperature (train instances from --start, never a
              demo, not the dev set), grouped and filtered as the trainer does (zero-variance groups
              dropped when rollout.filter_zero_variance)
    g_A, g_B = the run's loss gradient on two disjoint halves of the kept groups (no step)
    cos(g_A, g_B) ~= k r / (1 + k r)        r: the squared signal-to-noise of one group, k groups a half
    steps_to_signal_equals_noise = 1 / (k_update r)   summed over S steps, signal grows as S and noise
                                                      as sqrt(S): they are equal after 1 / (k r) steps
                                                      of k_update groups (the run's kept groups per update)

also the engine's log-probs against the learner's on the same tokens (`logprob_mismatch_mean`), the
agreement per parameter kind, and how much smaller the gradient is on embedding rows of tokens the
batch never contains (Adam's first step moves them by lr all the same).

With `--rl MODEL` (a checkpoint trained from `--model`): the displacement d = RL - SFT is tested on
the dev set (train instances from --dev-start; benchmarks/dev_eval.py's measure) against controls of
the same size: SFT + d (the RL model), SFT - d, and SFT + |d| with random signs (`--controls` seeds).
An update that is mostly noise does no better than its sign-shuffled copy.

    python benchmarks/rl_signal.py --env-from RUN --model RUN/warm_model [--task toolgym/math-v0] \
        [--prompts 16] [--rl RUN/checkpoints/step_000020/model --dev-count 48] [--out FILE]

Prints a table; writes JSON (default benchmarks/results/rl_signal.json) with `grad_cosine_halves`,
`sign_agreement_halves`, `signal_to_noise_per_group`, `steps_to_signal_equals_noise`,
`logprob_mismatch_mean`, `by_kind` and, with --rl, `displacement` {label: dev pass rates}.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _results import write_json

DEFAULT_OUT = Path(__file__).parent / "results" / "rl_signal.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="the policy to measure (a model folder)")
    p.add_argument("--env-from", required=True,
                   help="run directory or config.yaml: its environment, loss and sampling")
    p.add_argument("--task", default="toolgym/math-v0")
    p.add_argument("--prompts", type=int, default=16, help="prompts in the batch (each gets the run's group)")
    p.add_argument("--start", type=int, default=300_000, help="first train instance of the batch")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--kept-per-update", type=float, default=None,
                   help="kept groups per update of the run (default: the run's metrics.jsonl mean)")
    p.add_argument("--rl", default=None, help="an RL checkpoint from --model: test its displacement")
    p.add_argument("--controls", type=int, default=2, help="sign-shuffled controls (with --rl)")
    p.add_argument("--dev-start", type=int, default=100_000)
    p.add_argument("--dev-count", type=int, default=48)
    p.add_argument("--dev-temperature", type=float, default=0.0, help="also sample the dev set (> 0)")
    p.add_argument("--dev-n", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    if args.prompts < 2 or args.controls < 0 or args.dev_count < 1 or args.dev_n < 1:
        p.error("--prompts must be >= 2 (two halves), --controls >= 0, --dev-count and --dev-n >= 1")
    for flag, path in (("--model", args.model), ("--rl", args.rl)):
        if path is not None and not (Path(path) / "config.json").exists():
            p.error(f"{flag} {path!r}: give a model folder (with config.json)")
    return args


def run_config(env_from: str) -> Any:
    """The run's TrainConfig (from a run directory, a checkpoint or a config.yaml)."""
    from toolgym.commands._trained import trained_config

    try:
        return trained_config(env_from)[1]
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise SystemExit(f"--env-from {env_from}: {exc} (give a run directory)") from exc


def rollout_batch(engine: Any, cfg: Any, args: argparse.Namespace) -> list[Any]:
    """P prompts x the run's group size, sampled as the trainer's rollout workers sample."""
    from toolgym.agents.rollout import RolloutRunner
    from toolgym.envs.types import TaskRequest
    from toolgym.trainers.config.checks import task_kwargs
    from toolgym.trainers.run.workers import LOCKSTEP, env_kwargs, sampling_params

    requests = [TaskRequest(args.task, args.start + i, "train") for i in range(args.prompts)]
    with RolloutRunner(engine, engine.tokenizer, group_size=cfg.rollout.group_size,
                       sampling=sampling_params(cfg, args.seed), env_kwargs=env_kwargs(cfg),
                       max_context=cfg.sampling.max_episode_tokens, task_kwargs=task_kwargs(cfg),
                       **LOCKSTEP) as runner:
        return runner.run(requests)


def kept_groups(episodes: list[Any], cfg: Any) -> tuple[list[list[Any]], int]:
    """The groups the trainer would learn from (its filter), and how many groups there were."""
    from toolgym.curriculum.filters import GroupFilter
    from toolgym.trainers.run.stages import group_episodes

    groups = group_episodes(episodes)
    return GroupFilter(enabled=cfg.rollout.filter_zero_variance).filter(groups).kept, len(groups)


def loss_gradient(model: Any, groups: list[list[Any]], cfg: Any, pad_id: int) -> dict[str, Any]:
    """name -> gradient of the run's loss on these groups (advantages over exactly them), no step."""
    from toolgym.trainers.algo.loss_api import LossNormalisers
    from toolgym.trainers.learner.batching import micro_batches
    from toolgym.trainers.learner.learner import policy_loss_fn, token_logprobs
    from toolgym.trainers.run.stages import build_samples

    loss_fn = policy_loss_fn(cfg.loss)
    batches = micro_batches(build_samples(groups, cfg), cfg.optimizer.micro_batch_tokens, pad_id)
    norm = LossNormalisers.total(LossNormalisers.from_batch(mb.mask, positive=mb.positive) for mb in batches)
    model.zero_grad(set_to_none=True)
    for mb in batches:
        logp, _ = token_logprobs(model, mb, cfg.sampling.temperature)
        loss, _ = loss_fn(mb, logp, None, norm, None)
        loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def cosine(x: Any, y: Any) -> float | None:
    den = float(x.norm()) * float(y.norm())
    return float((x * y).sum()) / den if den > 0 else None


def agreement(ga: dict[str, Any], gb: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """cos(g_A, g_B) and the fraction of weights whose two gradients share a sign, over `names`."""
    import torch

    a = torch.cat([ga[n].flatten() for n in names])
    b = torch.cat([gb[n].flatten() for n in names])
    return {"cosine": cosine(a, b), "sign_agreement": float(((a * b) > 0).float().mean()),
            "weights": int(a.numel())}


def parameter_kind(name: str) -> str:
    """Embedding (tied or not), norms, or the projection's name (q_proj, up_proj, ...)."""
    if "embed" in name or "lm_head" in name:
        return "embedding"
    if "norm" in name:
        return "norm"
    return name.split(".")[-2]


def signal_to_noise(cos: float | None, groups_per_half: float) -> float | None:
    """r, one group's |signal|^2 / |noise|^2, from cos(g_A, g_B) = k r / (1 + k r) (k groups a half)."""
    if cos is None or cos <= 0 or cos >= 1 or groups_per_half <= 0:
        return None
    return cos / (groups_per_half * (1.0 - cos))


def unseen_embedding_rows(grads: dict[str, Any], groups: list[list[Any]]) -> dict[str, float] | None:
    """Mean |gradient| on the embedding rows of tokens the batch contains, and on all other rows."""
    import torch

    name = next((n for n in grads if "embed_tokens" in n), None)
    if name is None:
        return None
    seen = torch.zeros(grads[name].shape[0], dtype=torch.bool)
    seen[sorted({t for g in groups for e in g for t in (*e.prompt_ids, *e.response_ids)})] = True
    g = grads[name].abs()
    return {"seen_rows": int(seen.sum()), "rows": int(seen.numel()),
            "mean_abs_grad_seen": float(g[seen].mean()),
            "mean_abs_grad_unseen": float(g[~seen].mean()) if (~seen).any() else 0.0}


def mismatch(model: Any, groups: list[list[Any]], cfg: Any, pad_id: int) -> dict[str, float]:
    """|engine - learner| log-prob on the batch's policy tokens (mean and max)."""
    import torch
    from toolgym.trainers.learner.batching import micro_batches
    from toolgym.trainers.learner.learner import token_logprobs
    from toolgym.trainers.run.stages import build_samples

    total = count = worst = 0.0
    with torch.no_grad():
        for mb in micro_batches(build_samples(groups, cfg), cfg.optimizer.micro_batch_tokens, pad_id):
            logp, _ = token_logprobs(model, mb, cfg.sampling.temperature)
            gap = (logp - mb.old_logp).abs() * (mb.mask != 0)
            total, count = total + float(gap.sum()), count + float((mb.mask != 0).sum())
            worst = max(worst, float(gap.max()))
    return {"logprob_mismatch_mean": total / count if count else 0.0, "logprob_mismatch_max": worst}


def kept_per_update(env_from: str) -> float | None:
    """The run's mean `filter/kept_groups` per step, from its metrics.jsonl (None without one)."""
    import json

    path = Path(env_from)
    path = (path if path.is_dir() else path.parent) / "metrics.jsonl"
    if not path.exists():
        return None
    kept = [r["filter/kept_groups"] for r in map(json.loads, path.read_text().splitlines())
            if "filter/kept_groups" in r]
    return sum(kept) / len(kept) if kept else None


def gradient_report(args: argparse.Namespace, cfg: Any) -> dict[str, Any]:
    """A fresh batch from `--model`, then `measure_halves` on it."""
    from toolgym.agents.hf_engine import HFEngine

    engine = HFEngine.from_pretrained(args.model, max_batch_size=cfg.engine.max_batch)
    started = time.monotonic()
    episodes = rollout_batch(engine, cfg, args)
    rollout_s = round(time.monotonic() - started, 1)
    k_update = args.kept_per_update or kept_per_update(args.env_from) or float(cfg.rollout.prompts_per_step)
    return {**measure_halves(engine, episodes, cfg, seed=args.seed, kept_per_update=k_update),
            "rollout_s": rollout_s}


def measure_halves(engine: Any, episodes: list[Any], cfg: Any, *, seed: int = 0,
                   kept_per_update: float = 1.0) -> dict[str, Any]:
    """The batch's figures, its halves' gradient agreement (overall and per parameter kind) and the
    engine/learner mismatch. Only groups whose rewards differ enter the halves: a group of equal
    rewards has advantage 0 and adds nothing to the gradient."""
    groups, total_groups = kept_groups(episodes, cfg)
    informative = [g for g in groups if len({float(e.reward) for e in g}) > 1]
    out: dict[str, Any] = {
        "episodes": len(episodes), "groups": total_groups, "kept_groups": len(groups),
        "informative_groups": len(informative),
        "success_rate": sum(bool(e.success) for e in episodes) / len(episodes)}
    if len(informative) < 2:
        out["note"] = "fewer than 2 groups with differing rewards: no halves to compare (raise --prompts)"
        return out
    model = engine.model.train()
    order = list(range(len(informative)))
    random.Random(seed).shuffle(order)
    half_a = [informative[i] for i in order[: len(order) // 2]]
    half_b = [informative[i] for i in order[len(order) // 2:]]
    ga = loss_gradient(model, half_a, cfg, engine.pad_id)
    gb = loss_gradient(model, half_b, cfg, engine.pad_id)
    model.eval()
    overall = agreement(ga, gb, list(ga))
    kinds: dict[str, list[str]] = {}
    for name in ga:
        kinds.setdefault(parameter_kind(name), []).append(name)
    r = signal_to_noise(overall["cosine"], len(informative) / 2)
    return {**out,
            "grad_cosine_halves": overall["cosine"], "sign_agreement_halves": overall["sign_agreement"],
            "groups_per_half": len(informative) / 2, "signal_to_noise_per_group": r,
            "kept_groups_per_update": kept_per_update,
            "steps_to_signal_equals_noise": (1.0 / (kept_per_update * r)) if r else None,
            "by_kind": {kind: agreement(ga, gb, names) for kind, names in sorted(kinds.items())},
            "embedding_rows": unseen_embedding_rows(ga, half_a),
            **mismatch(model, informative, cfg, engine.pad_id)}


def displaced_models(sft: str, rl: str, controls: int, folder: Path) -> dict[str, str]:
    """label -> model folder: sft, rl, sft - d and `controls` sign-shuffled sft + |d| (d = rl - sft)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(sft, dtype=torch.float32).state_dict()
    moved = AutoModelForCausalLM.from_pretrained(rl, dtype=torch.float32).state_dict()
    delta = {k: moved[k] - base[k] for k in base}
    tokenizer = AutoTokenizer.from_pretrained(sft)
    out = {"sft": sft, "rl": rl}
    recipes: dict[str, Any] = {"sft_minus_d": lambda k, g: -delta[k]}
    for seed in range(controls):
        recipes[f"sft_plus_shuffled_d_{seed}"] = lambda k, g: delta[k].abs() * (
            torch.randint(0, 2, delta[k].shape, generator=g).float() * 2 - 1)
    for i, (label, make) in enumerate(recipes.items()):
        model = AutoModelForCausalLM.from_pretrained(sft, dtype=torch.float32)
        generator = torch.Generator().manual_seed(i)
        state = model.state_dict()
        with torch.no_grad():
            for k in state:  # tied weights share storage: the last name written wins, consistently
                state[k].copy_(base[k] + make(k, generator))
        model.save_pretrained(folder / label)
        tokenizer.save_pretrained(folder / label)
        out[label] = str(folder / label)
    return out


def displacement_report(args: argparse.Namespace) -> dict[str, Any]:
    """Dev pass rates (benchmarks/dev_eval.py's measure) of the RL model and its controls."""
    import dev_eval
    from toolgym.trainers.run.workers import env_kwargs

    cfg = run_config(args.env_from)
    dev_args = argparse.Namespace(task=args.task, start=args.dev_start, count=args.dev_count,
                                  temperature=args.dev_temperature, n=args.dev_n,
                                  max_tokens=cfg.sampling.max_new_tokens)
    env = env_kwargs(cfg)  # the trainer's environment settings
    size = size_of_displacement(args.model, args.rl)
    with tempfile.TemporaryDirectory(prefix="rl_signal-") as tmp:
        models = displaced_models(args.model, args.rl, args.controls, Path(tmp))
        results = {}
        for label, path in models.items():
            results[label] = dev_eval.evaluate(path, dev_args, env)
            results[label]["path"] = path if label in ("sft", "rl") else "(control, not kept)"
            print(f"{label}: dev greedy {results[label]['pass_greedy']:.3f}", file=sys.stderr, flush=True)
    return {"dev": {"task": args.task, "start": args.dev_start, "count": args.dev_count}, **size,
            "models": results}


def size_of_displacement(sft: str, rl: str) -> dict[str, float]:
    """Mean |d| per weight and the share of weights that moved."""
    import torch
    from transformers import AutoModelForCausalLM

    a = AutoModelForCausalLM.from_pretrained(sft, dtype=torch.float32).state_dict()
    b = AutoModelForCausalLM.from_pretrained(rl, dtype=torch.float32).state_dict()
    total = sum(v.numel() for v in a.values())
    return {"mean_abs_displacement": sum(float((b[k] - a[k]).abs().sum()) for k in a) / total,
            "moved_fraction": sum(int((b[k] != a[k]).sum()) for k in a) / total}


def table(result: dict[str, Any]) -> str:
    g = result["gradient"]
    lines = ["| measure | value |", "|---|---|"]
    for key in ("episodes", "kept_groups", "informative_groups", "success_rate", "grad_cosine_halves",
                "sign_agreement_halves", "signal_to_noise_per_group", "kept_groups_per_update",
                "steps_to_signal_equals_noise", "logprob_mismatch_mean"):
        if key in g:
            lines.append(f"| {key} | {_fmt(g[key])} |")
    if "note" in g:
        lines.append(f"| note | {g['note']} |")
    if "displacement" in result:
        lines += ["", "| model (dev set) | greedy | sampled |", "|---|---|---|"]
        for label, r in result["displacement"]["models"].items():
            sampled = [row.get("pass_sampled") for row in r["per_kind"].values()]
            mean = (sum(x * row["problems"] for x, row in zip(sampled, r["per_kind"].values(), strict=True))
                    / sum(row["problems"] for row in r["per_kind"].values())) if None not in sampled else None
            lines.append(f"| {label} | {r['pass_greedy']:.3f} | {_fmt(mean)} |")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    cfg = run_config(args.env_from)
    result: dict[str, Any] = {"config": {k: (str(v) if isinstance(v, Path) else v)
                                         for k, v in vars(args).items()}}
    result["gradient"] = gradient_report(args, cfg)
    if args.rl is not None:
        result["displacement"] = displacement_report(args)
    print(table(result))
    write_json(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
