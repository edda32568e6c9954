"""Every registered task id passes Gymnasium's `check_env`, with its warnings turned into errors.

The ids come from the whole registry (built-ins, installed plugins and the toy family registered
below), so a new family is checked without editing this file. check_env steps with random printable
text, which no tool format accepts, so these episodes never reach the sandbox.
"""

from __future__ import annotations

import warnings

import pytest
from gymnasium.utils.env_checker import check_env
from toolgym.envs.registry import task_splits

import toolgym

toolgym.register("envtest/toy-v0", "envs_support:make_toy_family", description="the env tests' toy")
TASK_IDS = toolgym.list_tasks()


def test_the_registry_is_not_empty() -> None:
    assert "envtest/toy-v0" in TASK_IDS and "toolgym/arith-v0" in TASK_IDS


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_check_env(task_id: str) -> None:
    splits = task_splits(task_id)
    env = toolgym.make(task_id, split="train" if "train" in splits else splits[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env)
    env.close()
