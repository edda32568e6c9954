"""Helpers every family shares: split/index validation and disjoint per-instance seeds.

Why one place: the promise "a held-out instance never appears in training" rests on every family
deriving its instance seeds the same way. Seeds interleave the splits (`index * n_splits + position`),
so the seed sets of two splits are disjoint by construction, not by luck of a hash.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

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
