"""The report's panels: which metrics each plot shows, and how runs are overlaid.

Why a table of panels over the stable metric names (trainers/report/metrics.py) rather than one function per
plot: adding a plot is one line, and a panel whose metrics a run did not log becomes a "not logged"
note naming the missing keys instead of an empty or crashing figure. Figures are drawn with
matplotlib's object API on an Agg canvas (`Figure` + `FigureCanvasAgg`), so nothing touches pyplot's
global state or the process-wide backend.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
STYLES = ("-", "--", ":", "-.")
UNSPLIT_KEY = "time/rollout_unsplit_s"  # derived by the report when a run does not split rollout time
TIME_PARTS = (("time/generation_s", "generation"), ("time/sandbox_s", "sandbox"),
              (UNSPLIT_KEY, "rollout (generation + sandbox)"), ("time/learner_s", "learner"),
              ("time/sync_s", "sync"))
POTENTIALS_KEY = "curriculum/unit_potentials"


@dataclass(frozen=True)
class Panel:
    """One figure: `lines` are (metric key, label); `kind` picks the drawing function."""

    id: str
    title: str
    ylabel: str
    lines: tuple[tuple[str, str], ...] = ()
    kind: str = "line"  # line | step | points | twin | time | potentials
    optional: tuple[str, ...] = ()  # keys whose absence is not worth a "not logged" note


PANELS: tuple[Panel, ...] = (
    Panel("reward", "Training reward and pass rate", "per episode",
          (("reward/mean", "reward"), ("success/rate", "pass rate"))),
    Panel("heldout", "Held-out pass@1", "pass@1", (("eval/pass@1", "held-out pass@1"),), "points"),
    Panel("stage", "Curriculum stage", "stage", (("curriculum/stage", "stage"),), "step"),
    Panel("potential_mean", "Mean improvement potential of the active units over time", "potential",
          (("curriculum/mean_potential", "mean potential"),)),
    Panel("filter", "Groups kept / dropped by the zero-variance filter", "groups per step",
          (("filter/kept_groups", "kept"), ("filter/dropped_groups", "dropped"))),
    Panel("potentials", "Improvement potential 4p(1-p) of the active units, per stage", "potential",
          ((POTENTIALS_KEY, "potential"),), "potentials"),
    Panel("entropy", "Policy entropy and its coefficient", "entropy (nats/token)",
          (("actor/entropy", "entropy"), ("actor/entropy_coef", "coefficient")), "twin"),
    Panel("clip", "Clip fractions", "fraction of tokens",
          (("loss/clipfrac_low", "low (r < 1-eps_low)"), ("loss/clipfrac_high", "high (r > 1+eps_high)"))),
    Panel("tools", "Tool calls and tool errors per episode", "per episode",
          (("tool/calls", "tool calls"), ("tool/errors", "tool errors"))),
    Panel("length", "Response length", "tokens (policy + tool)", (("episode/response_tokens", "length"),)),
    Panel("time", "Time per step: generation / sandbox / learner / sync", "seconds per step (mean)",
          TIME_PARTS, "time", optional=(UNSPLIT_KEY,)),
)


def values(records: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of the records that carry a finite number under `key` ("nan" strings dropped)."""
    xs, ys = [], []
    for rec in records:
        value = rec.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            continue
        xs.append(float(rec.get("step", len(xs) + 1)))
        ys.append(float(value))
    return xs, ys


def has_key(records: Sequence[dict[str, Any]], key: str) -> bool:
    return any(key in rec and rec[key] is not None for rec in records)


def _new_figure(width: float = 7.0, height: float = 3.4) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def png_base64(fig: Any) -> str:
    """The figure as a base64 PNG (for a data: URI)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _draw_lines(ax: Any, panel: Panel, runs: Sequence[Any], drawstyle: str = "default",
                marker: str | None = None) -> None:
    for r, run in enumerate(runs):
        for k, (key, label) in enumerate(panel.lines):
            xs, ys = values(run.records, key)
            if xs:
                name = f"{run.name}: {label}" if len(panel.lines) > 1 or len(runs) > 1 else label
                style = "none" if marker else STYLES[k % len(STYLES)]  # points: measured only where drawn
                ax.plot(xs, ys, color=COLORS[r % len(COLORS)], linestyle=style,
                        drawstyle=drawstyle, marker=marker, label=name)


def _draw_twin(ax: Any, panel: Panel, runs: Sequence[Any]) -> None:
    (key1, label1), (key2, label2) = panel.lines
    twin = ax.twinx()
    for r, run in enumerate(runs):
        color = COLORS[r % len(COLORS)]
        xs, ys = values(run.records, key1)
        if xs:
            ax.plot(xs, ys, color=color, linestyle="-", label=f"{run.name}: {label1}")
        xs, ys = values(run.records, key2)
        if xs:
            twin.plot(xs, ys, color=color, linestyle="--", label=f"{run.name}: {label2}")
    twin.set_ylabel(f"{label2} (dashed)")
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles=handles, fontsize=7, loc="best")


def _draw_time(ax: Any, panel: Panel, runs: Sequence[Any]) -> None:
    """Stacked bars: mean seconds per step of each part, one bar per run."""
    bottoms = [0.0] * len(runs)
    for k, (key, label) in enumerate(panel.lines):
        heights = []
        for run in runs:
            ys = values(run.records, key)[1]
            heights.append(sum(ys) / len(ys) if ys else 0.0)
        if any(heights):
            ax.bar([run.name for run in runs], heights, bottom=bottoms, label=label,
                   color=COLORS[k % len(COLORS)])
            bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    ax.legend(fontsize=7, loc="best")


def _draw_potentials(ax: Any, panel: Panel, runs: Sequence[Any]) -> None:
    """Box plots of the logged unit potentials pooled per curriculum stage, runs side by side."""
    groups, labels, colors = [], [], []
    for r, run in enumerate(runs):
        per_stage: dict[int, list[float]] = {}
        for rec in run.records:
            pots = rec.get(POTENTIALS_KEY)
            if isinstance(pots, list):
                stage = int(rec.get("curriculum/stage", 0) or 0)
                per_stage.setdefault(stage, []).extend(float(p) for p in pots if isinstance(p, int | float))
        for stage in sorted(per_stage):
            if per_stage[stage]:
                groups.append(per_stage[stage])
                labels.append(f"{run.name}\nstage {stage}" if len(runs) > 1 else f"stage {stage}")
                colors.append(COLORS[r % len(COLORS)])
    parts = ax.boxplot(groups, patch_artist=True)
    ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=7)
    for box, color in zip(parts["boxes"], colors, strict=True):
        box.set_facecolor(color)
        box.set_alpha(0.5)
    ax.set_ylim(-0.05, 1.05)


DRAW: dict[str, Callable[[Any, Panel, Sequence[Any]], None]] = {
    "line": _draw_lines,
    "step": lambda ax, p, runs: _draw_lines(ax, p, runs, drawstyle="steps-post"),
    "points": lambda ax, p, runs: _draw_lines(ax, p, runs, marker="o"),
    "twin": _draw_twin,
    "time": _draw_time,
    "potentials": _draw_potentials,
}


def constant_keys(panel: Panel, runs: Sequence[Any]) -> dict[str, float]:
    """The panel's keys whose every logged value, over every run and step (at least 2), is the same."""
    out = {}
    for key, _ in panel.lines:
        ys = [y for run in runs for y in values(run.records, key)[1]]
        if len(ys) >= 2 and max(ys) == min(ys):
            out[key] = ys[0]
    return out


def missing_keys(panel: Panel, runs: Sequence[Any]) -> dict[str, list[str]]:
    """run name -> the panel's keys that run never logged."""
    out = {}
    for run in runs:
        gone = [key for key, _ in panel.lines if key not in panel.optional and not has_key(run.records, key)]
        if gone:
            out[run.name] = gone
    return out


def render_panel(panel: Panel, runs: Sequence[Any]) -> str | None:
    """Base64 PNG of the panel over the runs that logged any of its keys; None when none did."""
    shown = [run for run in runs if any(has_key(run.records, key) for key, _ in panel.lines)]
    if not shown:
        return None
    fig = _new_figure()
    ax = fig.add_subplot(1, 1, 1)
    DRAW[panel.kind](ax, panel, shown)
    ax.set_title(panel.title, fontsize=10)
    ax.set_ylabel(panel.ylabel)
    if panel.kind not in ("time", "potentials"):
        ax.set_xlabel("training step")
        if panel.kind != "twin" and ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    return png_base64(fig)
