"""torch.distributed plumbing for the learner: process group, model wrapping, scalar reductions.

Why a module of its own: the learner's maths must read the same on one process and on N, so every
cross-rank operation goes through these helpers, which are identities when not distributed. NCCL on
GPUs, gloo on CPU (the same code path; tests run two gloo ranks). Launch N ranks with torchrun (the
usual RANK / WORLD_SIZE / MASTER_ADDR variables) or call `init_distributed` from spawned processes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1 and dist.is_available() and dist.is_initialized()

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(backend: str | None = None, *, rank: int | None = None, world_size: int | None = None,
                     init_method: str | None = None) -> DistInfo:
    """Join (or create) the default process group; a single process gets a disabled DistInfo.

    Reads RANK / WORLD_SIZE / LOCAL_RANK when not given. backend None = nccl with CUDA, else gloo.
    """
    rank = int(os.environ.get("RANK", 0)) if rank is None else rank
    world_size = int(os.environ.get("WORLD_SIZE", 1)) if world_size is None else world_size
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if world_size <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        dist.init_process_group(backend, init_method=init_method or "env://", rank=rank,
                                world_size=world_size)
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank)


def wrap_model(model: torch.nn.Module, info: DistInfo, strategy: str = "ddp") -> torch.nn.Module:
    """DDP (default) or FSDP2 (`fully_shard`, for models that do not fit one device) when distributed."""
    if not info.enabled:
        return model
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [info.local_rank] if torch.cuda.is_available() else None
        return DistributedDataParallel(model, device_ids=device_ids)
    if strategy == "fsdp2":
        from torch.distributed.fsdp import fully_shard

        for layer in getattr(getattr(model, "model", model), "layers", []):
            fully_shard(layer)
        return fully_shard(model)
    raise ValueError(f"unknown distributed strategy {strategy!r}; known: ddp, fsdp2")


def wrap_reference(model: torch.nn.Module, info: DistInfo, strategy: str = "ddp") -> torch.nn.Module:
    """The frozen reference policy of a KL: eval mode, no gradients; under FSDP2 sharded like the policy
    (each rank holds 1/N of it and gathers one layer at a time for a forward, so every rank must run
    the same reference forwards), else a plain replica (it has no gradient for DDP to reduce)."""
    model.eval().requires_grad_(False)
    return wrap_model(model, info, "fsdp2") if info.enabled and strategy == "fsdp2" else model


@contextlib.contextmanager
def accumulating(module: torch.nn.Module) -> Iterator[None]:
    """Backward calls inside add to the local gradients without reducing them over ranks (all but the
    last micro-batch of a step): DDP's `no_sync`, FSDP2's `set_requires_gradient_sync(False)`."""
    if hasattr(module, "set_requires_gradient_sync"):  # FSDP2 (an FSDPModule has no no_sync)
        module.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            module.set_requires_gradient_sync(True)
    elif hasattr(module, "no_sync"):
        with module.no_sync():
            yield
    else:
        yield


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)


def all_reduce(value: float, info: DistInfo, op: str = "sum") -> float:
    """Reduce a Python scalar over ranks ("sum" or "max"); identity on one process."""
    if not info.enabled:
        return float(value)
    device = torch.device("cuda", info.local_rank) if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
    return float(t.item())


def all_reduce_sums(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Sum named scalars over ranks, whichever names each rank has (a missing name counts 0).

    Ranks first agree on the union of the names, then reduce one tensor: a rank with no sample in a
    mini-batch has no metric at all, and reducing name by name would pair different names across
    ranks (or hang on a collective the others never call)."""
    if not info.enabled:
        return {k: float(v) for k, v in values.items()}
    gathered: list[list[str] | None] = [None] * info.world_size
    dist.all_gather_object(gathered, sorted(values))
    names = sorted({name for names in gathered for name in names or []})
    if not names:
        return {}
    device = torch.device("cuda", info.local_rank) if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor([float(values.get(k, 0.0)) for k in names], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return dict(zip(names, t.tolist(), strict=True))
