"""`ToolEnv`: a multi-turn Gymnasium environment where an LLM reasons with a Python interpreter.

Built by composition, not a class tree: a task family (problems + verifier), a tool-call parser, an
`EnvConfig` (limits and reward weights) and a sandbox session source. One episode:

    reset()      -> [system, user]           system = instructions of the tool format, user = the task
    step(turn)   -> [tool]                   the turn ran code: its output (cut when long)
                 -> [user]                   the turn was malformed: what was wrong (counts against format)
                 -> []  terminated           the turn gave a final answer: the verifier scored it
                 -> [user] truncated         a limit was reached: max_turns, max_tool_calls, time
                                             (or the sandbox failed: finish_reason "error")

A code request beyond max_tool_calls, or on the last allowed turn, is not run; a turn arriving after
the episode's time budget is not processed at all (not even an answer).

The reward is paid on the last step (see config.py); `info` keys are documented in info.py.
`reset(options=...)` accepts "index" (the instance; default drawn from `self.np_random`),
"session" (run the episode in this session, e.g. a `fork()` of a warmed-up one -- the environment
then owns it and closes it at the end of the episode) and "run_setup" (default True: run the
problem's setup code first; pass False when the given session already ran it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
from toolgym.envs.config import EnvConfig, episode_reward
from toolgym.envs.feedback import format_result, last_call_notice, limit_notice, system_prompt
from toolgym.envs.info import REWARD_COMPONENTS, ResetInfo, StepInfo
from toolgym.envs.parsers import DEFAULT_FORMAT, ParsedTurn, get_parser, invalid
from toolgym.envs.sandbox.base import ExecResult, Session
from toolgym.envs.sessions import SessionSource
from toolgym.envs.spaces import chat_observation_space, text_action_space
from toolgym.envs.task import Problem, TaskFamily

Message = dict[str, str]
StepResult = tuple[list[Message], float, bool, bool, StepInfo]
MAX_CONTENT_CHARS = 1 << 24  # observation space bound on one message's content (prompts can be long)
RESET_OPTIONS = ("index", "session", "run_setup")


@dataclass
class _Episode:
    """Counters and resources of the running episode."""

    problem: Problem
    index: int
    started: float
    session: Session | None = None
    release: Any = None  # callable giving the session back
    turn: int = 0
    tool_calls: int = 0
    tool_errors: int = 0
    timeouts: int = 0
    format_errors: int = 0
    answer: str | None = None
    score: float = 0.0
    finish_reason: str | None = None
    error: str | None = None
    sandbox_s: float = 0.0
    verify_s: float = 0.0
    transcript: list[Message] = field(default_factory=list)


class ToolEnv(gym.Env[list[Message], str]):
    """A task family as a Gymnasium environment over a stateful Python sandbox."""

    # render_fps is meaningless for text; declared because gymnasium's checker warns without it.
    metadata = {"render_modes": ["ansi"], "render_fps": 1}  # noqa: RUF012 (gymnasium's convention)

    def __init__(self, family: TaskFamily, split: str = "train", config: EnvConfig | None = None,
                 sandbox: Any = None, *, task_id: str | None = None, render_mode: str | None = None) -> None:
        if split not in family.splits:
            raise ValueError(f"{task_id or family.name}: unknown split {split!r}; this task declares "
                             f"{', '.join(map(repr, family.splits))}.")
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}.")
        self.family = family
        self.split = split
        self.config = config if config is not None else EnvConfig()
        self.task_id = task_id or family.name
        self.render_mode = render_mode
        self.tool_format = self.config.tool_format or getattr(family, "tool_format", None) or DEFAULT_FORMAT
        self.parser = get_parser(self.tool_format)
        self.action_space = text_action_space(self.config.max_action_chars)
        self.observation_space = chat_observation_space(MAX_CONTENT_CHARS)
        self._sessions = SessionSource(sandbox)
        self._episode: _Episode | None = None
        self._instructions = system_prompt(self.config, self.parser.instructions)

    # ---- Gymnasium API -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[list[Message], ResetInfo]:
        super().reset(seed=seed)
        self._end_episode()
        options = dict(options or {})
        unknown = sorted(set(options) - set(RESET_OPTIONS))
        if unknown:
            raise ValueError(f"Unknown reset option(s) {unknown}; known: {', '.join(RESET_OPTIONS)}.")
        index = options.get("index")
        if index is None:
            index = int(self.np_random.integers(0, self._num_instances()))
        problem = self.family.problem(self.split, int(index))
        episode = self._episode = _Episode(problem=problem, index=int(index), started=time.monotonic())
        if options.get("session") is not None:
            episode.session, episode.release = options["session"], options["session"].close
        if problem.setup_code and options.get("run_setup", True):
            try:
                self._run_setup(episode)
            except BaseException:
                self._end_episode()
                self._episode = None
                raise
        messages = [{"role": "system", "content": self._instructions},
                    {"role": "user", "content": problem.prompt}]
        episode.transcript.extend(messages)
        info: ResetInfo = {"task_id": self.task_id, "split": self.split, "index": episode.index,
                           "tool_format": self.tool_format, "stop_strings": list(self.parser.stop_strings),
                           "max_turns": self.config.max_turns, "max_tool_calls": self.config.max_tool_calls}
        return [dict(m) for m in messages], info

    def step(self, action: str) -> StepResult:
        episode = self._running()
        if not isinstance(action, str):
            raise TypeError(f"step() takes the assistant turn as a str, got {type(action).__name__}.")
        episode.turn += 1
        episode.transcript.append({"role": "assistant", "content": action})
        turn = self._parse(action)
        if not turn.well_formed:
            episode.format_errors += 1
        if self._out_of_time(episode):
            return self._finish("time", turn)
        if turn.kind == "answer":
            return self._score(turn)
        last_turn = episode.turn >= self.config.max_turns
        if turn.kind == "invalid":
            if self.config.end_on_malformed:
                return self._finish("malformed", turn)
            if last_turn:
                return self._finish("max_turns", turn)
            return self._reply([{"role": "user", "content": turn.message or ""}], turn)
        if episode.tool_calls >= self.config.max_tool_calls:
            return self._finish("max_tool_calls", turn)
        if last_turn:
            return self._finish("max_turns", turn)
        return self._call(turn)

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self._episode is None:
            return None
        return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in self._episode.transcript)

    def close(self) -> None:
        self._end_episode()
        super().close()

    def __enter__(self) -> ToolEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- public helpers --------------------------------------------------------------------------
    @property
    def problem(self) -> Problem | None:
        """The current instance (None before the first reset)."""
        return self._episode.problem if self._episode else None

    def new_verifier_session(self) -> Session:
        """A fresh session for verifiers that execute code (the verifier closes it)."""
        return self._sessions.new_session()

    def fork_group(self, index: int, n: int) -> list[Session] | None:
        """Sessions for `n` episodes of instance `index`, each already in the state its setup code
        leaves: the setup runs once and the session is forked `n` times (copy-on-write). None when the
        instance has no setup code or `n < 2` (each reset then sets itself up). Start each episode with
        `reset(options={"index": index, "session": s, "run_setup": False})`; the episode closes it."""
        problem = self.family.problem(self.split, int(index))
        if not problem.setup_code or n < 2:
            return None
        base = self._sessions.new_session()
        try:
            result = base.run(problem.setup_code, timeout=self.config.call_timeout)
            if not result.ok:
                raise RuntimeError(f"{self.task_id}: setup code failed: {result.error_type}: "
                                   f"{result.error_message}")
            return [base.fork() for _ in range(n)]
        finally:
            base.close()

    # ---- internals -------------------------------------------------------------------------------
    def _num_instances(self) -> int:
        sized = getattr(self.family, "num_problems", None)
        count = sized(self.split) if callable(sized) else None
        return int(count) if count else 2**31 - 1

    def _running(self) -> _Episode:
        if self._episode is None:
            raise RuntimeError("Call reset() before step().")
        if self._episode.finish_reason is not None:
            raise RuntimeError(f"The episode is over (finish_reason={self._episode.finish_reason!r}); "
                               "call reset() to start another.")
        return self._episode

    def _parse(self, action: str) -> ParsedTurn:
        if len(action) > self.config.max_action_chars:
            return invalid("too_long", f"Your turn was {len(action)} characters long, over the limit of "
                           f"{self.config.max_action_chars}. Write shorter turns.")
        return self.parser.parse(action)

    def _session(self, episode: _Episode) -> Session:
        if episode.session is None:
            episode.session, episode.release = self._sessions.acquire()
        return episode.session

    def _run_setup(self, episode: _Episode) -> None:
        setup = episode.problem.setup_code or ""
        result = self._session(episode).run(setup, timeout=self.config.call_timeout)
        if not result.ok:
            detail = result.traceback or f"{result.error_type}: {result.error_message}"
            raise RuntimeError(f"{self.task_id}: the setup code of instance {episode.problem.index} "
                               f"({self.split}) failed -- a bug in the task family:\n{detail}")

    def _remaining(self, episode: _Episode) -> float | None:
        if self.config.episode_time is None:
            return None
        return self.config.episode_time - (time.monotonic() - episode.started)

    def _out_of_time(self, episode: _Episode) -> bool:
        remaining = self._remaining(episode)
        return remaining is not None and remaining <= 0

    def _call(self, turn: ParsedTurn) -> StepResult:
        episode = self._episode
        assert episode is not None
        remaining = self._remaining(episode)
        timeout = self.config.call_timeout if remaining is None else min(self.config.call_timeout, remaining)
        started = time.monotonic()
        try:
            result = self._session(episode).run(turn.code or "", timeout=timeout)
        except Exception as exc:  # the sandbox itself failed (not the model's code): a rollout error
            episode.error = f"{type(exc).__name__}: {exc}"
            return self._finish("error", turn)
        finally:
            episode.sandbox_s += time.monotonic() - started
        self._count(episode, result)
        content = format_result(result, self.config, timeout)
        if episode.tool_calls == self.config.max_tool_calls:
            content += last_call_notice(self.config)
        reply = [{"role": "tool", "content": content}]
        if self._out_of_time(episode):
            return self._finish("time", turn, reply)
        return self._reply(reply, turn)

    @staticmethod
    def _count(episode: _Episode, result: ExecResult) -> None:
        episode.tool_calls += 1
        episode.tool_errors += 0 if result.ok else 1
        episode.timeouts += 1 if result.timed_out else 0

    def _score(self, turn: ParsedTurn) -> StepResult:
        episode = self._episode
        assert episode is not None and turn.answer is not None
        started = time.monotonic()
        score = self.family.verify(episode.problem, turn.answer, self._sessions.new_session)
        episode.verify_s += time.monotonic() - started
        episode.answer, episode.score = turn.answer, float(score.value)
        return self._finish("answered", turn)

    def _reply(self, messages: list[Message], turn: ParsedTurn) -> StepResult:
        episode = self._episode
        assert episode is not None
        episode.transcript.extend(messages)
        return [dict(m) for m in messages], 0.0, False, False, self._info(turn)

    def _finish(self, reason: str, turn: ParsedTurn, messages: list[Message] | None = None) -> StepResult:
        episode = self._episode
        assert episode is not None
        episode.finish_reason = reason
        if messages is None:
            messages = ([] if reason == "answered"
                        else [{"role": "user", "content": limit_notice(reason, self.config)}])
        episode.transcript.extend(messages)
        self._release(episode)
        info = self._info(turn)
        components = info["reward_components"]
        info["timings"] = {"episode_s": time.monotonic() - episode.started, "sandbox_s": episode.sandbox_s,
                           "verify_s": episode.verify_s}
        terminated = reason == "answered"
        return [dict(m) for m in messages], float(sum(components.values())), terminated, not terminated, info

    def _info(self, turn: ParsedTurn) -> StepInfo:
        episode = self._episode
        assert episode is not None
        finished = episode.finish_reason is not None
        components = (episode_reward(self.config, score=episode.score, format_errors=episode.format_errors,
                                     turns=episode.turn)
                      if finished else dict.fromkeys(REWARD_COMPONENTS, 0.0))
        return {
            "task_id": self.task_id, "split": self.split, "index": episode.index,
            "turn": episode.turn, "action_kind": turn.kind, "well_formed": turn.well_formed,
            "format_problem": turn.problem, "format_errors": episode.format_errors,
            "tool_calls": episode.tool_calls, "tool_errors": episode.tool_errors,
            "timeouts": episode.timeouts, "answer": episode.answer,
            "finish_reason": episode.finish_reason,  # type: ignore[typeddict-item]
            "success": episode.finish_reason == "answered" and episode.score >= 1.0,
            "score": episode.score, "reward_components": components, "error": episode.error,
        }

    @staticmethod
    def _release(episode: _Episode) -> None:
        release, episode.release, episode.session = episode.release, None, None
        if release is not None:
            release()

    def _end_episode(self) -> None:
        if self._episode is not None:
            self._release(self._episode)
