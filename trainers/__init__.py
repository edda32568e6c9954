"""toolgym.trainers: advantages, policy losses, the learner, the Ray single controller, checkpoints.

May import every other package; only the CLI imports it.
"""

from toolgym._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    # advantages (trainers/algo/advantages.py)
    **dict.fromkeys(["AdvantageInputs", "AdvantageConfig", "register_advantage", "get_advantage",
                     "list_advantages", "compute_advantages",
                     "episode_advantages"], "toolgym.trainers.algo.advantages"),
    # policy losses (trainers/algo/loss_api.py, loss_config.py, policy_loss.py, loss_terms.py)
    **dict.fromkeys(["LossInputs", "LossOutput", "LossNormalisers", "register_loss", "get_loss",
                     "list_losses"], "toolgym.trainers.algo.loss_api"),
    "LossConfig": "toolgym.trainers.algo.loss_config",
    "compute_policy_loss": "toolgym.trainers.algo.objective",
    "entropy_from_logits": "toolgym.trainers.algo.terms",
    "AdaptiveEntropyController": "toolgym.trainers.run.entropy_control",
    # recipes, report, metric sinks (trainers/config/recipes.py, report.py, loggers.py)
    **dict.fromkeys(["RecipeInfo", "describe_recipe", "list_recipes", "load_recipe"],
                    "toolgym.trainers.config.recipes"),
    **dict.fromkeys(["load_run", "write_report"], "toolgym.trainers.report.html"),
    "make_loggers": "toolgym.trainers.report.loggers",
    # config, learner, driver, checkpoints, warm start, quickstart (trainer helper)
    **dict.fromkeys(["TrainConfig", "ModelConfig", "EngineConfig", "SamplingConfig", "RolloutConfig",
                     "AlgoConfig", "OptimizerConfig", "CurriculumConfig", "EvalConfig", "CheckpointConfig",
                     "SFTConfig", "QuickstartConfig", "RunConfig"], "toolgym.trainers.config.schema"),
    "ConfigError": "toolgym.trainers.config.yaml_io",
    "load_config": "toolgym.trainers.config.recipes",
    **dict.fromkeys(["Learner", "nll_loss", "policy_loss_fn", "token_logprobs"],
                    "toolgym.trainers.learner.learner"),
    **dict.fromkeys(["fit", "train_step"], "toolgym.trainers.run.driver"),
    **dict.fromkeys(["LearnerGroup", "LearnerDiedError"], "toolgym.trainers.run.learner_group"),
    **dict.fromkeys(["save_checkpoint", "load_checkpoint", "latest_checkpoint"],
                    "toolgym.trainers.run.checkpoint"),
    **dict.fromkeys(["RolloutWorker"], "toolgym.trainers.run.workers"),
    **dict.fromkeys(["check_task_options"], "toolgym.trainers.config.checks"),
    **dict.fromkeys(["LocalPool", "RayPool", "make_pool"], "toolgym.trainers.run.rollout_pool"),
    **dict.fromkeys(["run_sft", "sft_samples"], "toolgym.trainers.run.sft"),
    **dict.fromkeys(["run_warm_start_and_rl"], "toolgym.trainers.run.quickstart"),
    **dict.fromkeys(["METRICS", "MetricsLogger"], "toolgym.trainers.report.metrics"),
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
