"""`loss.behaviour_is`: importance weights pi_old / pi_behaviour on the policy loss (TIS / MIS).

The weights' formula on hand-made log-probs; the learner (a real tiny Qwen2) recomputes pi_old,
hands the registry loss the weights of exactly that formula, and its update differs from the
uncorrected one and between truncate and mask; the config rejects bad values.
"""

from __future__ import annotations

import math

import pytest
import torch
from model_support import tiny_qwen
from toolgym.trainers.algo import behaviour_is
from toolgym.trainers.algo.loss_api import LossInputs, aggregate
from toolgym.trainers.algo.loss_config import BEHAVIOUR_IS_MODES, LossConfig
from toolgym.trainers.config.schema import OptimizerConfig
from toolgym.trainers.learner.batching import Sample
from toolgym.trainers.learner.learner import Learner, policy_loss_fn


def test_truncate_caps_the_ratio_and_mask_zeroes_the_far_tokens() -> None:
    proximal = torch.log(torch.tensor([0.5, 0.9, 0.3, 0.01]))
    behaviour = torch.log(torch.tensor([0.5, 0.3, 0.6, 0.001]))  # rho = 1, 3, 0.5, 10
    weights, capped = behaviour_is.behaviour_weights(proximal, behaviour, "truncate", 2.0)
    torch.testing.assert_close(weights, torch.tensor([1.0, 2.0, 0.5, 2.0]))
    assert capped.tolist() == [False, True, False, True]
    weights, _ = behaviour_is.behaviour_weights(proximal, behaviour, "mask", 2.0)
    torch.testing.assert_close(weights, torch.tensor([1.0, 0.0, 0.5, 0.0]))
    metrics = behaviour_is.weight_metrics([weights], [capped], [torch.tensor([1.0, 1.0, 1.0, 0.0])])
    assert metrics == pytest.approx({"loss/behaviour_is_mean": 0.5, "loss/behaviour_is_capped": 1 / 3})


def test_the_weight_multiplies_the_policy_loss_per_token() -> None:
    logp = torch.full((1, 3), -1.0, requires_grad=True)
    base = dict(logp=logp, old_logp=torch.full((1, 3), -1.0), advantages=torch.ones(1, 3),
                mask=torch.ones(1, 3))
    cfg = LossConfig()
    plain = aggregate(-torch.ones(1, 3), LossInputs(**base), cfg)
    mixed = torch.tensor([[2.0, 0.0, 1.0]])
    weighted = aggregate(-torch.ones(1, 3), LossInputs(**base, is_weight=mixed), cfg)
    assert float(plain) == pytest.approx(-1.0) and float(weighted) == pytest.approx(-1.0)  # mean of 2, 0, 1
    weighted = aggregate(-torch.ones(1, 3), LossInputs(**base, is_weight=torch.full((1, 3), 2.0)), cfg)
    assert float(weighted) == pytest.approx(-2.0)  # not renormalised: the token count stays the divisor


def _samples(n: int = 6) -> list[Sample]:
    """Episodes whose engine log-probs are far from the tiny model's (rho spans both sides of C)."""
    g = torch.Generator().manual_seed(3)
    out = []
    for i in range(n):
        length = 14
        ids = torch.randint(1, 97, (length,), generator=g).tolist()
        mask = [0.0] + [1.0] * (length - 2)
        old = [0.0, *(-torch.rand(length - 2, generator=g) * 9).tolist()]
        adv = [0.0] + [(-1.0) ** i] * (length - 2)
        out.append(Sample(ids=ids, mask=mask, old_logp=old, advantages=adv))
    return out


def _update(mode: str, seen: list) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    loss_cfg = LossConfig(behaviour_is=mode, behaviour_is_cap=2.0)
    registry_loss = policy_loss_fn(loss_cfg)

    def spy(mb, logp, entropy, norm, entropy_coef):
        seen.append((mb.old_logp.clone(), None if mb.is_weight is None else mb.is_weight.clone(), mb.rows))
        return registry_loss(mb, logp, entropy, norm, entropy_coef)

    learner = Learner(tiny_qwen(), OptimizerConfig(lr=1e-2, micro_batch_tokens=100_000), spy, total_steps=1,
                      behaviour_is=(loss_cfg.behaviour_is, loss_cfg.behaviour_is_cap))
    metrics = learner.update(_samples())
    return metrics, {k: v.detach().clone() for k, v in learner.model.state_dict().items()}


def test_the_learner_weights_each_token_by_the_capped_ratio_and_the_modes_differ() -> None:
    samples = _samples()
    seen: list = []
    off, after_off = _update("off", seen)
    assert seen[0][1] is None and "loss/behaviour_is_mean" not in off
    truncated, after_truncate = _update("truncate", seen)
    old_logp, weights, rows = seen[1]
    for r, i in enumerate(rows):  # old_logp is the learner's own; w = min(exp(it - engine's), 2)
        n = samples[i].num_tokens - 1
        expected = torch.exp(old_logp[r, :n] - samples[i].old_logp).clamp(max=2.0) * (samples[i].mask > 0)
        torch.testing.assert_close(weights[r, :n] * (samples[i].mask > 0), expected)
    assert 0.0 < truncated["loss/behaviour_is_capped"] < 1.0  # both sides of the cap occur
    assert truncated["loss/behaviour_is_mean"] < 2.0
    masked, after_mask = _update("mask", seen)
    assert masked["loss/behaviour_is_mean"] < truncated["loss/behaviour_is_mean"]  # capped tokens -> 0
    for name, value in after_off.items():
        if value.is_floating_point() and not torch.equal(value, after_truncate[name]):
            break
    else:
        raise AssertionError("truncate trained exactly as off")
    assert any(not torch.equal(v, after_mask[k]) for k, v in after_truncate.items() if v.is_floating_point())


def test_the_modes_of_the_config_are_the_modules_and_bad_values_are_rejected() -> None:
    assert BEHAVIOUR_IS_MODES == behaviour_is.MODES
    with pytest.raises(ValueError, match="behaviour_is must be one of off, truncate, mask"):
        LossConfig(behaviour_is="clip")
    for cap in (1.0, 0.5, "2", math.nan):
        with pytest.raises(ValueError, match="behaviour_is_cap must be a number > 1"):
            LossConfig(behaviour_is="truncate", behaviour_is_cap=cap)


def test_through_the_trainer_at_k1_the_recipe_keys_reach_the_learner(tmp_path) -> None:
    """A real `fit` (tiny model, real sandbox, --no-ray) at run.max_staleness=1: every step logs the
    weights' metrics, within the cap the config gave. (The untrained tiny model fails every episode, so
    its advantages are 0 and the weights cannot change its update: the learner test above shows they do.)"""
    from test_trainer_driver import tiny_config
    from toolgym.trainers.report.metrics import read_metrics
    from toolgym.trainers.run.driver import fit

    base = ["run.ray=off", "eval.problems=0", "run.steps=3", "run.max_staleness=1"]
    fit(tiny_config(*base, "loss.behaviour_is=truncate", "loss.behaviour_is_cap=1.5"), tmp_path / "tis")
    fit(tiny_config(*base), tmp_path / "plain")
    steps = [r for r in read_metrics(tmp_path / "tis" / "metrics.jsonl") if "learner/samples" in r]
    assert len(steps) == 3 and all(0.0 < r["loss/behaviour_is_mean"] <= 1.5 for r in steps)
    plain = [r for r in read_metrics(tmp_path / "plain" / "metrics.jsonl") if "learner/samples" in r]
    assert not any("loss/behaviour_is_mean" in r for r in plain)
