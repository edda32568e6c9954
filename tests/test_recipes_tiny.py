"""Each recipe's `--tiny` variant trains a few steps on CPU through the real driver (tiny model, local
sandbox, in-process stages), and the report of all those runs renders. Slow: about 15 s per recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from toolgym.trainers.config.recipes import list_recipes, load_recipe
from toolgym.trainers.report.html import write_report
from toolgym.trainers.run.driver import fit

pytestmark = pytest.mark.slow

TINY = [name for name in list_recipes() if name != "quickstart"]


@pytest.fixture(scope="module")
def run_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny_runs")


@pytest.mark.parametrize("name", TINY)
def test_tiny_variant_trains(name: str, run_root: Path) -> None:
    cfg = load_recipe(name, tiny=True)
    out = fit(cfg, run_root / name)
    assert out["interrupted"] is False and out["step"] == cfg.run.steps
    lines = [json.loads(line) for line in (run_root / name / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in lines if "time/step_s" in r]
    assert steps == list(range(1, cfg.run.steps + 1))
    assert all(r["rollout/episodes"] >= cfg.rollout.prompts_per_step * cfg.rollout.group_size
               for r in lines if "time/step_s" in r)


def test_report_of_the_tiny_runs(run_root: Path) -> None:
    dirs = [run_root / name for name in TINY if (run_root / name / "metrics.jsonl").exists()]
    if not dirs:
        pytest.skip("the tiny runs above did not run")
    page = write_report(dirs, run_root / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 5
