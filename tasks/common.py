"""Helpers every family shares: split/index validation, disjoint seeds, disjoint instances.

Why one place: the promise "a held-out instance never appears in training" rests on every family
doing the same two things.
1. Seeds interleave the splits (`index * n_splits + position`), so the seed sets of two splits are
   disjoint by construction.
2. Disjoint seeds are not enough when a template's instance space is small (two seeds can draw the
   same problem), so each instance also has a key (e.g. its prompt) and a stable hash of the key
   decides which split owns it; `sample_instance` draws until it finds an instance its split owns.
   Train and held-out prompts are then disjoint sets, whatever the seeds.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

DEFAULT_SPLITS: tuple[str, ...] = ("train", "heldout")


def check_split(family: str, split: str, splits: Sequence[str]) -> None:
    """Raise a ValueError naming the known splits when `split` is not one of them."""
    if split not in splits:
        raise ValueError(f"{family}: unknown split {split!r}; known splits: {', '.join(splits)}")


def check_index(family: str, index: int) -> None:
    """Raise when `index` is not a non-negative integer."""
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"{family}: instance index must be a non-negative int, got {index!r}")


def instance_seed(family: str, split: str, index: int, splits: Sequence[str] = DEFAULT_SPLITS) -> int:
    """A seed unique to (split, index); different splits never share a seed."""
    check_split(family, split, splits)
    check_index(family, index)
    return index * len(splits) + list(splits).index(split)


def instance_rng(family: str, split: str, index: int, salt: str = "",
                 splits: Sequence[str] = DEFAULT_SPLITS) -> random.Random:
    """A `random.Random` for one instance; string seeds are hashed with SHA-512, stable across runs."""
    seed = instance_seed(family, split, index, splits)
    return random.Random(f"toolgym/{family}/{salt}:{seed}")


def check_choice(family: str, what: str, value: object, allowed: Sequence[object]) -> None:
    """Raise a ValueError naming the allowed values when `value` is not one of them."""
    if value not in allowed:
        raise ValueError(f"{family}: unknown {what} {value!r}; allowed: {', '.join(map(repr, allowed))}")


def key_split(family: str, key: str, splits: Sequence[str] = DEFAULT_SPLITS, heldout_share: int = 4) -> str:
    """The split that owns instance `key`: 1 in `heldout_share` keys are held out (for train/heldout),
    otherwise an even partition over `splits`."""
    digest = int(hashlib.sha256(f"toolgym/{family}|{key}".encode()).hexdigest(), 16)
    if tuple(splits) == DEFAULT_SPLITS:
        return "heldout" if digest % heldout_share == 0 else "train"
    return splits[digest % len(splits)]


def sample_instance(family: str, split: str, index: int, make: Callable[[random.Random], T],
                    key: Callable[[T], str], *, salt: str = "", splits: Sequence[str] = DEFAULT_SPLITS,
                    max_draws: int = 1000) -> T:
    """Draw instances from the (split, index) random stream until one is owned by `split`."""
    rng = instance_rng(family, split, index, salt, splits)
    for _ in range(max_draws):
        instance = make(rng)
        if key_split(family, key(instance), splits) == split:
            return instance
    raise RuntimeError(f"{family}: no {split!r} instance in {max_draws} draws; the instance space of "
                       f"{salt or 'this family'} is too small to split")
