"""The data stages between rollout and learner: filter groups, compute advantages, build samples.

    groups   = group_episodes(episodes)            errored episodes leave their group (zero weight)
    kept     = GroupFilter on binary success       zero-variance groups dropped (refilled by the driver)
    adv      = advantage registry over kept groups [N, R] per response token
    samples  = token-aligned learner samples       truncated episodes masked when rollout.mask_truncated

Kept separate from the driver so that each stage is a small function with a test of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from toolgym.agents.episode import Episode
from toolgym.envs.types import Outcome
from toolgym.trainers.algo.advantages import AdvantageConfig, AdvantageInputs, episode_advantages
from toolgym.trainers.config.schema import TrainConfig
from toolgym.trainers.learner.batching import Sample, sample_from_episode


def outcomes(episodes: Sequence[Episode]) -> list[Outcome]:
    """What the curriculum learns from: every finished, non-errored episode."""
    return [Outcome(e.task_id, e.index, bool(e.success), float(e.reward), e.split)
            for e in episodes if e.finish_reason != "error"]


def group_episodes(episodes: Sequence[Episode]) -> list[list[Episode]]:
    """Groups by group_id, in order; errored episodes are left out (a rollout error is masked, not fatal)."""
    groups: dict[str, list[Episode]] = {}
    for e in episodes:
        bucket = groups.setdefault(e.group_id, [])
        if e.finish_reason != "error" and e.response_ids:
            bucket.append(e)
    return [g for g in groups.values() if g]


def advantages(groups: Sequence[Sequence[Episode]], cfg: TrainConfig) -> list[float | list[float]]:
    """The advantage of every episode of `groups` (flattened in order): one value per episode from the
    group estimators, a list per response token from a per-token one (reinforce_pp with KL)."""
    flat = [e for g in groups for e in g]
    if not flat:
        return []
    width = max(len(e.response_ids) for e in flat)
    mask = torch.zeros((len(flat), width))  # [N, R]
    for i, e in enumerate(flat):
        mask[i, : len(e.loss_mask)] = torch.tensor(e.loss_mask, dtype=torch.float32)
    rewards = torch.tensor([float(e.reward) for e in flat])  # [N]
    inputs = AdvantageInputs(rewards=rewards, group_ids=[e.group_id for e in flat], mask=mask)
    algo = cfg.algo
    estimator = AdvantageConfig(name=algo.advantage, std_eps=algo.std_eps, whiten_eps=algo.whiten_eps)
    adv = episode_advantages(inputs, estimator)  # [N] or [N, R]
    if adv.dim() == 1:
        return adv.tolist()
    return [adv[i, : len(e.response_ids)].tolist() for i, e in enumerate(flat)]


def build_samples(groups: Sequence[Sequence[Episode]], cfg: TrainConfig) -> list[Sample]:
    """Learner samples of the kept groups (advantages computed over exactly these groups)."""
    flat = [e for g in groups for e in g]
    per_token = advantages(groups, cfg)
    samples = []
    for e, adv in zip(flat, per_token, strict=True):
        weight = 0.0 if (cfg.rollout.mask_truncated and e.truncated) else 1.0
        samples.append(sample_from_episode(e, adv, weight=weight))
    return samples
