"""Rollout workers: each owns an inference engine, a sandbox pool and the environments it steps.

The same `RolloutWorker` class runs as a Ray actor (one per `rollout.num_workers`, resources declared
per actor: `cpus_per_worker` for its sandboxes and engine threads, `gpus_per_worker` for vLLM) or
in the driver's process (`run.ray: off`). `WorkerPool` hides the difference from the driver:

    pool.rollout(requests, seed)   requests split into contiguous chunks, one per worker; each chunk
                                   rolled out with seed (seed, chunk) -> the same episodes either way
    pool.sync(weights)             new policy weights to every engine
    pool.evaluate(...)             held-out pass@k on worker 0

Environments are built from `env_kwargs(cfg)` (shared by every task) plus, per task, the family
options of `run.task_options` (`toolgym.trainers.config.checks`), in rollouts and evaluation alike.

Reproducibility: the rollout runner is used in lockstep (every model call takes all live episodes,
a fresh runner per call), so a batch's episodes depend only on the weights, the requests and the seed.
Faults: a worker that dies (actor process killed, out of memory) is replaced by a new actor loaded
with the latest weights, and its chunk is re-submitted up to `rollout.request_retries` times.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from toolgym.agents.engine import SamplingParams
from toolgym.agents.episode import Episode
from toolgym.envs.types import TaskRequest
from toolgym.trainers.config.checks import task_kwargs
from toolgym.trainers.config.schema import TrainConfig
from toolgym.trainers.config.yaml_io import from_dict
from toolgym.trainers.run.heap import release_free_memory
from toolgym.trainers.run.weight_payload import WeightPayload

LOCKSTEP = {"batch_fraction": 1.0, "max_wait_s": 1e6}  # every model call waits for all live episodes


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Temporarily use `n` intra-op threads (same numerics in an actor and in the driver)."""
    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def env_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"max_turns": cfg.rollout.max_turns,
                              "max_tool_calls": cfg.rollout.max_tool_calls}
    if cfg.rollout.tool_format:
        kwargs["tool_format"] = cfg.rollout.tool_format
    return {**kwargs, **cfg.rollout.env}


def sampling_params(cfg: TrainConfig, seed: int | None, temperature: float | None = None) -> SamplingParams:
    s = cfg.sampling
    return SamplingParams(temperature=s.temperature if temperature is None else temperature, top_p=s.top_p,
                          top_k=s.top_k, max_tokens=s.max_new_tokens, seed=seed)


def chunk_seed(seed: int, chunk: int) -> int:
    return (seed * 1_000_003 + chunk * 7919) % (2**31 - 1)


class RolloutWorker:
    """One rollout worker: engine + sandbox pool + environments (a Ray actor or an in-process object)."""

    def __init__(self, model_path: str, config: dict[str, Any], index: int = 0,
                 threads: int | None = None, version: int = 0) -> None:
        """`version`: the weight version of `model_path` (the step of the checkpoint it is)."""
        self.cfg = from_dict(TrainConfig, config)
        self.index, self.threads, self.version = index, threads, version
        self.busy_s = 0.0  # seconds spent in rollouts and evaluations (the rest it waited)
        device = "cuda" if self.cfg.run.device == "cuda" and torch.cuda.is_available() else "cpu"
        self.engine, self.tokenizer = _build_engine(self.cfg, model_path, device)
        self.sandbox = _build_sandbox(self.cfg)

    def pid(self) -> int:
        return os.getpid()

    def rollout(self, requests: Sequence[TaskRequest], seed: int, max_response_tokens: int | None = None,
                group_size: int | None = None) -> list[Episode]:
        """`group_size` episodes per request (None: rollout.group_size; the curriculum probe asks
        for 1), deterministic given the weights and `seed`; at most `max_response_tokens` policy
        tokens per episode (a length stage), else the context limit."""
        from toolgym.agents.rollout import RolloutRunner

        started = time.monotonic()
        group = self.cfg.rollout.group_size if group_size is None else group_size
        with torch_threads(self.threads):
            runner = RolloutRunner(self.engine, self.tokenizer, group_size=group,
                                   sampling=sampling_params(self.cfg, seed), env_kwargs=env_kwargs(self.cfg),
                                   sandbox=self.sandbox, max_context=self.cfg.sampling.max_episode_tokens,
                                   max_response_tokens=max_response_tokens,
                                   task_kwargs=task_kwargs(self.cfg), **LOCKSTEP)
            try:
                episodes = runner.run(list(requests))
            finally:
                runner.close()
                self.busy_s += time.monotonic() - started
                release_free_memory()  # while the learner peaks, the batch's caches are not held
        for episode in episodes:
            episode.policy_version = self.version
        return episodes

    def evaluate(self, tasks: Sequence[str], split: str, problems: int, n: int, ks: Sequence[int],
                 temperature: float, seed: int) -> dict[str, Any]:
        """Held-out pass@k with the current weights (agents' `evaluate`)."""
        from toolgym.agents.evaluate import evaluate

        started = time.monotonic()
        with torch_threads(self.threads):
            result = evaluate(self.engine, self.tokenizer, list(tasks), split=split, n=n, ks=ks,
                            num_problems=problems, sampling=sampling_params(self.cfg, seed, temperature),
                            env_kwargs=env_kwargs(self.cfg), sandbox=self.sandbox, progress=False,
                            task_kwargs=task_kwargs(self.cfg))
        self.busy_s += time.monotonic() - started
        release_free_memory()  # the evaluation's caches, back to the system (trainers/run/heap.py)
        return {**result, "policy_version": self.version}

    def sandbox_isolation(self) -> dict[str, Any]:
        """The isolation this worker's sandbox actually obtained (`IsolationReport.to_dict()`)."""
        from toolgym.envs.sandbox import describe_isolation

        return describe_isolation(getattr(self.sandbox, "backend", self.sandbox)).to_dict()

    def update_weights(self, state: dict[str, torch.Tensor] | WeightPayload,
                       version: int | None = None) -> None:
        """New policy weights (between engine batches: a call never interrupts a rollout) and their
        version, with which the episodes generated from now on are tagged. A `WeightPayload` (what
        RayPool sends) is read in place from the object store."""
        self.engine.update_weights(state.tensors() if isinstance(state, WeightPayload) else state)
        release_free_memory()  # the prefix cache the new weights invalidated
        if version is not None:
            self.version = version

    def busy_seconds(self) -> float:
        return self.busy_s

    def peak_rss_mb(self) -> float:
        from toolgym.trainers.report.metrics import peak_rss_mb

        return peak_rss_mb()

    def close(self) -> None:
        close = getattr(self.sandbox, "close", None)
        if close is not None:
            close()


def _build_engine(cfg: TrainConfig, model_path: str, device: str) -> tuple[Any, Any]:
    if cfg.engine.kind == "vllm":
        from toolgym.agents.vllm_engine import VLLMEngine

        engine = VLLMEngine(model_path, dtype=cfg.model.dtype,
                            gpu_memory_utilization=cfg.engine.gpu_memory_utilization,
                            max_model_len=cfg.sampling.max_episode_tokens)
        return engine, engine.tokenizer
    from toolgym.agents.hf_engine import HFEngine

    engine = HFEngine.from_pretrained(model_path, device=device, dtype=cfg.model.dtype,
                                      max_batch_size=cfg.engine.max_batch)
    return engine, engine.tokenizer


def _build_sandbox(cfg: TrainConfig) -> Any:
    from toolgym.envs.sandbox import SessionPool, make_sandbox

    return SessionPool(make_sandbox(cfg.rollout.sandbox), size=cfg.rollout.sandbox_pool, own_backend=True)


def split_chunks(requests: Sequence[TaskRequest], k: int) -> list[list[TaskRequest]]:
    """Contiguous, nearly equal chunks (empty chunks dropped)."""
    n = len(requests)
    bounds = [round(j * n / k) for j in range(k + 1)]
    return [list(requests[bounds[j]:bounds[j + 1]]) for j in range(k) if bounds[j + 1] > bounds[j]]
