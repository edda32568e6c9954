"""The curriculum's probe, run by the trainer before the first RL step (R1-Code-Interpreter).

Why the trainer runs it: a scheduler that ranks units by measured success (`potential`,
`difficulty_band`: `Scheduler.ranks_by_success`) knows nothing before its first outcomes, so without
a probe every unit starts unmeasured and stage 1 is the first units *in list order*. The paper probes
every task with ~20 samples of the starting policy and ranks by improvement potential 4p(1-p); here
the probe's episodes go through the same rollout pool as training (same engine, sandbox, limits), on
the train split, `curriculum.probe_samples` episodes per unit, each its own request (group size 1): a
family unit is measured on that many instances. (It was measured in whole GRPO groups: with
`rollout.group_size` 8 and 8 probe samples a family's success was one instance's, and the real
model's probe read `math` as unsolved and `arith` as solved, both potential 0.)

The probe's episodes and generated policy tokens count in the run's metrics
(`curriculum/probe_episodes`, `curriculum/probe_tokens`, logged at step 0); its outcomes live in the
scheduler's success statistics, which the checkpoint keeps, so a resumed run does not probe again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from toolgym.trainers.run.stages import outcomes

if TYPE_CHECKING:
    from toolgym.curriculum.base import Scheduler
    from toolgym.envs.types import Outcome
    from toolgym.trainers.run.runstate import RunState

FAMILY_PROBE_SAMPLES = 20  # R1-Code-Interpreter: about 20 samples per task


def probe_samples(run: RunState) -> int:
    """Episodes per unit: the config's, else 20 per family unit and one group per instance unit."""
    if run.cfg.curriculum.probe_samples is not None:
        return run.cfg.curriculum.probe_samples
    families = all(p.index is None for p in run.curriculum.units.parsed)
    return FAMILY_PROBE_SAMPLES if families else run.cfg.rollout.group_size


def probe_curriculum(run: RunState, say: Any = print) -> dict[str, float]:
    """Probe the run's scheduler when it ranks by success and has not been probed; returns the probe's
    metrics (empty when nothing ran). `say` prints one line about what was done."""
    scheduler = run.curriculum
    if not scheduler.ranks_by_success or scheduler.probe_episodes > 0:
        return {}
    if not run.cfg.curriculum.probe:
        say(f"curriculum: no probe (curriculum.probe=false): {scheduler.name!r} ranks its "
            f"{len(scheduler.units)} units unmeasured, in list order")
        return {}
    tokens: list[int] = []
    scheduler.probe(_probe_fn(run, scheduler, tokens), n=probe_samples(run))
    say(f"curriculum: probed {len(scheduler.units)} units with {scheduler.probe_episodes} episodes "
        f"({sum(tokens)} policy tokens)")
    return {"curriculum/probe_episodes": float(scheduler.probe_episodes),
            "curriculum/probe_tokens": float(sum(tokens))}


def _probe_fn(run: RunState, scheduler: Scheduler, tokens: list[int]):
    def probe(units: list[str], n: int, mode: str) -> list[Outcome]:
        drawn = [u for u in units for _ in range(n)]  # a family unit draws an instance per request
        requests = scheduler.units.requests(drawn, run.rng)
        episodes = run.pool.rollout(requests, seed=probe_seed(run.cfg.run.seed), group_size=1)
        tokens.append(sum(int(sum(e.loss_mask)) for e in episodes))
        return outcomes(episodes)

    return probe


def probe_seed(seed: int) -> int:
    """The probe's rollout seed: apart from every step's (`ahead.step_seed` uses step >= 1)."""
    return (seed * 2_654_435_761 + 977) % (2**31 - 1)
