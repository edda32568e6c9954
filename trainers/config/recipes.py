"""Recipes: the published training systems as validated YAML configs, each with a `--tiny` CPU variant.

Why recipes are data, not code: a recipe is a set of choices (loss, advantage, filters, curriculum,
lengths) that the papers report; keeping them as YAML with a comment citing the source of each
setting lets a reader check a recipe against its paper line by line, and lets `toolgym train
--recipe NAME key.sub=value` change any of them without editing Python.

A recipe file (trainers/config/recipes/NAME.yaml) is a `TrainConfig` mapping plus two optional sections
that are not part of the config:

    meta:                 # what the recipe is; shown by `toolgym recipes list|show`
      description: ...    # one line
      source: ...         # paper / code the settings come from
      device: gpu | cpu   # gpu: the full recipe assumes GPUs (engine vllm); use --tiny on a CPU
      model: ...          # the model the paper trained (recipes meant for GPUs name it)
      hardware: ...       # the hardware the full recipe assumes
    tiny:                 # overrides deep-merged over the recipe by --tiny: tiny model, tiny batches,
      ...                 # a few steps on CPU, same algorithm

Resolution order: recipe file -> `tiny` section (when asked) -> `key.sub=value` overrides -> the typed
dataclasses of `toolgym.trainers.config.schema` (unknown keys and bad values raise `ConfigError` naming them).
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolgym.trainers.config.checks import check_config
from toolgym.trainers.config.schema import TrainConfig
from toolgym.trainers.config.yaml_io import ConfigError, apply_overrides, from_dict, load_yaml

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"

META_KEYS = ("description", "source", "device", "model", "hardware", "notes")
DEVICES = ("cpu", "gpu")
_NON_CONFIG = ("meta", "tiny")  # top-level sections of a recipe file that are not TrainConfig fields


@dataclass(frozen=True)
class RecipeInfo:
    """What `toolgym recipes list|show` prints about one recipe."""

    name: str
    path: Path
    description: str = ""
    source: str = ""
    device: str = "cpu"  # "gpu": the full recipe assumes GPUs; its --tiny variant runs on CPU
    model: str = ""  # the model the published run trained ("" = the tiny quickstart model)
    hardware: str = ""
    notes: str = ""
    tiny: dict[str, Any] = field(default_factory=dict)  # the --tiny overrides


def list_recipes() -> list[str]:
    """Names of the shipped recipes (files trainers/config/recipes/*.yaml), sorted."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def recipe_file(name: str | Path) -> Path:
    """The YAML file of a shipped recipe name, or `name` itself when it is a path to a YAML file."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise ConfigError(f"recipe file {str(name)!r} does not exist")
        return path
    shipped = RECIPES_DIR / f"{name}.yaml"
    if shipped.exists():
        return shipped
    known = list_recipes()
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"unknown recipe {str(name)!r}; known recipes: {', '.join(known)}.{hint} "
                      "(or give a path to a .yaml file; `toolgym recipes list` shows them)")


def _read(name: str | Path) -> tuple[Path, dict[str, Any]]:
    path = recipe_file(name)
    return path, load_yaml(str(path))


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """`top` over `base`: mappings merge key by key, anything else (lists included) replaces."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(dict(out[key]), value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _check_meta(path: Path, meta: Any) -> dict[str, Any]:
    if not isinstance(meta, Mapping):
        raise ConfigError(f"{path}: `meta` must be a mapping with keys {', '.join(META_KEYS)}")
    unknown = sorted(set(meta) - set(META_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown meta key(s) {unknown}; allowed: {', '.join(META_KEYS)}")
    device = meta.get("device", "cpu")
    if device not in DEVICES:
        raise ConfigError(f"{path}: meta.device {device!r} is not allowed; allowed values: "
                          f"{', '.join(DEVICES)}")
    return dict(meta)


def recipe_dict(name: str | Path, tiny: bool = False, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The raw config mapping of a recipe after the `tiny` section and the overrides (not validated)."""
    path, raw = _read(name)
    _check_meta(path, raw.get("meta", {}))
    tiny_section = raw.get("tiny", {}) or {}
    if not isinstance(tiny_section, Mapping):
        raise ConfigError(f"{path}: `tiny` must be a mapping of config overrides")
    data = {k: v for k, v in raw.items() if k not in _NON_CONFIG}
    if tiny:
        data = _deep_merge(data, tiny_section)
    return apply_overrides(data, list(overrides))


def load_recipe(name: str | Path, tiny: bool = False, overrides: Sequence[str] = ()) -> TrainConfig:
    """A validated `TrainConfig` from recipe `name` (shipped name or YAML path), its `--tiny` variant
    when `tiny`, then `key.sub=value` overrides. Unknown names list the known recipes."""
    data = recipe_dict(name, tiny=tiny, overrides=overrides)
    try:
        cfg = from_dict(TrainConfig, data)
        check_config(cfg)
        return cfg
    except ConfigError as exc:
        variant = " (--tiny)" if tiny else ""
        raise ConfigError(f"recipe {str(name)!r}{variant}: {exc}") from exc


def describe_recipe(name: str | Path) -> RecipeInfo:
    """The recipe's `meta` section and its `--tiny` overrides."""
    path, raw = _read(name)
    meta = _check_meta(path, raw.get("meta", {}))
    tiny = raw.get("tiny", {}) or {}
    fields = {k: str(meta[k]).strip() for k in META_KEYS if k in meta}
    return RecipeInfo(name=path.stem, path=path, tiny=dict(tiny), **fields)


def load_config(recipe: str | Path | None = None, overrides: Sequence[str] = (), *,
                tiny: bool = False) -> TrainConfig:
    """A validated TrainConfig: a recipe (shipped name or YAML path; None = the schema's defaults), its
    `--tiny` variant when asked, then `key.sub=value` overrides; registry names checked (`check_config`)."""
    if recipe is not None:
        return load_recipe(recipe, tiny=tiny, overrides=overrides)
    cfg = from_dict(TrainConfig, apply_overrides({}, list(overrides)))
    check_config(cfg)
    return cfg


__all__ = ["RECIPES_DIR", "RecipeInfo", "describe_recipe", "list_recipes", "load_config", "load_recipe",
           "recipe_dict", "recipe_file"]
