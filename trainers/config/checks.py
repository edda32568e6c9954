"""Up-front checks of a config: registry names, the run's task ids, per-task family options, a recipe.

Everything here runs before any model is built, so that a typo fails in a second with an error that
names the key, not after minutes as a run of episodes that all end in "error".

Registry names (`check_names`): the loss, the advantage estimator, the curriculum scheduler and the
sandbox backend are checked against their registries here, where the registries are consulted, and
not inside the dataclasses (so the schema does not import the algorithms that register them).

Per-task family options (`run.task_options`). Why: a recipe must be able to say what the paper's task
looks like, and some of that lives in a
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

from toolgym.trainers.algo.advantages import ADVANTAGES
from toolgym.trainers.algo.loss_api import LOSSES
from toolgym.trainers.config.schema import TrainConfig
from toolgym.trainers.config.yaml_io import ConfigError


def task_kwargs(cfg: TrainConfig) -> dict[str, dict[str, Any]]:
    """Task id -> family keyword arguments, as the environment builders take them (a copy)."""
    return {task_id: dict(options) for task_id, options in cfg.run.task_options.items()}


def task_ids(cfg: TrainConfig, split: str = "train") -> list[str]:
    """The task ids of `split` in this run: `run.tasks` when given (every split), else the suite's."""
    from toolgym.envs.registry import suite_tasks

    return list(cfg.run.tasks) if cfg.run.tasks else list(suite_tasks(cfg.run.suite, split))


def run_task_ids(cfg: TrainConfig) -> list[str]:
    """Every task id the run builds environments for: its train tasks, then its held-out ones."""
    from toolgym.envs.registry import suite_spec

    ids = task_ids(cfg, "train")
    if not cfg.run.tasks and cfg.eval.split in suite_spec(cfg.run.suite).splits:
        ids += task_ids(cfg, cfg.eval.split)
    return list(dict.fromkeys(ids))


def check_names(cfg: TrainConfig) -> None:
    """Raise ConfigError unless every registry name in `cfg` is registered (did-you-mean in the message)."""
    from toolgym.curriculum.registry import SCHEDULERS
    from toolgym.envs.sandbox import SANDBOX_BACKENDS

    for key, registry, name in (("loss.name", LOSSES, cfg.loss.name),
                                ("algo.advantage", ADVANTAGES, cfg.algo.advantage),
                                ("curriculum.scheduler", SCHEDULERS, cfg.curriculum.scheduler),
                                ("rollout.sandbox", SANDBOX_BACKENDS, cfg.rollout.sandbox)):
        if name not in registry:
            raise ConfigError(f"{key}: {registry.unknown_message(name)}")


def check_config(cfg: TrainConfig) -> None:
    """The checks every loaded config gets (`load_config`): registry names, environment options, and
    settings that only make sense together."""
    check_names(cfg)
    check_env(cfg)
    check_kl(cfg)


def uses_reference(cfg: TrainConfig) -> bool:
    """Whether the run needs the frozen reference policy: a KL term in the loss or KL in the reward."""
    return cfg.loss.kl_coef > 0 or cfg.algo.kl_coef > 0


def check_kl(cfg: TrainConfig) -> None:
    """The reference policy of the KL (loss term or reward) must exist and be placeable."""
    from pathlib import Path

    if not uses_reference(cfg):
        if cfg.loss.kl_reference is not None:
            raise ConfigError("loss.kl_reference names the reference policy of a KL: set loss.kl_coef > 0 "
                              "(KL term) or algo.kl_coef > 0 (reinforce_pp's KL in the reward), or unset it "
                              "(it is not loaded otherwise)")
        return
    if cfg.loss.kl_reference is not None and not Path(cfg.loss.kl_reference).is_dir():
        raise ConfigError(f"loss.kl_reference: {cfg.loss.kl_reference!r} is not a model directory; give "
                          "a saved model folder, or leave it unset to use the run's starting policy")


def check_env(cfg: TrainConfig) -> None:
    """Raise ConfigError unless `rollout.env` holds EnvConfig fields with valid values (with the run's
    max_turns, max_tool_calls and tool_format), so a misspelt key fails here, not as errored episodes."""
    from toolgym.envs.config import EnvConfig

    from toolgym.registry import did_you_mean

    fields = EnvConfig.field_names()
    owned = {"max_turns": "rollout.max_turns", "max_tool_calls": "rollout.max_tool_calls",
             "tool_format": "rollout.tool_format"}
    for key in cfg.rollout.env:
        if key in owned:
            raise ConfigError(f"rollout.env.{key}: set {owned[key]} instead (one place for each setting)")
        if key not in fields:
            raise ConfigError(f"rollout.env.{key}: not an environment setting.{did_you_mean(key, fields)} "
                              f"Allowed: {', '.join(f for f in fields if f not in owned)}")
    try:
        EnvConfig(max_turns=cfg.rollout.max_turns, max_tool_calls=cfg.rollout.max_tool_calls,
                  tool_format=cfg.rollout.tool_format, **cfg.rollout.env)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"rollout.env: {exc}") from exc


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


def check_recipe(cfg: TrainConfig) -> None:
    """Checks beyond the dataclasses, without building a model: the task ids are registered, the
    advantage estimator exists, the curriculum scheduler accepts its options over those tasks, and
    `run.task_options` names tasks of the run and options their families accept.
    Raises ConfigError naming what is wrong."""
    from toolgym.curriculum.registry import make_scheduler
    from toolgym.envs.registry import list_tasks

    check_config(cfg)
    try:
        tasks = task_ids(cfg)
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"run.suite: {exc}") from exc
    known = set(list_tasks())
    missing = [t for t in tasks if t not in known]
    if missing:
        raise ConfigError(f"run.tasks: unregistered task id(s) {missing}; "
                          "`toolgym tasks list` shows the known ids")
    try:
        make_scheduler(cfg.curriculum.scheduler, tasks, **cfg.curriculum.options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"curriculum: {exc}") from exc
    check_task_options(cfg)


__all__ = ["check_config", "check_env", "check_names", "check_recipe", "check_task_options", "run_task_ids",
           "task_ids", "task_kwargs"]
