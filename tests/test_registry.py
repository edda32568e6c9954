"""The task registry: register/make on top of Gymnasium's registry, splits, suites, helpful errors.

Registrations here use ids under the "regtest/" namespace, unique per test (the registry is global
and never cleared: tests must not depend on a pristine one).
"""

from __future__ import annotations

import warnings

import gymnasium
import pytest
from envs_support import InProcessBackend, ToyAdd
from toolgym.envs import registry
from toolgym.envs.env import ToolEnv
from toolgym.envs.registry import UnknownNameError

import toolgym

TOY = "envs_support:make_toy_family"


def test_register_then_make_returns_a_tool_env_with_a_spec() -> None:
    toolgym.register("regtest/basic-v0", TOY, kwargs={"size": 7}, description="toy")
    env = toolgym.make("regtest/basic-v0", max_turns=3, sandbox=InProcessBackend())
    assert isinstance(env, ToolEnv) and env.task_id == "regtest/basic-v0"
    assert env.config.max_turns == 3 and env.family.size == 7
    assert env.spec is not None and env.spec.id == "regtest/basic-v0"
    assert env.spec.kwargs == {"task_id": "regtest/basic-v0", "split": "train", "max_turns": 3}
    assert "regtest/basic-v0" in toolgym.list_tasks()


def test_gymnasium_make_builds_the_same_environment() -> None:
    toolgym.register("regtest/gym-v0", TOY)
    env = gymnasium.make("regtest/gym-v0", split="heldout", max_tool_calls=2)
    assert isinstance(env.unwrapped, ToolEnv)
    assert env.unwrapped.split == "heldout" and env.unwrapped.config.max_tool_calls == 2
    _, info = env.reset(seed=0)
    assert info["task_id"] == "regtest/gym-v0"
    env.close()


def test_kwargs_route_to_env_config_and_family() -> None:
    toolgym.register("regtest/route-v0", TOY, kwargs={"size": 3})
    env = toolgym.make("regtest/route-v0", size=9, setup=True, tool_format="json", call_timeout=2.5)
    assert (env.family.size, env.family.setup) == (9, True)
    assert (env.config.tool_format, env.config.call_timeout, env.tool_format) == ("json", 2.5, "json")


def test_registered_tool_format_is_the_default_and_can_be_overridden() -> None:
    toolgym.register("regtest/fmt-v0", TOY, tool_format="xml")
    assert toolgym.make("regtest/fmt-v0").tool_format == "xml"
    assert toolgym.make("regtest/fmt-v0", tool_format="fenced").tool_format == "fenced"


def test_unknown_id_suggests_close_matches() -> None:
    toolgym.register("regtest/adder-v0", TOY)
    with pytest.raises(UnknownNameError, match="Did you mean 'regtest/adder-v0'"):
        toolgym.make("regtest/addr-v0")
    with pytest.raises(UnknownNameError, match="toolgym tasks list"):
        toolgym.make("nothing/like-this-v9")


def test_undeclared_split_is_an_error_and_heldout_only_tasks_refuse_training() -> None:
    toolgym.register("regtest/split-v0", TOY, splits=("train", "heldout"))
    with pytest.raises(ValueError, match="has no split 'test'; it declares 'train', 'heldout'"):
        toolgym.make("regtest/split-v0", split="test")
    toolgym.register("regtest/evalonly-v0", TOY, splits=("heldout",))
    with pytest.raises(ValueError, match="held-out-only task: pass split='heldout'"):
        toolgym.make("regtest/evalonly-v0")
    assert toolgym.make("regtest/evalonly-v0", split="heldout").split == "heldout"
    assert "regtest/evalonly-v0" not in toolgym.list_tasks(split="train")
    assert "regtest/evalonly-v0" in toolgym.list_tasks(split="heldout")
    assert registry.task_splits("regtest/evalonly-v0") == ("heldout",)


def test_duplicate_registration_is_idempotent_only_when_identical() -> None:
    toolgym.register("regtest/dup-v0", TOY, kwargs={"size": 2})
    toolgym.register("regtest/dup-v0", TOY, kwargs={"size": 2})
    with pytest.raises(ValueError, match=r"already registered.*bump the version"):
        toolgym.register("regtest/dup-v0", TOY, kwargs={"size": 3})


@pytest.mark.parametrize(("args", "match"), [
    (("bad id with spaces", TOY), "Invalid task id"),
    (("regtest/ep-v0", "no_colon_here"), "must be 'module:factory'"),
    (("regtest/fmtbad-v0", TOY, {"tool_format": "yaml"}),
     "unknown tool format .yaml.*Registered: fenced, json, xml"),
    (("regtest/splits-v0", TOY, {"splits": "train"}), "non-empty sequence of split names"),
])
def test_register_validates_its_arguments(args: tuple, match: str) -> None:
    extra = args[2] if len(args) > 2 else {}
    with pytest.raises(ValueError, match=match):
        toolgym.register(args[0], args[1], **extra)


def test_callable_entry_point_and_family_type_check() -> None:
    toolgym.register("regtest/callable-v0", lambda: ToyAdd(size=4))
    assert toolgym.make("regtest/callable-v0").family.size == 4
    toolgym.register("regtest/notafamily-v0", lambda: object())
    with pytest.raises(TypeError, match="not a TaskFamily"):
        toolgym.make("regtest/notafamily-v0")


def test_unknown_keyword_names_env_options_and_factory_parameters() -> None:
    toolgym.register("regtest/kw-v0", lambda size=3: ToyAdd(size=size))
    with pytest.raises(TypeError, match=r"unknown keyword.*'max_turn'.*max_turns.*factory \(size\)"):
        toolgym.make("regtest/kw-v0", max_turn=2)


def test_bad_entry_point_module_is_a_clear_import_error() -> None:
    toolgym.register("regtest/missing-v0", "no_such_module_xyz:factory")
    with pytest.raises(ImportError, match="Cannot load the entry point 'no_such_module_xyz:factory'"):
        toolgym.make("regtest/missing-v0")


def test_suites_list_tasks_per_split() -> None:
    toolgym.register("regtest/s1-v0", TOY)
    toolgym.register("regtest/s2-v0", TOY, splits=("heldout",))
    registry.register_suite("regtest-suite", {"train": ["regtest/s1-v0"], "heldout": ["regtest/s2-v0"]})
    assert "regtest-suite" in toolgym.list_suites()
    assert toolgym.list_tasks(suite="regtest-suite") == ["regtest/s1-v0", "regtest/s2-v0"]
    assert registry.suite_tasks("regtest-suite", "heldout") == ["regtest/s2-v0"]
    assert toolgym.list_tasks(suite="regtest-suite", split="train") == ["regtest/s1-v0"]
    with pytest.raises(UnknownNameError, match="Did you mean 'regtest-suite'"):
        toolgym.list_tasks(suite="regtest-suit")
    with pytest.raises(UnknownNameError, match="split of suite"):
        registry.suite_tasks("regtest-suite", "test")
    registry.register_suite("regtest-broken", {"train": ["regtest/never-registered-v0"]})
    with pytest.raises(UnknownNameError, match="unregistered task ids: regtest/never-registered-v0"):
        registry.suite_tasks("regtest-broken", "train")


def test_plugins_load_once_and_the_builtins_are_registered() -> None:
    registry.load_plugins()
    before = dict(registry._tasks)
    registry.load_plugins()
    assert registry._tasks == before
    assert "toolgym/arith-v0" in toolgym.list_tasks()
    assert "quickstart" in toolgym.list_suites()


def test_a_broken_third_party_plugin_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    broken = importlib.metadata.EntryPoint("broken", "no_such_plugin_module:register", "toolgym.tasks")
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [broken])
    monkeypatch.setattr(registry, "BUILTIN_PLUGIN", "envs_support:noop_plugin")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry.load_plugins()
    assert any("task plugin 'broken'" in str(w.message) and "skipped" in str(w.message) for w in caught)


def test_a_broken_builtin_plugin_raises_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """toolgym's own registrations failing is a bug: it raises (again on the next lookup), never skips."""
    import importlib.metadata

    builtin = importlib.metadata.EntryPoint("builtin", "no_such_builtin_module:register", "toolgym.tasks")
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [builtin])
    monkeypatch.setattr(registry, "BUILTIN_PLUGIN", builtin.value)
    for _ in range(2):
        with pytest.raises(ModuleNotFoundError, match="no_such_builtin_module"):
            registry.load_plugins()
