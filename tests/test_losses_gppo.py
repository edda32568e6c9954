"""GPPO (Klear-Reasoner) against the gradient-weight table of ALGORITHMS.md, checked with autograd.

For one token with advantage A and ratio r, the loss gradient is dL/dlogp = -A * F; each row of the
table is a case of F. Aggregation "seq-mean-token-sum-norm" with norm_constant 1 makes the loss the
plain sum of per-token losses, so the autograd gradient of each token is its own -A * F.
"""

from __future__ import annotations

import math

import pytest
import torch
from toolgym.trainers import LossConfig, LossInputs, get_loss
from toolgym.trainers.algo.loss_config import AGG_MODES

EPS_LOW, EPS_HIGH = 0.2, 0.28


def token_value_and_grad(name: str, r: float, adv: float, **overrides: object) -> tuple[float, float]:
    """(loss value, dL/dlogp) of a single token with ratio r and advantage adv."""
    logp = torch.tensor([[math.log(r)]], dtype=torch.float64, requires_grad=True)
    inputs = LossInputs(logp, torch.zeros(1, 1, dtype=torch.float64),
                        torch.tensor([[adv]], dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64))
    cfg = LossConfig.from_dict({"name": name, "eps_low": EPS_LOW, "eps_high": EPS_HIGH, **overrides,
                                "loss_agg_mode": "seq-mean-token-sum-norm", "norm_constant": 1.0})
    out = get_loss(name)(inputs, cfg)
    out.loss.backward()
    return float(out.loss.detach()), float(logp.grad)


# (case, A, r, config overrides, expected F, expected loss value)
F_TABLE = [
    ("A>0 above the range", 1.0, 1.5, {}, 1 + EPS_HIGH, -(1 + EPS_HIGH)),
    ("A<0 below the range", -1.0, 0.5, {}, 1 - EPS_LOW, 1 - EPS_LOW),
    ("A>0 inside", 2.0, 1.1, {}, 1.1, -2.2),
    ("A<0 inside", -2.0, 0.9, {}, 0.9, 1.8),
    ("A>0 below the range: otherwise", 1.0, 0.5, {}, 0.5, -0.5),
    ("A<0 above the range: otherwise", -1.0, 1.5, {}, 1.5, 1.5),
    ("A<0 beyond the dual clip", -2.0, 20.0, {"dual_clip": True, "dual_clip_c": 10.0}, 0.0, 20.0),
    ("A<0 above range, under the dual clip", -2.0, 5.0, {"dual_clip": True, "dual_clip_c": 10.0}, 5.0, 10.0),
    ("A<0 beyond c, dual clip off", -2.0, 20.0, {}, 20.0, 40.0),
    ("beta1 scales the low side", -1.0, 0.5, {"beta1": 0.5}, 0.5 * (1 - EPS_LOW), 0.5 * (1 - EPS_LOW)),
    ("beta2 scales the high side", 1.0, 1.5, {"beta2": 0.5}, 0.5 * (1 + EPS_HIGH), -0.5 * (1 + EPS_HIGH)),
    ("beta1 leaves the inside alone", -1.0, 0.9, {"beta1": 0.25}, 0.9, 0.9),
    ("only_high: low side as ppo_clip", -1.0, 0.5, {"only_high": True, "beta1": 0.5}, 0.0, 1 - EPS_LOW),
    ("only_high: high side preserved", 1.0, 1.5, {"only_high": True}, 1 + EPS_HIGH, -(1 + EPS_HIGH)),
    ("only_high with beta2", 1.0, 1.5, {"only_high": True, "beta2": 0.5}, 0.5 * (1 + EPS_HIGH),
     -0.5 * (1 + EPS_HIGH)),
    ("only_high + dual clip", -1.0, 50.0, {"only_high": True, "dual_clip": True}, 0.0, 10.0),
]


@pytest.mark.parametrize(("case", "adv", "r", "overrides", "weight", "value"), F_TABLE,
                         ids=[c[0] for c in F_TABLE])
def test_gppo_gradient_weight_table(case: str, adv: float, r: float, overrides: dict, weight: float,
                                    value: float) -> None:
    loss, grad = token_value_and_grad("gppo", r, adv, **overrides)
    assert grad == pytest.approx(-adv * weight, abs=1e-12), case
    assert loss == pytest.approx(value, abs=1e-12), case


@pytest.mark.parametrize(("adv", "r"), [(1.0, 1.5), (-1.0, 0.5)])
def test_ppo_clip_gives_zero_gradient_where_gppo_does_not(adv: float, r: float) -> None:
    _, ppo_grad = token_value_and_grad("ppo_clip", r, adv)
    _, gppo_grad = token_value_and_grad("gppo", r, adv)
    assert ppo_grad == 0.0
    assert abs(gppo_grad) > 0.5


def _random_batch(seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(6, 20, generator=g, dtype=torch.float64) * 3
    old = logp + torch.randn(6, 20, generator=g, dtype=torch.float64) * 0.6  # many tokens outside the range
    adv = torch.randn(6, 1, generator=g, dtype=torch.float64).expand(6, 20).clone()
    mask = (torch.rand(6, 20, generator=g) > 0.25).double()
    return logp, old, adv, mask


@pytest.mark.parametrize("mode", AGG_MODES)
@pytest.mark.parametrize("dual_clip", [False, True])
def test_gppo_forward_equals_ppo_clip(mode: str, dual_clip: bool) -> None:
    logp, old, adv, mask = _random_batch(1)
    grads, values = {}, {}
    for name in ("ppo_clip", "gppo"):
        x = logp.clone().requires_grad_()
        cfg = LossConfig(name=name, loss_agg_mode=mode, norm_constant=20.0, dual_clip=dual_clip,
                         dual_clip_c=3.0)
        out = get_loss(name)(LossInputs(x, old, adv, mask), cfg)
        out.loss.backward()
        values[name], grads[name] = float(out.loss.detach()), x.grad
        metrics = out.floats()
    assert values["gppo"] == pytest.approx(values["ppo_clip"], abs=1e-12)
    r = torch.exp(logp - old)
    clipped = ((adv > 0) & (r > 1 + EPS_HIGH)) | ((adv < 0) & (r < 1 - EPS_LOW))
    assert clipped[mask > 0].any()
    same = ~clipped
    torch.testing.assert_close(grads["gppo"][same], grads["ppo_clip"][same], rtol=0, atol=1e-12)
    assert (grads["ppo_clip"][clipped] == 0).all()
    assert (grads["gppo"][clipped & (mask > 0)] != 0).all()
    assert metrics["loss/clipfrac"] == pytest.approx(float((clipped * mask).sum() / mask.sum()), rel=1e-6)


def test_worked_example_bad_token_whose_probability_rose() -> None:
    """A = -10, r = 100: CISPO weight 1.1, GPPO weight r = 100, GPPO + dual clip (c = 10) no gradient."""
    _, cispo_grad = token_value_and_grad("cispo", 100.0, -10.0, eps_low=1.0, eps_high=0.1)
    assert cispo_grad == pytest.approx(11.0)  # objective coefficient on g: 1.1 * (-10) = -11
    _, gppo_grad = token_value_and_grad("gppo", 100.0, -10.0)
    assert gppo_grad == pytest.approx(1000.0)  # objective coefficient: 100 * (-10) = -1000
    value, dual_grad = token_value_and_grad("gppo", 100.0, -10.0, dual_clip=True, dual_clip_c=10.0)
    assert value == pytest.approx(100.0)  # the constant |A| * c
    assert dual_grad == 0.0


def test_gppo_beta_defaults_are_rejected_for_other_losses() -> None:
    with pytest.raises(ValueError, match=r"beta1 applies to name='gppo' only"):
        LossConfig(name="ppo_clip", beta1=0.5)
    with pytest.raises(ValueError, match="only_high applies to name='gppo'"):
        LossConfig(name="cispo", only_high=True)
