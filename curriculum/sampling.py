"""Sampling helpers shared by the schedulers: spreading a batch over a set of units, epoch passes,
and the reward-plateau test that ends a stage.

All randomness comes from the numpy Generator the caller passes to `next_batch`, and every piece of
state here is plain JSON, so a resumed scheduler with a restored rng repeats the same batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def spread(active: Sequence[str], n: int, rng: np.random.Generator) -> list[str]:
    """`n` units from `active`, as evenly as possible: whole shuffled passes, then a sample
    without replacement for the remainder (so a batch never repeats a unit it could avoid)."""
    if not active:
        raise ValueError("no active unit to sample from")
    out: list[str] = []
    full, rest = divmod(n, len(active))
    for _ in range(full):
        out += [active[i] for i in rng.permutation(len(active))]
    if rest:
        out += [active[i] for i in rng.choice(len(active), size=rest, replace=False)]
    return out


class EpochSampler:
    """Passes over a unit list in a fresh random order each epoch, like a data loader.

    `take(n)` continues the current pass; when it is exhausted `on_epoch_end` (if set) may shrink
    the list (solved_drop does) before the next pass is shuffled.
    """

    def __init__(self) -> None:
        self.order: list[str] = []
        self.position = 0
        self.epoch = 0  # completed passes

    def take(self, units: Sequence[str], n: int, rng: np.random.Generator, on_epoch_end=None) -> list[str]:
        out: list[str] = []
        while len(out) < n:
            if self.position >= len(self.order):
                if self.order:
                    self.epoch += 1
                    if on_epoch_end is not None:
                        units = on_epoch_end()
                if not units:
                    raise ValueError("no active unit to sample from")
                self.order = [units[i] for i in rng.permutation(len(units))]
                self.position = 0
            k = min(n - len(out), len(self.order) - self.position)
            out += self.order[self.position:self.position + k]
            self.position += k
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"order": list(self.order), "position": self.position, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.order = list(state["order"])
        self.position = int(state["position"])
        self.epoch = int(state["epoch"])


class Plateau:
    """Has the per-step training reward stopped rising?

    With window w: plateau once at least 2w steps are recorded and
    mean(last w) - mean(the w before) < tol. `window=None` disables the test.
    """

    def __init__(self, window: int | None = 10, tol: float = 0.01) -> None:
        if window is not None and window < 1:
            raise ValueError(f"plateau_window must be >= 1 step (or None to disable), got {window}")
        self.window = window
        self.tol = float(tol)
        self.history: list[float] = []

    def add(self, reward: float) -> None:
        self.history.append(float(reward))
        if self.window is not None:
            del self.history[:-2 * self.window]

    def reset(self) -> None:
        self.history = []

    def reached(self) -> bool:
        w = self.window
        if w is None or len(self.history) < 2 * w:
            return False
        recent, before = self.history[-w:], self.history[-2 * w:-w]
        return float(np.mean(recent) - np.mean(before)) < self.tol

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = [float(x) for x in state["history"]]
