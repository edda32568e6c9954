"""A pip-installed third-party package adds task ids through the `toolgym.tasks` entry-point group.

The plugin (tests/plugin_pkg) is copied to a temporary directory (so no build files land in the
source tree) and installed with pip into a `--target` folder; a fresh interpreter with that folder
on its path must then list, make and play the plugin's tasks, toolgym never naming the package.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).parent / "plugin_pkg"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("plugin")
    source = work / "src"
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet",
                    "--disable-pip-version-check", "--target", str(target), str(source)],
                   check=True, capture_output=True, text=True, timeout=300)
    return target


def run_with_plugin(site: Path, code: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_installed_plugin_ids_are_listed_made_and_played(site: Path) -> None:
    result = run_with_plugin(site, """
import json, sys, gymnasium, toolgym
ids = toolgym.list_tasks()
env = toolgym.make("plugin-example/reverse-v0")
messages, info = env.reset(options={"index": 0})
problem = env.problem
obs, *_ = env.step(env.parser.format_call(problem.reference_code))
_, reward, terminated, _, step = env.step(env.parser.format_answer(obs[0]["content"]))
env.close()
gym_env = gymnasium.make("plugin-example/reverse-v0")
print(json.dumps({"ids": ids, "format": info["tool_format"], "success": step["success"], "reward": reward,
                  "gym": type(gym_env.unwrapped).__name__,
                  "train_ids": toolgym.list_tasks(split="train")}))
""")
    expected = {"plugin-example/reverse-v0", "plugin-example/reverse-eval-v0", "toolgym/arith-v0"}
    assert expected <= set(result["ids"])
    assert result["format"] == "xml" and result["success"] and result["gym"] == "ToolEnv"
    assert "plugin-example/reverse-eval-v0" not in result["train_ids"]


def test_import_toolgym_makes_every_id_known_to_gymnasium(site: Path) -> None:
    result = run_with_plugin(site, """
import json, sys, toolgym, gymnasium
made = [type(gymnasium.make(i).unwrapped).__name__ for i in ("toolgym/arith-v0", "plugin-example/reverse-v0")]
heavy = [m for m in ("torch", "ray", "transformers") if m in sys.modules]
print(json.dumps({"made": made, "heavy": heavy}))
""")
    assert result == {"made": ["ToolEnv", "ToolEnv"], "heavy": []}


def test_without_the_plugin_its_ids_are_unknown() -> None:
    out = subprocess.run([sys.executable, "-c", "import toolgym; toolgym.make('plugin-example/reverse-v0')"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "Unknown task id 'plugin-example/reverse-v0'" in out.stderr


def test_a_plugin_scheduler_and_sandbox_backend_train_a_step_without_ray(site: Path, tmp_path: Path) -> None:
    """Names registered by the plugin's entry points (`toolgym.schedulers`, `toolgym.sandbox_backends`)
    are accepted by the config checks and used by a real one-step `--no-ray` training run."""
    log = tmp_path / "plugin.jsonl"
    os.environ["TOOLGYM_PLUGIN_LOG"] = str(log)
    try:
        result = run_with_plugin(site, f"""
import json
from toolgym.trainers import fit, load_config
cfg = load_config(None, ["curriculum.scheduler=plugin-first-unit", "rollout.sandbox=plugin-logging",
    "run.tasks=[toolgym/arith-v0, plugin-example/reverse-v0]", "run.steps=1", "run.ray=off",
    "rollout.prompts_per_step=2", "rollout.group_size=2", "rollout.sandbox_pool=1", "rollout.max_turns=2",
    "sampling.max_new_tokens=8", "rollout.filter_zero_variance=false", "loss.entropy_coef=0.01",
    "eval.problems=0", "run.progress=false",
    "model.tiny={{hidden_size: 32, intermediate_size: 64, num_layers: 1, num_heads: 2, num_kv_heads: 1}}"])
out = fit(cfg, {str(tmp_path / "run")!r})
print(json.dumps({{"interrupted": out["interrupted"], "step": out["step"]}}))
""")
    finally:
        del os.environ["TOOLGYM_PLUGIN_LOG"]
    events = [json.loads(line) for line in log.read_text().splitlines()]
    draws = [e for e in events if e["event"] == "scheduler.draw"]
    assert draws and all(e["unit"] == "toolgym/arith-v0" for e in draws)
    # the rollout worker built its sandbox from the plugin (the untrained model may never call the tool,
    # so sessions are not required; `sandbox.init` in this process is)
    assert any(e["event"] == "sandbox.init" for e in events)
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "reward/mean" in m] == [1]  # one training step, logged as 1
    assert result == {"interrupted": False, "step": 1}


def test_an_unknown_scheduler_or_backend_name_is_a_config_error_with_a_suggestion() -> None:
    from toolgym.trainers import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"curriculum.scheduler: unknown curriculum scheduler 'unifrom'\. "
                                          r"Did you mean 'uniform'\?"):
        load_config(None, ["curriculum.scheduler=unifrom"])
    with pytest.raises(ConfigError, match=r"rollout.sandbox: unknown sandbox backend 'locall'\. "
                                          r"Did you mean 'local'\?"):
        load_config(None, ["rollout.sandbox=locall"])
