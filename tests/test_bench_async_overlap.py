"""benchmarks/async_overlap.py: its runs are the quickstart recipe's RL at the asked staleness and
budget, and its summary reads the speedup and held-out figures right off runs whose answers are known.
(Its figures come from the real runs, in the benchmark.)"""

from __future__ import annotations

import pytest
from bench_support import benchmark_script


def _run(steps_per_hour: float, heldout: float) -> dict:
    return {"steps_per_hour": steps_per_hour, "learner_wait_share": 0.5, "learner_busy_share": 0.4,
            "worker_idle_share": 0.3, "staleness_mean": 1.0, "heldout": heldout, "tokens": 100.0}


def test_run_config_is_the_quickstart_rl_at_k_with_the_budget() -> None:
    with benchmark_script("async_overlap") as bench:
        cfg = bench.run_config("WARM", 1, 2, 5000)
    assert (cfg.run.max_staleness, cfg.run.seed, cfg.run.token_budget, cfg.run.ray) == (1, 2, 5000, "local")
    assert cfg.model.name_or_path == "WARM" and cfg.sft.steps == 0 and cfg.quickstart.guess_steps == 0
    assert cfg.curriculum.scheduler == "potential" and cfg.loss.name == "gppo"  # the quickstart's RL
    with benchmark_script("async_overlap") as bench:
        corrected = bench.run_config("WARM", 1, 2, 5000, ["loss.behaviour_is=truncate"])
    assert (cfg.loss.behaviour_is, corrected.loss.behaviour_is) == ("off", "truncate")  # --set applies


def test_summary_speedup_and_heldout_spread() -> None:
    with benchmark_script("async_overlap") as bench:
        summary = bench.summarize({0: [_run(100, 0.5), _run(300, 0.7)], 1: [_run(300, 0.6), _run(300, 0.6)]})
    assert summary["speedup_k1_vs_k0"] == pytest.approx(1.5)
    assert summary["heldout_k0"] == pytest.approx(0.6) and summary["heldout_k1"] == pytest.approx(0.6)
    assert summary["heldout_k0_std"] == pytest.approx(0.1) and summary["heldout_k1_std"] == 0.0
