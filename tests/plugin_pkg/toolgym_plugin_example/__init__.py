"""An example toolgym plugin: a "reverse the word" family, a curriculum scheduler and a sandbox
backend, each registered through an entry point (see pyproject.toml) without editing toolgym.

The scheduler and the backend append what they do to the file named by $TOOLGYM_PLUGIN_LOG, so
that a test can see that training used them.
"""

from __future__ import annotations

import json
import os
import random

import numpy as np
from toolgym.curriculum.base import Scheduler
from toolgym.envs.sandbox.local import LocalBackend
from toolgym.envs.task import Problem, Score, SessionFactory

import toolgym

WORDS = ("interpreter", "gymnasium", "curriculum", "sandbox", "verifier", "rollout")


class ReverseWord:
    name = "reverse-word"
    splits = ("train", "heldout")
    tool_format = "xml"
    description = "Reverse a word (plugin example)."

    def problem(self, split: str, index: int) -> Problem:
        rng = random.Random(f"{split}:{index}")
        word = "".join(rng.choice(WORDS) for _ in range(2))
        return Problem(prompt=f"Reverse the string {word!r}.", answer=word[::-1], index=index, split=split,
                       reference_code=f"print({word!r}[::-1])")

    def verify(self, problem: Problem, answer: str, new_session: SessionFactory) -> Score:
        return Score(1.0 if answer.strip().strip("'\"") == problem.answer else 0.0)


def make_family() -> ReverseWord:
    return ReverseWord()


def register_tasks() -> None:
    toolgym.register("plugin-example/reverse-v0", "toolgym_plugin_example:make_family",
                     description="Reverse a word (plugin example).")
    toolgym.register("plugin-example/reverse-eval-v0", "toolgym_plugin_example:make_family",
                     splits=("heldout",), description="Held-out only.")


def _log(event: str, **fields: object) -> None:
    path = os.environ.get("TOOLGYM_PLUGIN_LOG")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"event": event, **fields}) + "\n")


class FirstUnitScheduler(Scheduler):
    """Trains on the first unit only (a deliberately odd order, easy to recognise in a run)."""

    def active_units(self) -> list[str]:
        return [self.units.names[0]]

    def _draw(self, n: int, rng: np.random.Generator) -> list[str]:
        _log("scheduler.draw", n=n, unit=self.units.names[0])
        return [self.units.names[0]] * n


class LoggingBackend(LocalBackend):
    """The local sandbox, logging its construction and every session it starts."""

    def __init__(self, **options: object) -> None:
        _log("sandbox.init", pid=os.getpid())
        super().__init__(**options)

    def new_session(self, *args: object, **kwargs: object):
        _log("sandbox.new_session", pid=os.getpid())
        return super().new_session(*args, **kwargs)
