"""Per-task family options (`run.task_options`), checked before a run starts.

Why: a recipe must be able to say what the paper's task looks like, and some of that lives in a
family's own keyword arguments, not in the environment config shared by all tasks (DeepCoder's
binary reward is `toolgym/code-v0` with `reward="hard"`; toolgym's default is the pass rate). The
options reach every place that builds an environment of that task -- the rollout workers and the
held-out evaluation (`RolloutRunner(task_kwargs=...)`) -- so training and evaluation score alike.

A mistake here would otherwise surface only inside the rollout workers, as episodes that all end in
"error"; so `check_task_options` runs up front (`check_recipe`, `RunState.create`): the task id must
be one of the run's tasks, environment options belong to `rollout.*`, and the family is built once
with the options, so an unknown keyword (the error lists the family's parameters) or a bad value (the
family's own check) fails before any model is loaded.
"""

from __future__ import annotations

from typing import Any

from toolgym.trainers.config import TrainConfig
from toolgym.trainers.configio import ConfigError


def task_kwargs(cfg: TrainConfig) -> dict[str, dict[str, Any]]:
    """Task id -> family keyword arguments, as the environment builders take them (a copy)."""
    return {task_id: dict(options) for task_id, options in cfg.run.task_options.items()}


def run_task_ids(cfg: TrainConfig) -> list[str]:
    """Every task id the run builds environments for: its train tasks, then its held-out ones."""
    from toolgym.envs.registry import suite_spec, suite_tasks

    if cfg.run.tasks:
        return list(cfg.run.tasks)
    ids = suite_tasks(cfg.run.suite, "train")
    if cfg.eval.split in suite_spec(cfg.run.suite).splits:
        ids += suite_tasks(cfg.run.suite, cfg.eval.split)
    return list(dict.fromkeys(ids))


def check_task_options(cfg: TrainConfig) -> None:
    """Raise ConfigError unless every `run.task_options` entry names a task of this run and options
    its family accepts (names and values)."""
    from toolgym.envs.config import EnvConfig
    from toolgym.envs.registry import ENV_KEYWORDS, make_family

    if not cfg.run.task_options:
        return
    known = run_task_ids(cfg)
    source = "run.tasks" if cfg.run.tasks else f"suite {cfg.run.suite!r}"
    for task_id, options in cfg.run.task_options.items():
        where = f"run.task_options[{task_id!r}]"
        if task_id not in known:
            raise ConfigError(f"{where}: {task_id!r} is not a task of this run ({source}); known: "
                              f"{', '.join(known)}")
        env_keys = sorted(k for k in options if k in EnvConfig.field_names() or k in ENV_KEYWORDS)
        if env_keys:
            raise ConfigError(f"{where}: {env_keys} are environment options, not family options; set "
                              "them for every task under rollout (rollout.max_turns, rollout.env.KEY)")
        try:
            make_family(task_id, **options)
        except (TypeError, ValueError, LookupError) as exc:
            raise ConfigError(f"{where}: {exc}") from exc


__all__ = ["check_task_options", "run_task_ids", "task_kwargs"]
