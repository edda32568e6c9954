"""Aggregation modes: the formulas of ALGORITHMS.md, and invariance to micro-batching, padding, packing.

"Same gradient" is checked on the full training loss of `compute_policy_loss` (policy loss + entropy
bonus + KL + SFT on positives), for every registered loss and every aggregation mode.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from toolgym.trainers import LossConfig, LossInputs, LossNormalisers, compute_policy_loss, list_losses
from toolgym.trainers.algo.loss_api import aggregate
from toolgym.trainers.algo.loss_config import AGG_MODES

B, T = 8, 14
CASES = list(itertools.product(["ppo_clip", "gppo", "cispo", "gspo"], AGG_MODES))
TOKEN_MEAN_METRICS = ["loss/clipfrac_low", "loss/clipfrac_high", "loss/approx_kl", "actor/entropy",
                      "adv/mean"]


def make_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    lengths = torch.tensor([14, 3, 9, 1, 12, 6, 14, 8])
    mask = (torch.arange(T)[None, :] < lengths[:, None]).to(f64)  # [B, T]
    mask[0, 4:7] = 0.0  # tool output inside a response
    mask[4, 2] = 0.5  # a fractional loss weight
    logp = -torch.rand(B, T, generator=g, dtype=f64) * 3
    return {
        "logp": logp,
        "old_logp": logp + torch.randn(B, T, generator=g, dtype=f64) * 0.4,
        "advantages": torch.randn(B, 1, generator=g, dtype=f64).expand(B, T) * mask,
        "mask": mask,
        "ref_logp": logp + torch.randn(B, T, generator=g, dtype=f64) * 0.2,
        "entropy": torch.rand(B, T, generator=g, dtype=f64) * 2,
        "positive": torch.tensor([1, 0, 0, 1, 0, 1, 0, 0], dtype=torch.bool),
    }


def full_config(name: str, mode: str) -> LossConfig:
    extra = {"beta1": 0.5, "dual_clip": True} if name == "gppo" else {}
    return LossConfig(name=name, loss_agg_mode=mode, norm_constant=16.0, eps_low=0.2, eps_high=0.28,
                      sft_coef=0.1, entropy_coef=0.01, kl_coef=0.05, **extra)


def run(batch: dict[str, torch.Tensor], rows_per_micro: int, cfg: LossConfig) -> tuple[torch.Tensor, ...]:
    """Accumulate the loss over micro-batches of `rows_per_micro` rows; returns grads, total, metric sums."""
    logp = batch["logp"].clone().requires_grad_()
    entropy = batch["entropy"].clone().requires_grad_()
    chunks = [slice(i, i + rows_per_micro) for i in range(0, B, rows_per_micro)]
    norm = LossNormalisers.total(
        LossNormalisers.from_batch(batch["mask"][c], positive=batch["positive"][c]) for c in chunks)
    total, metrics = 0.0, {}
    for c in chunks:
        out = compute_policy_loss(LossInputs(
            logp[c], batch["old_logp"][c], batch["advantages"][c], batch["mask"][c],
            ref_logp=batch["ref_logp"][c], entropy=entropy[c], positive=batch["positive"][c], norm=norm), cfg)
        out.loss.backward()
        total += float(out.loss.detach())
        for k, v in out.floats().items():
            metrics[k] = metrics.get(k, 0.0) + v
    return logp.grad, entropy.grad, torch.tensor(total), metrics


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_micro_batching_gives_the_same_gradient(name: str, mode: str) -> None:
    batch, cfg = make_batch(), full_config(name, mode)
    ref_grad, ref_ent_grad, ref_total, ref_metrics = run(batch, B, cfg)
    assert ref_grad.abs().sum() > 0
    for rows in (1, 2):  # micro-batch 1 x accumulation 8, and 2 x 4, against 8 x 1
        grad, ent_grad, total, metrics = run(batch, rows, cfg)
        torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-13)
        torch.testing.assert_close(ent_grad, ref_ent_grad, rtol=1e-10, atol=1e-13)
        assert float(total) == pytest.approx(float(ref_total), rel=1e-10, abs=1e-13)
        for key in [*TOKEN_MEAN_METRICS, "loss/policy", "loss/sft", "loss/kl"]:
            assert metrics[key] == pytest.approx(ref_metrics[key], rel=1e-6, abs=1e-9), key


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_padded_batch_equals_unpadded(name: str, mode: str) -> None:
    """Extra padding columns and empty rows (mask 0, garbage values) change nothing, even without norm."""
    batch, cfg = make_batch(1), full_config(name, mode)
    g = torch.Generator().manual_seed(9)
    padded = {}
    for key, value in batch.items():
        if key == "positive":
            padded[key] = torch.cat([value, torch.tensor([True, False])])
            continue
        junk = torch.randn(B + 2, T + 5, generator=g, dtype=value.dtype) - 1.0
        junk[:B, :T] = value
        padded[key] = junk
    padded["mask"][B:, :] = 0.0
    padded["mask"][:, T:] = 0.0
    results = []
    for data in (batch, padded):
        logp = data["logp"].clone().requires_grad_()
        entropy = data["entropy"].clone().requires_grad_()
        out = compute_policy_loss(LossInputs(logp, data["old_logp"], data["advantages"], data["mask"],
                                             ref_logp=data["ref_logp"], entropy=entropy,
                                             positive=data["positive"]), cfg)
        out.loss.backward()
        results.append((out, logp.grad, entropy.grad))
    (out, grad, ent_grad), (p_out, p_grad, p_ent_grad) = results
    assert float(p_out.loss.detach()) == pytest.approx(float(out.loss.detach()), rel=1e-12)
    torch.testing.assert_close(p_grad[:B, :T], grad, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(p_ent_grad[:B, :T], ent_grad, rtol=1e-12, atol=1e-14)
    assert (p_grad[B:] == 0).all() and (p_grad[:, T:] == 0).all()
    padded_metrics = p_out.floats()
    for key, value in out.floats().items():
        assert padded_metrics[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


@pytest.mark.parametrize("mode", AGG_MODES)
def test_aggregation_matches_the_written_formulas(mode: str) -> None:
    batch = make_batch(3)
    loss_tok, mask = torch.randn(B, T, dtype=torch.float64), batch["mask"]
    cfg = LossConfig(name="ppo_clip", loss_agg_mode=mode, norm_constant=16.0)
    inputs = LossInputs(batch["logp"], batch["old_logp"], batch["advantages"], mask)
    row_sums = [float((loss_tok[i] * mask[i]).sum()) for i in range(B)]
    row_counts = [float(mask[i].sum()) for i in range(B)]
    expected = {
        "token-mean": sum(row_sums) / sum(row_counts),
        "seq-mean-token-sum": sum(row_sums) / B,
        "seq-mean-token-mean": sum(s / n for s, n in zip(row_sums, row_counts, strict=True)) / B,
        "seq-mean-token-sum-norm": sum(row_sums) / 16.0,
    }[mode]
    assert float(aggregate(loss_tok, inputs, cfg)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", list_losses())
def test_empty_batch_gives_a_finite_zero_loss(name: str) -> None:
    logp = torch.zeros(2, 5, requires_grad=True)
    out = compute_policy_loss(LossInputs(logp, torch.zeros(2, 5), torch.ones(2, 5), torch.zeros(2, 5)),
                              LossConfig.defaults_for(name))
    out.loss.backward()
    assert float(out.loss.detach()) == 0.0
    assert torch.isfinite(logp.grad).all()
    assert all(v == v for v in out.metrics.values())  # no NaN
