"""The KL term to a frozen reference policy, and the advantage knobs of `algo:`: settings that act."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from toolgym.agents.episode import Episode
from toolgym.trainers import LossConfig, LossInputs, compute_policy_loss
from toolgym.trainers.config import ConfigError, load_config
from toolgym.trainers.run.driver import fit
from toolgym.trainers.run.runstate import base_model_path
from toolgym.trainers.run.stages import advantages, reward_kl

TINY = ["rollout.prompts_per_step=2", "rollout.group_size=2", "rollout.sandbox_pool=1",
        "rollout.max_turns=1", "sampling.max_new_tokens=8", "rollout.filter_zero_variance=false",
        "loss.entropy_coef=0.01",
        "optimizer.lr=1e-2", "eval.problems=0", "run.progress=false", "run.ray=off",
        "curriculum.scheduler=uniform", "run.tasks=[toolgym/arith-v0]",
        "model.tiny={hidden_size: 32, intermediate_size: 64, num_layers: 1, num_heads: 2, num_kv_heads: 1}"]


@pytest.mark.parametrize("kind", ["k1", "k3"])
def test_the_kl_gradient_matches_finite_differences(kind: str) -> None:
    g = torch.Generator().manual_seed(1)
    logp = -torch.rand(2, 4, generator=g, dtype=torch.float64) - 0.1
    ref = -torch.rand(2, 4, generator=g, dtype=torch.float64) - 0.1
    mask = torch.tensor([[1, 1, 1, 0], [0, 1, 1, 1]], dtype=torch.float64)
    cfg = LossConfig(name="ppo_clip", kl_coef=0.3, kl_type=kind)

    def total(x: torch.Tensor) -> torch.Tensor:  # A = 0 and old = x: only the KL term moves
        inputs = LossInputs(x, x.detach(), torch.zeros_like(x), mask, ref_logp=ref)
        return compute_policy_loss(inputs, cfg).loss

    x = logp.clone().requires_grad_()
    total(x).backward()
    eps = 1e-6
    for i, j in [(0, 0), (0, 2), (1, 1), (1, 3), (0, 3)]:
        bump = torch.zeros_like(logp)
        bump[i, j] = eps
        numeric = (total(logp + bump) - total(logp - bump)) / (2 * eps)
        assert float(x.grad[i, j]) == pytest.approx(float(numeric), rel=1e-5, abs=1e-9), (i, j)


def test_kl_coef_trains_against_the_starting_policy_and_logs_loss_kl(tmp_path: Path) -> None:
    cfg = load_config(None, [*TINY, "run.steps=3", "loss.kl_coef=0.01"])
    fit(cfg, tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    kl = [r["loss/kl"] for r in records if "loss/kl" in r]
    assert len(kl) == 3
    assert kl[0] == pytest.approx(0.0, abs=1e-7)  # the policy is the reference before its first update
    assert kl[-1] > 1e-6  # then it moved away
    recorded = yaml.safe_load((tmp_path / "config.yaml").read_text())["loss"]["kl_reference"]
    assert recorded == base_model_path(cfg, tmp_path)  # the starting policy, written down for a resume


def test_kl_settings_are_checked_up_front(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"loss\.kl_reference: .* is not a model directory"):
        load_config(None, ["loss.kl_coef=0.1", f"loss.kl_reference={tmp_path / 'missing'}"])
    load_config(None, ["loss.kl_coef=0.1", "run.learners=2", "run.learner_strategy=fsdp2"])  # sharded
    with pytest.raises(ConfigError, match="kl_reference names the reference policy of a KL"):
        load_config(None, [f"loss.kl_reference={tmp_path}"])  # without kl_coef it would be ignored


def _group() -> list[Episode]:
    return [Episode("t/x-v0", 0, "train", "g", [1], [2, 3], [1, 1], [0.0, 0.0], reward=r, success=r > 0,
                    finish_reason="answered") for r in (1.0, 1.0, 1.0, 0.0)]


def test_the_advantage_knobs_of_algo_reach_the_estimator() -> None:
    base = advantages([_group()], load_config(None))
    loose = advantages([_group()], load_config(None, ["algo.std_eps=1.0"]))
    assert base[0] != pytest.approx(loose[0])  # a larger epsilon shrinks the normalised advantage
    assert abs(loose[0]) < abs(base[0])
    whiten = load_config(None, ["algo.advantage=reinforce_pp", "algo.whiten_eps=10.0"])
    assert advantages([_group()], whiten)[0] != pytest.approx(
        advantages([_group()], load_config(None, ["algo.advantage=reinforce_pp"]))[0])


def test_reward_kl_is_the_behaviour_minus_the_reference_log_probs_on_policy_tokens() -> None:
    group = _group()
    group[0].prompt_ids, group[0].response_ids = [5, 6, 7], [2, 9, 3]  # a prompt of 3, an observation
    group[0].loss_mask, group[0].logprobs = [1, 0, 1], [-0.5, 0.0, -0.25]

    def reference(samples):  # the reference's target log-probs: -1 at every target position
        return [torch.full((len(s.ids) - 1,), -1.0) for s in samples]

    kl = reward_kl([group], reference)
    assert kl.shape == (4, 3)
    assert kl[0].tolist() == [0.5, 0.0, 0.75]  # -0.5 - (-1), the observation token 0, -0.25 - (-1)
    assert kl[1].tolist() == [1.0, 1.0, 0.0]  # 0 - (-1) on both policy tokens, padding 0


def test_algo_kl_coef_puts_the_kl_in_reinforce_pp_returns() -> None:
    cfg = load_config(None, ["algo.advantage=reinforce_pp", "algo.kl_coef=0.5"])
    kl = torch.tensor([[2.0, 0.0]] + [[0.0, 0.0]] * 3)  # only episode 0's first token strays
    with_kl = advantages([_group()], cfg, kl)
    without = advantages([_group()], cfg, torch.zeros(4, 2))
    assert with_kl[0][0] < without[0][0]  # its return-to-go pays 0.5 * 2 from that token on
    with pytest.raises(ConfigError, match="reinforce_pp only"):
        load_config(None, ["algo.kl_coef=0.5"])  # grpo has no per-token reward


def test_algo_kl_coef_trains_against_the_starting_policy_and_logs_reward_kl(tmp_path: Path) -> None:
    cfg = load_config(None, [*TINY, "run.steps=3", "algo.advantage=reinforce_pp", "algo.kl_coef=0.1"])
    fit(cfg, tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    kl = [r["algo/reward_kl"] for r in records if "algo/reward_kl" in r]
    assert len(kl) == 3 and all("loss/kl" not in r for r in records)  # in the reward, not in the loss
    assert abs(kl[0]) < 1e-4  # behaviour = reference before the first update (engine vs learner numerics)
    assert abs(kl[-1]) > abs(kl[0])  # then the policy moved away from the reference
    recorded = yaml.safe_load((tmp_path / "config.yaml").read_text())["loss"]["kl_reference"]
    assert recorded == base_model_path(cfg, tmp_path)
