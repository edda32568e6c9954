"""The learner: token log-probs, a pluggable loss, gradient accumulation with a global normaliser, AdamW.

One `update(samples)` call consumes a rollout batch:

    if epochs > 1: old_logp <- log pi_theta(tokens)  (recomputed once, before any step; with a single
                   update per rollout the engine's behaviour log-probs are used as they are)
    for epoch, for mini-batch:
        N_tok = sum of loss weights over the whole mini-batch (all ranks), N_seq likewise
        for each micro-batch (packed by a token budget):
            loss_mb = loss_fn(micro-batch, logp, Normaliser(N_tok, N_seq))   # sum_t L * mask / N
            backward(loss_mb * world_size)     # DDP averages gradients over ranks
        non-finite loss or grad norm -> zero the gradients, skip the step, count it
        clip the global grad norm; AdamW step; schedule step

Because each micro-batch is divided by the mini-batch's global token count (not its own), micro-batch
1 x accumulation 8 gives the same gradient as 8 x 1, and 2 ranks x 4 the same as 1 rank x 8
(tests/test_trainer_learner.py checks both). bf16 autocast is used on CUDA; CPU runs in float32.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Sequence

import torch
from toolgym.trainers.algo.behaviour_is import behaviour_weights, weight_metrics
from toolgym.trainers.algo.loss_api import LossNormalisers, to_floats
from toolgym.trainers.algo.loss_config import LossConfig
from toolgym.trainers.config.schema import OptimizerConfig
from toolgym.trainers.learner.batching import MicroBatch, Sample, micro_batches, shard, split_mini_batches
from toolgym.trainers.learner.distributed import (
    DistInfo,
    accumulating,
    all_reduce,
    all_reduce_sums,
    unwrap,
    wrap_model,
    wrap_reference,
)
from toolgym.trainers.learner.prefix_forward import causal_lm_logits, first_trained_column

_FINITE = "_finite"  # the loss's finiteness rides along with the metrics in the one sync
MISMATCH = "rollout/logprob_mismatch"  # mean |engine - learner| log-prob on the update's policy tokens


def logprob_mismatch(samples: Sequence[Sample], fresh: Sequence[torch.Tensor]) -> float:
    """Mean |engine - learner| log-prob over the samples' loss tokens (weights as the mask)."""
    num = sum(float(((s.old_logp - lp).abs() * s.mask).sum()) for s, lp in zip(samples, fresh, strict=True))
    den = sum(float(s.mask.sum()) for s in samples)
    return num / den if den else 0.0
# loss_fn(micro_batch, logp [B, T-1], entropy [B, T-1] or None, global counts, entropy coefficient of
# this update or None) -> (loss, metric shares as 0-d tensors). Each metric value is this micro-batch's
# share: summed over micro-batches and ranks (see LossOutput). The learner reads all of them, and the
# finiteness of the loss, with one device sync per micro-batch.
LossFn = Callable[[MicroBatch, torch.Tensor, "torch.Tensor | None", LossNormalisers, "float | None"],
                  tuple[torch.Tensor, dict[str, torch.Tensor]]]


def lr_lambda(cfg: OptimizerConfig, total_steps: int) -> Callable[[int], float]:
    """Multiplier of cfg.lr at optimizer step s: linear warmup, then constant / linear / cosine decay."""

    def factor(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "constant":
            return 1.0
        span = max(1, total_steps - cfg.warmup_steps)
        progress = min(1.0, (step - cfg.warmup_steps) / span)
        decay = 1.0 - progress if cfg.schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
        return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * decay

    return factor


def token_logprobs(model: torch.nn.Module, mb: MicroBatch, temperature: float = 1.0,
                   entropy: str = "none", *,
                   share_prefix: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log pi(target) per position [B, T-1], and the full-vocabulary entropy ("none"/"detached"/"grad").

    Logits are computed only from the first position any row trains on (`logits_to_keep`): a
    multi-turn episode's long prompt is context, and the vocabulary projection and softmax over it
    would be most of the non-attention work. Positions before it read 0 (their mask is 0). With
    `share_prefix` the rows' common prefix is fed once (trainers/learner/prefix_forward.py; same values
    and grads).
    """
    first = first_trained_column(mb.mask)  # of [B, T-1]
    keep = mb.input_ids.shape[1] - first  # logits of positions first..T-1
    logits = causal_lm_logits(model, mb.input_ids, _padding_mask(mb.attention_mask), keep,
                              share_prefix=share_prefix)
    logits = logits[:, :-1].float()  # [B, T-1-first, V]: predictions of targets[:, first:]
    if temperature not in (0.0, 1.0):
        logits = logits / temperature
    # log pi = (logit - max) - logsumexp(logit - max), log-softmax's own rounding, without its [B, K, V]
    # output: the shifted logits are the one such tensor the backward keeps (the raw ones are freed)
    logits = logits - logits.detach().amax(dim=-1, keepdim=True)
    lse = torch.logsumexp(logits, dim=-1)  # [B, K]
    logp = logits.gather(-1, mb.targets[:, first:].unsqueeze(-1)).squeeze(-1) - lse
    ent = None
    if entropy == "grad":
        ent = torch.nn.functional.pad(_entropy(logits, lse), (first, 0))  # [B, T-1]
    elif entropy != "none":
        with torch.no_grad():
            ent = torch.nn.functional.pad(_chunked_entropy(logits, lse), (first, 0))
    return torch.nn.functional.pad(logp, (first, 0)), ent  # [B, T-1]


def _entropy(logits: torch.Tensor, lse: torch.Tensor) -> torch.Tensor:
    """Full-vocabulary entropy [B, K] of softmax(logits): lse - sum_v p_v * logit_v."""
    return lse - (torch.exp(logits - lse.unsqueeze(-1)) * logits).sum(-1)


ENTROPY_CHUNK = 128  # positions per chunk: two [B, 128, V] temporaries instead of two [B, K, V]


def _chunked_entropy(logits: torch.Tensor, lse: torch.Tensor) -> torch.Tensor:
    """`_entropy` a chunk of positions at a time (no grad: a logged value, or a detached bonus)."""
    parts = [_entropy(logits[:, i:i + ENTROPY_CHUNK], lse[:, i:i + ENTROPY_CHUNK])
             for i in range(0, logits.shape[1], ENTROPY_CHUNK)]
    return torch.cat(parts, dim=1) if parts else lse.new_zeros(lse.shape)


def _padding_mask(mask: torch.Tensor) -> torch.Tensor | None:
    """None for right-padded rows [B, T] (ones, then zeros): under causal attention no real token sees a
    pad, so the mask changes nothing there, and without it attention runs the fused causal kernel
    instead of the masked one (measured: the learner's step ~10% faster on 550-token episodes). Any
    other layout keeps its mask."""
    return None if bool((mask[:, 1:] <= mask[:, :-1]).all()) else mask


class Learner:
    """Owns the (possibly DDP-wrapped) policy, AdamW and the LR schedule."""

    def __init__(self, model: torch.nn.Module, cfg: OptimizerConfig, loss_fn: LossFn, *, total_steps: int,
                 device: str | torch.device = "cpu", dist: DistInfo | None = None, temperature: float = 1.0,
                 pad_id: int = 0, strategy: str = "ddp", entropy: str = "detached",
                 reference: torch.nn.Module | None = None, reference_in_loss: bool = True,
                 measure_mismatch: bool = True, behaviour_is: tuple[str, float] = ("off", 2.0)) -> None:
        """`behaviour_is`: (mode, cap) of the behaviour importance weights (trainers/algo/behaviour_is.py);
        a mode other than "off" recomputes the old log-probs before each update."""
        self.cfg, self.loss_fn, self.device = cfg, loss_fn, torch.device(device)
        self.behaviour_is = behaviour_is
        self.dist = dist or DistInfo()
        self.temperature, self.pad_id, self.entropy = temperature, pad_id, entropy
        model.to(self.device).train()
        self.module = wrap_model(model, self.dist, strategy)
        # the frozen reference policy of a KL: with `reference_in_loss` (a KL term) its log-probs fill
        # MicroBatch.ref_logp (no grad); reinforce_pp's KL in the reward asks `reference_logprobs`.
        # Under FSDP2 it is sharded like the policy, so every rank runs its forwards in lockstep.
        self.reference = (wrap_reference(reference.to(self.device), self.dist, strategy)
                          if reference is not None else None)
        self.reference_in_loss = reference_in_loss and self.reference is not None
        # rollout/logprob_mismatch needs behaviour log-probs: off for SFT (its samples carry none)
        self.measure_mismatch = measure_mismatch
        # FSDP2 reshards after each forward call, and its backward fails after two calls: DDP or one rank only
        self.share_prefix = cfg.share_prefix and not (self.dist.enabled and strategy == "fsdp2")
        params = [p for p in self.module.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                                           weight_decay=cfg.weight_decay)
        total = max(1, total_steps * cfg.updates_per_rollout)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(cfg, total))
        self.steps_done = 0  # optimizer steps taken
        self.steps_skipped = 0  # non-finite loss / grad steps skipped

    @property
    def model(self) -> torch.nn.Module:
        return unwrap(self.module)

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def recompute_logprobs(self, samples: Sequence[Sample]) -> list[torch.Tensor]:
        """The current policy's log-probs of each sample's targets ([L-1] each, 0 where the mask is 0),
        in sample order (the behaviour log-probs of >1 update per rollout)."""
        return self._logprobs(self.module, samples)

    def reference_logprobs(self, samples: Sequence[Sample]) -> list[torch.Tensor]:
        """The frozen reference policy's log-probs of each sample's targets, like `recompute_logprobs`."""
        if self.reference is None:
            raise RuntimeError("this learner has no reference policy (loss.kl_coef and algo.kl_coef are 0)")
        return self._logprobs(self.reference, samples)

    @torch.no_grad()
    def _logprobs(self, module: torch.nn.Module, samples: Sequence[Sample]) -> list[torch.Tensor]:
        out: list[torch.Tensor | None] = [None] * len(samples)
        budget = self.cfg.micro_batch_tokens
        for mb in micro_batches(samples, budget, self.pad_id, share_prefix=self.share_prefix):
            mb = mb.to(self.device)
            with self._autocast():
                logp, _ = token_logprobs(module, mb, self.temperature, share_prefix=self.share_prefix)
            logp = (logp * (mb.mask != 0)).float().cpu()
            for r, i in enumerate(mb.rows):
                out[i] = logp[r, : samples[i].num_tokens - 1].clone()
        return [x for x in out if x is not None]

    def update(self, samples: Sequence[Sample], entropy_coef: float | None = None) -> dict[str, float]:
        """All optimizer steps for one rollout batch (the same list on every rank); averaged metrics.

        `entropy_coef` is this update's entropy-bonus coefficient when the driver's adaptive controller
        sets it (None = the loss config's fixed one)."""
        samples = list(samples)
        mismatch: float | None = None
        weighed: dict[str, float] = {}  # the behaviour importance weights' metrics
        if self.cfg.epochs > 1 or self.cfg.recompute_old_logprobs or self.behaviour_is[0] != "off":
            fresh = self.recompute_logprobs(samples)
            mismatch = logprob_mismatch(samples, fresh)
            samples, weighed = self._with_proximal(samples, fresh)
        totals: dict[str, float] = {}
        steps = 0
        for _ in range(self.cfg.epochs):
            for indices in split_mini_batches(len(samples), self.cfg.mini_batches):
                local = [samples[i] for i in shard(indices, self.dist.rank, self.dist.world_size)]
                measure = self.measure_mismatch and steps == 0 and mismatch is None
                step = self._step(local, entropy_coef, measure=measure)
                measured = step.pop(MISMATCH, None)
                mismatch = measured if measured is not None else mismatch
                for k, v in step.items():
                    totals[k] = totals.get(k, 0.0) + v
                steps += 1
        out = {**{k: v / max(1, steps) for k, v in totals.items()}, **weighed}
        if mismatch is not None:
            out[MISMATCH] = mismatch
        out["learner/skipped_steps"] = float(self.steps_skipped)
        out["learner/lr"] = float(self.scheduler.get_last_lr()[0])
        return out

    def _with_proximal(self, samples: list[Sample],
                       fresh: list[torch.Tensor]) -> tuple[list[Sample], dict[str, float]]:
        """The samples with the learner's log-probs as old_logp and, with `behaviour_is` on, their
        importance weights against the engine's (behaviour) log-probs; the weights' metrics."""
        mode, cap = self.behaviour_is
        if mode == "off":
            return [dataclasses.replace(s, old_logp=lp) for s, lp in zip(samples, fresh, strict=True)], {}
        pairs = [behaviour_weights(lp, s.old_logp, mode, cap) for s, lp in zip(samples, fresh, strict=True)]
        out = [dataclasses.replace(s, old_logp=lp, is_weight=w)
               for s, lp, (w, _) in zip(samples, fresh, pairs, strict=True)]
        return out, weight_metrics([w for w, _ in pairs], [c for _, c in pairs], [s.mask for s in samples])

    def _normaliser(self, batches: Sequence[MicroBatch]) -> LossNormalisers:
        """The mini-batch's global counts: this rank's micro-batches, summed over ranks."""
        mine = LossNormalisers.total(LossNormalisers.from_batch(mb.mask, positive=mb.positive)
                                     for mb in batches)
        return LossNormalisers(all_reduce(mine.num_tokens, self.dist),
                               all_reduce(mine.num_sequences, self.dist),
                               all_reduce(mine.num_positive_tokens, self.dist))

    def _step(self, local: Sequence[Sample], entropy_coef: float | None,
              measure: bool = False) -> dict[str, float]:
        """One optimizer step on this rank's share of a mini-batch."""
        batches = micro_batches(local, self.cfg.micro_batch_tokens, self.pad_id,
                                share_prefix=self.share_prefix) if local else []
        norm = self._normaliser(batches)
        count = int(all_reduce(len(batches), self.dist, "max"))  # equal backward calls on every rank
        self.optimizer.zero_grad(set_to_none=True)
        metrics: dict[str, float] = {}
        finite = True
        for k in range(count):
            last = k == count - 1
            sync = contextlib.nullcontext() if last or not self.dist.enabled else accumulating(self.module)
            with sync, self._autocast():
                loss, parts = self._micro_loss(batches[k] if k < len(batches) else None, norm, entropy_coef,
                                               measure)
                loss.backward()
            values = to_floats({**parts, _FINITE: torch.isfinite(loss.detach())})  # the one sync
            finite = finite and values.pop(_FINITE) == 1.0
            for name, v in values.items():
                metrics[name] = metrics.get(name, 0.0) + v
        return self._apply(finite, metrics)

    def _micro_loss(self, mb: MicroBatch | None, norm: LossNormalisers, entropy_coef: float | None,
                    measure: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if norm.num_tokens == 0:  # nothing to learn on any rank: every rank takes the same zero loss
            dummy = next(p for p in self.module.parameters() if p.requires_grad)
            return dummy.sum() * 0.0, {}
        # a rank with fewer micro-batches than another still runs forwards, on a padding row with
        # weight 0: FSDP2 all-gathers a layer's shards in each forward, and DDP all-reduces gradients
        # only after a forward through it (a zero loss without one pairs its collectives wrongly)
        if mb is None:
            loss, _ = self._micro_loss(self._padding_batch(), norm, entropy_coef)
            return loss * 0.0, {}
        mb = mb.to(self.device)
        if self.reference_in_loss:
            with torch.no_grad():
                mb.ref_logp, _ = token_logprobs(self.reference, mb, self.temperature,
                                                share_prefix=self.share_prefix)
        logp, ent = token_logprobs(self.module, mb, self.temperature, self.entropy,
                                   share_prefix=self.share_prefix)
        loss, parts = self.loss_fn(mb, logp, ent, norm, entropy_coef)
        if measure:  # before any update: the learner's log-probs of the engine's tokens, vs the engine's
            gap = ((logp.detach() - mb.old_logp).abs() * mb.mask).sum() / norm.num_tokens
            parts = {**parts, MISMATCH: gap}
        return loss * self.dist.world_size, parts

    def _padding_batch(self) -> MicroBatch:
        """One two-token row with nothing trained on it: what a padding step feeds forward."""
        row = Sample(ids=[self.pad_id] * 2, mask=[0.0], old_logp=[0.0], advantages=[0.0])
        return micro_batches([row], self.cfg.micro_batch_tokens, self.pad_id)[0]

    def _apply(self, finite: bool, metrics: dict[str, float]) -> dict[str, float]:
        """Reduce metrics, then clip and step, or skip a non-finite step."""
        metrics = all_reduce_sums(metrics, self.dist)
        finite = all_reduce(0.0 if finite else 1.0, self.dist, "max") == 0.0
        params = [p for p in self.module.parameters() if p.requires_grad]
        max_norm = self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm)) if finite else float("nan")
        if not finite or not math.isfinite(grad_norm):
            self.optimizer.zero_grad(set_to_none=True)
            self.steps_skipped += 1
            return {**metrics, "learner/grad_norm": float("nan"), "learner/nonfinite": 1.0}
        self.optimizer.step()
        self.scheduler.step()
        self.steps_done += 1
        return {**metrics, "learner/grad_norm": grad_norm, "learner/nonfinite": 0.0}

    def policy_state(self) -> dict[str, torch.Tensor]:
        """The policy's weights on CPU, for syncing to inference engines: on a CPU learner the
        parameters themselves (no copy: a sync copies them into the engine or the object store at once)."""
        return {k: v.detach().to("cpu") for k, v in self.model.state_dict().items()}

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "steps_done": self.steps_done, "steps_skipped": self.steps_skipped}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.steps_done, self.steps_skipped = int(state["steps_done"]), int(state["steps_skipped"])


def nll_loss(mb: MicroBatch, logp: torch.Tensor, entropy: torch.Tensor | None, norm: LossNormalisers,
             entropy_coef: float | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Supervised token-mean NLL over the loss mask (warm start); `loss/nll` sums to the mini-batch mean."""
    loss = -(logp * mb.mask).sum() / norm.num_tokens
    return loss, {"loss/nll": loss.detach()}


def policy_loss_fn(cfg: LossConfig) -> LossFn:
    """The registry loss (`compute_policy_loss`) as a learner LossFn."""
    from toolgym.trainers.algo.loss_api import LossInputs
    from toolgym.trainers.algo.objective import compute_policy_loss

    def loss_fn(mb: MicroBatch, logp: torch.Tensor, entropy: torch.Tensor | None, norm: LossNormalisers,
                entropy_coef: float | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        inputs = LossInputs(logp=logp, old_logp=mb.old_logp, advantages=mb.advantages, mask=mb.mask,
                            ref_logp=mb.ref_logp, entropy=entropy, positive=mb.positive, norm=norm,
                            entropy_coef=entropy_coef, is_weight=mb.is_weight)
        out = compute_policy_loss(inputs, cfg)
        return out.loss, out.metrics

    return loss_fn


def entropy_mode(cfg: LossConfig) -> str:
    """Entropy with grad when a bonus can apply, else detached (a metric only)."""
    return "grad" if cfg.entropy_coef > 0 or cfg.entropy_target is not None else "detached"
