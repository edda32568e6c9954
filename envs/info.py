"""The `info` dictionaries of `ToolEnv.reset` and `ToolEnv.step`: the one documented place for their keys.

Rollout code, loggers and the curriculum read these keys, so they are part of the public contract.
Every key below is present on every call, except the ones marked `NotRequired` (present only on the
step that ends the episode). Values are deterministic given the seed and the actions (timings, which
are not, appear only at the end) so that `gymnasium.utils.env_checker.check_env` can compare them.
"""

from typing import Literal, NotRequired, TypedDict

FinishReason = Literal["answered", "max_turns", "max_tool_calls", "time", "malformed", "error"]
FINISH_REASONS: tuple[str, ...] = ("answered", "max_turns", "max_tool_calls", "time", "malformed", "error")
# "answered" terminates the episode; every other reason truncates it (limits, a malformed turn with
# EnvConfig.end_on_malformed, or the sandbox failing).

ActionKind = Literal["code", "answer", "invalid"]

# Names of the reward components (info["reward_components"]); the step reward is their sum.
REWARD_COMPONENTS: tuple[str, ...] = ("correctness", "format", "budget")


class ResetInfo(TypedDict):
    """`info` returned by `reset`."""

    task_id: str  # the registered id (or the family's name when built without the registry)
    split: str  # "train", "heldout", ...
    index: int  # instance index within the split
    tool_format: str  # "fenced", "xml" or "json"
    stop_strings: list[str]  # strings at which the engine should stop generating a turn
    max_turns: int
    max_tool_calls: int


class StepInfo(TypedDict):
    """`info` returned by `step`."""

    task_id: str
    split: str
    index: int
    turn: int  # turns taken so far, this one included (1 after the first step)
    action_kind: ActionKind  # what this turn was: code to run, a final answer, or malformed
    well_formed: bool  # this turn followed the tool format
    format_problem: str | None  # why the turn was malformed, e.g. "unclosed_code" (parsers.PROBLEMS)
    format_errors: int  # malformed turns so far
    tool_calls: int  # code executions so far
    tool_errors: int  # executions that raised, timed out, ran out of memory or crashed
    timeouts: int  # executions stopped by the per-call timeout
    answer: str | None  # the extracted final answer once given, else None
    finish_reason: FinishReason | None  # None while the episode runs
    success: bool  # the verifier gave a perfect score (only ever True when answered)
    score: float  # the verifier's score in [0, 1] (0.0 until answered)
    reward_components: dict[str, float]  # keys REWARD_COMPONENTS; all 0.0 before the last step
    error: str | None  # why the episode ended with finish_reason "error", else None
    timings: NotRequired[dict[str, float]]  # last step only: "episode_s", "sandbox_s", "verify_s"
