"""From Episodes to padded tensors: token-aligned samples and micro-batches packed by a token budget.

Why here: the learner must see exactly the tokens the engine sampled (token-faithful rollouts), with
per-token arrays aligned to the *targets* `ids[1:]` (position t of `mask`, `old_logp`, `advantages`
describes the token `ids[t + 1]`, predicted from `ids[: t + 1]`). Micro-batches are packed so that
`rows * longest_row <= micro_batch_tokens`, which bounds activation memory whatever the mix of short
and long episodes; the loss normaliser is global (see learner.py), so the packing never changes the
gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from toolgym.trainers.learner.prefix_forward import (
    common_prefix_length,
    first_trained_column,
    shareable_length,
)

if TYPE_CHECKING:
    from toolgym.agents.episode import Episode


@dataclass
class Sample:
    """One episode as the learner sees it: the one form of the batch on its way to the loss.

    1-D tensors on the CPU, aligned to the targets `ids[1:]`; a micro-batch stacks rows of these, and
    every rule the learner applies (first trained position, common prefix, loss normalisers) is defined
    once, on tensors (prefix_forward.py, loss_api.LossNormalisers). Sequences given to the constructor
    are converted.
    """

    ids: torch.Tensor  # [L] long, prompt + response tokens
    mask: torch.Tensor  # [L-1] float, loss weight of target ids[t+1]: 1 = sampled by the policy, else 0
    old_logp: torch.Tensor  # [L-1] float, behaviour log-prob of ids[t+1] (0.0 where mask is 0)
    advantages: torch.Tensor  # [L-1] float
    positive: bool = False  # fully correct sample (SFT-on-positives term)
    is_weight: torch.Tensor | None = None  # [L-1] behaviour importance weights (loss.behaviour_is); None = 1

    def __post_init__(self) -> None:
        self.ids = torch.as_tensor(self.ids, dtype=torch.long)
        for name in ("mask", "old_logp", "advantages"):
            setattr(self, name, torch.as_tensor(getattr(self, name), dtype=torch.float32))
        targets = self.ids.shape[0] - 1
        for name in ("mask", "old_logp", "advantages"):
            if getattr(self, name).shape != (targets,):
                raise ValueError(f"Sample.{name} must have one value per target ({targets} for {targets + 1} "
                                 f"ids); got shape {tuple(getattr(self, name).shape)}")

    @property
    def num_tokens(self) -> int:
        return int(self.ids.shape[0])

    @property
    def first_trained(self) -> int:
        """Column of the first trained target (the rule of `first_trained_column`, on one row)."""
        return first_trained_column(self.mask[None])


def sample_from_episode(episode: Episode, advantage: float | Sequence[float], *,
                        weight: float = 1.0) -> Sample:
    """Align an Episode's response arrays to targets; `advantage` is one value for the episode (group
    estimators) or one per response token.

    `weight` 0 masks the whole episode (an errored or filtered sample) while keeping it in the batch.

    The tokens after the last policy token are dropped: the last tool output and the environment's
    closing message train nothing, and under causal attention no trained position sees them, so the
    loss and its gradient are those of the whole episode. It also bounds a sample by the context:
    the observation that overflowed `max_episode_tokens` (up to `max_output_chars` of a program's
    print) ends the episode and is never fed to the learner (it was: a 4,057-token sample from a
    1,024-token context took the driver's memory from 5 to 12 GB).
    """
    prompt, response = list(episode.prompt_ids), list(episode.response_ids)
    if not response:
        raise ValueError(f"episode {episode.task_id}#{episode.index} has no response tokens")
    if len(episode.loss_mask) != len(response) or len(episode.logprobs) != len(response):
        raise ValueError(
            f"episode {episode.task_id}#{episode.index}: loss_mask ({len(episode.loss_mask)}) and logprobs "
            f"({len(episode.logprobs)}) must have one entry per response token ({len(response)})")
    kept = trained_length(episode.loss_mask)
    pad = torch.zeros(len(prompt) - 1)
    mask = torch.tensor(episode.loss_mask[:kept], dtype=torch.float32) * weight
    if isinstance(advantage, int | float):
        adv = torch.full((kept,), float(advantage))
    else:
        adv = torch.as_tensor(advantage, dtype=torch.float32)[:kept]
    return Sample(
        ids=torch.tensor(prompt + response[:kept], dtype=torch.long),
        mask=torch.cat([pad, mask]),
        old_logp=torch.cat([pad, torch.tensor(episode.logprobs[:kept], dtype=torch.float32)]),
        advantages=torch.cat([pad, adv]),
        positive=bool(episode.success),
    )


def trained_length(loss_mask: Sequence[float]) -> int:
    """Response tokens up to and including the last one with a loss weight (all of them if none has)."""
    for i in range(len(loss_mask) - 1, -1, -1):
        if loss_mask[i]:
            return i + 1
    return len(loss_mask)


@dataclass
class MicroBatch:
    """Right-padded tensors of a few samples."""

    input_ids: torch.Tensor  # [B, T] long
    attention_mask: torch.Tensor  # [B, T] long
    targets: torch.Tensor  # [B, T-1] long, = input_ids[:, 1:]
    mask: torch.Tensor  # [B, T-1] float loss weights (0 on padding)
    old_logp: torch.Tensor  # [B, T-1] float
    advantages: torch.Tensor  # [B, T-1] float
    positive: torch.Tensor  # [B] bool
    rows: list[int]  # index of each row in the original sample list
    ref_logp: torch.Tensor | None = None  # [B, T-1] reference log-probs, filled by the learner (KL term)
    is_weight: torch.Tensor | None = None  # [B, T-1] behaviour importance weights (1 on padding); None = off

    def to(self, device: torch.device | str) -> MicroBatch:
        moved = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in vars(self).items()}
        return MicroBatch(**moved)

    @property
    def num_rows(self) -> int:
        return int(self.input_ids.shape[0])


# A micro-batch's fixed cost in token positions. Measured on CPU (tiny model, benchmarks/learner_prefix.py)
# at about 70; a GPU's per-call cost is larger relative to a token's, so err high: with 16 groups of 4
# short episodes one micro-batch per group loses to one mixed micro-batch despite feeding fewer tokens.
MICRO_BATCH_OVERHEAD_TOKENS = 256


def pack(samples: Sequence[Sample], token_budget: int) -> list[list[int]]:
    """Group sample indices so that rows * longest <= token_budget (a longer sample goes alone).

    Longest first, so each micro-batch holds samples of similar length (little padding).
    """
    order = sorted(range(len(samples)), key=lambda i: (-samples[i].num_tokens, i))
    groups: list[list[int]] = []
    for i in order:
        if groups:
            longest = samples[groups[-1][0]].num_tokens  # first member is the longest
            if (len(groups[-1]) + 1) * longest <= token_budget:
                groups[-1].append(i)
                continue
        groups.append([i])
    return groups


def collate(samples: Sequence[Sample], rows: Sequence[int], pad_id: int = 0) -> MicroBatch:
    """Right-pad the chosen samples into one MicroBatch."""
    chosen = [samples[i] for i in rows]
    width = max(s.num_tokens for s in chosen)
    b = len(chosen)
    input_ids = torch.full((b, width), pad_id, dtype=torch.long)  # [B, T]
    attention = torch.zeros((b, width), dtype=torch.long)  # [B, T]
    mask = torch.zeros((b, width - 1))  # [B, T-1]
    old_logp = torch.zeros((b, width - 1))
    adv = torch.zeros((b, width - 1))
    for r, s in enumerate(chosen):
        n = s.num_tokens
        input_ids[r, :n] = s.ids
        attention[r, :n] = 1
        mask[r, : n - 1] = s.mask
        old_logp[r, : n - 1] = s.old_logp
        adv[r, : n - 1] = s.advantages
    return MicroBatch(
        input_ids=input_ids, attention_mask=attention, targets=input_ids[:, 1:].clone(), mask=mask,
        old_logp=old_logp, advantages=adv,
        positive=torch.tensor([s.positive for s in chosen], dtype=torch.bool), rows=list(rows),
        is_weight=_stack_weights(chosen, width),
    )


def _stack_weights(chosen: Sequence[Sample], width: int) -> torch.Tensor | None:
    """The rows' behaviour importance weights [B, T-1] (1 where a row has none), or None if none has."""
    if all(s.is_weight is None for s in chosen):
        return None
    out = torch.ones((len(chosen), width - 1))
    for r, s in enumerate(chosen):
        if s.is_weight is not None:
            out[r, : s.num_tokens - 1] = s.is_weight
    return out


def pack_by_prefix(samples: Sequence[Sample], token_budget: int) -> list[list[int]]:
    """Like `pack`, but a micro-batch holds episodes of one prompt only (a GRPO group, split by the budget
    where it is larger): the learner then feeds the whole prompt once per micro-batch, where a mix of
    prompts shares only the system prompt. Groups in lexicographic order of their prompts."""
    by_prompt: dict[tuple[int, ...], list[int]] = {}
    for i, s in enumerate(samples):
        by_prompt.setdefault(tuple(s.ids[: s.first_trained].tolist()), []).append(i)
    groups: list[list[int]] = []
    for prompt in sorted(by_prompt):
        members = by_prompt[prompt]
        groups += [[members[j] for j in g] for g in pack([samples[i] for i in members], token_budget)]
    return groups


def micro_batches(samples: Sequence[Sample], token_budget: int, pad_id: int = 0, *,
                  share_prefix: bool = False) -> list[MicroBatch]:
    """Packed, padded micro-batches. With `share_prefix` (the learner feeds each micro-batch's common
    prefix once) the cheaper of two packings by `packing_cost`: by length (least padding; the rows
    share the system prompt) or by prompt (a GRPO group's whole prompt fed once)."""
    groups = pack(samples, token_budget)
    if share_prefix:
        by_prompt = pack_by_prefix(samples, token_budget)
        if packing_cost(samples, by_prompt) < packing_cost(samples, groups):
            groups = by_prompt
    return [collate(samples, rows, pad_id) for rows in groups]


def packing_cost(samples: Sequence[Sample], groups: Sequence[Sequence[int]]) -> int:
    """Estimated learner work of a packing, in token positions: those fed, plus a fixed cost per
    micro-batch (calls, kernel launches, smaller batches)."""
    return fed_tokens(samples, groups) + MICRO_BATCH_OVERHEAD_TOKENS * len(groups)


def fed_tokens(samples: Sequence[Sample], groups: Sequence[Sequence[int]]) -> int:
    """Token positions the shared-prefix forward computes for these micro-batches (padding included):
    each one's shared prefix once (prefix_forward's rules), the rest per row. From the samples, so that
    only the chosen packing is collated."""
    total = 0
    for rows in groups:
        width = max(samples[i].num_tokens for i in rows)
        keep = width - min(samples[i].first_trained for i in rows)
        common = common_prefix_length([samples[i].ids for i in rows])
        shared = shareable_length(len(rows), width, common, keep)
        total += shared + len(rows) * (width - shared)
    return total


def split_mini_batches(n: int, k: int) -> list[list[int]]:
    """Split indices 0..n-1 into k contiguous, nearly equal mini-batches (no empty ones)."""
    k = max(1, min(k, n))
    bounds = [round(j * n / k) for j in range(k + 1)]
    return [list(range(bounds[j], bounds[j + 1])) for j in range(k)]


def shard(indices: Sequence[int], rank: int, world: int) -> list[int]:
    """This rank's strided share of a mini-batch (every rank gets a nearly equal count)."""
    return list(indices[rank::world])
