"""Test helpers for the environment tests: a toy task family and an in-process session.

`ToyAdd` is a tiny family defined here so that the environment tests do not depend on the task
families in `toolgym.tasks` (those are tested on their own, and `test_env_check.py` runs check_env
over every registered id, theirs included).

`InProcessSession` runs code with `exec` in this process: no isolation at all. It exists to test the
environment's own logic (parsing, limits, rewards, info) exactly and fast, and to inject failures
the real sandbox produces only with effort (a timeout, a crash, a sandbox that raises). The
environment is also tested against the real `local` sandbox in test_env_sandbox.py.
"""

from __future__ import annotations

import contextlib
import io
import traceback
from dataclasses import dataclass, field

from toolgym.envs.sandbox.base import ExecResult
from toolgym.envs.task import Problem, Score, SessionFactory


@dataclass
class ToyAdd:
    """'What is a + b?' for small a, b derived from the index; the answer is an integer."""

    name: str = "toy-add"
    splits: tuple[str, ...] = ("train", "heldout")
    tool_format: str = "fenced"
    setup: bool = False  # give every instance setup code defining `a` and `b`
    size: int = 50
    description: str = "Add two numbers (a test family)."

    def num_problems(self, split: str) -> int:
        return self.size

    def problem(self, split: str, index: int) -> Problem:
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r}")
        offset = 0 if split == "train" else 1000
        a, b = 1000 + 7 * index + offset, 2000 + 13 * index
        setup = f"a = {a}\nb = {b}\n" if self.setup else None
        prompt = ("The variables a and b are defined; what is a + b?" if self.setup
                  else f"What is {a} + {b}?")
        return Problem(prompt=prompt, answer=a + b, index=index, split=split, setup_code=setup,
                       reference_code=f"print({a} + {b})")

    def verify(self, problem: Problem, answer: str, new_session: SessionFactory) -> Score:
        try:
            value = int(answer.strip())
        except ValueError:
            return Score(0.0, f"not an integer: {answer!r}")
        return Score(1.0 if value == problem.answer else 0.0)


@dataclass
class InProcessSession:
    """exec() in a private namespace; `script` injects results for the next calls (see module doc)."""

    script: list[ExecResult] = field(default_factory=list)
    namespace: dict = field(default_factory=dict)
    calls: list[tuple[str, float | None]] = field(default_factory=list)
    closed: bool = False
    raise_on_run: Exception | None = None

    def run(self, code: str, timeout: float | None = None) -> ExecResult:
        self.calls.append((code, timeout))
        if self.raise_on_run is not None:
            raise self.raise_on_run
        if self.script:
            return self.script.pop(0)
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(code, "<cell>", "exec"), self.namespace)
        except Exception as exc:
            tb = "".join(traceback.format_exception(exc))
            return ExecResult(stdout=out.getvalue(), error_type=type(exc).__name__, error_message=str(exc),
                              traceback=tb)
        return ExecResult(stdout=out.getvalue())

    def fork(self) -> InProcessSession:
        return InProcessSession(namespace=dict(self.namespace))

    def close(self) -> None:
        self.closed = True


class InProcessBackend:
    """A SandboxBackend of `InProcessSession`s that remembers what it handed out."""

    name = "inprocess"

    def __init__(self) -> None:
        self.sessions: list[InProcessSession] = []

    def new_session(self) -> InProcessSession:
        session = InProcessSession()
        self.sessions.append(session)
        return session

    def close(self) -> None:
        pass


def make_toy_family(**kwargs: object) -> ToyAdd:
    """Entry point used by registry tests: 'envs_support:make_toy_family'."""
    return ToyAdd(**kwargs)  # type: ignore[arg-type]


def noop_plugin() -> None:
    """A plugin entry point that registers nothing (stands in for the built-ins in plugin tests)."""
