"""Supervised warm start on Episode JSONL: the SFT cold start of R1-Code-Interpreter and Klear.

The episodes are trained on with exactly the loss masks RL uses: the loss is the token-mean NLL of the
tokens the policy produced (loss_mask 1: code calls, answers, end-of-turn tokens); prompts and tool
outputs (loss_mask 0) are context only. The same `Learner` as RL does the work (token-budget
micro-batches, global normaliser, clipping, non-finite skip), with `nll_loss` as its loss.

    teacher demos / user trajectories --(only_success)--> samples --(shuffled epochs)--> AdamW steps
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import torch
from toolgym.agents.episode import Episode
from toolgym.trainers.config.schema import OptimizerConfig, SFTConfig
from toolgym.trainers.learner.batching import Sample, micro_batches, sample_from_episode
from toolgym.trainers.learner.learner import Learner, nll_loss, token_logprobs


def sft_samples(episodes: Sequence[Episode], only_success: bool = True) -> list[Sample]:
    """Learner samples of the trainable episodes (advantages unused by the NLL loss)."""
    chosen = [e for e in episodes if e.trainable and e.response_ids and sum(e.loss_mask) > 0
              and (e.success or not only_success)]
    return [sample_from_episode(e, 0.0) for e in chosen]


def sft_optimizer(cfg: SFTConfig, micro_batch_tokens: int = 8192) -> OptimizerConfig:
    """AdamW with linear warmup and cosine decay to 10% over `cfg.steps`."""
    return OptimizerConfig(lr=cfg.lr, warmup_steps=cfg.warmup_steps, schedule="cosine", min_lr_ratio=0.1,
                           grad_clip=1.0, micro_batch_tokens=micro_batch_tokens)


def run_sft(model: Any, episodes: Sequence[Episode], cfg: SFTConfig, *, seed: int = 0, device: str = "cpu",
            pad_id: int = 0, micro_batch_tokens: int = 8192,
            on_step: Callable[[int, dict[str, float]], None] | None = None) -> list[dict[str, float]]:
    """Train `model` in place for `cfg.steps` steps of `cfg.batch_size` episodes; per-step metrics."""
    samples = sft_samples(episodes, cfg.only_success)
    if not samples:
        raise ValueError(f"no trainable episodes among {len(episodes)} (only_success={cfg.only_success}): "
                         "SFT needs episodes with loss-mask-1 tokens (e.g. solved teacher demos)")
    learner = Learner(model, sft_optimizer(cfg, micro_batch_tokens), nll_loss, total_steps=cfg.steps,
                      device=device, pad_id=pad_id, entropy="none", measure_mismatch=False)
    rng = random.Random(seed)
    order: list[int] = []
    history = []
    for step in range(1, cfg.steps + 1):
        batch = []
        while len(batch) < min(cfg.batch_size, len(samples)):
            if not order:
                order = list(range(len(samples)))
                rng.shuffle(order)
            batch.append(samples[order.pop()])
        metrics = learner.update(batch)
        history.append(metrics)
        if on_step is not None:
            on_step(step, metrics)
    model.eval()
    return history


def mean_nll(model: Any, episodes: Sequence[Episode], *, device: str = "cpu", pad_id: int = 0,
             only_success: bool = True, micro_batch_tokens: int = 8192) -> float:
    """Token-mean NLL of the episodes' policy tokens under `model` (no update)."""
    samples = sft_samples(episodes, only_success)
    total, count = 0.0, 0.0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for mb in micro_batches(samples, micro_batch_tokens, pad_id):
            mb = mb.to(device)
            logp, _ = token_logprobs(model, mb)
            total += float(-(logp * mb.mask).sum())
            count += float(mb.mask.sum())
    model.train(was_training)
    return total / max(count, 1.0)
