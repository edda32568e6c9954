"""Extra terms: adaptive entropy controller (Skywork-OR1), entropy bonus, KL k1/k3, SFT on positives."""

from __future__ import annotations

import math

import pytest
import torch
from toolgym.trainers import (
    AdaptiveEntropyController,
    LossConfig,
    LossInputs,
    compute_policy_loss,
    entropy_from_logits,
)
from toolgym.trainers.algo.terms import kl_per_token


def test_adaptive_entropy_trajectory_follows_the_rule() -> None:
    """Scripted entropies, target 0.2, delta 1e-3, c_max 2.5e-3; expected values worked out by hand."""
    ctl = AdaptiveEntropyController(target=0.2, delta=1e-3, max_coef=2.5e-3)
    assert ctl.coef_to_apply == 0.0  # before any measurement: no bonus
    entropies = [0.5, 0.1, 0.1, 0.3, 0.1, 0.1, 0.1, 0.2, 0.15, 0.05]
    # c after each step:  0 (clipped at 0), .001, .002, .001, .002, .003->.0025, .0025, .0015, .0025, .0025
    # applied next step:  0 (e >= target),  c,    c,    0,    c,    c,           c,     0 (e == target), c, c
    expected_coef = [0.0, 1e-3, 2e-3, 1e-3, 2e-3, 2.5e-3, 2.5e-3, 1.5e-3, 2.5e-3, 2.5e-3]
    expected_applied = [0.0, 1e-3, 2e-3, 0.0, 2e-3, 2.5e-3, 2.5e-3, 0.0, 2.5e-3, 2.5e-3]
    coefs, applied = [], []
    for e in entropies:
        applied.append(ctl.update(e))
        coefs.append(ctl.coef)
    assert coefs == pytest.approx(expected_coef, abs=1e-15)
    assert applied == pytest.approx(expected_applied, abs=1e-15)
    assert ctl.steps == len(entropies)


def test_adaptive_entropy_state_dict_resumes_the_same_trajectory() -> None:
    a = AdaptiveEntropyController(target=0.3, delta=1e-4, max_coef=5e-3)
    for e in (0.1, 0.2, 0.25):
        a.update(e)
    b = AdaptiveEntropyController(target=0.3, delta=1e-4, max_coef=5e-3)
    b.load_state_dict(a.state_dict())
    for e in (0.4, 0.1, 0.1):
        assert b.update(e) == a.update(e)
    assert b.state_dict() == a.state_dict()


def test_controller_from_config_and_bad_values() -> None:
    ctl = AdaptiveEntropyController.from_config(LossConfig(entropy_target=0.2))
    assert (ctl.target, ctl.delta, ctl.max_coef) == (0.2, 1e-4, 5e-3)  # Skywork-OR1's script defaults
    with pytest.raises(ValueError, match="entropy_target is None"):
        AdaptiveEntropyController.from_config(LossConfig())
    with pytest.raises(ValueError, match="delta must be a finite number >= 0"):
        AdaptiveEntropyController(delta=-1.0)
    with pytest.raises(ValueError, match="entropy must be finite"):
        ctl.update(math.nan)


def _inputs(**extra: object) -> tuple[LossInputs, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    logp = (-torch.rand(3, 5, generator=g, dtype=torch.float64)).requires_grad_()
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.float64)
    zeros = torch.zeros(3, 5, dtype=torch.float64)
    return LossInputs(logp, logp.detach(), zeros, mask, **extra), mask  # A = 0: no policy gradient


def test_entropy_bonus_gradient_is_minus_coef_times_weights() -> None:
    entropy = torch.rand(3, 5, dtype=torch.float64).requires_grad_()
    inputs, mask = _inputs(entropy=entropy, entropy_coef=0.01)
    out = compute_policy_loss(inputs, LossConfig(name="ppo_clip", entropy_target=0.2))
    out.loss.backward()
    torch.testing.assert_close(entropy.grad, -0.01 * mask / mask.sum())  # the coefficient given was applied
    metrics = out.floats()
    assert metrics["actor/entropy"] == pytest.approx(float((entropy.detach() * mask).sum() / mask.sum()))
    assert metrics["loss/total"] == pytest.approx(metrics["loss/policy"] - 0.01 * metrics["actor/entropy"])


def test_adaptive_entropy_without_a_coefficient_is_an_error() -> None:
    inputs, _ = _inputs(entropy=torch.rand(3, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"coef_to_apply"):
        compute_policy_loss(inputs, LossConfig(entropy_target=0.2))
    inputs, _ = _inputs(entropy_coef=0.01)
    with pytest.raises(ValueError, match=r"needs LossInputs.entropy"):
        compute_policy_loss(inputs, LossConfig())


def test_kl_estimators_by_hand() -> None:
    logp = torch.tensor([math.log(0.5)], dtype=torch.float64, requires_grad=True)
    ref = torch.tensor([math.log(0.25)], dtype=torch.float64)
    k1 = kl_per_token(logp, ref, "k1")
    assert float(k1.detach()) == pytest.approx(math.log(2))  # log(pi / pi_ref)
    k3 = kl_per_token(logp, ref, "k3")
    assert float(k3.detach()) == pytest.approx(0.5 - math.log(0.5) - 1)  # pi_ref/pi - log(pi_ref/pi) - 1
    k3.backward()
    assert float(logp.grad) == pytest.approx(1 - 0.5)  # d/dlogp = 1 - pi_ref / pi


def test_kl_term_enters_the_loss_with_its_coefficient() -> None:
    ref = torch.full((3, 5), -0.5, dtype=torch.float64)
    inputs, mask = _inputs(ref_logp=ref)
    out = compute_policy_loss(inputs, LossConfig(name="ppo_clip", kl_coef=0.1, kl_type="k1"))
    out.loss.backward()
    torch.testing.assert_close(inputs.logp.grad, 0.1 * mask / mask.sum())  # d k1 / d logp = 1
    with pytest.raises(ValueError, match=r"needs LossInputs\.ref_logp"):
        compute_policy_loss(_inputs()[0], LossConfig(kl_coef=0.1))


def test_sft_on_positives_is_a_token_mean_over_positive_samples() -> None:
    positive = torch.tensor([True, False, True])
    inputs, mask = _inputs(positive=positive)
    out = compute_policy_loss(inputs, LossConfig(name="gppo", sft_coef=0.1))
    out.loss.backward()
    pos_mask = mask * positive[:, None]
    torch.testing.assert_close(inputs.logp.grad, -0.1 * pos_mask / pos_mask.sum())
    expected_nll = float(-(inputs.logp.detach() * pos_mask).sum() / pos_mask.sum())
    assert out.floats()["loss/sft"] == pytest.approx(expected_nll)
    with pytest.raises(ValueError, match=r"needs LossInputs\.positive"):
        compute_policy_loss(_inputs()[0], LossConfig(sft_coef=0.1))


def test_entropy_from_logits_matches_categorical() -> None:
    logits = torch.randn(2, 3, 11)
    expected = torch.distributions.Categorical(logits=logits).entropy()
    torch.testing.assert_close(entropy_from_logits(logits), expected)
