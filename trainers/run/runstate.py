"""Everything a training run holds between steps, built fresh or restored from a checkpoint.

`RunState.create(cfg, run_dir, resume=...)` loads the policy, builds the learner, the curriculum, the
group filter and the rollout pool; `save()` writes a checkpoint; with `resume` the newest checkpoint
of `run_dir` restores weights, optimizer, schedule, curriculum, RNG states and the step, so the next
update is the one an unbroken run would have made.
"""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import yaml
from toolgym.trainers.config.checks import uses_reference
from toolgym.trainers.config.schema import TrainConfig
from toolgym.trainers.learner.learner import Learner
from toolgym.trainers.report.metrics import MetricsLogger
from toolgym.trainers.run.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, set_rng_state
from toolgym.trainers.run.learner_group import LearnerGroup, build_learner

if TYPE_CHECKING:
    from toolgym.curriculum.base import Scheduler
    from toolgym.curriculum.filters import GroupFilter
    from toolgym.trainers.run.ahead import RolloutsAhead
    from toolgym.trainers.run.entropy_control import AdaptiveEntropyController
    from toolgym.trainers.run.rollout_pool import RolloutPool
    from transformers import PreTrainedTokenizerBase


def resolve_device(cfg: TrainConfig) -> str:
    if cfg.run.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("run.device=cuda but no CUDA GPU is visible; use run.device=cpu (or auto)")
    return "cuda" if cfg.run.device != "cpu" and torch.cuda.is_available() else "cpu"


def base_model_path(cfg: TrainConfig, run_dir: Path) -> str:
    """The policy to start from: model.name_or_path, else the tiny model built into the run dir."""
    if cfg.model.name_or_path:  # a folder, a hub id, or a model catalogue name (pulled on first use)
        from toolgym.agents.catalogue import resolve_model

        return resolve_model(cfg.model.name_or_path)
    from toolgym.agents.tiny import build_tiny_model

    target = run_dir / "base_model"
    if not (target / "config.json").exists():
        build_tiny_model(target, seed=cfg.run.seed, **cfg.model.tiny)
    return str(target)


def make_learner(cfg: TrainConfig, path: str, *, pad_id: int) -> Learner | LearnerGroup:
    """The in-process learner, or with `run.learners > 1` the Ray learner ranks (learner_group.py)."""
    if cfg.run.learners > 1:
        return LearnerGroup(cfg, path, pad_id=pad_id)
    return build_learner(cfg, path, device=resolve_device(cfg), pad_id=pad_id)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class RunState:
    cfg: TrainConfig
    run_dir: Path
    model_path: str  # what the rollout workers load at start (then receive weights by sync)
    tokenizer: PreTrainedTokenizerBase
    learner: Learner | LearnerGroup  # LearnerGroup when run.learners > 1
    curriculum: Scheduler
    group_filter: GroupFilter
    entropy: AdaptiveEntropyController | None  # None: a fixed entropy coefficient (or none)
    rng: np.random.Generator  # the curriculum's draws
    logger: MetricsLogger
    step: int = 0
    policy_tokens: int = 0  # generated so far: the probe's, every step's and their refills' (loss-mask 1)
    pool: RolloutPool | None = None  # started by fit() after the run state
    ahead: RolloutsAhead | None = None  # the batches submitted for later steps (run.max_staleness)
    restored_ahead: list[dict[str, Any]] = field(default_factory=list)  # a checkpoint's, for `ahead`
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def create(cls, cfg: TrainConfig, run_dir: str | Path, resume: bool = False) -> RunState:
        from toolgym.curriculum.filters import GroupFilter
        from toolgym.curriculum.registry import make_scheduler
        from toolgym.trainers.config.checks import check_task_options, task_ids
        from toolgym.trainers.report.loggers import make_loggers
        from toolgym.trainers.run.entropy_control import AdaptiveEntropyController
        from transformers import AutoTokenizer

        check_task_options(cfg)  # a bad family option would otherwise only show as errored episodes
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        ckpt = load_checkpoint(run_dir) if resume and latest_checkpoint(run_dir) else None
        if resume and ckpt is None:
            raise FileNotFoundError(f"--resume: no checkpoint under {run_dir}/checkpoints to resume from")
        seed_everything(cfg.run.seed)
        if cfg.run.threads:
            torch.set_num_threads(cfg.run.threads)  # the driver process is the learner's
        path = str(ckpt.model_dir) if ckpt else base_model_path(cfg, run_dir)
        if uses_reference(cfg) and cfg.loss.kl_reference is None:  # the KL's reference: the start, also
            start = base_model_path(cfg, run_dir)                     # on resume (not the checkpoint)
            cfg = cfg.replace(loss=dataclasses.replace(cfg.loss, kl_reference=start))
        tokenizer = AutoTokenizer.from_pretrained(path)
        adaptive = cfg.loss.entropy_target is not None
        entropy = AdaptiveEntropyController.from_config(cfg.loss) if adaptive else None
        learner = make_learner(cfg, path, pad_id=tokenizer.pad_token_id or 0)
        try:
            curriculum = make_scheduler(cfg.curriculum.scheduler, task_ids(cfg),
                                        **cfg.curriculum.options)
            group_filter = GroupFilter(max_attempts=1 + cfg.rollout.max_refill_rounds,
                                       enabled=cfg.rollout.filter_zero_variance)
            (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
            state = cls(cfg, run_dir, path, tokenizer, learner, curriculum, group_filter, entropy,
                        np.random.default_rng(cfg.run.seed),
                        MetricsLogger(run_dir, sinks=make_loggers(cfg.run.log, run_dir, cfg.to_dict())))
            if ckpt is not None:
                state._restore(ckpt)
        except BaseException:
            if isinstance(learner, LearnerGroup):  # its actors would outlive the failed start
                learner.close()
            raise
        return state

    def _restore(self, ckpt: Any) -> None:
        self.learner.load_state_dict(ckpt.trainer_state)
        self.curriculum.load_state_dict(ckpt.curriculum_state)
        self.rng.bit_generator.state = ckpt.driver_state["rng"]
        if self.entropy is not None:
            self.entropy.load_state_dict(ckpt.driver_state["entropy"])
        set_rng_state(ckpt.trainer_state["rng"])
        self.step = ckpt.step
        self.policy_tokens = int(ckpt.driver_state.get("policy_tokens", 0))  # 0: a checkpoint from before
        self.restored_ahead = list(ckpt.driver_state.get("ahead") or [])

    def save(self) -> Path:
        driver = {"rng": self.rng.bit_generator.state, "policy_tokens": self.policy_tokens,
                  "ahead": self.ahead.state_dict() if self.ahead is not None else self.restored_ahead,
                  "entropy": self.entropy.state_dict() if self.entropy is not None else None}
        return save_checkpoint(self.run_dir, self.step, model=self.learner.model, tokenizer=self.tokenizer,
                               learner=self.learner, curriculum_state=self.curriculum.state_dict(),
                               driver_state=driver, config=self.cfg.to_dict(), keep=self.cfg.checkpoint.keep)

    def close(self) -> None:
        self.logger.close()
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        if isinstance(self.learner, LearnerGroup):  # after the pool: the group may own Ray
            self.learner.close()
