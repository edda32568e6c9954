"""What a checkpoint was trained in: resolve `--model` to its model folder and read the run's config.

`eval`, `serve` and `doctor` accept a model catalogue name (`toolgym models list`; pulled on first
use) or any of

    RUN_DIR                               the run's latest checkpoint (else its warm_model/)
    RUN_DIR/checkpoints/step_N            that checkpoint's model/
    RUN_DIR/checkpoints/step_N/model      the model itself (config.yaml one folder up)
    RUN_DIR/warm_model, RUN_DIR/base_model

and, where a `config.yaml` lies beside the model (or above it, in the run directory), its training
environment: the environment keyword arguments (`rollout.env`, `rollout.max_turns`,
`rollout.max_tool_calls`, `rollout.tool_format`), the family options (`run.task_options`), the tokens
per assistant turn (`sampling.max_new_tokens`), the tasks and the held-out eval's settings -- built by
the same functions the trainer's rollout workers use, so an evaluation reproduces training's.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml


@dataclass
class TrainedEnv:
    """The training environment of a checkpoint (from its run's config.yaml)."""

    config_path: Path
    env_kwargs: dict[str, Any]  # make() kwargs shared by every task
    task_kwargs: dict[str, dict[str, Any]]  # task id -> family options
    max_tokens: int  # sampling.max_new_tokens
    max_context: int  # sampling.max_episode_tokens
    tasks: dict[str, list[str]]  # split -> task ids trained / held out
    eval: dict[str, Any]  # the trainer's held-out eval settings (split, problems, n, ks, temperature)

    def describe(self) -> str:
        env = " ".join(f"{k}={v!r}" for k, v in self.env_kwargs.items())
        opts = f"; task options {self.task_kwargs}" if self.task_kwargs else ""
        e = self.eval
        return (f"training environment (from {self.config_path}): {env}; max tokens per turn "
                f"{self.max_tokens}{opts}\n  the trainer's held-out eval: split={e['split']} "
                f"problems={e['problems']} n={e['n']} temperature={e['temperature']} "
                "(override with --env KEY=VALUE, --max-turns, --max-tokens; --no-train-env for the defaults)")


def resolve_model(path: str | Path) -> tuple[Path, Path | None]:
    """(model folder, config.yaml or None) for a run directory, a checkpoint, a model folder or a model
    catalogue name (pulled on first use; `toolgym models`)."""
    from toolgym.agents.catalogue import CATALOGUE, ModelFetchError, pull

    if str(path) in CATALOGUE:
        try:
            return pull(str(path)), None
        except ModelFetchError as exc:
            raise FileNotFoundError(str(exc)) from None
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}: give a run directory, "
                                "RUN_DIR/checkpoints/step_N, a save_pretrained folder, a model catalogue "
                                "name (`toolgym models list`) or openai:NAME@URL")
    if (p / "checkpoints").is_dir() or (p / "warm_model").is_dir():  # a run directory
        p = _latest(p / "checkpoints") or p / "warm_model"
        if not p.is_dir():
            raise FileNotFoundError(f"run directory {path} has neither checkpoints/ nor warm_model/ yet")
    if not _is_model(p) and _is_model(p / "model"):
        p = p / "model"  # a checkpoint folder: its model
    if not _is_model(p):
        raise FileNotFoundError(f"{path} holds no model (no config.json in it, in its model/ folder or in a "
                                "checkpoint of it): give a run directory, RUN_DIR/checkpoints/step_N or a "
                                "save_pretrained folder")
    for folder in (p, p.parent, p.parent.parent, p.parent.parent.parent):
        if (folder / "config.yaml").exists() and _is_train_config(folder / "config.yaml"):
            return p, folder / "config.yaml"
    return p, None


def model_or_tiny(name: str | None, command: str) -> str | None:
    """The local folder for `--model` of a command that defaults to the locally built tiny model: a
    catalogue name is pulled, a folder or hub id passes through; None (the reason printed) when a
    catalogue model cannot be fetched."""
    import sys

    from toolgym.agents.catalogue import ModelFetchError, resolve_model
    from toolgym.agents.tiny import cached_tiny_model

    try:
        return resolve_model(name) if name else str(cached_tiny_model())
    except ModelFetchError as exc:
        print(f"toolgym {command}: {exc}", file=sys.stderr)
        return None


def _is_model(p: Path) -> bool:  # a model or (for doctor's template check) a tokenizer folder
    return (p / "config.json").exists() or (p / "tokenizer_config.json").exists()


def _latest(root: Path) -> Path | None:
    pointer = root / "latest"
    if pointer.exists() and (root / pointer.read_text().strip()).is_dir():
        return root / pointer.read_text().strip()
    steps = sorted(q for q in root.glob("step_*") if q.is_dir()) if root.is_dir() else []
    return steps[-1] if steps else None


def _is_train_config(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return False
    return isinstance(data, dict) and "rollout" in data and "sampling" in data


def trained_config(config_path: str | Path) -> tuple[Path, Any]:
    """(the config.yaml, its TrainConfig) of a run: a config.yaml, a run directory or a checkpoint."""
    from toolgym.trainers.config.schema import TrainConfig
    from toolgym.trainers.config.yaml_io import from_dict

    path = Path(config_path)
    if path.is_dir() and _is_train_config(path / "config.yaml"):
        path = path / "config.yaml"  # a run directory (with or without a model yet)
    elif path.is_dir():
        found = resolve_model(path)[1]
        if found is None:
            raise FileNotFoundError(f"no training config.yaml in or above {path}")
        path = found
    return path, from_dict(TrainConfig, yaml.safe_load(path.read_text()))


def trained_env(config_path: str | Path) -> TrainedEnv:
    """The training environment recorded in a run's `config.yaml` (or a run directory / checkpoint)."""
    from toolgym.trainers.config.checks import task_ids, task_kwargs
    from toolgym.trainers.run.workers import env_kwargs

    path, cfg = trained_config(config_path)
    tasks = {split: _safe_task_ids(task_ids, cfg, split) for split in ("train", cfg.eval.split)}
    e = cfg.eval
    return TrainedEnv(config_path=path, env_kwargs=env_kwargs(cfg), task_kwargs=task_kwargs(cfg),
                      max_tokens=cfg.sampling.max_new_tokens, max_context=cfg.sampling.max_episode_tokens,
                      tasks=tasks, eval={"split": e.split, "problems": e.problems, "n": e.n,
                                         "ks": list(e.ks), "temperature": e.temperature})


def _safe_task_ids(task_ids: Any, cfg: Any, split: str) -> list[str]:
    try:
        return task_ids(cfg, split)
    except LookupError:  # a suite without this split
        return []


def parse_env_overrides(items: list[str] | None) -> dict[str, Any]:
    """`--env KEY=VALUE` (repeatable; VALUE parsed as YAML) -> EnvConfig kwargs; unknown keys are errors."""
    from toolgym.envs.config import EnvConfig

    known = [f.name for f in fields(EnvConfig)]
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--env expects KEY=VALUE, got {item!r} (e.g. --env max_tool_calls=2)")
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"--env {key}: not an environment setting.{hint} Known: {', '.join(known)}")
        out[key] = yaml.safe_load(value) if value.strip() else ""
    return out


def describe_kwargs(kwargs: dict[str, Any]) -> str:
    return json.dumps(kwargs, default=str)
