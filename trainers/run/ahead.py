"""Rollouts ahead of the learner: `run.max_staleness` K, a bounded policy lag.

With K > 0 the driver submits the rollouts of the next K steps before the learner trains the current
one, so generation (the rollout workers) and learning (the driver) overlap. The weight sync after an
update is queued behind those rollouts and applies from the next engine batch on: weights change
between batches, never inside an episode. Versions count learner updates; the episodes step t trains
on were generated with version >= t - 1 - K, each carries its version (`Episode.policy_version`), and
their behaviour log-probs are the generating engine's, so GPPO/PPO/CISPO ratios are true importance
ratios (with the clip as the only guard against very stale tokens; K is that guard's bound).

    step t:  collect batch t (submitted earlier, else now)     <- waits only if generation is behind
             refill rounds of the zero-variance filter          (sampled now, with the newest weights)
             curriculum.update(outcomes of t)                   (outcomes in the order they complete)
             submit batches t+1 .. t+K not yet submitted        (drawn from the updated curriculum)
             learner.update(t)        || the workers generate t+1 ..
             sync weights, version t                            (queued behind them, not waited on)

K = 0 submits batch t at the start of step t and collects it at once: the synchronous loop, with the
same curriculum draws, seeds and updates. Under `--no-ray` a submitted batch is rolled out at once
(one process has nothing to overlap with): the same staleness, for debugging, without the speed.

Checkpoints record the requests of the batches submitted but not yet trained (not their episodes): a
resumed run submits them again, so no request is lost or trained twice. The end of a run, Ctrl-C and
a failure discard in-flight episodes; their tokens are not counted (nothing was trained on them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from toolgym.envs.types import TaskRequest

if TYPE_CHECKING:
    import numpy as np
    from toolgym.agents.episode import Episode
    from toolgym.curriculum.base import Scheduler
    from toolgym.trainers.config.schema import TrainConfig
    from toolgym.trainers.run.rollout_pool import RolloutPool


class RunParts(Protocol):
    """What the batches ahead need of the run (a `RunState`; named here so that it needs no import)."""

    cfg: TrainConfig
    curriculum: Scheduler
    rng: np.random.Generator
    pool: RolloutPool | None


def step_seed(seed: int, step: int, offset: int = 0) -> int:
    """The rollout seed of a step (and of its refill rounds): a function of (seed, step) only."""
    return (seed * 2_654_435_761 + step * 40_503 + offset) % (2**31 - 1)


@dataclass
class Batch:
    """One step's first rollout batch: its requests, seed and length cap; `handle` once submitted."""

    step: int
    requests: list[TaskRequest]
    seed: int
    cap: int | None
    handle: Any = None


class RolloutsAhead:
    """The batches submitted for steps not yet trained, at most `depth` (= run.max_staleness) ahead."""

    def __init__(self, depth: int, restored: Sequence[dict[str, Any]] = ()) -> None:
        """`restored`: `state_dict()` of a checkpoint (its batches are submitted again)."""
        self.depth = depth
        self.batches = {int(b["step"]): Batch(int(b["step"]), [TaskRequest(**r) for r in b["requests"]],
                                              int(b["seed"]), b["cap"]) for b in restored}

    def take(self, run: RunParts, step: int) -> list[Episode]:
        """The episodes of `step`'s first batch: submitted ahead, else drawn and rolled out now."""
        batch = self.batches.pop(step, None) or self._draw(run, step)
        if batch.handle is None:
            self._submit(run, batch)
        return run.pool.collect(batch.handle)

    def submit_ahead(self, run: RunParts, step: int) -> None:
        """Submit the batches of steps step+1 .. step+depth (none past run.steps) not yet submitted."""
        for later in range(step + 1, min(step + self.depth, run.cfg.run.steps) + 1):
            if later not in self.batches:
                self.batches[later] = self._draw(run, later)
        for batch in sorted(self.batches.values(), key=lambda b: b.step):
            if batch.handle is None:
                self._submit(run, batch)

    def state_dict(self) -> list[dict[str, Any]]:
        return [{"step": b.step, "requests": [dataclasses.asdict(r) for r in b.requests], "seed": b.seed,
                 "cap": b.cap} for b in sorted(self.batches.values(), key=lambda b: b.step)]

    @staticmethod
    def _draw(run: RunParts, step: int) -> Batch:
        requests = run.curriculum.next_batch(run.cfg.rollout.prompts_per_step, run.rng)
        cap = run.curriculum.max_response_length
        return Batch(step, list(requests), step_seed(run.cfg.run.seed, step), cap)

    @staticmethod
    def _submit(run: RunParts, batch: Batch) -> None:
        batch.handle = run.pool.submit(batch.requests, seed=batch.seed, max_response_tokens=batch.cap)


def staleness_metrics(episodes: Sequence[Episode], learner_version: int, bound: int) -> dict[str, float]:
    """`rollout/staleness_mean` (over policy tokens) and `rollout/staleness_max` (over episodes) of a
    step's episodes against the learner's version; a token staler than `bound` is a bug, not data."""
    lags = [(learner_version - e.policy_version, e.num_policy_tokens) for e in episodes]
    worst = max((lag for lag, _ in lags), default=0)
    if worst > bound:
        raise RuntimeError(f"an episode was generated {worst} weight versions before the learner's "
                           f"({learner_version}), beyond run.max_staleness={bound}: a driver bug")
    tokens = sum(n for _, n in lags)
    mean = sum(lag * n for lag, n in lags) / tokens if tokens else 0.0
    return {"rollout/staleness_mean": float(mean), "rollout/staleness_max": float(worst)}
