"""N learner ranks as Ray actors, seen by the driver as one learner (`run.learners > 1`).

Why: a model that trains too slowly on one device (DDP) or does not fit one (FSDP2) needs several
learner processes in one torch.distributed group, but the driver should stay a single controller
that reads like the algorithm. `LearnerGroup` gives the driver, `RunState` and the checkpoint code
exactly what they use from an in-process `Learner`:

    update(samples)          the same full sample list to every rank; each `Learner` takes its shard
                             and all-reduces the loss normalisers (2 ranks x 2 = 1 rank x 4, see
                             learner.py); DDP averages the gradients -> rank 0's metrics
    policy_state()           rank 0's full weights on CPU, for the weight sync to the engines
    model.save_pretrained()  rank 0 writes the checkpoint model (on its node: a cluster needs the run
                             directory on a shared filesystem)
    state_dict() / load_state_dict(state)     optimizer, schedule and counters (rank 0's; every rank
                             loads the same state on resume)
    steps_done, steps_skipped, close()

Under DDP every rank holds the same weights, so reading rank 0 is reading all of them. Under FSDP2
each read first gathers the full state dict (a collective, so every rank is called).

Placement: each rank is a Ray actor declaring one GPU on CUDA and `run.cpus_per_learner` CPUs (also
its torch threads). Rank 0 reports its node address and a free port; every rank joins the process
group over `tcp://ADDR:PORT` (gloo on CPU, nccl on CUDA) and builds the same `Learner` as the
single-process path (`build_learner`), with its own `DistInfo`.

Faults: a dead learner actor is FATAL, unlike a dead rollout worker (which is replaced and its
requests retried): a learner holds optimizer state and a place in the process group that the other
ranks block on, so nothing can stand in for it mid-run. The group raises `LearnerDiedError` naming
the rank, and the run is resumed from its latest checkpoint with `--resume`.

Tested on CPU (tests/test_learner_group.py): 2 DDP ranks on gloo through `fit()` and local Ray, and
2 FSDP2 ranks on gloo against one learner, with and without a KL (the frozen reference is sharded
like the policy, and a rank with fewer micro-batches pads with forwards). NCCL (and so every GPU
placement) runs the same code path but is not tested without GPUs. An FSDP2 checkpoint keys its
optimizer state by parameter name, a DDP one by index: resume with the strategy that wrote it.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from typing import Any

import torch
from toolgym.trainers.config.checks import uses_reference
from toolgym.trainers.config.schema import TrainConfig
from toolgym.trainers.learner.batching import Sample
from toolgym.trainers.learner.learner import Learner, entropy_mode, policy_loss_fn
from toolgym.trainers.run.heap import release_free_memory

SETUP_TIMEOUT_S = 600.0  # actors not placed and joined by then: the cluster lacks the declared resources


class LearnerDiedError(RuntimeError):
    """A learner rank's actor died: the run cannot go on (resume from the latest checkpoint)."""


def load_trainable(cfg: TrainConfig, model_path: str) -> torch.nn.Module:
    """The policy to train from `model_path` in `model.dtype`, with activation checkpointing when
    `model.gradient_checkpointing` (the SFT warm start and the RL learner alike)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, cfg.model.dtype))
    if cfg.model.gradient_checkpointing:
        # transformers 5 renamed it; the old name warns
        (getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable)()
    return model


def build_learner(cfg: TrainConfig, model_path: str, *, device: str, pad_id: int,
                  dist: Any = None) -> Learner:
    """The run's learner: the policy from `model_path`, the registry loss, AdamW (in-process or a rank)."""
    from transformers import AutoModelForCausalLM

    model = load_trainable(cfg, model_path)
    reference = None
    if uses_reference(cfg):  # frozen: loss.kl_reference (RunState sets the starting policy); FSDP2 shards it
        reference = AutoModelForCausalLM.from_pretrained(cfg.loss.kl_reference or model_path,
                                                         dtype=getattr(torch, cfg.model.dtype))
    return Learner(model, cfg.optimizer, policy_loss_fn(cfg.loss), total_steps=cfg.run.steps,
                   device=device, dist=dist, temperature=cfg.sampling.temperature, pad_id=pad_id,
                   strategy=cfg.run.learner_strategy, entropy=entropy_mode(cfg.loss), reference=reference,
                   reference_in_loss=cfg.loss.kl_coef > 0,
                   behaviour_is=(cfg.loss.behaviour_is, cfg.loss.behaviour_is_cap))


class LearnerRank:
    """One rank (a Ray actor): joins the process group, then runs its `Learner` on the driver's calls."""

    def __init__(self, config: dict[str, Any], model_path: str, rank: int, world_size: int,
                 pad_id: int, device: str) -> None:
        from toolgym.trainers.config.yaml_io import from_dict

        self.cfg = from_dict(TrainConfig, config)
        self.model_path, self.rank, self.world_size = model_path, rank, world_size
        self.pad_id, self.device = pad_id, device
        self.fsdp = self.cfg.run.learner_strategy == "fsdp2"
        self.learner: Learner | None = None
        torch.set_num_threads(max(1, int(self.cfg.run.cpus_per_learner)))

    def address(self) -> tuple[str, int]:
        """This node's address and a free port on it, for the process group's rendezvous (rank 0)."""
        import ray

        host = ray.util.get_node_ip_address()
        with socket.socket() as s:
            s.bind((host, 0))
            return host, int(s.getsockname()[1])

    def setup(self, init_method: str) -> int:
        """Join the process group (blocks until every rank has joined), load the policy, build the learner."""
        from toolgym.trainers.learner.distributed import init_distributed

        if self.device == "cuda":
            os.environ["LOCAL_RANK"] = "0"  # Ray shows each learner actor its own GPU as device 0
        info = init_distributed("nccl" if self.device == "cuda" else "gloo", rank=self.rank,
                                world_size=self.world_size, init_method=init_method)
        torch.manual_seed(self.cfg.run.seed)
        self.learner = build_learner(self.cfg, self.model_path, device=self.device, pad_id=self.pad_id,
                                     dist=info)
        return os.getpid()

    def reference_logprobs(self, samples: Sequence[Sample]) -> list[torch.Tensor]:
        return self.learner.reference_logprobs(samples)

    def update(self, samples: Sequence[Sample],
               entropy_coef: float | None) -> tuple[dict[str, float], int, int]:
        metrics = self.learner.update(samples, entropy_coef)
        release_free_memory()  # the activations, back to the system while the rollouts run
        return metrics, self.learner.steps_done, self.learner.steps_skipped

    def _full_model_state(self) -> dict[str, torch.Tensor]:
        """Every weight, unsharded, on CPU (on rank 0; FSDP2: a collective, empty on other ranks)."""
        if self.fsdp:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

            return get_model_state_dict(self.learner.module,
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return self.learner.policy_state() if self.rank == 0 else {}

    def policy_state(self) -> dict[str, torch.Tensor]:
        return self._full_model_state()

    def save_pretrained(self, path: str, kwargs: dict[str, Any]) -> None:
        state = self._full_model_state() if self.fsdp else None  # DDP: rank 0's model as it is
        if self.rank == 0:
            self.learner.model.save_pretrained(path, state_dict=state, **kwargs)

    def state_dict(self) -> dict[str, Any]:
        state = self.learner.state_dict()
        if self.fsdp:  # the optimizer state gathered into plain full tensors, keyed by parameter name
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

            state["optimizer"] = get_optimizer_state_dict(
                self.learner.module, self.learner.optimizer,
                options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return state if self.rank == 0 else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not self.fsdp:
            self.learner.load_state_dict(state)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(self.learner.module, self.learner.optimizer, state["optimizer"],
                                 options=StateDictOptions(full_state_dict=True))
        self.learner.scheduler.load_state_dict(state["scheduler"])
        self.learner.steps_done = int(state["steps_done"])
        self.learner.steps_skipped = int(state["steps_skipped"])

    def parameters(self, reference: bool = False) -> dict[str, torch.Tensor]:
        """This rank's own parameters on CPU (a full replica under DDP, its shards under FSDP2), of the
        policy or (`reference`) of the KL's frozen reference."""
        module = self.learner.reference if reference else self.learner.module
        local = {k: v.to_local() if hasattr(v, "to_local") else v  # FSDP2 DTensor -> this rank's shard
                 for k, v in module.state_dict().items()}
        return {k.removeprefix("module."): v.detach().to("cpu", copy=True) for k, v in local.items()}


class LearnerGroup:
    """`run.learners` ranks as Ray actors, behind the interface of an in-process `Learner`."""

    def __init__(self, cfg: TrainConfig, model_path: str, *, pad_id: int = 0) -> None:
        import ray
        from toolgym.trainers.run.rollout_pool import init_ray

        self.ray, self.cfg, self.world_size = ray, cfg, cfg.run.learners
        self._started_ray = init_ray(cfg)
        self.actors: list[Any] = []
        self.steps_done = 0  # optimizer steps taken (rank 0's count)
        self.steps_skipped = 0
        self.model = RankZeroModel(self)  # what checkpoints call save_pretrained on
        try:
            self.device = learner_device(cfg, ray.cluster_resources())
            gpus = 1 if self.device == "cuda" else 0
            actor_cls = ray.remote(num_cpus=cfg.run.cpus_per_learner, num_gpus=gpus)(LearnerRank)
            self.actors = [actor_cls.remote(cfg.to_dict(), model_path, rank, self.world_size, pad_id,
                                            self.device) for rank in range(self.world_size)]
            host, port = self._get([self.actors[0].address.remote()], SETUP_TIMEOUT_S)[0]
            self.pids = self._get([a.setup.remote(f"tcp://{host}:{port}") for a in self.actors],
                                  SETUP_TIMEOUT_S)
        except BaseException:
            self.close()
            raise

    def _get(self, refs: list[Any], timeout: float | None = None) -> list[Any]:
        """Every rank's result; the first failure raises at once (the other ranks may be blocked in a
        collective waiting for the failed one, so waiting for them in order would hang)."""
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

        rank_of = {ref: r for r, ref in enumerate(refs)}
        pending, deadline = list(refs), None if timeout is None else time.monotonic() + timeout
        while pending:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            done, pending = self.ray.wait(pending, num_returns=1, timeout=left)
            if not done:
                raise TimeoutError(
                    f"{self.world_size} learner ranks were not placed and joined within {timeout:.0f} s; "
                    f"the Ray cluster may lack their resources ({self.cfg.run.cpus_per_learner} CPUs each, "
                    f"and a GPU each on CUDA): lower run.learners or run.cpus_per_learner")
            try:
                self.ray.get(done[0])
            except (RayActorError, ActorDiedError, ActorUnavailableError) as exc:
                raise LearnerDiedError(
                    f"learner rank {rank_of[done[0]]} of {self.world_size} died ({type(exc).__name__}). A "
                    f"learner holds optimizer state and a place in the process group, so unlike a rollout "
                    f"worker it cannot be replaced mid-run: the run stops here. Resume from the latest "
                    f"checkpoint with `toolgym train --output RUN_DIR --resume` (checkpoint.every sets how "
                    f"often one is written).") from exc
        return self.ray.get(list(refs))

    def _all(self, method: str, *args: Any) -> list[Any]:
        return self._get([getattr(a, method).remote(*args) for a in self.actors])

    def update(self, samples: Sequence[Sample], entropy_coef: float | None = None) -> dict[str, float]:
        """All optimizer steps for one rollout batch on every rank; rank 0's (all-reduced) metrics."""
        shared = self.ray.put(list(samples))  # one copy in the object store, read by every rank
        metrics, self.steps_done, self.steps_skipped = self._all("update", shared, entropy_coef)[0]
        return metrics

    def reference_logprobs(self, samples: Sequence[Sample]) -> list[torch.Tensor]:
        """The reference policy's log-probs of each sample's targets: from rank 0 under DDP (every rank
        holds the whole reference); under FSDP2 every rank runs the same forwards (each gathers the
        shards of the others) and rank 0's result is returned."""
        if self.cfg.run.learner_strategy != "fsdp2":
            return self._get([self.actors[0].reference_logprobs.remote(list(samples))])[0]
        return self._all("reference_logprobs", self.ray.put(list(samples)))[0]

    def policy_state(self) -> dict[str, torch.Tensor]:
        """The policy's full weights on CPU (rank 0's), for syncing to inference engines."""
        return self._all("policy_state")[0]

    def state_dict(self) -> dict[str, Any]:
        return self._all("state_dict")[0]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._all("load_state_dict", self.ray.put(state))
        self.steps_done, self.steps_skipped = int(state["steps_done"]), int(state["steps_skipped"])

    def rank_parameters(self, reference: bool = False) -> list[dict[str, torch.Tensor]]:
        """Each rank's own parameters of the policy or the reference (tests check that DDP replicas stay
        identical and that FSDP2 shards both)."""
        return self._all("parameters", reference)

    def close(self) -> None:
        """Stop every rank (killed, not drained: a rank may be blocked in a collective) and Ray if
        this group started it."""
        for actor in self.actors:
            self.ray.kill(actor, no_restart=True)
        self.actors = []
        if self._started_ray:
            self.ray.shutdown()
            self._started_ray = False


class RankZeroModel:
    """Stands in for `learner.model` in checkpoints: `save_pretrained` is done by rank 0."""

    def __init__(self, group: LearnerGroup) -> None:
        self.group = group

    def save_pretrained(self, path: str | os.PathLike[str], **kwargs: Any) -> None:
        self.group._all("save_pretrained", os.fspath(path), kwargs)


def learner_device(cfg: TrainConfig, resources: dict[str, float]) -> str:
    """cuda when asked or (auto) when the Ray cluster has GPUs, else cpu; checks local Ray has room
    for the learner ranks and the rollout workers together (a shortfall would otherwise hang)."""
    run, rollout = cfg.run, cfg.rollout
    gpus = float(resources.get("GPU", 0.0))
    if run.device == "cuda" and gpus < 1:
        raise RuntimeError("run.device=cuda but the Ray cluster has no GPU; use run.device=cpu (or auto)")
    device = "cuda" if run.device == "cuda" or (run.device == "auto" and gpus >= 1) else "cpu"
    if run.ray == "local":
        workers = rollout.num_workers + (cfg.eval.background and cfg.eval.problems > 0)  # + the evaluator
        need = {"CPU": run.learners * run.cpus_per_learner + workers * rollout.cpus_per_worker,
                "GPU": run.learners * (device == "cuda") + workers * rollout.gpus_per_worker}
        short = {k: v for k, v in need.items() if v > float(resources.get(k, 0.0)) + 1e-9}
        if short:
            have = {k: float(resources.get(k, 0.0)) for k in short}
            raise ValueError(
                f"local Ray has {have} but the run declares {short} (run.learners x run.cpus_per_learner "
                f"+ rollout.num_workers (+ 1 with eval.background) x rollout.cpus_per_worker, and a GPU per "
                f"learner on CUDA): raise "
                f"run.ray_num_cpus, or lower run.cpus_per_learner (fractions such as 0.5 are allowed) or "
                f"the worker and learner counts")
    return device
