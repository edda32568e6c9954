"""`toolgym report RUN_DIR [RUN_DIR ...]`: one self-contained HTML page with the plots of training runs.

Why one file with PNGs embedded as base64 data URIs and no JavaScript: the page must open anywhere
(mailed, attached to an issue, opened from a cluster's shared disk) without a server, a network or a
plotting library in the browser. Several run directories are overlaid panel by panel, so recipes or
seeds compare at a glance. A metric a run did not log is a "not logged" note naming the key, never a
crash: runs from older versions, crashed runs and runs with a different curriculum all still report.

Inputs read from each run directory: `metrics.jsonl` (the stable names of trainers/report/metrics.py; a
torn last line from a crash is skipped), and `summary.json` when present (shown as a table).
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolgym.trainers.report.plots import (
    PANELS,
    POTENTIALS_KEY,
    UNSPLIT_KEY,
    Panel,
    constant_keys,
    missing_keys,
    render_panel,
)

SUMMARY_KEYS = ("heldout_pass1_sft", "heldout_pass1_rl", "wall_s", "peak_rss_mb")


@dataclass
class RunData:
    """One run directory's metrics, as read for the report."""

    name: str
    path: Path
    records: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)
    skipped_lines: int = 0  # unparsable lines in metrics.jsonl (a crash mid-write)
    derived: list[str] = field(default_factory=list)  # keys computed from others, said in the page
    config: dict[str, Any] = field(default_factory=dict)  # config.yaml: what was trained
    sft_records: list[dict[str, Any]] = field(default_factory=list)  # sft_metrics.jsonl (warm start)


def _read_jsonl(path: Path) -> tuple[list[dict[str, Any]], int]:
    records, skipped = [], 0
    with path.open() as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                skipped += 1
                continue
            if isinstance(rec, dict):
                records.append(rec)
            else:
                skipped += 1
    return records, skipped


def _derive(records: list[dict[str, Any]]) -> list[str]:
    """Fill `tool/errors` from calls x error rate (exact: rate = errors / calls) when not logged, and
    show `time/rollout_s` whole when generation and sandbox time are not logged separately."""
    derived = []
    if not any("time/generation_s" in r for r in records) and any("time/rollout_s" in r for r in records):
        for rec in records:
            if "time/rollout_s" in rec:
                rec[UNSPLIT_KEY] = rec["time/rollout_s"]
        derived.append("rollout time shown whole (time/rollout_s): generation and sandbox time are not "
                       "logged separately")
    if not any("tool/errors" in r for r in records):
        for rec in records:
            calls, rate = rec.get("tool/calls"), rec.get("tool/error_rate")
            if isinstance(calls, int | float) and isinstance(rate, int | float):
                rec["tool/errors"] = float(calls) * float(rate)
        if any("tool/errors" in r for r in records):
            derived.append("tool/errors = tool/calls x tool/error_rate")
    return derived


def load_run(run_dir: str | os.PathLike) -> RunData:
    """Read a run directory; raises FileNotFoundError saying what is missing."""
    path = Path(run_dir)
    metrics = path / "metrics.jsonl"
    if not path.is_dir():
        raise FileNotFoundError(f"{str(run_dir)!r} is not a directory; give run directories written by "
                                "`toolgym train` (they hold metrics.jsonl)")
    if not metrics.exists():
        raise FileNotFoundError(f"{metrics} does not exist: is {str(run_dir)!r} a run directory of "
                                "`toolgym train`? (a run writes metrics.jsonl after its first step)")
    records, skipped = _read_jsonl(metrics)
    summary: dict[str, Any] = {}
    if (path / "summary.json").exists():
        try:
            summary = json.loads((path / "summary.json").read_text())
        except json.JSONDecodeError:
            summary = {}
    config: dict[str, Any] = {}
    if (path / "config.yaml").exists():
        import yaml

        try:
            loaded = yaml.safe_load((path / "config.yaml").read_text())
            config = loaded if isinstance(loaded, dict) else {}
        except yaml.YAMLError:
            config = {}
    sft = _read_jsonl(path / "sft_metrics.jsonl")[0] if (path / "sft_metrics.jsonl").exists() else []
    return RunData(path.resolve().name or str(path), path, records, summary, skipped, _derive(records),
                   config, sft)


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: data}


def trained_on(config: dict[str, Any]) -> str:
    """The tasks a run trained on (`run.tasks`, else the suite), for labels and tables."""
    run = config.get("run") or {}
    tasks = run.get("tasks") or []
    return ", ".join(tasks) if tasks else f"suite {run.get('suite', '?')}"


WHAT_KEYS = (("model", "model.name_or_path"), ("loss", "loss.name"), ("advantage", "algo.advantage"),
             ("curriculum", "curriculum.scheduler"), ("steps", "run.steps"), ("held-out split", "eval.split"),
             ("held-out problems", "eval.problems"), ("samples", "eval.n"))


def _what_table(runs: Sequence[RunData]) -> str:
    """What each run trained (from its config.yaml), then the config keys whose values differ."""
    shown = [r for r in runs if r.config]
    if not shown:
        return '<p class="note">No config.yaml in the run directories: what was trained is not shown.</p>'
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["run", "tasks", *(n for n, _ in WHAT_KEYS)])
    rows = []
    for run in shown:
        flat = _flatten(run.config)
        cells = [trained_on(run.config)]
        cells += [_what_cell(flat, k) for _, k in WHAT_KEYS]
        rows.append(f"<tr><td>{html.escape(run.name)}</td>" + "".join(f"<td>{_fmt(c)}</td>" for c in cells)
                    + "</tr>")
    parts = ['<section id="trained"><h2>What was trained</h2>',
             f"<table><tr>{head}</tr>{''.join(rows)}</table>"]
    if len(shown) > 1:
        flats = [_flatten(r.config) for r in shown]
        keys = sorted({k for f in flats for k in f})
        differ = [k for k in keys
                  if len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flats}) > 1]
        if differ:
            dhead = "".join(f"<th>{html.escape(c)}</th>" for c in ["config key", *(r.name for r in shown)])
            drows = "".join(f"<tr><td>{html.escape(k)}</td>"
                            + "".join(f"<td>{_fmt(f.get(k, '(absent)'))}</td>" for f in flats) + "</tr>"
                            for k in differ)
            parts.append("<h3>Config keys that differ between the runs</h3>"
                         f"<table><tr>{dhead}</tr>{drows}</table>")
        else:
            parts.append("<p>The runs' configs are identical.</p>")
    parts.append("</section>")
    return "\n".join(parts)


WARM_PANEL = Panel("warm_start", "Warm start (SFT): NLL of the policy tokens per SFT step",
                   "NLL (nats/token)", (("loss/nll", "NLL"),))


def _what_cell(flat: dict[str, Any], key: str) -> Any:
    value = flat.get(key)
    if value is None:
        return "tiny (built locally)" if key == "model.name_or_path" else "—"
    return value


def _warm_start_html(runs: Sequence[RunData]) -> str:
    sft = [RunData(r.name, r.path, r.sft_records) for r in runs if r.sft_records]
    if not sft:
        return ('<section id="warm_start"><h2>Warm start (SFT)</h2><p class="note">No sft_metrics.jsonl: '
                "these runs had no warm start in their run directory.</p></section>")
    return _panel_html(WARM_PANEL, sft)


def _unique_names(runs: list[RunData]) -> None:
    seen: dict[str, int] = {}
    for run in runs:
        if run.name in seen:
            seen[run.name] += 1
            run.name = f"{run.name} ({seen[run.name]})"
        else:
            seen[run.name] = 1


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if not math.isfinite(value) else f"{value:.4g}"
    return html.escape(str(value))


def _last(run: RunData, key: str) -> Any:
    for rec in reversed(run.records):
        value = rec.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
    return "not logged"


def _summary_table(runs: Sequence[RunData]) -> str:
    cols = ["steps logged", "last reward/mean", "last success/rate", "last eval/pass@1", *SUMMARY_KEYS]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["run", *cols])
    rows = []
    for run in runs:
        cells = [len(run.records), _last(run, "reward/mean"), _last(run, "success/rate"),
                 _last(run, "eval/pass@1"), *(run.summary.get(k, "—") for k in SUMMARY_KEYS)]
        rows.append(f"<tr><td>{html.escape(run.name)}</td>" + "".join(f"<td>{_fmt(c)}</td>" for c in cells)
                    + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _panel_html(panel: Panel, runs: Sequence[RunData]) -> str:
    png = render_panel(panel, runs)
    parts = [f'<section id="{panel.id}"><h2>{html.escape(panel.title)}</h2>']
    if png is not None:
        parts.append(f'<img alt="{html.escape(panel.title)}" src="data:image/png;base64,{png}">')
    gone = missing_keys(panel, runs)
    for name, keys in gone.items():
        what = "not logged" if png is not None else "not logged by any run"
        parts.append(f'<p class="note">{html.escape(name)}: {", ".join(html.escape(k) for k in keys)} '
                     f"{what}.</p>")
    constant = constant_keys(panel, runs) if panel.kind not in ("time", "potentials") else {}
    for key, value in constant.items():
        parts.append(f'<p class="note">{html.escape(key)} is {_fmt(value)} at every logged step: '
                     f"{html.escape(CONSTANT_WHY.get(key, 'nothing varied it in these runs'))}.</p>")
    if panel.id == "potentials" and gone:
        parts.append(f'<p class="note">The per-stage distribution needs {POTENTIALS_KEY} (the potentials '
                     "of the active units, logged each step by the potential curriculum).</p>")
    parts.append("</section>")
    return "\n".join(parts)


_ON_POLICY = ("with one on-policy optimizer step per rollout batch every ratio is 1, so nothing is clipped "
              "(more mini-batches or epochs make the clip act)")
CONSTANT_WHY = {
    "loss/clipfrac_low": _ON_POLICY,
    "loss/clipfrac_high": _ON_POLICY,
    "actor/entropy_coef": "a fixed coefficient (loss.entropy_coef; 0 = no entropy bonus; "
                          "loss.entropy_target makes it adaptive)",
}

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}
section{margin:1.5em 0}img{max-width:100%;height:auto;border:1px solid #eee}
.note{color:#8a4b00;font-size:13px;margin:.3em 0}h2{font-size:17px;margin-bottom:.3em}"""


def render_report(runs: Sequence[RunData], title: str = "toolgym training report") -> str:
    """The HTML page for already loaded runs."""
    runs = list(runs)
    _unique_names(runs)
    intro = [f"<p>Runs: {', '.join(html.escape(f'{r.name} ({r.path})') for r in runs)}. "
             "Metric names are documented in toolgym/trainers/report/metrics.py.</p>"]
    for run in runs:
        if not run.records:
            intro.append(f'<p class="note">{html.escape(run.name)}: metrics.jsonl has no steps yet.</p>')
        if run.skipped_lines:
            intro.append(f'<p class="note">{html.escape(run.name)}: {run.skipped_lines} unreadable '
                         "line(s) of metrics.jsonl skipped (a crash mid-write?).</p>")
        for what in run.derived:
            intro.append(f'<p class="note">{html.escape(run.name)}: derived {html.escape(what)}.</p>')
    body = "\n".join([*intro, _summary_table(runs), _what_table(runs), _warm_start_html(runs),
                      *(_panel_html(p, runs) for p in PANELS)])
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
            f"</title><style>{STYLE}</style></head>\n<body><h1>{html.escape(title)}</h1>\n{body}\n"
            "</body></html>\n")


def write_report(run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike | None = None) -> Path:
    """Write the report of `run_dirs` to `out` (default: RUN_DIR/report.html for one run, ./report.html
    for several) and return its path."""
    if not run_dirs:
        raise ValueError("give at least one run directory")
    runs = [load_run(d) for d in run_dirs]
    target = Path(out) if out is not None else (
        Path(run_dirs[0]) / "report.html" if len(run_dirs) == 1 else Path("report.html"))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_report(runs))
    return target


__all__ = ["RunData", "load_run", "render_report", "write_report"]
