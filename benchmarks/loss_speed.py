"""Forward + backward time of each registered policy loss on CPU, relative to `ppo_clip`.

Target (issue 5): every loss within 1.5x of ppo_clip on [64, 4096] tokens — the losses are a few
vectorised element-wise ops each, so a larger ratio means a Python loop or a needless pass crept in.
Each loss runs with its paper preset (`LossConfig.defaults_for`), metrics included (they are part of
every call). Rounds interleave the losses so that machine noise hits all of them alike; the median
of the rounds is reported.

    python benchmarks/loss_speed.py [--rows 64 --tokens 4096 --rounds 15 --threads 1 --out FILE]

JSON keys: `<loss>_ratio` (median time / ppo_clip's median time) per loss, `max_ratio_vs_ppo_clip`,
`<loss>_ms` (median milliseconds), and the settings.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _results import write_json  # benchmarks/_results.py (scripts run from benchmarks/)
from toolgym.trainers import LossConfig, LossInputs, get_loss, list_losses

BUILTIN = ["ppo_clip", "gppo", "cispo", "gspo"]


def make_batch(rows: int, tokens: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(rows, tokens, generator=g) * 3  # [B, T]
    lengths = torch.randint(tokens // 4, tokens + 1, (rows,), generator=g)
    mask = (torch.arange(tokens)[None, :] < lengths[:, None]).float()  # [B, T]
    return {"logp": logp, "old_logp": logp + torch.randn(rows, tokens, generator=g) * 0.3,
            "advantages": torch.randn(rows, 1, generator=g).expand(rows, tokens) * mask, "mask": mask}


def time_once(name: str, cfg: LossConfig, batch: dict[str, torch.Tensor]) -> float:
    logp = batch["logp"].clone().requires_grad_()
    start = time.perf_counter()
    out = get_loss(name)(LossInputs(logp, batch["old_logp"], batch["advantages"], batch["mask"]), cfg)
    out.loss.backward()
    return time.perf_counter() - start


def measure(rows: int, tokens: int, rounds: int) -> dict[str, float]:
    batch = make_batch(rows, tokens)
    names = [n for n in BUILTIN if n in list_losses()]
    configs = {n: LossConfig.defaults_for(n) for n in names}
    for n in names:  # warm-up
        time_once(n, configs[n], batch)
    times: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(rounds):
        for n in names:
            times[n].append(time_once(n, configs[n], batch))
    return {n: statistics.median(t) for n, t in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (1 = stable on a shared machine)")
    parser.add_argument("--out", default="benchmarks/results/loss_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    medians = measure(args.rows, args.tokens, args.rounds)
    base = medians["ppo_clip"]
    result: dict[str, float | int | str] = {}
    print(f"{'loss':<10} {'median ms':>10} {'vs ppo_clip':>12}   [{args.rows}, {args.tokens}] fwd+bwd, "
          f"{args.threads} thread(s), {args.rounds} rounds")
    for name, seconds in medians.items():
        ratio = seconds / base
        result[f"{name}_ratio"] = round(ratio, 4)
        result[f"{name}_ms"] = round(seconds * 1e3, 3)
        print(f"{name:<10} {seconds * 1e3:>10.2f} {ratio:>11.2f}x")
    result["max_ratio_vs_ppo_clip"] = max(float(result[f"{n}_ratio"]) for n in medians)
    result.update(rows=args.rows, tokens=args.tokens, threads=args.threads, rounds=args.rounds,
                  torch=torch.__version__)
    print(f"max_ratio_vs_ppo_clip = {result['max_ratio_vs_ppo_clip']:.2f} (target <= 1.5)")
    write_json(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
