"""Recipes and overrides: every shipped recipe validates; bad keys and values name what is allowed."""

from __future__ import annotations

import pytest
from toolgym.trainers.config import ConfigError, TrainConfig, load_config
from toolgym.trainers.config.recipes import list_recipes, recipe_file
from toolgym.trainers.config.yaml_io import from_dict


def test_the_default_recipe_is_quickstart_and_shipped() -> None:
    assert "quickstart" in list_recipes()
    assert recipe_file("quickstart").name == "quickstart.yaml"


@pytest.mark.parametrize("name", list_recipes())
def test_every_shipped_recipe_validates(name: str) -> None:
    cfg = load_config(name)
    assert isinstance(cfg, TrainConfig)
    # the round trip through a plain dict (what a checkpoint stores) is lossless
    assert from_dict(TrainConfig, cfg.to_dict()) == cfg


def test_overrides_set_nested_values_with_types() -> None:
    cfg = load_config("quickstart", ["optimizer.lr=3e-5", "rollout.group_size=4", "run.progress=false",
                                     "eval.ks=[1, 2]", "eval.n=2", "model.name_or_path=Qwen/Qwen2.5-0.5B"])
    assert cfg.optimizer.lr == 3e-5 and isinstance(cfg.optimizer.lr, float)
    assert cfg.rollout.group_size == 4 and cfg.run.progress is False
    assert cfg.eval.ks == (1, 2) and cfg.model.name_or_path == "Qwen/Qwen2.5-0.5B"


def test_int_is_accepted_for_float_but_not_the_reverse() -> None:
    assert load_config(None, ["optimizer.lr=1"]).optimizer.lr == 1.0
    with pytest.raises(ConfigError, match=r"rollout.group_size: expected int, got 2.5"):
        load_config(None, ["rollout.group_size=2.5"])


def test_unknown_key_names_the_known_keys_and_a_close_match() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, ["optimizer.learning_rate=1e-5"])
    message = str(err.value)
    assert "optimizer.learning_rate" in message and "lr" in message and "weight_decay" in message
    with pytest.raises(ConfigError, match="Did you mean 'rollout'"):
        load_config(None, ["rolout.group_size=2"])


def test_bad_choice_lists_the_allowed_values() -> None:
    with pytest.raises(ConfigError, match=r"engine.kind: 'tgi' is not allowed; allowed values: 'hf', 'vllm'"):
        load_config(None, ["engine.kind=tgi"])


def test_value_range_errors_name_the_section() -> None:
    with pytest.raises(ConfigError, match=r"sampling: top_p must be in \(0, 1\]"):
        load_config(None, ["sampling.top_p=1.5"])
    with pytest.raises(ConfigError, match="loss"):
        load_config(None, ["loss.name=nope"])


def test_malformed_override_and_unknown_recipe() -> None:
    with pytest.raises(ConfigError, match=r"key\.sub=value"):
        load_config(None, ["optimizer.lr"])
    with pytest.raises(ConfigError, match=r"known recipes: .*quickstart"):
        load_config("no-such-recipe")
    with pytest.raises(ConfigError, match="is a value, not a section"):
        load_config(None, ["run.steps=3", "run.steps.x=1"])


def test_recipe_file_path_and_section_type_errors(tmp_path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("run:\n  steps: 3\noptimizer: 5\n")
    with pytest.raises(ConfigError, match="optimizer: expected a mapping of OptimizerConfig fields"):
        load_config(str(path))
    path.write_text("run:\n  steps: 3\n")
    assert load_config(str(path)).run.steps == 3


def test_rollout_env_keys_are_checked_up_front_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"rollout.env.format_weigth: not an environment setting\. "
                                          r"Did you mean 'format_weight'\?"):
        load_config(None, ["rollout.env={format_weigth: 0.0}"])
    with pytest.raises(ConfigError, match=r"rollout.env.max_turns: set rollout.max_turns instead"):
        load_config(None, ["rollout.env={max_turns: 3}"])
    with pytest.raises(ConfigError, match=r"rollout.env: .*call_timeout"):
        load_config(None, ["rollout.env={call_timeout: -1}"])
    assert load_config(None, ["rollout.env={format_weight: 0.0}"]).rollout.env == {"format_weight": 0.0}


def test_sampling_top_k_reaches_the_engine_parameters() -> None:
    from toolgym.trainers.run.workers import sampling_params

    assert sampling_params(load_config(None, ["sampling.top_k=5"]), seed=0).top_k == 5
    assert sampling_params(load_config(None), seed=0).top_k == 0
    with pytest.raises(ConfigError, match=r"sampling\.top_k must be >= 0"):
        load_config(None, ["sampling.top_k=-2"])
