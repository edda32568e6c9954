"""Every shipped recipe validates (full and --tiny), carries the settings of the system it names, and
resolves with clear errors; `toolgym recipes list|show` prints them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from toolgym.trainers.config.checks import check_recipe
from toolgym.trainers.config.recipes import (
    describe_recipe,
    list_recipes,
    load_recipe,
    recipe_dict,
)
from toolgym.trainers.config.yaml_io import ConfigError

from toolgym.cli import main

PUBLISHED = ["acecoder", "acereason", "deepcoder", "klear-gppo", "r1-code-interpreter", "skywork-or1"]


def test_every_published_system_has_a_recipe() -> None:
    assert set(PUBLISHED) <= set(list_recipes())


@pytest.mark.parametrize("name", list_recipes())
@pytest.mark.parametrize("tiny", [False, True])
def test_recipe_validates(name: str, tiny: bool) -> None:
    cfg = load_recipe(name, tiny=tiny)
    check_recipe(cfg)  # tasks registered, advantage known, scheduler accepts its options


@pytest.mark.parametrize("name", PUBLISHED)
def test_gpu_recipes_name_model_and_hardware_and_cite_sources(name: str) -> None:
    info = describe_recipe(name)
    assert info.device == "gpu"
    assert info.model and info.hardware and info.source and info.description
    text = info.path.read_text()
    assert text.count("[paper]") >= 3, "settings must cite their source in comments"
    cfg = load_recipe(name)
    assert cfg.engine.kind == "vllm" and cfg.run.device == "cuda"
    assert cfg.model.name_or_path, "a GPU recipe names the model it trains"


@pytest.mark.parametrize("name", PUBLISHED)
def test_tiny_variant_is_a_cpu_run_of_the_same_algorithm(name: str) -> None:
    full, tiny = load_recipe(name), load_recipe(name, tiny=True)
    assert tiny.model.name_or_path is None and tiny.engine.kind == "hf" and tiny.run.device == "cpu"
    assert tiny.run.steps <= 3 and tiny.rollout.prompts_per_step * tiny.rollout.group_size <= 16
    assert tiny.rollout.gpus_per_worker == 0.0
    # the algorithm is the recipe's, not the quickstart's
    assert (tiny.loss, tiny.algo) == (full.loss, full.algo)
    assert tiny.curriculum.scheduler == full.curriculum.scheduler
    assert tiny.rollout.filter_zero_variance == full.rollout.filter_zero_variance
    assert tiny.rollout.mask_truncated == full.rollout.mask_truncated


def test_published_settings() -> None:
    klear = load_recipe("klear-gppo")
    assert (klear.loss.name, klear.loss.sft_coef, klear.loss.kl_coef) == ("gppo", 0.1, 0.0)
    assert (klear.loss.eps_low, klear.loss.eps_high, klear.loss.loss_agg_mode) == (0.2, 0.28, "token-mean")
    assert klear.rollout.filter_zero_variance

    sky = load_recipe("skywork-or1")
    assert sky.loss.entropy_target == 0.2 and sky.loss.entropy_max_coef == 0.005
    assert sky.optimizer.updates_per_rollout == 1  # strictly on-policy
    lengths = [s["max_response_length"] for s in sky.curriculum.options["stages"]]
    assert lengths == [8192, 16384, 32768]

    ace = load_recipe("acereason")
    names = [s["name"] for s in ace.curriculum.options["stages"]]
    assert names.index("math-24k") < names.index("code-24k"), "math RL before code RL"

    r1 = load_recipe("r1-code-interpreter")
    assert (r1.curriculum.scheduler, r1.curriculum.options["stages"]) == ("potential", 4)
    assert r1.rollout.max_tool_calls == 8 and r1.run.suite == "reasoning" and r1.sft.steps > 0

    deep = load_recipe("deepcoder")
    assert deep.loss.eps_high > deep.loss.eps_low and deep.rollout.mask_truncated
    assert deep.loss.entropy_coef == 0.0 and deep.loss.entropy_target is None and deep.loss.kl_coef == 0.0

    acecoder = load_recipe("acecoder")
    assert acecoder.algo.advantage == "reinforce_pp" and acecoder.run.suite == "code"


def test_overrides_apply_after_the_tiny_section() -> None:
    cfg = load_recipe("deepcoder", tiny=True, overrides=["run.steps=5", "loss.eps_high=0.3"])
    assert cfg.run.steps == 5 and cfg.loss.eps_high == 0.3 and cfg.engine.kind == "hf"
    # lists in the tiny section replace the recipe's lists instead of merging into them
    assert len(recipe_dict("deepcoder", tiny=True)["curriculum"]["options"]["stages"]) == 2


def test_unknown_recipe_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"known recipes: .*deepcoder.*Did you mean 'deepcoder'"):
        load_recipe("deepcodr")


def test_bad_override_names_the_key_and_the_recipe() -> None:
    with pytest.raises(ConfigError, match=r"recipe 'acecoder'.*loss\.eps_hihg.*Did you mean 'eps_high'"):
        load_recipe("acecoder", overrides=["loss.eps_hihg=0.3"])


def test_recipe_from_a_path_and_bad_meta(tmp_path: Path) -> None:
    good = tmp_path / "mine.yaml"
    good.write_text(yaml.safe_dump({"meta": {"description": "x"}, "tiny": {"run": {"steps": 1}},
                                    "run": {"steps": 9}}))
    assert load_recipe(str(good)).run.steps == 9 and load_recipe(str(good), tiny=True).run.steps == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"meta": {"device": "tpu"}}))
    with pytest.raises(ConfigError, match=r"meta\.device 'tpu' is not allowed; allowed values: cpu, gpu"):
        load_recipe(str(bad))
    with pytest.raises(ConfigError, match="does not exist"):
        load_recipe(str(tmp_path / "missing.yaml"))


def test_check_recipe_catches_a_bad_scheduler_option() -> None:
    cfg = load_recipe("r1-code-interpreter", overrides=["curriculum.options.stagez=3"])
    with pytest.raises(ConfigError, match=r"curriculum: unknown config key\(s\) \['stagez'\]"):
        check_recipe(cfg)


def test_cli_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recipes", "list"]) == 0
    out = capsys.readouterr().out
    for name in PUBLISHED:
        assert name in out
    assert main(["recipes", "show", "skywork-or1"]) == 0
    out = capsys.readouterr().out
    assert "DeepSeek-R1-Distill-Qwen-7B" in out and "entropy_target: 0.2" in out
    assert main(["recipes", "show", "skywork-or1", "--resolved", "--tiny"]) == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["run"]["device"] == "cpu" and resolved["loss"]["entropy_target"] == 0.2
    assert main(["recipes", "show", "nope"]) == 2
    assert "known recipes" in capsys.readouterr().err
