"""benchmarks/curriculum_real.py: its arm recipes are valid configs that differ only where the arms do,
and its read-off (pass@1 at token checkpoints, tokens to reach a target, the ratios) is right on curves
whose answers are known. (Its figures come from the real runs, in the benchmark.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_support import benchmark_script
from toolgym.trainers.config import load_config


def _curve(points: list[tuple[float, float]]) -> list[dict]:
    return [{"step": i, "tokens": x, "pass@1": y, "per_task": {"a": y}} for i, (x, y) in enumerate(points)]


def test_arm_recipes_load_and_set_the_arm_s_scheduler_filter_and_budget(tmp_path: Path) -> None:
    with benchmark_script("curriculum_real") as bench:
        echo = bench.write_echo_file(tmp_path / "echo.jsonl", train=4, heldout=2)
        configs = {arm: load_config(bench.arm_recipe(tmp_path, arm, 1, "WARM", echo, 8000, 4))
                   for arm in bench.ARMS}
    for arm, cfg in configs.items():
        assert cfg.run.token_budget == 8000 and cfg.eval.every_tokens == 500 and cfg.run.seed == 1
        assert (cfg.eval.n, cfg.eval.temperature) == (bench.EVAL_SAMPLES, 1.0)  # the policy's success rate
        assert cfg.model.name_or_path == "WARM" and cfg.run.tasks == list(bench.MIX) and cfg.run.ray == "off"
        assert cfg.run.task_options["toolgym/jsonl-v0"]["path"] == str(echo)
        assert cfg.rollout.filter_zero_variance == (arm == "dapo_filter")
    assert configs["dapo_filter"].rollout.max_refill_rounds == 3
    assert {a: c.curriculum.scheduler for a, c in configs.items()} == {
        "potential": "potential", "uniform": "uniform", "dapo_filter": "uniform",
        "difficulty_band": "difficulty_band", "solved_drop": "solved_drop"}


def test_value_at_interpolates_between_evals_and_holds_the_ends() -> None:
    with benchmark_script("curriculum_real") as bench:
        curve = _curve([(100, 0.2), (300, 0.6)])
        assert bench.value_at(curve, 50) == 0.2 and bench.value_at(curve, 900) == 0.6
        assert bench.value_at(curve, 200) == pytest.approx(0.4)


def test_tokens_to_reach_and_the_ratios() -> None:
    """Potential climbs 0.2 -> 0.6 over the first quarter of the budget and stays; uniform ends at 0.4,
    the filter at 0.5: potential reaches them at 1/16 and 3/32 of the 8,000-token grid's span."""
    with benchmark_script("curriculum_real") as bench:
        runs = {"potential": [{"curve": _curve([(0, 0.2), (2000, 0.6), (8000, 0.6)]), "wall_s": 1.0}] * 2,
                "uniform": [{"curve": _curve([(0, 0.2), (8000, 0.4)]), "wall_s": 1.0}] * 2,
                "dapo_filter": [{"curve": _curve([(0, 0.2), (8000, 0.5)]), "wall_s": 1.0}],
                "solved_drop": [{"curve": _curve([(0, 0.2), (8000, 0.3)]), "wall_s": 1.0}]}
        summary = bench.summarize(runs, 8000)
        assert bench.tokens_to_reach([0, 1, 2], [0.1, 0.3, 0.5], 0.4) == pytest.approx(1.5)
        assert bench.tokens_to_reach([0, 1], [0.1, 0.2], 0.4) is None
    arms = summary["arms"]
    assert arms["potential"]["final_heldout_mean"] == 0.6 and arms["potential"]["final_heldout_std"] == 0.0
    assert arms["potential"]["tokens_to_uniform_final"] == pytest.approx(1000)
    assert arms["uniform"]["tokens_to_uniform_final"] == pytest.approx(8000)
    assert arms["solved_drop"]["tokens_to_uniform_final"] is None  # never reaches 0.4
    assert summary["token_ratio_potential_vs_uniform"] == pytest.approx(1000 / 8000)
    assert summary["token_ratio_potential_vs_dapo_filter"] == pytest.approx(1500 / 8000)
