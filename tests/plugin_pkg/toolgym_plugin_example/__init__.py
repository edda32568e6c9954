"""An example toolgym plugin: a "reverse the word" family registered through an entry point."""

from __future__ import annotations

import random

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
