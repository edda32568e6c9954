"""Agents: what decides the next assistant turn of a batch of episodes waiting for one.

Why an agent layer over engines: the rollout runner drives model policies and scripted policies the
same way, so that teacher demonstrations (warm-start data) are produced by exactly the code path that
produces RL episodes -- same rendering, same Episode record, same stop rules. An agent gets one
`TurnState` per waiting episode and returns one `Generation` per state:

- `EngineAgent`: a token engine (HF, vLLM, `toolgym serve` via OpenAIEngine completions) continues
  `state.prompt_ids` (prompt + everything so far): the ids and log-probs are the policy's own.
- `ChatAgent`: a text-level chat engine (API models) continues `state.messages`.
- `TeacherAgent`: runs the problem's reference program through the tool, then answers with the
  program's output. Its turns are tokenised with the model's tokenizer (`encode(text)`, the
  canonical tokenisation) and end with the parser's stop string, exactly what the model would have to
  sample; behaviour log-probs are 0 (not a policy sample -- use these episodes for SFT, not RL).
- `RandomAgent`: random well-formed and malformed turns (code, answers, noise): a baseline and a
  stress test of the environment path.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from toolgym.agents.engine import Generation, SamplingParams
from toolgym.envs.task import Problem


@dataclass
class TurnState:
    """One episode waiting for its next assistant turn."""

    task_id: str
    problem: Problem
    turn: int  # assistant turns taken so far (0 before the first)
    messages: list[dict[str, str]]  # the chat so far (system, user, assistant, tool, ...)
    parser: Any  # the environment's tool-call parser (format_call / format_answer / stop_strings)
    prompt_ids: list[int] = field(default_factory=list)  # [P + R so far] token mode only
    sample: int = 0  # which of the group's G samples


@runtime_checkable
class Agent(Protocol):
    """Decides the next turn of every waiting episode (one batched call)."""

    def act(self, states: Sequence[TurnState], params: SamplingParams) -> list[Generation]: ...


class EngineAgent:
    """A token engine as a policy: continues each state's `prompt_ids`."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def act(self, states: Sequence[TurnState], params: SamplingParams) -> list[Generation]:
        return self.engine.generate([s.prompt_ids for s in states], params)


class ChatAgent:
    """A text-level chat engine as a policy: continues each state's `messages`."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def act(self, states: Sequence[TurnState], params: SamplingParams) -> list[Generation]:
        return self.engine.chat([s.messages for s in states], params)


class _ScriptedAgent:
    """Turns text into a `Generation` the way a sampled turn would look (ids via the tokenizer)."""

    def __init__(self, tokenizer: Any = None) -> None:
        self.tokenizer = tokenizer

    def _generation(self, text: str) -> Generation:
        if self.tokenizer is None:
            return Generation([], [], "stop", text, {"scripted": True})
        ids = list(self.tokenizer.encode(text, add_special_tokens=False))
        return Generation(ids, [0.0] * len(ids), "stop", self.tokenizer.decode(ids), {"scripted": True})

    def act(self, states: Sequence[TurnState], params: SamplingParams) -> list[Generation]:
        return [self._generation(self.turn(s)) for s in states]

    def turn(self, state: TurnState) -> str:
        raise NotImplementedError


class TeacherAgent(_ScriptedAgent):
    """Solves a task from `Problem.reference_code` through the tool, then answers with its output.

    Turn 1 runs the reference program; turn 2 answers with the last line the program printed. A
    problem without a reference program is answered directly with `Problem.answer`.
    """

    def turn(self, state: TurnState) -> str:
        problem, parser = state.problem, state.parser
        if state.turn == 0 and problem.reference_code:
            return parser.format_call(problem.reference_code)
        if problem.reference_code and state.messages and state.messages[-1]["role"] == "tool":
            lines = [line.strip() for line in state.messages[-1]["content"].splitlines() if line.strip()]
            return parser.format_answer(lines[-1] if lines else "")
        return parser.format_answer(_answer_text(problem.answer))


class RandomAgent(_ScriptedAgent):
    """Random turns: small programs (some failing), random answers, and malformed text."""

    def __init__(self, tokenizer: Any = None, seed: int | None = None, answer_prob: float = 0.25) -> None:
        super().__init__(tokenizer)
        self.rng = random.Random(seed)
        self.answer_prob = answer_prob

    def turn(self, state: TurnState) -> str:
        rng, parser = self.rng, state.parser
        roll = rng.random()
        if roll < self.answer_prob:
            return parser.format_answer(str(rng.randint(-100, 10_000)))
        if roll < 0.8:
            a, b = rng.randint(0, 99), rng.randint(0, 9)
            code = rng.choice([f"print({a} + {b})", f"print({a} // {b})", f"x = {a}\nprint(x * {b})",
                               "print(undefined_name)", f"print(sum(range({a})))"])
            return parser.format_call(code)
        return rng.choice(["I am not sure.", "", "```python\nprint(1)", "<answer></answer>", "Let me think."])


def _answer_text(answer: Any) -> str:
    if isinstance(answer, float) and answer.is_integer():
        return str(int(answer))
    return str(answer)
