"""Small typed records that cross package boundaries: what the curriculum asks for and what it learns.

They live in `envs` (the bottom layer) so that `curriculum`, `agents` and `trainers` can share them
without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskRequest:
    """One task instance to roll out: an environment id, an instance index and its split."""

    task_id: str  # a registered id, e.g. "toolgym/arith-v0"
    index: int  # instance index within the split (deterministic problem for (task_id, split, index))
    split: str = "train"


@dataclass(frozen=True)
class Outcome:
    """The result of one finished episode, as the curriculum sees it."""

    task_id: str
    index: int
    success: bool  # the verifier gave a perfect score (not a shaped reward)
    reward: float  # the full shaped reward, for plateau detection and logs
    split: str = "train"
