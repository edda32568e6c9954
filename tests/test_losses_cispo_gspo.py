"""CISPO's never-zero, capped gradient and GSPO's token form against its sequence form (autograd)."""

from __future__ import annotations

import math

import pytest
import torch
from toolgym.trainers import LossConfig, LossInputs, get_loss

RATIOS = [0.01, 0.5, 0.79, 0.9, 1.0, 1.1, 1.27, 1.5, 3.0, 100.0]


def cispo_grads(ratios: list[float], adv: float, eps_low: float, eps_high: float) -> torch.Tensor:
    """dL/dlogp of each token (loss = plain sum over tokens)."""
    logp = torch.tensor([[math.log(r) for r in ratios]], dtype=torch.float64, requires_grad=True)
    n = len(ratios)
    f64 = torch.float64
    inputs = LossInputs(logp, torch.zeros(1, n, dtype=f64), torch.full((1, n), adv, dtype=f64),
                        torch.ones(1, n, dtype=f64))
    cfg = LossConfig(name="cispo", eps_low=eps_low, eps_high=eps_high,
                     loss_agg_mode="seq-mean-token-sum-norm", norm_constant=1.0)
    get_loss("cispo")(inputs, cfg).loss.backward()
    return logp.grad[0]


@pytest.mark.parametrize("adv", [1.0, -1.0, -10.0])
def test_cispo_gradient_is_never_zero_and_capped(adv: float) -> None:
    grads = cispo_grads(RATIOS, adv, eps_low=0.2, eps_high=0.28)
    weights = -grads / adv  # dL/dlogp = -A * w
    expected = torch.tensor([min(max(r, 0.8), 1.28) for r in RATIOS], dtype=torch.float64)
    torch.testing.assert_close(weights, expected, rtol=1e-12, atol=1e-12)
    assert (grads != 0).all()
    assert float(weights.max()) <= 1.28 + 1e-12


def test_cispo_without_lower_bound_keeps_small_ratios() -> None:
    """The paper's setting (no lower bound, eps_low = 1): the weight of a small ratio is r itself."""
    weights = -cispo_grads(RATIOS, 1.0, eps_low=1.0, eps_high=0.1)
    expected = torch.tensor([min(r, 1.1) for r in RATIOS], dtype=torch.float64)
    torch.testing.assert_close(weights, expected, rtol=1e-12, atol=1e-12)


def _gspo_batch() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(3)
    b, t = 6, 9
    logp = -torch.rand(b, t, generator=g, dtype=torch.float64) * 2
    old = logp + torch.randn(b, t, generator=g, dtype=torch.float64) * 0.3
    adv = torch.tensor([1.0, -1.0, 0.5, -2.0, 1.5, -0.3], dtype=torch.float64)[:, None].expand(b, t).clone()
    lengths = torch.tensor([9, 3, 7, 5, 1, 8])
    mask = (torch.arange(t)[None, :] < lengths[:, None]).double()
    mask[2, 4] = 0.0  # a tool-output hole inside a response
    return logp, old, adv, mask


def gspo_sequence_form(logp: torch.Tensor, old: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
                       eps_low: float, eps_high: float) -> torch.Tensor:
    """J = mean_i max(-A_i s_i, -A_i clip(s_i)), s_i = exp(mean_t(logp - old)): the paper's sequence form."""
    losses = []
    for i in range(logp.shape[0]):
        m = mask[i] > 0
        s = torch.exp((logp[i][m] - old[i][m]).mean())
        a = adv[i, 0]
        losses.append(torch.maximum(-a * s, -a * s.clamp(1 - eps_low, 1 + eps_high)))
    return torch.stack(losses).mean()


@pytest.mark.parametrize(("eps_low", "eps_high"), [(3e-4, 4e-4), (0.05, 0.05), (10.0 ** -9, 1.0)])
def test_gspo_token_form_equals_sequence_form(eps_low: float, eps_high: float) -> None:
    logp, old, adv, mask = _gspo_batch()
    x_tok, x_seq = logp.clone().requires_grad_(), logp.clone().requires_grad_()
    cfg = LossConfig.defaults_for("gspo", eps_low=eps_low, eps_high=eps_high)
    token = get_loss("gspo")(LossInputs(x_tok, old, adv, mask), cfg).loss
    sequence = gspo_sequence_form(x_seq, old, adv, mask, eps_low, eps_high)
    token.backward()
    sequence.backward()
    assert float(token.detach()) == pytest.approx(float(sequence.detach()), abs=1e-12)
    torch.testing.assert_close(x_tok.grad, x_seq.grad, rtol=1e-10, atol=1e-12)


def test_gspo_clips_whole_sequences() -> None:
    """With the paper's tiny range most sequences are clipped, and a clipped sequence has no gradient."""
    logp, old, adv, mask = _gspo_batch()
    x = logp.clone().requires_grad_()
    out = get_loss("gspo")(LossInputs(x, old, adv, mask), LossConfig.defaults_for("gspo"))
    out.loss.backward()
    log_s = ((logp - old) * mask).sum(-1) / mask.sum(-1)
    s, a = torch.exp(log_s), adv[:, 0]
    clipped = ((a > 0) & (s > 1 + 4e-4)) | ((a < 0) & (s < 1 - 3e-4))
    assert clipped.any() and (~clipped).any()
    assert (x.grad[clipped] == 0).all()
    assert (x.grad[~clipped][mask[~clipped] > 0] != 0).all()
    share = float((mask[clipped]).sum() / mask.sum())
    assert out.floats()["loss/clipfrac"] == pytest.approx(share, rel=1e-6)
