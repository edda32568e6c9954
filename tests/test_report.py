"""`toolgym report`: a self-contained HTML page from run directories, built here from synthetic
metrics.jsonl files written with the trainer's own `MetricsLogger` (so the names and the JSON layout are
the real ones). Missing metrics become notes, torn lines are skipped, every embedded image is a PNG."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import pytest
from PIL import Image
from toolgym.trainers.report.html import load_run, write_report
from toolgym.trainers.report.metrics import METRICS, MetricsLogger
from toolgym.trainers.report.plots import PANELS, POTENTIALS_KEY

from toolgym.cli import main

IMG = re.compile(r'<img alt="([^"]*)" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')


def full_step(step: int, stage: int) -> dict[str, object]:
    return {"reward/mean": 0.1 * step, "success/rate": 0.05 * step, "actor/entropy": 1.0 / step,
            "actor/entropy_coef": 1e-4 * step, "loss/clipfrac_low": 0.01, "loss/clipfrac_high": 0.03,
            "tool/calls": 2.0, "tool/error_rate": 0.25, "episode/response_tokens": 50.0 + step,
            "time/rollout_s": 3.0, "time/generation_s": 2.0, "time/sandbox_s": 1.0, "time/learner_s": 1.5,
            "time/sync_s": 0.1, "curriculum/stage": stage, POTENTIALS_KEY: [0.2, 0.9, 0.5],
            "curriculum/mean_potential": 0.5 - 0.01 * step, "filter/kept_groups": 4.0 + step % 2,
            "filter/dropped_groups": 4.0 - step % 2,
            **({"eval/pass@1": 0.1 * step} if step % 2 == 0 else {})}


def write_run(path: Path, steps: int, make=full_step) -> Path:
    with MetricsLogger(path) as log:
        for step in range(1, steps + 1):
            log.log(step, make(step, 1 + step // 3))
    return path


def images(page: str) -> dict[str, Image.Image]:
    return {alt: Image.open(io.BytesIO(base64.b64decode(data))) for alt, data in IMG.findall(page)}


def test_every_plotted_metric_is_a_documented_name() -> None:
    used = {key for panel in PANELS for key, _ in panel.lines if key not in panel.optional}
    # loss/* names are documented with their loss (trainers/algo/loss_api.py), the rest in METRICS
    assert {k for k in used if not k.startswith("loss/")} <= set(METRICS)


def test_full_run_gives_one_png_per_panel_and_no_notes(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", 6)
    out = write_report([run])
    assert out == run / "report.html"
    page = out.read_text()
    imgs = images(page)
    assert set(imgs) == {p.title for p in PANELS}
    for img in imgs.values():
        assert img.format == "PNG" and img.width > 100 and img.height > 100
    assert "not logged" not in page
    assert "<script" not in page and "http://" not in page and "https://" not in page  # self-contained


def test_runs_are_overlaid_and_missing_metrics_are_notes(tmp_path: Path) -> None:
    full = write_run(tmp_path / "full", 4)
    sparse = write_run(tmp_path / "sparse", 3, make=lambda step, stage: {"reward/mean": 0.5,
                                                                          "time/rollout_s": 2.0})
    page = write_report([full, sparse], tmp_path / "cmp.html").read_text()
    assert len(images(page)) == len(PANELS)  # the full run still plots every panel
    assert "sparse: actor/entropy, actor/entropy_coef not logged." in page
    assert f"sparse: {POTENTIALS_KEY} not logged." in page
    # rollout time of a run that does not split it is shown whole, and said so
    assert "sparse: derived rollout time shown whole" in page
    assert "<td>full</td><td>4</td>" in page and "<td>sparse</td><td>3</td>" in page


def test_run_with_nothing_but_steps_does_not_crash(tmp_path: Path) -> None:
    bare = write_run(tmp_path / "bare", 2, make=lambda step, stage: {})
    page = write_report([bare]).read_text()
    assert images(page) == {}
    assert page.count("not logged by any run") == len(PANELS)


def test_torn_last_line_is_skipped_and_tool_errors_are_derived_exactly(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", 3)
    with (run / "metrics.jsonl").open("a") as fh:
        fh.write('{"step": 4, "reward/me')  # a crash mid-write
    data = load_run(run)
    assert len(data.records) == 3 and data.skipped_lines == 1
    assert [r["tool/errors"] for r in data.records] == [0.5, 0.5, 0.5]  # 2 calls x 25 % errors
    assert "1 unreadable line(s)" in write_report([run]).read_text()


def test_same_named_runs_get_distinct_labels(tmp_path: Path) -> None:
    a = write_run(tmp_path / "x" / "run", 2)
    b = write_run(tmp_path / "y" / "run", 2)
    page = write_report([a, b], tmp_path / "r.html").read_text()
    assert "<td>run</td>" in page and "<td>run (2)</td>" in page


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path / "run", 2)
    assert main(["report", str(run), "--out", str(tmp_path / "page.html")]) == 0
    assert (tmp_path / "page.html").exists() and "wrote" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "not a directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "metrics.jsonl does not exist" in capsys.readouterr().err


def test_report_shows_what_was_trained_config_diff_warm_start_and_constant_panels(tmp_path: Path) -> None:
    import yaml
    from toolgym.trainers.config import load_config

    runs = []
    for name, overrides in (("a", ["run.tasks=[me/count-primes-v0]"]), ("b", ["optimizer.lr=3e-4"])):
        run = write_run(tmp_path / name, 4, make=lambda step, stage: {**full_step(step, stage),
                                                                      "loss/clipfrac_low": 0.0})
        cfg = load_config(None, ["run.progress=false", *overrides]) if name == "b" else None
        data = cfg.to_dict() if cfg else {"run": {"tasks": ["me/count-primes-v0"], "suite": "quickstart"},
                                          "optimizer": {"lr": 1e-6}, "loss": {"name": "gppo"}}
        (run / "config.yaml").write_text(yaml.safe_dump(data))
        runs.append(run)
    with MetricsLogger(runs[0], "sft_metrics.jsonl") as log:
        for step in range(1, 4):
            log.log(step, {"loss/nll": 2.0 / step})
    page = write_report(runs, tmp_path / "r.html").read_text()
    assert "What was trained" in page and "<td>me/count-primes-v0</td>" in page and "suite quickstart" in page
    assert "Config keys that differ between the runs" in page and "<td>optimizer.lr</td>" in page
    assert "Warm start (SFT): NLL of the policy tokens per SFT step" in images(page)
    assert "loss/clipfrac_low is 0 at every logged step: with one on-policy optimizer step" in page
