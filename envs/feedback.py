"""What the model reads back: the system prompt, tool output, and notices when a limit is reached.

Tool output is cut in the middle when long (the head shows what the code printed first, the tail
keeps the error at the end), and an error is shown as the last lines of its traceback, not the whole
thing: a model needs the exception and the line that raised it, and long tracebacks waste context.
"""

from __future__ import annotations

from toolgym.envs.config import EnvConfig
from toolgym.envs.sandbox.base import ExecResult

DEFAULT_SYSTEM_PROMPT = (
    "You solve the user's task step by step, using a Python interpreter when it helps.\n\n"
    "{instructions}\n\n"
    "You can run code at most {max_tool_calls} times and take at most {max_turns} turns."
)
NO_OUTPUT = "[no output: use print() to see values]"
STATE_LOST = " The interpreter was restarted: variables from earlier calls are gone."


def system_prompt(config: EnvConfig, instructions: str) -> str:
    template = config.system_prompt if config.system_prompt is not None else DEFAULT_SYSTEM_PROMPT
    return (template.replace("{instructions}", instructions)
            .replace("{max_tool_calls}", str(config.max_tool_calls))
            .replace("{max_turns}", str(config.max_turns)))


def truncate_middle(text: str, max_chars: int) -> str:
    """`text` if short enough, else its head and tail around a marker saying how much was cut."""
    if len(text) <= max_chars:
        return text
    marker_room = 60
    keep = max(max_chars - marker_room, 2)
    head, tail = (keep * 3) // 5, keep - (keep * 3) // 5
    cut = len(text) - head - tail
    return f"{text[:head]}\n[... {cut} characters cut ...]\n{text[len(text) - tail:]}"


def short_traceback(result: ExecResult, lines: int) -> str:
    if result.traceback:
        kept = result.traceback.rstrip("\n").splitlines()[-lines:]
        return "\n".join(kept)
    return f"{result.error_type}: {result.error_message or ''}".rstrip()


def format_result(result: ExecResult, config: EnvConfig, timeout: float) -> str:
    """The tool message for one execution."""
    parts = [text.rstrip("\n") for text in (result.stdout, result.stderr) if text and text.strip()]
    lost = STATE_LOST if result.state_lost else ""
    if result.timed_out:
        parts.append(f"TimeoutError: the code ran longer than {timeout:g} s and was stopped.{lost}")
    elif result.memory_exceeded:
        parts.append(f"MemoryError: the code exceeded the memory limit and was stopped.{lost}")
    elif result.crashed:
        detail = f" ({result.error_type}: {result.error_message})" if result.error_type else ""
        parts.append(f"The interpreter crashed{detail}.{lost}")
    elif result.error_type:
        parts.append(short_traceback(result, config.traceback_lines))
    if result.output_truncated:
        parts.append("[output truncated by the sandbox]")
    text = "\n".join(parts) if parts else NO_OUTPUT
    return truncate_middle(text, config.max_output_chars)


def last_call_notice(config: EnvConfig) -> str:
    return (f"\n[That was your last code execution ({config.max_tool_calls} of {config.max_tool_calls}). "
            "Give your final answer next.]")


def limit_notice(reason: str, config: EnvConfig) -> str:
    """The last observation of a truncated episode."""
    return {
        "max_turns": f"The turn limit ({config.max_turns} turns) was reached without a final answer.",
        "max_tool_calls": f"The limit of {config.max_tool_calls} code executions was reached; the code was "
                          "not run.",
        "time": f"The time limit of the episode ({config.episode_time:g} s) was reached."
                if config.episode_time else "The time limit of the episode was reached.",
        "malformed": "The episode ended: the turn had neither a code call nor a final answer.",
        "error": "The episode stopped because the sandbox failed.",
    }[reason]
