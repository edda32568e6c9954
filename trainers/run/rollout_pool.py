"""Where rollout workers run: Ray actors (local Ray or a cluster) or the driver's own process.

Both pools give the same episodes for the same weights, requests and seed: requests are cut into the
same contiguous chunks, and chunk i is always rolled out with `chunk_seed(seed, i)` (the in-process
pool runs the chunks one after another on its single worker).

Fault handling (Ray): a chunk whose actor died is re-submitted to a fresh actor, which first loads the
latest weights; after `rollout.request_retries` failed re-submissions the error propagates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from toolgym.agents.episode import Episode
from toolgym.envs.types import TaskRequest
from toolgym.trainers.config.schema import TrainConfig
from toolgym.trainers.run.weight_payload import WeightPayload
from toolgym.trainers.run.workers import RolloutWorker, chunk_seed, split_chunks


class RolloutPool(Protocol):
    """What the driver asks of its rollout workers, in one process (`LocalPool`) or on Ray (`RayPool`)."""

    restarts: int  # workers replaced after dying
    retried: int  # requests re-submitted after their worker died

    def submit(self, requests: Sequence[TaskRequest], seed: int,
               max_response_tokens: int | None = None, group_size: int | None = None) -> Any:
        """Start rolling out `requests` with the weights the workers hold once their queued calls are
        done; a handle for `collect`. `group_size` episodes per request (None: rollout.group_size)."""
        ...

    def collect(self, handle: Any) -> list[Episode]: ...

    def rollout(self, requests: Sequence[TaskRequest], seed: int,
                max_response_tokens: int | None = None, group_size: int | None = None) -> list[Episode]: ...

    def sync(self, weights: dict[str, Any], version: int | None = None, wait: bool = True) -> None:
        """New weights (tagged `version`) to every worker, after the rollouts already submitted;
        `wait=False` returns at once (the next collect surfaces a failure)."""
        ...

    def busy_seconds(self) -> list[float]: ...

    def evaluate(self, **kwargs: Any) -> dict[str, Any]: ...

    def submit_eval(self, **kwargs: Any) -> Any:
        """Start a held-out evaluation on a snapshot of the latest synced weights (`eval.background`);
        a handle for `eval_ready` / `collect_eval`. Training goes on meanwhile."""
        ...

    def eval_ready(self, handle: Any) -> bool: ...

    def collect_eval(self, handle: Any) -> dict[str, Any]: ...

    def peak_rss_mb(self) -> list[float]: ...

    def sandbox_isolation(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def init_ray(cfg: TrainConfig) -> bool:
    """Start local Ray or join the cluster of `cfg.run`, unless Ray is already up; True if started here
    (the caller then shuts it down). Shared by the rollout pool and the learner group."""
    import ray

    if ray.is_initialized():
        return False
    if cfg.run.ray == "cluster":
        ray.init(address=cfg.run.ray_address or "auto", include_dashboard=False, log_to_driver=False)
    else:
        # no idle Python workers started ahead of tasks: this run's actors start their own processes,
        # and each idle one held ~90-190 MB of a 2-core machine's memory doing nothing
        ray.init(num_cpus=cfg.run.ray_num_cpus, num_gpus=None, include_dashboard=False, log_to_driver=False,
                 _system_config={"prestart_worker_first_driver": False})
    return True


def worker_threads(cfg: TrainConfig) -> int:
    """Intra-op threads of a worker's engine: its declared CPUs (the same in both pools)."""
    return max(1, int(cfg.rollout.cpus_per_worker))


class LocalPool:
    """The stages in one process (`run.ray: off`): one worker, chunks run in turn."""

    def __init__(self, model_path: str, cfg: TrainConfig, version: int = 0) -> None:
        self.cfg = cfg
        self.worker = RolloutWorker(model_path, cfg.to_dict(), 0, worker_threads(cfg), version)
        self.restarts = 0
        self.retried = 0

    def submit(self, requests: Sequence[TaskRequest], seed: int,
               max_response_tokens: int | None = None, group_size: int | None = None) -> list[Episode]:
        """Rolled out at once, with the current weights: the staleness of `run.max_staleness`
        without the overlap (one process has nothing to overlap with)."""
        chunks = split_chunks(requests, self.cfg.rollout.num_workers)
        return [ep for i, chunk in enumerate(chunks)
                for ep in self.worker.rollout(chunk, chunk_seed(seed, i), max_response_tokens, group_size)]

    def collect(self, handle: list[Episode]) -> list[Episode]:
        return handle

    def rollout(self, requests: Sequence[TaskRequest], seed: int,
                max_response_tokens: int | None = None, group_size: int | None = None) -> list[Episode]:
        return self.submit(requests, seed, max_response_tokens, group_size)

    def sync(self, weights: dict[str, Any], version: int | None = None, wait: bool = True) -> None:
        self.worker.update_weights(weights, version)

    def busy_seconds(self) -> list[float]:
        return [self.worker.busy_seconds()]

    def evaluate(self, **kwargs: Any) -> dict[str, Any]:
        return self.worker.evaluate(**kwargs)

    def submit_eval(self, **kwargs: Any) -> dict[str, Any]:
        """Evaluated at once with the current weights (one process has nothing to overlap with)."""
        return self.worker.evaluate(**kwargs)

    def eval_ready(self, handle: dict[str, Any]) -> bool:
        return True

    def collect_eval(self, handle: dict[str, Any]) -> dict[str, Any]:
        return handle

    def peak_rss_mb(self) -> list[float]:
        return []  # the worker lives in the driver process, whose peak is measured there

    def sandbox_isolation(self) -> dict[str, Any]:
        return self.worker.sandbox_isolation()

    def close(self) -> None:
        self.worker.close()


class RayPool:
    """`rollout.num_workers` Ray actors, each declaring `cpus_per_worker` / `gpus_per_worker`."""

    def __init__(self, model_path: str, cfg: TrainConfig, version: int = 0) -> None:
        import ray

        self.ray, self.cfg, self.model_path = ray, cfg, model_path
        self._started_ray = init_ray(cfg)
        self._actor_cls = ray.remote(num_cpus=cfg.rollout.cpus_per_worker,
                                     num_gpus=cfg.rollout.gpus_per_worker)(RolloutWorker)
        self._weights_ref, self._version, self._sync_refs = None, version, []
        self.actors = [self._spawn(i) for i in range(cfg.rollout.num_workers)]
        self.eval_actor = self._spawn_eval_worker() if background_eval(cfg) else None
        self.restarts = 0  # actors replaced after dying
        self.retried = 0  # task requests re-submitted

    def _spawn(self, index: int) -> Any:
        actor = self._actor_cls.remote(self.model_path, self.cfg.to_dict(), index, worker_threads(self.cfg),
                                       self._version)
        if self._weights_ref is not None:  # ordered before any later call
            actor.update_weights.remote(self._weights_ref, self._version)
        return actor

    def _spawn_eval_worker(self) -> Any:
        """The worker of background evaluations (`eval.background`): one more rollout worker's
        resources, so that evaluating never holds up the rollouts queued on the others."""
        cfg = self.cfg
        if cfg.run.ray == "local":
            need = (cfg.rollout.num_workers + 1) * cfg.rollout.cpus_per_worker
            have = float(self.ray.cluster_resources().get("CPU", 0.0))
            if need > have + 1e-9:
                raise ValueError(f"eval.background needs one more rollout worker's CPUs: local Ray has "
                                 f"{have:g}, the workers and the evaluator declare {need:g} ((rollout."
                                 f"num_workers + 1) x rollout.cpus_per_worker); raise run.ray_num_cpus or "
                                 f"set eval.background=false")
        return self._actor_cls.remote(self.model_path, cfg.to_dict(), len(self.actors), worker_threads(cfg),
                                      self._version)

    def _replace(self, index: int) -> None:
        self.ray.kill(self.actors[index], no_restart=True)
        self.actors[index] = self._spawn(index)
        self.restarts += 1

    def submit(self, requests: Sequence[TaskRequest], seed: int, max_response_tokens: int | None = None,
               group_size: int | None = None) -> tuple[list, list, Any]:
        """One chunk per actor, queued behind the actor's earlier calls (Ray runs an actor's calls in
        the order they were made): a weight sync made before this call applies to it, one made after
        it waits for it -- weights change between engine batches, never inside an episode."""
        chunks = split_chunks(requests, len(self.actors))

        def call(actor: Any, index: int) -> Any:  # also the re-submission to a replaced actor
            return actor.rollout.remote(chunks[index], chunk_seed(seed, index), max_response_tokens,
                                        group_size)

        return chunks, [call(self.actors[i], i) for i in range(len(chunks))], call

    def collect(self, handle: tuple[list, list, Any]) -> list[Episode]:
        chunks, refs, call = handle
        self._settle_syncs()
        out: list[Episode] = []
        for i, (chunk, ref) in enumerate(zip(chunks, refs, strict=True)):
            out += self._get_with_retry(i, ref, lambda a, k=i: call(a, k), len(chunk))
        return out

    def rollout(self, requests: Sequence[TaskRequest], seed: int,
                max_response_tokens: int | None = None, group_size: int | None = None) -> list[Episode]:
        return self.collect(self.submit(requests, seed, max_response_tokens, group_size))

    def _get_with_retry(self, index: int, ref: Any, resubmit: Any, n_requests: int) -> Any:
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

        for attempt in range(self.cfg.rollout.request_retries + 1):
            try:
                return self.ray.get(ref)
            except (RayActorError, ActorDiedError, ActorUnavailableError) as exc:
                if attempt == self.cfg.rollout.request_retries:
                    retries = self.cfg.rollout.request_retries
                    raise RuntimeError(f"rollout worker {index} died {attempt + 1} times; giving up "
                                       f"(rollout.request_retries={retries})") from exc
                self._replace(index)
                self.retried += n_requests
                ref = resubmit(self.actors[index])
        raise AssertionError("unreachable")

    def sync(self, weights: dict[str, Any], version: int | None = None, wait: bool = True) -> None:
        self._settle_syncs()
        # out-of-band byte arrays: the store gets the one copy (trainers/run/weight_payload.py)
        self._weights_ref = self.ray.put(WeightPayload.from_tensors(weights))
        self._version = self._version if version is None else version
        self._sync_refs = [a.update_weights.remote(self._weights_ref, self._version) for a in self.actors]
        if wait:
            self._settle_syncs()

    def _settle_syncs(self) -> None:
        """Wait for the weight syncs still queued (a dead actor is replaced, loaded with the latest)."""
        refs, self._sync_refs = self._sync_refs, []
        again = lambda a: a.update_weights.remote(self._weights_ref, self._version)  # noqa: E731
        for i, ref in enumerate(refs):
            self._get_with_retry(i, ref, again, 0)

    def busy_seconds(self) -> list[float]:
        """Seconds each actor spent rolling out and evaluating (since it started)."""
        return [float(self.ray.get(a.busy_seconds.remote(), timeout=60)) for a in self.actors]

    def evaluate(self, **kwargs: Any) -> dict[str, Any]:
        self._settle_syncs()
        ref = self.actors[0].evaluate.remote(**kwargs)
        return self._get_with_retry(0, ref, lambda a: a.evaluate.remote(**kwargs), 0)

    def submit_eval(self, **kwargs: Any) -> Any:
        """Queued on the evaluator behind its earlier evaluations, with the weights last synced: the
        object-store copy of a sync is immutable, so the evaluation sees that snapshot whatever the
        learner does next."""
        if self.eval_actor is None:
            raise RuntimeError("submit_eval needs eval.background=true (the pool has no evaluator)")
        if self._weights_ref is not None:
            self.eval_actor.update_weights.remote(self._weights_ref, self._version)
        return self.eval_actor.evaluate.remote(**kwargs)

    def eval_ready(self, handle: Any) -> bool:
        ready, _ = self.ray.wait([handle], timeout=0)
        return bool(ready)

    def collect_eval(self, handle: Any) -> dict[str, Any]:
        return self.ray.get(handle)

    def sandbox_isolation(self) -> dict[str, Any]:
        """Worker 0's sandbox isolation (every worker runs the same backend on its own node)."""
        return self.ray.get(self.actors[0].sandbox_isolation.remote())

    def peak_rss_mb(self) -> list[float]:
        """Peak resident memory of each actor process (MiB)."""
        return [float(self.ray.get(a.peak_rss_mb.remote(), timeout=60)) for a in self.actors]

    def close(self) -> None:
        for actor in [*self.actors, *([self.eval_actor] if self.eval_actor is not None else [])]:
            try:
                self.ray.get(actor.close.remote(), timeout=30)
            except Exception:  # a dead actor has nothing left to close
                pass
            self.ray.kill(actor, no_restart=True)
        if self._started_ray:
            self.ray.shutdown()


def background_eval(cfg: TrainConfig) -> bool:
    """Whether held-out evaluations run in the background (`eval.background`, with evaluations on)."""
    return cfg.eval.background and cfg.eval.problems > 0


def make_pool(model_path: str, cfg: TrainConfig, version: int = 0) -> RolloutPool:
    """`version`: the weight version of `model_path` (a resumed run's step)."""
    return LocalPool(model_path, cfg, version) if cfg.run.ray == "off" else RayPool(model_path, cfg, version)
