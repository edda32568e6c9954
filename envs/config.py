"""`EnvConfig`: the limits, reward weights and tool format of a `ToolEnv`, validated on construction.

Reward (R1-Code-Interpreter, arXiv 2505.21668, plus Klear-style soft correctness):

    reward = correct_weight * score                          # verifier score in [0, 1], e.g. pass rate
           + (format_weight if every turn was well formed else -format_weight)
           - (budget_penalty if turn_budget is not None and turns > turn_budget else 0)

It is paid once, on the step that ends the episode (earlier steps pay 0.0), and each term is reported
under `info["reward_components"]` ("correctness", "format", "budget"). Set `format_weight=0` for
plain correctness rewards.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any

from toolgym.envs.parsers import PARSERS


@dataclass(frozen=True)
class EnvConfig:
    """How one environment behaves. Every field can be passed to `toolgym.make(id, field=value)`."""

    tool_format: str | None = None  # "fenced", "xml" or "json"; None: the task's own format
    max_turns: int = 10  # assistant turns before truncation ("max_turns")
    max_tool_calls: int = 8  # code executions allowed; one more request truncates ("max_tool_calls")
    call_timeout: float = 10.0  # seconds per code execution
    episode_time: float | None = 600.0  # wall seconds from reset, generation included ("time"); None: off
    max_output_chars: int = 4000  # tool output longer than this is cut in the middle
    max_action_chars: int = 100_000  # a longer assistant turn is refused as malformed ("too_long")
    end_on_malformed: bool = False  # True: a turn with neither a tool call nor an answer ends the episode
    # ("malformed", as TRL's tool loop does); False: the model is told what was wrong and tries again
    traceback_lines: int = 8  # an error shows at most this many last lines of its traceback
    correct_weight: float = 1.0  # weight of the verifier's score
    format_weight: float = 0.1  # +w if every turn was well formed, -w otherwise; 0 disables
    turn_budget: int | None = None  # turns allowed before `budget_penalty` applies; None disables
    budget_penalty: float = 0.1  # subtracted once when turns > turn_budget
    system_prompt: str | None = None  # replaces the default; "{instructions}" is filled with the format's

    def __post_init__(self) -> None:
        if self.tool_format is not None and self.tool_format not in PARSERS:
            raise ValueError(f"EnvConfig.tool_format: {PARSERS.unknown_message(self.tool_format)}")
        _at_least("max_turns", self.max_turns, 1)
        _at_least("max_tool_calls", self.max_tool_calls, 0)
        _positive("call_timeout", self.call_timeout)
        if self.episode_time is not None:
            _positive("episode_time", self.episode_time)
        _at_least("max_output_chars", self.max_output_chars, 64)
        _at_least("max_action_chars", self.max_action_chars, 1)
        _at_least("traceback_lines", self.traceback_lines, 1)
        if self.turn_budget is not None:
            _at_least("turn_budget", self.turn_budget, 1)
        for name in ("correct_weight", "format_weight", "budget_penalty"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"EnvConfig.{name} must be a number >= 0, got {value!r}.")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def replace(self, **overrides: Any) -> EnvConfig:
        """A copy with some fields changed; an unknown field is an error naming the known ones."""
        unknown = [key for key in overrides if key not in self.field_names()]
        if unknown:
            raise ValueError(unknown_fields_message(unknown))
        return dataclasses.replace(self, **overrides)


def unknown_fields_message(unknown: list[str]) -> str:
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, EnvConfig.field_names(), n=1)
        hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return (f"Unknown EnvConfig field(s): {', '.join(hints)}. Known fields: "
            f"{', '.join(EnvConfig.field_names())}.")


def _at_least(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"EnvConfig.{name} must be an integer >= {low}, got {value!r}.")


def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"EnvConfig.{name} must be a number of seconds > 0, got {value!r}.")


def episode_reward(config: EnvConfig, *, score: float, format_errors: int, turns: int) -> dict[str, float]:
    """The reward components of a finished episode (their sum is the reward)."""
    formatted = config.format_weight if format_errors == 0 else -config.format_weight
    over = config.turn_budget is not None and turns > config.turn_budget
    return {
        "correctness": float(config.correct_weight * score),
        "format": float(formatted),
        "budget": float(-config.budget_penalty if over else 0.0),
    }
