"""Optional metric sinks beside RUN_DIR/metrics.jsonl: TensorBoard and Weights & Biases.

Why sinks and not a second logging path: the JSONL log is the record of a run (the report reads it);
TensorBoard and W&B are views that teams already watch. Each sink receives exactly the records the
JSONL gets, under the same stable names (trainers/report/metrics.py), so a curve is called `reward/mean`
everywhere. `toolgym train --log tensorboard,wandb` asks for them; a sink whose package is missing is
an error naming the package to install, raised before training starts, not a silent no-op.

    sinks = make_loggers(parse_log_option("tensorboard"), run_dir, config=cfg.to_dict())
    MetricsLogger(run_dir, sinks=sinks)      # forwards every log() and close()
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from toolgym.registry import Registry


class MetricSink(Protocol):
    def log(self, step: int, metrics: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


SinkFactory = Callable[[Path, Mapping[str, Any] | None], MetricSink]  # (run_dir, run config) -> sink
# sink name -> factory; a third-party sink registers through the entry-point group "toolgym.loggers"
LOGGERS: Registry[SinkFactory] = Registry("logger", entry_points="toolgym.loggers",
                                          hint="Comma-separated, e.g. --log tensorboard,wandb.")


def parse_log_option(text: str | Sequence[str] | None) -> list[str]:
    """`"tensorboard,wandb"` (or a list) -> validated sink names; unknown names list the known ones."""
    if not text:
        return []
    parts = text.split(",") if isinstance(text, str) else list(text)
    names = [p.strip() for p in parts if p.strip()]
    for name in names:
        LOGGERS.check(name)
    return list(dict.fromkeys(names))


def scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of a record (bools and strings such as "nan" markers are left out)."""
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


def lists(metrics: Mapping[str, Any]) -> dict[str, list[float]]:
    """List-valued metrics (e.g. curriculum/unit_potentials) as lists of finite numbers."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, list | tuple):
            nums = [float(v) for v in value if isinstance(v, int | float) and math.isfinite(v)]
            if nums:
                out[key] = nums
    return out


class TensorBoardLogger:
    """Scalars under their metric names; list metrics as histograms."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ImportError("--log tensorboard needs the tensorboard package: pip install tensorboard "
                              "(or pip install 'toolgym[tensorboard]')") from exc
        self.log_dir = Path(run_dir) / "tensorboard"
        self._writer = SummaryWriter(log_dir=str(self.log_dir))

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        for key, value in scalars(metrics).items():
            if key not in ("step", "time"):
                self._writer.add_scalar(key, value, global_step=step)
        for key, nums in lists(metrics).items():
            import numpy as np

            self._writer.add_histogram(key, np.asarray(nums), global_step=step)
        self._writer.flush()  # a crashed run keeps its curves

    def close(self) -> None:
        self._writer.close()


class WandbLogger:
    """One W&B run per training run (resumed by id when the run directory is resumed)."""

    def __init__(self, run_dir: str | os.PathLike, config: Mapping[str, Any] | None = None,
                 project: str | None = None) -> None:
        try:
            import wandb
        except ImportError as exc:
            raise ImportError("--log wandb needs the wandb package: pip install wandb (then `wandb login`, "
                              "or WANDB_MODE=offline)") from exc
        run_dir = Path(run_dir)
        project = project or os.environ.get("WANDB_PROJECT", "toolgym")
        self._run = wandb.init(project=project, name=run_dir.name, dir=str(run_dir), id=_run_id(run_dir),
                               resume="allow", config=dict(config or {}))

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        data = {k: v for k, v in scalars(metrics).items() if k not in ("step", "time")}
        self._run.log(data, step=step)

    def close(self) -> None:
        self._run.finish()


def _run_id(run_dir: Path) -> str:
    """A stable W&B id kept in the run directory, so `--resume` continues the same W&B run."""
    path = run_dir / "wandb_id.txt"
    if path.exists():
        return path.read_text().strip()
    import uuid

    run_dir.mkdir(parents=True, exist_ok=True)
    run_id = uuid.uuid4().hex[:12]
    path.write_text(run_id)
    return run_id


@LOGGERS.register("tensorboard")
def _tensorboard(run_dir: Path, config: Mapping[str, Any] | None) -> MetricSink:
    """TensorBoard event files in RUN_DIR/tensorboard (pip install tensorboard)."""
    return TensorBoardLogger(run_dir)


@LOGGERS.register("wandb")
def _wandb(run_dir: Path, config: Mapping[str, Any] | None) -> MetricSink:
    """A Weights & Biases run, files in RUN_DIR/wandb (pip install wandb; WANDB_* env vars apply)."""
    return WandbLogger(run_dir, config)


def make_loggers(names: Sequence[str], run_dir: str | os.PathLike,
                 config: Mapping[str, Any] | None = None) -> list[MetricSink]:
    """Build the named sinks (see LOGGERS); a missing package raises ImportError saying what to install."""
    sinks: list[MetricSink] = []
    try:
        for name in parse_log_option(list(names)):
            sinks.append(LOGGERS.get(name)(Path(run_dir), config))
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks


__all__ = ["LOGGERS", "MetricSink", "TensorBoardLogger", "WandbLogger", "make_loggers", "parse_log_option"]
