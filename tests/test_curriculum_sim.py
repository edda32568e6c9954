"""The curriculum simulation study, small and with fixed seeds (benchmarks/curriculum_sim.py).

The schedulers are the real ones; the learner is the simulated GRPO learner described in the
script's docstring. The full study is `python benchmarks/curriculum_sim.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench_support import benchmark_script


@pytest.fixture(scope="module")
def sim():
    with benchmark_script("curriculum_sim") as module:
        yield module


@pytest.fixture(scope="module")
def small(sim):
    return sim.study(sim.SimConfig(units=72, steps=80, seeds=(0, 1, 2)))


def test_potential_reaches_uniform_final_with_fewer_episodes(small) -> None:
    ratio = small["episode_ratio_potential_vs_uniform"]
    assert ratio is not None and ratio <= 0.7
    assert all(r is not None and r < 1.0 for r in small["episode_ratio_potential_vs_uniform_per_seed"])
    # where the gain comes from: more groups with mixed outcomes (the only ones GRPO learns from)
    frac = {k: v["informative_group_fraction"] for k, v in small["schedulers"].items()}
    assert frac["potential"] > frac["uniform"] + 0.15
    # equal budgets, the probe counted: every curve ends within one step (16 x 8 episodes) of it
    budget = small["budget_episodes"]
    assert all(budget - 128 < v["curve"]["episodes"][-1] <= budget for v in small["schedulers"].values())
    assert small["schedulers"]["potential"]["curve"]["episodes"][0] == 72 * 20  # probe spent first


def test_simulation_is_deterministic(sim) -> None:
    cfg = sim.SimConfig(units=24, steps=10, seeds=(5,))
    assert sim.simulate("potential", cfg, 5) == sim.simulate("potential", cfg, 5)
    assert sim.simulate("uniform", cfg, 5) != sim.simulate("uniform", cfg, 6)


def test_episodes_to_reach_interpolates(sim) -> None:
    assert sim.episodes_to_reach([0, 10, 20], [0.0, 0.5, 1.0], 0.75) == pytest.approx(15.0)
    assert sim.episodes_to_reach([0, 10], [0.0, 0.5], 0.75) is None


def test_script_writes_json_table_and_plot(sim, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "sim.json"
    assert sim.main(["--out", str(out), "--seeds", "1", "--steps", "20", "--units", "24"]) == 0
    data = json.loads(out.read_text())
    assert "episode_ratio_potential_vs_uniform" in data
    assert set(data["populations"]) == {"r1ci_like", "mostly_learnable"}
    assert out.with_suffix(".png").stat().st_size > 10_000
    assert "informative groups" in capsys.readouterr().out
