"""A whole-run time budget (`quickstart.budget_s`) that holds with the final evaluation included.

`run.time_limit_s` stops starting steps after a time; a budget for the whole run must also leave room
for the step being started and for the held-out evaluation after the last step. With a real model that
evaluation costs minutes (SmolLM2 at 4 samples per problem: ~6 of a 60-minute budget), so a fixed
reserve overshoots; the starting evaluation (step 0, same settings, a model of the same size) measures
what the final one will cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

clock: Callable[[], float] = time.monotonic  # the tests drive a fake one


def now() -> float:
    return clock()


@dataclass
class Deadline:
    """`at`: the `now()` by which the run, its final evaluation included, should be done (None: no
    budget). `eval_s`: what that evaluation is expected to cost -- a reserve until the starting
    evaluation has been timed (`measured_eval`), 0 when the run makes none."""

    at: float | None = None
    eval_s: float = 90.0
    last_step_s: float = 0.0

    def measured_eval(self, seconds: float) -> None:
        self.eval_s = seconds

    def measured_step(self, seconds: float) -> None:
        self.last_step_s = seconds

    def leaves_room(self) -> bool:
        """Whether one more step (as long as the last one) and the final evaluation still fit."""
        return self.at is None or now() + self.last_step_s + self.eval_s <= self.at
