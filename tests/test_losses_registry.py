"""Loss registry and LossConfig: clear errors, paper presets, stable metric names, a light import."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from toolgym.trainers import (
    LossConfig,
    LossInputs,
    LossOutput,
    compute_policy_loss,
    get_loss,
    list_losses,
    load_config,
    register_loss,
)


def test_builtin_losses_are_registered() -> None:
    assert {"ppo_clip", "gppo", "cispo", "gspo"} <= set(list_losses())


def test_unknown_loss_lists_the_registered_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown loss 'gppoo'\. Did you mean 'gppo'\?.*Registered: .*gspo"):
        get_loss("gppoo")
    # the name is checked where the registry is consulted: up front when a config is loaded
    with pytest.raises(ValueError, match=r"loss.name: unknown loss 'dapo'.*ppo_clip"):
        load_config(overrides=["loss.name=dapo"])


def test_registering_a_loss_twice_raises() -> None:
    with pytest.raises(ValueError, match="'gppo' is already registered"):
        register_loss("gppo")(lambda inputs, cfg: LossOutput(inputs.logp.sum()))


def test_a_plugin_loss_runs_through_compute_policy_loss() -> None:
    name = "test_plugin_reinforce"
    if name not in list_losses():
        @register_loss(name)
        def reinforce(inputs: LossInputs, cfg: LossConfig) -> LossOutput:
            return LossOutput((-(inputs.advantages * inputs.logp) * inputs.mask).sum())
    logp = torch.zeros(1, 2, requires_grad=True)
    out = compute_policy_loss(LossInputs(logp, torch.zeros(1, 2), torch.ones(1, 2), torch.ones(1, 2)),
                              LossConfig(name=name))
    out.loss.backward()
    assert logp.grad.tolist() == [[-1.0, -1.0]]


@pytest.mark.parametrize(("fields", "message"), [
    ({"loss_agg_mode": "mean"}, r"LossConfig.loss_agg_mode must be one of token-mean, seq-mean-token-sum, "),
    ({"kl_type": "k2"}, r"LossConfig.kl_type must be one of k1, k3; got 'k2'"),
    ({"eps_low": 1.5}, r"LossConfig.eps_low must be a number in \[0.0, 1.0\]; got 1.5"),
    ({"eps_high": -0.1}, r"LossConfig.eps_high must be a number in \[0.0, infinity\]"),
    ({"dual_clip_c": 1.0}, r"LossConfig.dual_clip_c must be > 1"),
    ({"beta2": 0.0}, r"LossConfig.beta2 must be > 0"),
    ({"dual_clip": "yes"}, r"LossConfig.dual_clip must be true or false"),
    ({"sft_coef": -1}, r"LossConfig.sft_coef must be a number"),
    ({"loss_agg_mode": "seq-mean-token-sum-norm"}, r"LossConfig.norm_constant must be set"),
    ({"entropy_target": 0.2, "entropy_coef": 0.1}, r"LossConfig.entropy_coef must be 0 when entropy_target"),
    ({"name": "cispo", "dual_clip": True}, r"dual_clip does not apply to name='cispo'"),
    ({"name": "gspo", "beta2": 0.5}, r"LossConfig.beta2 applies to name='gppo' only"),
])
def test_bad_config_values_name_the_field(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LossConfig(**fields)


def test_from_dict_rejects_unknown_keys_listing_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown LossConfig key\(s\) \['clip_eps'\]; allowed: name, "):
        LossConfig.from_dict({"clip_eps": 0.2})


def test_paper_presets() -> None:
    assert LossConfig.defaults_for("gspo").eps_high == 4e-4
    assert LossConfig.defaults_for("gspo").loss_agg_mode == "seq-mean-token-mean"
    gppo = LossConfig.defaults_for("gppo")
    assert (gppo.eps_low, gppo.eps_high, gppo.dual_clip, gppo.dual_clip_c) == (0.2, 0.28, True, 10.0)
    assert LossConfig.defaults_for("cispo", eps_high=0.1).eps_high == 0.1


def test_loss_inputs_shape_errors_name_the_field() -> None:
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"LossInputs\.mask must have the shape of logp \(2, 3\); got"):
        LossInputs(x, x, x, torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"LossInputs.positive must be \[2\]"):
        LossInputs(x, x, x, x, positive=torch.zeros(3, dtype=torch.bool))


def test_metric_names_are_stable() -> None:
    logp = torch.zeros(2, 3, requires_grad=True)
    x = torch.zeros(2, 3)
    inputs = LossInputs(logp, x, torch.ones(2, 3), torch.ones(2, 3), ref_logp=x,
                        entropy=torch.ones(2, 3), positive=torch.tensor([True, False]))
    out = compute_policy_loss(inputs, LossConfig.defaults_for("gppo", sft_coef=0.1))
    assert set(out.metrics) == {
        "loss/policy", "loss/clipfrac_low", "loss/clipfrac_high", "loss/clipfrac", "loss/clipfrac_dual",
        "loss/approx_kl", "actor/entropy", "loss/kl", "loss/sft", "adv/mean", "adv/std", "loss/total"}
    # detached 0-d tensors, read with one sync
    values = out.metrics.values()
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad for v in values)
    assert all(isinstance(v, float) for v in out.floats().values())


def test_import_toolgym_trainers_does_not_import_torch() -> None:
    code = "import sys, toolgym.trainers as t; t.__all__; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
