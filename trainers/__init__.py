"""toolgym.trainers: advantages, policy losses, the learner, the Ray single controller, checkpoints.

May import every other package; only the CLI imports it.
"""

from toolgym._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    # advantages (trainers/advantages.py)
    **dict.fromkeys(["AdvantageInputs", "AdvantageConfig", "register_advantage", "get_advantage",
                     "list_advantages", "compute_advantages"], "toolgym.trainers.advantages"),
    # policy losses (trainers/losses.py, loss_config.py, policy_loss.py, loss_terms.py)
    **dict.fromkeys(["LossInputs", "LossOutput", "LossNormalisers", "register_loss", "get_loss",
                     "list_losses"], "toolgym.trainers.losses"),
    "LossConfig": "toolgym.trainers.loss_config",
    "compute_policy_loss": "toolgym.trainers.policy_loss",
    **dict.fromkeys(["AdaptiveEntropyController", "entropy_from_logits"], "toolgym.trainers.loss_terms"),
    # recipes, report, metric sinks (trainers/recipes.py, report.py, loggers.py)
    **dict.fromkeys(["RecipeInfo", "describe_recipe", "list_recipes", "load_recipe"],
                    "toolgym.trainers.recipes"),
    **dict.fromkeys(["load_run", "write_report"], "toolgym.trainers.report"),
    "make_loggers": "toolgym.trainers.loggers",
    # config, learner, driver, checkpoints, warm start, quickstart (trainer helper)
    **dict.fromkeys(["TrainConfig", "ModelConfig", "EngineConfig", "SamplingConfig", "RolloutConfig",
                     "AlgoConfig", "OptimizerConfig", "CurriculumConfig", "EvalConfig", "CheckpointConfig",
                     "SFTConfig", "RunConfig", "ConfigError", "load_config"], "toolgym.trainers.config"),
    **dict.fromkeys(["Learner", "nll_loss", "policy_loss_fn", "token_logprobs"], "toolgym.trainers.learner"),
    **dict.fromkeys(["fit", "train_step"], "toolgym.trainers.driver"),
    **dict.fromkeys(["LearnerGroup", "LearnerDiedError"], "toolgym.trainers.learner_group"),
    **dict.fromkeys(["save_checkpoint", "load_checkpoint", "latest_checkpoint"],
                    "toolgym.trainers.checkpoint"),
    **dict.fromkeys(["RolloutWorker"], "toolgym.trainers.workers"),
    **dict.fromkeys(["check_task_options"], "toolgym.trainers.task_options"),
    **dict.fromkeys(["LocalPool", "RayPool", "make_pool"], "toolgym.trainers.pool"),
    **dict.fromkeys(["run_sft", "sft_samples"], "toolgym.trainers.sft"),
    **dict.fromkeys(["run_quickstart"], "toolgym.trainers.quickstart"),
    **dict.fromkeys(["METRICS", "MetricsLogger"], "toolgym.trainers.metrics"),
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
