"""trainers/config: what a run is — the typed schema, YAML I/O, the shipped recipes and the up-front
checks (recipe notes, task options, the run's task ids), so that every mistake fails before a model
is built.

Room rule: may import `trainers.algo` (the loss config is part of the schema), nothing else of
`toolgym.trainers`.
"""

from toolgym._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    **dict.fromkeys(["TrainConfig", "ModelConfig", "EngineConfig", "SamplingConfig", "RolloutConfig",
                     "AlgoConfig", "OptimizerConfig", "CurriculumConfig", "EvalConfig", "CheckpointConfig",
                     "SFTConfig", "QuickstartConfig", "RunConfig"], "toolgym.trainers.config.schema"),
    **dict.fromkeys(["ConfigError", "from_dict", "to_dict", "load_yaml", "apply_overrides"],
                    "toolgym.trainers.config.yaml_io"),
    **dict.fromkeys(["RECIPES_DIR", "RecipeInfo", "describe_recipe", "list_recipes", "load_config",
                     "load_recipe"], "toolgym.trainers.config.recipes"),
    **dict.fromkeys(["check_config", "check_env", "check_names", "check_recipe", "check_task_options",
                     "task_ids", "run_task_ids",
                     "task_kwargs"], "toolgym.trainers.config.checks"),
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
