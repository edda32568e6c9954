"""Each shipped recipe's `--tiny` variant runs through the CLI as a user types it (`toolgym train
--recipe NAME --tiny`: warm start, probe, RL steps, held-out eval; tiny model, local sandbox, in-process
stages), and the report of all those runs renders. In the default run: 20-140 s per recipe on two
shared cores (r1-code-interpreter, which probes its families, is the longest)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from toolgym.trainers.config.recipes import list_recipes, load_recipe
from toolgym.trainers.report.html import write_report

from toolgym.cli import main

TINY = [name for name in list_recipes() if name != "quickstart"]


@pytest.fixture(scope="module")
def run_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny_runs")


@pytest.mark.parametrize("name", TINY)
def test_tiny_variant_trains_through_the_cli(name: str, run_root: Path) -> None:
    cfg = load_recipe(name, tiny=True)
    assert main(["train", "--recipe", name, "--tiny", "--output", str(run_root / name)]) == 0
    assert (run_root / name / "sft_metrics.jsonl").exists() == (cfg.sft.steps > 0)  # the warm start ran
    lines = [json.loads(line) for line in (run_root / name / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in lines if "time/step_s" in r]
    assert steps == list(range(1, cfg.run.steps + 1))
    assert all(r["rollout/episodes"] >= cfg.rollout.prompts_per_step * cfg.rollout.group_size
               for r in lines if "time/step_s" in r)
    if name == "deepcoder":  # its length stages: 32 then 64 policy tokens (the tiny 16k -> 32k)
        assert [r["rollout/max_response_tokens"] for r in lines if "time/step_s" in r] == [32.0, 64.0]
    if cfg.curriculum.scheduler in ("potential", "difficulty_band") and cfg.curriculum.probe:
        assert lines[0]["step"] == 0 and lines[0]["curriculum/probe_episodes"] > 0  # probed before step 1


def test_report_of_the_tiny_runs(run_root: Path) -> None:
    dirs = [run_root / name for name in TINY if (run_root / name / "metrics.jsonl").exists()]
    if not dirs:
        pytest.skip("the tiny runs above did not run")
    page = write_report(dirs, run_root / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 5
