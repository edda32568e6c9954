"""The rollout runner: many multi-turn episodes in flight, one batched policy call per round.

Why: an episode alternates between the model (a forward pass) and the sandbox (running code). Run
one at a time and the accelerator idles while code runs, and batch size 1 wastes it anyway. So the
runner keeps up to `max_inflight` episodes alive and loops:

    every episode waiting for the model   -> ONE batched `agent.act` call (token prompts in)
    every episode whose turn was sampled  -> `env.step(text)` in a thread pool (sandbox calls overlap,
                                             with each other and with the next model call)
    an episode that ends                  -> an `Episode`; a new group is admitted in its place

How many episodes are alive at once: `max_inflight`, by default twice the batch of an engine that
generates in fixed-size batches one after another (`max_batch_size`, the transformers engine) and
256 otherwise (vLLM and servers batch continuously). More live episodes than an engine computes at
once add no throughput there, only waiting: each episode's wall-clock limit (`EnvConfig.episode_time`,
generation included) would then count the other episodes' generation, and the prefix cache would hold
every live episode's keys and values (SmolLM2's base model, evaluated 48 problems x 4 samples at once
on a CPU with batches of 16, ran out of its 600 s on 191 of 192 episodes).

Episodes finish independently. Before each model call the runner waits for stragglers only while
fewer than `batch_fraction` of the live episodes are waiting, and for at most `max_wait_s` (default:
a tenth of the last model call, within [10 ms, 1 s]: stragglers are worth a short wait when a model
call is expensive, not when it is cheap).

Groups: a `TaskRequest` becomes `group_size` episodes of the same instance with one `group_id`. When
the instance has setup code (an initial interpreter state), it runs once in a base session that is
`fork()`ed for each episode of the group (`reset(options={"session": fork, "run_setup": False})`).

Token faithfulness (token mode, see chat.py): prompt ids are the rendered first messages; each turn
appends the sampled ids (mask 1, behaviour log-probs) and the rendered observations (mask 0). The
engine always continues from exactly `prompt_ids + response_ids`. A turn that would overflow
`max_context`, or the episode's `max_response_tokens` sampled tokens over all turns (a length stage's
cap), is cut to fit (a prefix of a sample is still a sample) and ends the episode with finish
reason "length" (reward 0, truncated); so do observations that overflow `max_context` (the ids past
it are dropped: the engine never reads them; the message history keeps the whole text).
Text mode (a chat engine, or no tokenizer) keeps the messages only.

Failures are data: an engine, sandbox, environment or verifier failure ends that episode with
finish reason "error" and the error text; the other episodes carry on.
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from toolgym.agents.chat import ChatRenderer, Conversation
from toolgym.agents.engine import Generation, SamplingParams
from toolgym.agents.episode import Episode
from toolgym.agents.policies import Agent, ChatAgent, EngineAgent, TurnState
from toolgym.envs import registry
from toolgym.envs.info import REWARD_COMPONENTS
from toolgym.envs.types import TaskRequest


@dataclass
class _Slot:
    """One live episode. Worker threads only call env.reset/step and store `outcome`; the main thread
    applies outcomes (rendering, records), so tokenizers and callbacks never run concurrently."""

    request: TaskRequest
    group_id: str
    sample: int
    env: Any = None
    problem: Any = None
    messages: list[dict[str, str]] = field(default_factory=list)
    conv: Conversation | None = None
    stop: tuple[str, ...] = ()
    turns: int = 0
    policy_tokens: int = 0  # sampled so far, over all turns (the cap of a length stage)
    busy: bool = False  # env work in flight
    outcome: tuple[Any, ...] | None = None  # set by a worker: ("reset"|"continue"|"end"|"error", ...)
    started: float = field(default_factory=time.monotonic)
    timings: dict[str, float] = field(default_factory=lambda: {"generate_s": 0.0, "env_s": 0.0})
    episode: Episode | None = None


def as_agent(policy: Any, tokenizer: Any = None) -> Agent:
    """An `Agent` from an agent, a token engine, or a chat engine (text mode)."""
    if hasattr(policy, "act"):
        return policy
    if getattr(policy, "api", None) == "chat" or (tokenizer is None and hasattr(policy, "chat")):
        return ChatAgent(policy)
    if hasattr(policy, "generate"):
        return EngineAgent(policy)
    raise TypeError(f"expected an Agent (act), an Engine (generate) or a ChatEngine (chat), "
                    f"got {type(policy).__name__}")


UNBOUNDED_INFLIGHT = 256  # live episodes for engines that batch continuously (vLLM, servers)


def default_inflight(agent: Agent) -> int:
    """Live episodes worth keeping for this agent: twice its engine's fixed batch (one batch generating,
    one more ready), else UNBOUNDED_INFLIGHT."""
    batch = getattr(getattr(agent, "engine", None), "max_batch_size", None)
    return 2 * int(batch) if isinstance(batch, int) and batch > 0 else UNBOUNDED_INFLIGHT


class RolloutRunner:
    """Runs `group_size` episodes per `TaskRequest` with many episodes in flight."""

    def __init__(self, policy: Any, tokenizer: Any = None, *, group_size: int = 1,
                 sampling: SamplingParams | None = None, env_kwargs: Mapping[str, Any] | None = None,
                 sandbox: Any = None, max_inflight: int | None = None, max_workers: int = 16,
                 max_context: int | None = None, max_response_tokens: int | None = None,
                 batch_fraction: float = 0.9, max_wait_s: float | None = None,
                 keep_messages: bool = False, on_rewrite: str = "fallback",
                 on_episode: Callable[[Episode], None] | None = None,
                 task_kwargs: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.agent = as_agent(policy, tokenizer)
        max_inflight = default_inflight(self.agent) if max_inflight is None else max_inflight
        if group_size < 1 or max_inflight < 1:
            raise ValueError(f"group_size and max_inflight must be >= 1, got {group_size}, {max_inflight}")
        self.text_mode = tokenizer is None or isinstance(self.agent, ChatAgent)
        self.renderer = None if self.text_mode else ChatRenderer(tokenizer, on_rewrite=on_rewrite)  # type: ignore[arg-type]
        self.group_size = group_size
        self.sampling = sampling or SamplingParams()
        self.env_kwargs = dict(env_kwargs or {})
        # task id -> extra `make` kwargs for that task only (family options, e.g. reward="hard")
        self.task_kwargs = {t: dict(o) for t, o in (task_kwargs or {}).items()}
        self.sandbox = sandbox
        self.max_inflight = max_inflight
        self.max_workers = max_workers
        engine = getattr(self.agent, "engine", None)
        self.max_context = max_context or getattr(engine, "max_context", None) or 1 << 30
        if max_response_tokens is not None and max_response_tokens < 1:
            raise ValueError(f"max_response_tokens must be >= 1 (policy tokens per episode), got "
                             f"{max_response_tokens}")
        # policy tokens an episode may sample over all its turns (a length stage's cap); None = no cap
        self.max_response_tokens = max_response_tokens or 1 << 30
        self.batch_fraction = batch_fraction
        self.max_wait_s = max_wait_s
        self._last_act_s = 0.0
        self.keep_messages = keep_messages
        self.on_episode = on_episode
        self._envs: dict[tuple[str, str], list[Any]] = {}  # idle environments, reused across episodes
        self._lock = threading.Lock()
        self._calls = 0

    # -- public -----------------------------------------------------------------------------------

    def run(self, requests: Sequence[TaskRequest]) -> list[Episode]:
        """All episodes of all requests, ordered by request then sample."""
        groups = []
        for request in requests:
            group_id = uuid.uuid4().hex[:12]  # one id for the G samples of a request
            groups.append([_Slot(request, group_id, g) for g in range(self.group_size)])
        queue = list(reversed(groups))
        live: list[_Slot] = []
        futures: dict[Future, list[_Slot]] = {}
        with ThreadPoolExecutor(self.max_workers, thread_name_prefix="toolgym-rollout") as pool:
            while queue or live:
                while queue and (not live or len(live) + self.group_size <= self.max_inflight):
                    group = queue.pop()
                    live += group
                    self._submit(pool, futures, group, self._start_group, group)
                waiting = self._collect(futures, live)
                if waiting:
                    self._act(waiting, pool, futures)
                live = [s for s in live if s.episode is None]
        return [s.episode for group in groups for s in group]  # type: ignore[misc]

    def close(self) -> None:
        """Close the environments kept for reuse."""
        with self._lock:
            envs, self._envs = self._envs, {}
        for idle in envs.values():
            for env in idle:
                env.close()

    def __enter__(self) -> RolloutRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- scheduling (main thread) -----------------------------------------------------------------

    @staticmethod
    def _submit(pool: ThreadPoolExecutor, futures: dict[Future, list[_Slot]], slots: list[_Slot],
                fn: Callable[..., None], *args: Any) -> None:
        for s in slots:
            s.busy = True
        futures[pool.submit(fn, *args)] = slots

    def _collect(self, futures: dict[Future, list[_Slot]], live: list[_Slot]) -> list[_Slot]:
        """Apply finished env work; return the slots waiting for the model (maybe after a short wait)."""
        started = time.monotonic()
        patience = self.max_wait_s
        if patience is None:
            patience = min(1.0, max(0.01, self._last_act_s / 10))
        while True:
            waiting = [s for s in live if s.episode is None and not s.busy]
            busy = sum(len(v) for v in futures.values())
            elapsed = time.monotonic() - started
            enough = len(waiting) >= self.batch_fraction * (len(waiting) + busy)
            if not futures or (waiting and (enough or elapsed >= patience)):
                return waiting
            timeout = None if not waiting else patience - elapsed
            done, _ = wait(list(futures), timeout=timeout, return_when=FIRST_COMPLETED)
            for future in done:
                for s in futures.pop(future):
                    s.busy = False
                    exc = future.exception()
                    self._apply(s, ("error", exc) if exc is not None else s.outcome)

    def _act(self, waiting: list[_Slot], pool: ThreadPoolExecutor,
             futures: dict[Future, list[_Slot]]) -> None:
        by_stop: dict[tuple[str, ...], list[_Slot]] = {}
        for s in waiting:
            full = not self.text_mode and len(s.conv.next_prompt()) >= self.max_context  # type: ignore[union-attr]
            if full or s.policy_tokens >= self.max_response_tokens:
                self._complete(s, "length")
            else:
                by_stop.setdefault(s.stop, []).append(s)
        for stop, slots in by_stop.items():
            seed = None if self.sampling.seed is None else self.sampling.seed + self._calls
            params = self.sampling.with_(stop=tuple(dict.fromkeys(self.sampling.stop + stop)), seed=seed)
            self._calls += 1
            started = time.monotonic()
            try:
                gens = self.agent.act([self._state(s) for s in slots], params)
                if len(gens) != len(slots):
                    raise RuntimeError(f"the agent returned {len(gens)} generations for {len(slots)} prompts")
            except Exception as exc:
                for s in slots:
                    self._complete(s, "error", error=exc)
                continue
            spent = self._last_act_s = time.monotonic() - started
            for s, gen in zip(slots, gens, strict=True):
                s.timings["generate_s"] += spent
                if self._record_turn(s, gen):
                    self._submit(pool, futures, [s], self._step, s, gen.text)

    def _state(self, s: _Slot) -> TurnState:
        prompt = [] if self.text_mode else s.conv.next_prompt()  # type: ignore[union-attr]
        return TurnState(s.request.task_id, s.problem, s.turns, list(s.messages), s.env.parser, prompt,
                         s.sample)

    def _record_turn(self, s: _Slot, gen: Generation) -> bool:
        """Append a sampled turn; False when the episode ended here (error or context full)."""
        if gen.finish_reason == "error":
            self._complete(s, "error", error=RuntimeError(f"engine: {gen.text}"))
            return False
        s.turns += 1
        s.messages.append({"role": "assistant", "content": gen.text})
        if self.text_mode:
            return True
        room = min(self.max_context - len(s.conv.next_prompt()),  # type: ignore[union-attr]
                   self.max_response_tokens - s.policy_tokens)
        s.conv.add_sampled(gen.ids[:room], gen.logprobs[:room], gen.text)  # type: ignore[union-attr]
        s.policy_tokens += min(len(gen.ids), room)
        if len(gen.ids) > room:
            self._complete(s, "length")
            return False
        return True

    def _apply(self, s: _Slot, outcome: tuple[Any, ...] | None) -> None:
        """Apply a worker's outcome: render observations, or close the episode."""
        kind, *rest = outcome or ("error", RuntimeError("no outcome recorded"))
        try:
            if kind == "error":
                self._complete(s, "error", error=rest[0])
            elif kind == "end":
                obs, reward, truncated, info = rest
                s.messages += obs
                self._complete(s, str(info["finish_reason"]), reward=float(reward), truncated=truncated,
                               info=info, error=info.get("error"))
            elif kind == "reset":
                s.messages = list(rest[0])
                if not self.text_mode:
                    s.conv = Conversation(self.renderer, s.messages)  # type: ignore[arg-type]
            else:  # "continue": the observations of a step
                s.messages += rest[0]
                if not self.text_mode:
                    s.conv.add_observations(rest[0])  # type: ignore[union-attr]
                    s.conv.cut_to(self.max_context)  # type: ignore[union-attr]  # then "length" at _act
        except Exception as exc:
            self._complete(s, "error", error=exc)

    def _complete(self, s: _Slot, finish_reason: str, *, reward: float = 0.0, truncated: bool = True,
                  info: Mapping[str, Any] | None = None, error: Any = None) -> None:
        if s.episode is not None:
            return
        info = info or {}
        if isinstance(error, BaseException):
            error = "".join(traceback.format_exception_only(type(error), error)).strip()
        conv = s.conv
        timings = {**s.timings, **info.get("timings", {}), "total_s": time.monotonic() - s.started}
        s.episode = Episode(
            task_id=s.request.task_id, index=s.request.index, split=s.request.split, group_id=s.group_id,
            prompt_ids=list(conv.prompt_ids) if conv else [],
            response_ids=list(conv.response_ids) if conv else [],
            loss_mask=list(conv.loss_mask) if conv else [], logprobs=list(conv.logprobs) if conv else [],
            reward=reward, reward_components=dict(info.get("reward_components")
                                                  or dict.fromkeys(REWARD_COMPONENTS, 0.0)),
            score=float(info.get("score", 0.0)), success=bool(info.get("success", False)), turns=s.turns,
            tool_calls=int(info.get("tool_calls", 0)), tool_errors=int(info.get("tool_errors", 0)),
            format_errors=int(info.get("format_errors", 0)),
            finish_reason=finish_reason, truncated=bool(truncated), timings=timings,
            error=(error or "failed") if finish_reason == "error" else None, sample=s.sample,
            messages=list(s.messages) if (self.keep_messages or self.text_mode) else None)
        if s.env is not None:
            self._release_env(s.request, s.env)
            s.env = None
        if self.on_episode is not None:
            self.on_episode(s.episode)

    # -- environment work (worker threads) --------------------------------------------------------

    def _start_group(self, group: list[_Slot]) -> None:
        """Reset the group's environments (forking one set-up session when the task has setup code)."""
        request = group[0].request
        try:
            for s in group:
                s.env = self._acquire_env(request)
            sessions = group[0].env.fork_group(request.index, len(group)) or [None] * len(group)
        except Exception as exc:
            for s in group:
                s.outcome = ("error", exc)
            return
        for s, session in zip(group, sessions, strict=True):
            started = time.monotonic()
            options: dict[str, Any] = {"index": request.index}
            if session is not None:
                options.update(session=session, run_setup=False)
            try:
                obs, info = s.env.reset(options=options)
                s.problem = s.env.problem
                s.stop = tuple(info.get("stop_strings", ()))
                s.outcome = ("reset", obs)
            except Exception as exc:
                s.outcome = ("error", exc)
            s.timings["env_s"] += time.monotonic() - started

    def _step(self, s: _Slot, text: str) -> None:
        started = time.monotonic()
        try:
            obs, reward, terminated, truncated, info = s.env.step(text)
            ended = terminated or truncated
            s.outcome = ("end", obs, reward, truncated, info) if ended else ("continue", obs)
        except Exception as exc:  # sandbox or verifier failure: this episode's error, not the batch's
            s.outcome = ("error", exc)
        s.timings["env_s"] += time.monotonic() - started

    # -- environments -----------------------------------------------------------------------------

    def _acquire_env(self, request: TaskRequest) -> Any:
        with self._lock:
            idle = self._envs.setdefault((request.task_id, request.split), [])
            if idle:
                return idle.pop()
        kwargs = {**self.env_kwargs, **self.task_kwargs.get(request.task_id, {})}
        if self.sandbox is not None:
            kwargs["sandbox"] = self.sandbox
        return registry.make(request.task_id, split=request.split, **kwargs)

    def _release_env(self, request: TaskRequest, env: Any) -> None:
        with self._lock:
            self._envs.setdefault((request.task_id, request.split), []).append(env)
