"""`Episode`: the one typed record that goes from a rollout to the trainer (and to JSONL on disk).

Why one record: the trainer must see exactly the ids the engine sampled and their behaviour log-probs,
with a mask separating the policy's tokens from the prompt and the tool outputs; the curriculum, the
filters and the reports need the outcome. Keeping them in one flat, typed, JSON-serialisable record
(rather than a dict of strings) makes every layer agree on the shapes:

    full sequence = prompt_ids + response_ids                       length P + R
    loss_mask     [R]  1 = sampled by the policy, 0 = observation (tool output / env message)
    logprobs      [R]  behaviour log-probs of the sampled tokens, 0.0 where loss_mask is 0

A rollout failure (engine, sandbox, verifier) is data: `finish_reason == "error"` with `error` set;
such an episode carries zero loss weight (`trainable` is False).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

FINISH_REASONS = ("answered", "max_turns", "max_tool_calls", "time", "malformed", "length", "error")


@dataclass
class Episode:
    """One multi-turn trajectory of one task instance."""

    task_id: str  # registered environment id, e.g. "toolgym/arith-v0"
    index: int  # instance index within the split
    split: str  # "train" | "heldout" | ...
    group_id: str  # the same for the G episodes of one request (GRPO group)
    prompt_ids: list[int] = field(default_factory=list)  # [P] rendered first messages + generation prompt
    response_ids: list[int] = field(default_factory=list)  # [R] policy and observation tokens interleaved
    loss_mask: list[int] = field(default_factory=list)  # [R] 1 = sampled by the policy
    logprobs: list[float] = field(default_factory=list)  # [R] behaviour log-probs; 0.0 where mask is 0
    reward: float = 0.0  # total shaped reward of the episode
    reward_components: dict[str, float] = field(default_factory=dict)  # e.g. {"correct": 1.0, "format": 0.1}
    score: float = 0.0  # the verifier's score in [0, 1] (0 when no answer)
    success: bool = False  # perfect score (score >= 1)
    turns: int = 0  # assistant turns taken
    tool_calls: int = 0
    tool_errors: int = 0  # tool calls whose code raised, timed out or crashed
    format_errors: int = 0  # turns with a format problem (unclosed fence, no code and no answer, ...)
    finish_reason: str = "error"  # see FINISH_REASONS ("length": the model's context filled up)
    truncated: bool = False  # ended by a limit (turns, tool calls, time, context), not by an answer
    timings: dict[str, float] = field(default_factory=dict)  # seconds: generate_s, env_s, total_s, ...
    error: str | None = None  # the failure's text when finish_reason == "error"
    sample: int = 0  # which of the group's G samples this is
    messages: list[dict[str, str]] | None = None  # the chat, kept for text-level engines and demos
    # the weight version (learner updates applied) of the engine that generated every policy token of
    # this episode: weights change only between engine batches, never inside an episode
    policy_version: int = 0

    def __post_init__(self) -> None:
        n = len(self.response_ids)
        if len(self.loss_mask) != n or len(self.logprobs) != n:
            raise ValueError(f"Episode {self.task_id}#{self.index}: response_ids, loss_mask and logprobs "
                             f"must have one entry per token; got {n}, {len(self.loss_mask)}, "
                             f"{len(self.logprobs)}")

    @property
    def trainable(self) -> bool:
        """False for failed rollouts: they carry zero loss weight."""
        return self.finish_reason != "error"

    @property
    def num_policy_tokens(self) -> int:
        return sum(self.loss_mask)

    @property
    def input_ids(self) -> list[int]:
        """The full token sequence the model saw: prompt then response, [P + R]."""
        return self.prompt_ids + self.response_ids

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Episode:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown Episode fields {unknown}; known fields: {sorted(known)}")
        return cls(**data)


def tool_use_health(episodes: Sequence[Episode]) -> dict[str, float]:
    """Whether the agent uses the tool protocol at all, as fractions: `parse_fail_rate` (turns with a
    format problem / turns), `no_tool_frac` (episodes without a tool call), `answered_frac` (episodes
    that gave an answer) and `finish_<reason>` per finish reason. A reward that rises while
    no_tool_frac is 1 is the model learning to answer without the interpreter."""
    n = max(1, len(episodes))
    turns = sum(e.turns for e in episodes)
    out = {"parse_fail_rate": sum(e.format_errors for e in episodes) / turns if turns else 0.0,
           "no_tool_frac": sum(e.tool_calls == 0 for e in episodes) / n,
           "answered_frac": sum(e.finish_reason == "answered" for e in episodes) / n}
    for reason in FINISH_REASONS:
        out[f"finish_{reason}"] = sum(e.finish_reason == reason for e in episodes) / n
    return out


def longest_turn(episode: Episode) -> int:
    """Tokens of the episode's longest policy turn (the longest run of loss_mask 1s)."""
    longest = run = 0
    for bit in episode.loss_mask:
        run = run + 1 if bit else 0
        longest = max(longest, run)
    return longest


def write_jsonl(episodes: Iterable[Episode], path: str | Path, append: bool = False) -> int:
    """Write one JSON object per line; return the number written."""
    n = 0
    with open(path, "a" if append else "w", encoding="utf-8") as f:
        for ep in episodes:
            f.write(json.dumps(ep.to_dict(), ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: str | Path) -> Iterator[Episode]:
    """Episodes from a JSONL file written by `write_jsonl` (or `toolgym demos`)."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield Episode.from_dict(json.loads(line))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{path}:{lineno}: not an Episode record: {exc}") from exc
