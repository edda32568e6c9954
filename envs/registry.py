"""The task registry: ids -> task families, on top of Gymnasium's registry; suites; plugins.

    register("me/adder-v0", "my_pkg.adder:make_family", splits=("train", "heldout"))
    env = toolgym.make("me/adder-v0", split="heldout", max_turns=4)   # a ToolEnv
    env = gymnasium.make("me/adder-v0")                                 # the same env, wrapped

Every id is also registered in `gymnasium.envs.registry` (entry point `make_gym_env`), so
`gymnasium.make(id)` works once toolgym has loaded its plugins: `import toolgym` does (as any
Gymnasium environment package registers its ids on import), and so does any lookup here.
Third-party packages add families through the entry-point group `toolgym.tasks`: each entry point is
a zero-argument callable that calls `register(...)`, loaded once (a plugin that fails to load is
skipped with a warning; toolgym's own tasks failing is an error).

Splits are part of a task: `register(splits=...)` declares them, `make(id, split=s)` refuses a split
the task does not declare, and a task without a "train" split (a held-out-only family) cannot be
made for training by default -- so held-out data never leaks into training through a default.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.metadata
import inspect
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gymnasium
from toolgym.envs.config import EnvConfig
from toolgym.envs.task import TaskFamily

from toolgym.registry import UnknownNameError

if TYPE_CHECKING:
    from toolgym.envs.env import ToolEnv

ENTRY_POINT_GROUP = "toolgym.tasks"
BUILTIN_PLUGIN = "toolgym.tasks:register_builtin"  # toolgym's own: its errors are raised, not warned
GYM_ENTRY_POINT = "toolgym.envs.registry:make_gym_env"
ENV_KEYWORDS = ("config", "sandbox", "render_mode")  # make() keywords for the env, besides EnvConfig fields



@dataclass(frozen=True)
class TaskSpec:
    """One registered task id."""

    id: str
    entry_point: str | Callable[..., TaskFamily]  # "module:factory" or the factory itself
    splits: tuple[str, ...]
    kwargs: Mapping[str, Any] = field(default_factory=dict)  # default keyword arguments of the factory
    description: str = ""
    tool_format: str | None = None  # overrides the family's own default format
    plugin: str | None = None  # the entry point that registered it (None: registered directly)


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    splits: Mapping[str, tuple[str, ...]]  # split name -> task ids
    description: str = ""


_lock = threading.RLock()
_tasks: dict[str, TaskSpec] = {}
_suites: dict[str, SuiteSpec] = {}
_plugins_loaded = False
_current_plugin: str | None = None


# ---- registration --------------------------------------------------------------------------------
def register(id: str, entry_point: str | Callable[..., TaskFamily], *,
             splits: Sequence[str] = ("train", "heldout"), kwargs: dict[str, Any] | None = None,
             description: str = "", tool_format: str | None = None) -> None:
    """Register a task family under `id` ("namespace/name-vN"), here and in Gymnasium's registry.

    Registering the same id again with the same arguments is a no-op; with different ones, an error.
    """
    with _lock:  # held by a loading plugin: `_current_plugin` names the registering plugin
        spec = TaskSpec(id=id, entry_point=entry_point, splits=_check_splits(id, splits),
                        kwargs=dict(kwargs or {}), description=description, tool_format=tool_format,
                        plugin=_current_plugin)
        _check_spec(spec)
        old = _tasks.get(id)
        if old is not None:
            if dataclasses.replace(old, plugin=spec.plugin) == spec:
                return
            by = old.plugin or "a direct register() call"
            raise ValueError(f"Task id {id!r} is already registered (by {by}) with different arguments; "
                             "pick another id or bump the version (-v1).")
        _tasks[id] = spec
        gymnasium.register(id=id, entry_point=GYM_ENTRY_POINT, kwargs={"task_id": id})


def register_suite(name: str, splits: Mapping[str, Sequence[str]], description: str = "") -> None:
    """Register a named collection of task ids per split, e.g. {"train": [...], "heldout": [...]}."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"A suite name must be a non-empty string, got {name!r}.")
    if not splits or any(isinstance(ids, str) for ids in splits.values()):
        raise ValueError(f"Suite {name!r}: splits must map split names to lists of task ids, "
                         f"got {splits!r}.")
    spec = SuiteSpec(name=name, splits={s: tuple(ids) for s, ids in splits.items()},
                     description=description)
    with _lock:
        old = _suites.get(name)
        if old is not None and old != spec:
            raise ValueError(f"Suite {name!r} is already registered with different tasks; "
                             "pick another name.")
        _suites[name] = spec


def _check_splits(id: str, splits: Sequence[str]) -> tuple[str, ...]:
    if isinstance(splits, str) or not splits or not all(isinstance(s, str) and s for s in splits):
        raise ValueError(f"register({id!r}): splits must be a non-empty sequence of split names, "
                         f"got {splits!r}.")
    if len(set(splits)) != len(splits):
        raise ValueError(f"register({id!r}): duplicate split names in {splits!r}.")
    return tuple(splits)


def _check_spec(spec: TaskSpec) -> None:
    if not isinstance(spec.id, str):
        raise TypeError(f"A task id must be a string, got {type(spec.id).__name__}.")
    try:
        gymnasium.envs.registration.parse_env_id(spec.id)
    except gymnasium.error.Error as exc:
        raise ValueError(f"Invalid task id {spec.id!r}: use 'namespace/name-vN', "
                         "e.g. 'me/adder-v0'.") from exc
    if isinstance(spec.entry_point, str) and spec.entry_point.count(":") != 1:
        raise ValueError(f"register({spec.id!r}): entry_point {spec.entry_point!r} must be "
                         "'module:factory'.")
    if not isinstance(spec.entry_point, str) and not callable(spec.entry_point):
        raise TypeError(f"register({spec.id!r}): entry_point must be 'module:factory' or a callable.")
    if spec.tool_format is not None:
        EnvConfig(tool_format=spec.tool_format)  # validates the name


# ---- plugins -------------------------------------------------------------------------------------
def load_plugins() -> None:
    """Call every `toolgym.tasks` entry point once (idempotent, thread-safe)."""
    global _plugins_loaded, _current_plugin
    with _lock:
        if _plugins_loaded:
            return
        _plugins_loaded = True  # set first: a plugin that looks names up must not recurse
        seen: set[str] = set()
        entry_points = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
        if not any(ep.value == BUILTIN_PLUGIN for ep in entry_points):  # e.g. run from a source tree
            builtin = importlib.metadata.EntryPoint("builtin", BUILTIN_PLUGIN, ENTRY_POINT_GROUP)
            entry_points.insert(0, builtin)
        for ep in entry_points:
            if ep.value in seen:
                continue
            seen.add(ep.value)
            _current_plugin = ep.value
            try:
                ep.load()()
            except Exception as exc:
                if ep.value == BUILTIN_PLUGIN:  # toolgym's own tasks: a bug to fix, not to skip
                    _plugins_loaded = False  # the next lookup raises again instead of missing them
                    raise
                warnings.warn(f"toolgym: the task plugin {ep.name!r} ({ep.value}) failed to load and was "
                              f"skipped: {type(exc).__name__}: {exc}. Fix or uninstall the package that "
                              "provides it.", RuntimeWarning, stacklevel=2)
            finally:
                _current_plugin = None


# ---- lookups -------------------------------------------------------------------------------------
def _unknown(kind: str, name: str, known: Sequence[str], what_to_do: str) -> UnknownNameError:
    known = list(known)
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    listing = ", ".join(known[:25]) + (f", ... ({len(known)} in all)" if len(known) > 25 else "")
    return UnknownNameError(f"Unknown {kind} {name!r}.{hint} Known: {listing or '(none)'}. {what_to_do}")


def task_spec(id: str) -> TaskSpec:
    """The registration of `id`; an unknown id names close matches."""
    load_plugins()
    spec = _tasks.get(id)
    if spec is None:
        raise _unknown("task id", id, sorted(_tasks), "`toolgym tasks list` shows every id.")
    return spec


def task_splits(id: str) -> tuple[str, ...]:
    return task_spec(id).splits


def list_tasks(suite: str | None = None, split: str | None = None) -> list[str]:
    """Registered task ids (sorted), or a suite's ids; optionally only those of one split."""
    load_plugins()
    if suite is not None:
        if split is not None:
            return suite_tasks(suite, split)
        spec = _suite(suite)
        return list(dict.fromkeys(i for split_name in spec.splits for i in suite_tasks(suite, split_name)))
    return sorted(i for i, s in _tasks.items() if split is None or split in s.splits)


def list_suites() -> list[str]:
    load_plugins()
    return sorted(_suites)


def suite_tasks(suite: str, split: str) -> list[str]:
    """The task ids of one split of a suite (they must all be registered)."""
    spec = _suite(suite)
    if split not in spec.splits:
        raise _unknown(f"split of suite {suite!r}", split, list(spec.splits), "")
    missing = [i for i in spec.splits[split] if i not in _tasks]
    if missing:
        raise UnknownNameError(f"Suite {suite!r} ({split}) names unregistered task ids: "
                               f"{', '.join(missing)}.")
    return list(spec.splits[split])


def suite_spec(suite: str) -> SuiteSpec:
    return _suite(suite)


def _suite(name: str) -> SuiteSpec:
    load_plugins()
    spec = _suites.get(name)
    if spec is None:
        raise _unknown("suite", name, sorted(_suites), "`toolgym tasks list` shows the suites.")
    return spec


# ---- construction --------------------------------------------------------------------------------
def make_family(id: str, **family_kwargs: Any) -> TaskFamily:
    """The task family behind `id`, built with the registered kwargs updated by `family_kwargs`."""
    spec = task_spec(id)
    factory = _resolve(spec)
    merged = {**spec.kwargs, **family_kwargs}
    _check_factory_kwargs(spec, factory, merged)
    try:
        family = factory(**merged)
    except TypeError as exc:
        if "unexpected keyword" not in str(exc):
            raise
        env_options = ", ".join((*EnvConfig.field_names(), *ENV_KEYWORDS))
        raise TypeError(f"make({id!r}): {exc}. Environment options are: {env_options}; the rest go to the "
                        "family factory.") from exc
    if not isinstance(family, TaskFamily):
        raise TypeError(f"The entry point of {id!r} returned {type(family).__name__}, not a TaskFamily "
                        "(needs name, splits, tool_format, problem() and verify()).")
    return family


def make(id: str, split: str = "train", **kwargs: Any) -> ToolEnv:
    """A `ToolEnv` for task `id` on `split`.

    Keyword arguments: `EnvConfig` fields (max_turns, max_tool_calls, tool_format, ...), `config`
    (a base EnvConfig), `sandbox` (a SandboxBackend or SessionPool), `render_mode`; anything else
    goes to the family's factory.
    """
    from toolgym.envs.env import ToolEnv

    spec = task_spec(id)
    if split not in spec.splits:
        advice = (" It is a held-out-only task: pass split='heldout' to evaluate on it."
                  if "train" not in spec.splits and split == "train" else "")
        declared = ", ".join(map(repr, spec.splits))
        raise ValueError(f"Task {id!r} has no split {split!r}; it declares {declared}.{advice}")
    config_fields = set(EnvConfig.field_names())
    env_overrides = {k: v for k, v in kwargs.items() if k in config_fields}
    env_kwargs = {k: kwargs[k] for k in ENV_KEYWORDS if k in kwargs}
    family_kwargs = {k: v for k, v in kwargs.items() if k not in config_fields and k not in ENV_KEYWORDS}
    config = env_kwargs.pop("config", None) or EnvConfig()
    if spec.tool_format is not None and "tool_format" not in env_overrides and config.tool_format is None:
        env_overrides["tool_format"] = spec.tool_format
    config = config.replace(**env_overrides)
    family = make_family(id, **family_kwargs)
    env = ToolEnv(family, split=split, config=config, task_id=id, **env_kwargs)
    # The spec lets gymnasium (and check_env) re-make the env; a sandbox object is not copyable, so a
    # re-made env uses the default sandbox.
    remake = {k: v for k, v in kwargs.items() if k != "sandbox"}
    env.spec = dataclasses.replace(gymnasium.spec(id), kwargs={"task_id": id, "split": split, **remake})
    return env


def make_gym_env(task_id: str, **kwargs: Any) -> ToolEnv:
    """Gymnasium's entry point for every toolgym id (see `register`)."""
    return make(task_id, **kwargs)


def _resolve(spec: TaskSpec) -> Callable[..., TaskFamily]:
    if callable(spec.entry_point):
        return spec.entry_point
    module_name, _, attr = spec.entry_point.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ImportError(f"Cannot load the entry point {spec.entry_point!r} of task {spec.id!r}: "
                          f"{exc}") from exc


def _check_factory_kwargs(spec: TaskSpec, factory: Callable[..., Any], kwargs: Mapping[str, Any]) -> None:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        env_options = ", ".join((*EnvConfig.field_names(), *ENV_KEYWORDS))
        raise TypeError(f"make({spec.id!r}): unknown keyword(s) {', '.join(map(repr, unknown))}: not an "
                        f"environment option ({env_options}) and not a parameter of the family factory "
                        f"({', '.join(params) or 'none'}).")
