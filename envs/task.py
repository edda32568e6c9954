"""The task-family contract: what an environment needs from a problem family.

A family produces `Problem`s deterministically from (split, index) and scores a final answer with its
verifier. Families live in `toolgym.tasks` (or in third-party packages); environments only see this
protocol, so a new family never needs a new environment class.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from toolgym.envs.sandbox.base import Session

TRAIN = "train"
HELDOUT = "heldout"


@dataclass(frozen=True)
class Problem:
    """One task instance."""

    prompt: str  # the user message
    answer: Any  # the hidden reference the verifier compares against (never shown to the model)
    index: int = 0
    split: str = TRAIN
    setup_code: str | None = None  # run in the session before the first turn (initial state)
    reference_code: str | None = None  # a program that prints the answer (used by the teacher)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Score:
    """A verifier's judgement of one final answer."""

    value: float  # in [0, 1]; fractional for partial credit (e.g. test pass rate)
    detail: str = ""

    @property
    def correct(self) -> bool:
        """Only a perfect score counts as correct (filters, SFT positives, curriculum success)."""
        return self.value >= 1.0


# Opens a fresh, isolated session for verifiers that execute code (e.g. unit tests).
SessionFactory = Callable[[], Session]


@runtime_checkable
class TaskFamily(Protocol):
    """A problem family with its verifier and its splits."""

    name: str
    splits: Sequence[str]  # e.g. ("train", "heldout"); a held-out split is never used for training
    tool_format: str  # default parser for this family: "fenced", "xml" or "json"

    def problem(self, split: str, index: int) -> Problem:
        """The deterministic instance `index` of `split`."""
        ...

    def verify(self, problem: Problem, answer: str, new_session: SessionFactory) -> Score:
        """Score the model's final answer text. Raises only on a bug in the verifier itself."""
        ...
