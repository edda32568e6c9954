"""Advantage estimators against hand-computed values (groups of one, all-equal rewards, masks)."""

from __future__ import annotations

import math

import pytest
import torch
from toolgym.trainers import (
    AdvantageConfig,
    AdvantageInputs,
    compute_advantages,
    episode_advantages,
    get_advantage,
    list_advantages,
    register_advantage,
)

REWARDS = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 0.5, 0.5, 0.5])
GROUPS = ["a", "a", "a", "a", "solo", "eq", "eq", "eq"]
LENGTHS = torch.tensor([3, 2, 4, 1, 3, 4, 2, 3])
MASK = (torch.arange(4)[None, :] < LENGTHS[:, None]).float()  # [8, 4]


def adv(name: str, **cfg: float) -> torch.Tensor:
    return compute_advantages(AdvantageInputs(REWARDS, GROUPS, MASK), AdvantageConfig(name, **cfg))


def per_sample(values: list[float]) -> torch.Tensor:
    return torch.tensor(values)[:, None] * MASK


def test_grpo_hand_example() -> None:
    # group a: mean 0.5, unbiased std sqrt(4 * 0.25 / 3) = 0.57735; solo group -> 0; all-equal -> 0
    a = 0.5 / (math.sqrt(1 / 3) + 1e-6)
    torch.testing.assert_close(adv("grpo"), per_sample([a, -a, -a, a, 0, 0, 0, 0]))


def test_dr_grpo_and_rloo_hand_examples() -> None:
    torch.testing.assert_close(adv("dr_grpo"), per_sample([0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0]))
    # rloo: R_i - mean of the others: 1 - 1/3, 0 - 2/3
    torch.testing.assert_close(adv("rloo"), per_sample([2 / 3, -2 / 3, -2 / 3, 2 / 3, 0, 0, 0, 0]))


def test_all_equal_rewards_give_exactly_zero() -> None:
    """0.1 * 3 is not exactly 0.3 in floating point: still exactly 0, not noise divided by a tiny std."""
    rewards = torch.tensor([0.1, 0.1, 0.1, 0.7, 0.7])
    inputs = AdvantageInputs(rewards, [0, 0, 0, 1, 1], torch.ones(5, 2))
    for name in ("grpo", "dr_grpo", "rloo", "reinforce_pp_baseline"):
        assert (compute_advantages(inputs, AdvantageConfig(name)) == 0).all(), name


def test_tensor_and_hashable_group_ids_agree() -> None:
    ids = torch.tensor([7, 7, 7, 7, 3, 9, 9, 9])
    by_tensor = compute_advantages(AdvantageInputs(REWARDS, ids, MASK))
    torch.testing.assert_close(by_tensor, adv("grpo"))


def test_reinforce_pp_return_to_go_with_kl_and_batch_whitening() -> None:
    # row 0: tokens 0,1 sampled, 2,3 tool output, 4 sampled (the last loss token gets the reward)
    mask = torch.tensor([[1, 1, 0, 0, 1, 0], [1, 1, 1, 0, 0, 0]], dtype=torch.float32)
    kl = torch.tensor([[0.2, 0.4, 9.0, 9.0, 0.6, 9.0], [0.0, 0.2, 0.2, 9.0, 9.0, 9.0]])
    out = compute_advantages(AdvantageInputs(torch.tensor([1.0, 0.0]), ["g", "h"], mask, kl=kl),
                             AdvantageConfig("reinforce_pp", kl_coef=0.5))
    # token rewards: row0 [-0.1, -0.2, ., ., 1 - 0.3]; row1 [0, -0.1, -0.1]; returns (gamma 1):
    returns = torch.tensor([0.4, 0.5, 0.7, -0.2, -0.2, -0.1], dtype=torch.float64)
    mean, std = returns.mean(), returns.std()  # unbiased, over the 6 loss tokens
    expected = ((returns - mean) / torch.sqrt(std**2 + 1e-8)).float()
    got = torch.cat([out[0, [0, 1, 4]], out[1, :3]])
    torch.testing.assert_close(got, expected)
    assert (out[mask == 0] == 0).all()


def test_reinforce_pp_without_kl_is_the_whitened_reward() -> None:
    out = adv("reinforce_pp")
    valid = out[MASK > 0].double()
    assert float(valid.mean()) == pytest.approx(0.0, abs=1e-6)
    assert float(valid.std()) == pytest.approx(1.0, abs=1e-6)
    # every token of a sample carries the same value (its return is R_i): ordered like the rewards
    assert out[0, 0] == out[0, 2] and out[4, 0] > out[0, 0] > out[5, 0] > out[1, 0]


def test_reinforce_pp_baseline_whitens_group_centred_rewards() -> None:
    out = adv("reinforce_pp_baseline")
    centred = torch.tensor([0.5, -0.5, -0.5, 0.5, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    tokens = centred.repeat_interleave(LENGTHS)
    expected = (tokens - tokens.mean()) / torch.sqrt(tokens.var() + 1e-8)
    torch.testing.assert_close(out[MASK > 0].double(), expected, rtol=1e-5, atol=1e-6)


def test_masked_tokens_are_zero_for_every_estimator() -> None:
    for name in list_advantages():
        assert (adv(name)[MASK == 0] == 0).all(), name


def test_group_of_one_gets_zero() -> None:
    inputs = AdvantageInputs(torch.tensor([3.0]), ["x"], torch.ones(1, 2))
    for name in ("grpo", "dr_grpo", "rloo"):
        assert (compute_advantages(inputs, AdvantageConfig(name)) == 0).all(), name


def test_unknown_estimator_lists_the_registered_ones() -> None:
    with pytest.raises(ValueError, match=r"Did you mean 'grpo'\?.*Registered: dr_grpo, grpo, reinforce_pp"):
        AdvantageConfig("gpro")
    with pytest.raises(ValueError, match="unknown advantage estimator 'nope'"):
        get_advantage("nope")


def test_registering_a_name_twice_raises() -> None:
    with pytest.raises(ValueError, match="'grpo' is already registered"):
        register_advantage("grpo")(lambda inputs, cfg: inputs.mask)


def test_a_plugin_estimator_is_usable_by_name() -> None:
    name = "test_plugin_constant_adv"
    if name not in list_advantages():
        register_advantage(name)(lambda inputs, cfg: torch.full(inputs.mask.shape, 2.0))
    out = compute_advantages(AdvantageInputs(REWARDS, GROUPS, MASK), AdvantageConfig(name))
    torch.testing.assert_close(out, 2.0 * MASK)


def test_bad_inputs_and_config_are_explained() -> None:
    with pytest.raises(ValueError, match=r"rewards must be \[N\], group_ids \[N\], mask \[N, T\]"):
        AdvantageInputs(REWARDS, GROUPS[:-1], MASK)
    with pytest.raises(ValueError, match=r"AdvantageConfig.std_eps must be a finite number >= 0"):
        AdvantageConfig("grpo", std_eps=-1.0)
    with pytest.raises(ValueError, match="kl_coef applies to name='reinforce_pp' only"):
        AdvantageConfig("grpo", kl_coef=0.1)
    with pytest.raises(ValueError, match=r"needs AdvantageInputs\.kl"):
        compute_advantages(AdvantageInputs(REWARDS, GROUPS, MASK),
                           AdvantageConfig("reinforce_pp", kl_coef=0.1))


def test_every_builtin_estimator_gives_one_value_per_episode_without_per_token_rewards() -> None:
    """The trainer's form: [N] values, whose broadcast over the mask is the per-token advantage."""
    inputs = AdvantageInputs(REWARDS, GROUPS, MASK)
    own = "toolgym.trainers.algo.advantages"
    builtins = [n for n in list_advantages() if get_advantage(n).__module__ == own]
    assert len(builtins) == 5
    for name in builtins:
        values = episode_advantages(inputs, AdvantageConfig(name))
        assert values.shape == (len(REWARDS),), name
        torch.testing.assert_close(values[:, None] * MASK, compute_advantages(inputs, AdvantageConfig(name)))


def test_reinforce_pp_per_episode_form_equals_the_token_level_return_to_go() -> None:
    """Without per-token KL the closed form (token-weighted whitening of R_i) equals the general path
    (return-to-go over tokens, then whitening over tokens), here forced with a zero KL."""
    closed = compute_advantages(AdvantageInputs(REWARDS, GROUPS, MASK), AdvantageConfig("reinforce_pp"))
    tokens = compute_advantages(AdvantageInputs(REWARDS, GROUPS, MASK, kl=torch.zeros_like(MASK)),
                                AdvantageConfig("reinforce_pp", kl_coef=1.0))
    torch.testing.assert_close(closed, tokens, rtol=1e-6, atol=1e-7)
    assert episode_advantages(AdvantageInputs(REWARDS, GROUPS, MASK, kl=torch.zeros_like(MASK)),
                              AdvantageConfig("reinforce_pp", kl_coef=1.0)).shape == MASK.shape


def test_an_estimator_of_the_wrong_shape_is_explained() -> None:
    name = "test-wrong-shape"
    if name not in list_advantages():
        register_advantage(name)(lambda inputs, cfg: torch.zeros(3))
    with pytest.raises(ValueError, match=r"returned shape \(3,\); it must be \[N\] = \(8,\)"):
        episode_advantages(AdvantageInputs(REWARDS, GROUPS, MASK), AdvantageConfig(name))
