"""`rg-<name>`: every reasoning-gym generator as a task family, scored by reasoning-gym itself.

Why: reasoning-gym's ~100 procedural generators give the heterogeneous multi-task mix that
R1-Code-Interpreter trains on (their 107 training / 37 held-out tasks); we use the same idea with a
fixed split of generators into train families and held-out families.

Split of families (tasks/data/rg_split.json, shipped): a generator is held out when
`int(sha256("toolgym-rg-split-v0:" + name), 16) % 4 == 0` -- about a quarter, decided per name so
that the split of existing generators never changes when reasoning-gym adds new ones. The file is the
source of truth (registration reads it without importing reasoning-gym); a test checks it against the
rule and against the installed generators. Skipped generators are listed there with the reason.

Split of instances: every family (train or held-out) has "train" and "heldout" instance splits.
Instances come in chunks of 16 consecutive indices of a split; a chunk draws from datasets of 64
items (4 candidate items per instance) whose seeds are private to (split, chunk):
`64 * ((chunk * n_splits + split_position) * 16 + round) mod (2**32 - 64)`, rounds 0..15. Most
generators seed item i with `seed + i`, so seeds 64 apart give every item its own seed (up to
index ~33M, where the modulus wraps; numpy needs seed + i < 2**32; a collision there is harmless,
see next). The first
candidate whose question a stable hash assigns to `split` (half the questions each) is the
instance, so train and held-out questions are disjoint sets even for generators with few distinct
questions. Items are built lazily and cached; sharing one dataset between 16 instances amortises
the generators whose constructor loads a data file (arc_agi, codeio, figlet_font, group_anagrams:
0.2-0.7 s each), and at most 2 datasets per generator stay in memory (arc_agi's holds 16 MB).

Scoring: `dataset.score_answer(answer, entry)`. Some scorers raise on unparsable text (e.g.
prime_factorization calls `int()` on the answer); such an exception on a *model* answer is a 0 score
with the error in the detail. The tests check that reference answers score 1.0, so a scorer that is
broken for correct answers is still caught.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from toolgym.envs.task import Problem, Score, SessionFactory
from toolgym.tasks.common import DEFAULT_SPLITS, instance_seed, key_split

SPLIT_FILE = "data/rg_split.json"
SPLIT_SALT = "toolgym-rg-split-v0:"
MAX_CACHED_INSTANCES = 8192
INSTANCES_PER_CHUNK = 16
CANDIDATES = 4  # items per instance and round
ROUNDS = 16  # 64 candidates per (split, index) before giving up on a question the split owns
DATASETS_PER_GENERATOR = 2
DATASET_SIZE = INSTANCES_PER_CHUNK * CANDIDATES
SEED_MODULUS = 2**32 - DATASET_SIZE  # generators seed numpy with seed + item index (32 bits)

# Families with more than one valid answer where the entry has no answer but the metadata has one.
_REFERENCE_KEYS = ("example_answer", "example_correct_answer")


def task_id(generator: str) -> str:
    """The environment id of a reasoning-gym generator."""
    return f"toolgym/rg-{generator}-v0"


def is_heldout_generator(generator: str) -> bool:
    """The documented rule behind the shipped split (a quarter of names, decided per name)."""
    return int(hashlib.sha256((SPLIT_SALT + generator).encode()).hexdigest(), 16) % 4 == 0


@functools.cache
def rg_split() -> dict[str, Any]:
    """The shipped split: {"train": [...], "heldout": [...], "skipped": {name: reason}, ...}."""
    text = resources.files("toolgym.tasks").joinpath(SPLIT_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def _known_generators() -> list[str]:
    from reasoning_gym.factory import DATASETS  # heavy (about 1.5 s): only when a family is built

    return sorted(DATASETS)


@functools.lru_cache(maxsize=256)
def _scorer(generator: str, config_key: str) -> Any:
    """One dataset object per (generator, config) whose `score_answer` scores every instance."""
    import reasoning_gym

    return reasoning_gym.create_dataset(generator, seed=0, size=1, **json.loads(config_key))


_datasets: dict[tuple[str, str], OrderedDict[int, Any]] = {}
_datasets_lock = threading.Lock()
_generate_lock = threading.Lock()


def _dataset(generator: str, config_key: str, seed: int) -> Any:
    """The dataset of one (chunk, round); the last DATASETS_PER_GENERATOR per generator are kept."""
    import reasoning_gym

    with _datasets_lock:
        kept = _datasets.setdefault((generator, config_key), OrderedDict())
        if seed in kept:
            kept.move_to_end(seed)
            return kept[seed]
    dataset = reasoning_gym.create_dataset(generator, seed=seed, size=DATASET_SIZE, **json.loads(config_key))
    with _datasets_lock:
        kept[seed] = dataset
        while len(kept) > DATASETS_PER_GENERATOR:
            kept.popitem(last=False)
    return dataset


@functools.lru_cache(maxsize=MAX_CACHED_INSTANCES)
def _entry(generator: str, config_key: str, seed: int, position: int) -> dict[str, Any]:
    """Item `position` of the dataset with `seed` (callers must not mutate it).

    Serialised: some generators seed numpy's global RNG (`np.random.seed`) per item, so two threads
    generating at once could interleave draws and break determinism."""
    with _generate_lock:
        return _dataset(generator, config_key, seed)[position]


def reference_answer(generator: str, entry: dict[str, Any]) -> str | None:
    """A correct answer for the entry, or None when reasoning-gym gives none (e.g. boxnet, rush_hour)."""
    if entry.get("answer") is not None:
        return str(entry["answer"])
    metadata = entry.get("metadata", {})
    for key in _REFERENCE_KEYS:
        if metadata.get(key) is not None:
            return str(metadata[key])
    if generator == "graph_color" and "possible_answer" in metadata:
        return json.dumps({str(k): v for k, v in metadata["possible_answer"].items()})
    return None


@dataclass
class ReasoningGymFamily:
    """The reasoning-gym generator `generator`; `config` goes to its dataset config (e.g. difficulty)."""

    generator: str
    config: dict[str, Any] = field(default_factory=dict)
    splits: tuple[str, ...] = DEFAULT_SPLITS
    tool_format: str = "fenced"
    name: str = field(init=False, default="")
    description: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self.name = f"rg-{self.generator}"
        skipped = rg_split()["skipped"]
        if self.generator in skipped:
            reason = skipped[self.generator]
            raise ValueError(f"reasoning-gym generator {self.generator!r} is skipped: {reason}")
        known = [g for g in _known_generators() if g not in skipped]
        if self.generator not in known:
            close = difflib.get_close_matches(self.generator, known, n=3)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            known_list = ", ".join(known)
            raise ValueError(f"unknown reasoning-gym generator {self.generator!r}; {hint}known: {known_list}")
        self._config_key = json.dumps(self.config, sort_keys=True)
        try:
            scorer = _scorer(self.generator, self._config_key)
        except (TypeError, ValueError, AssertionError) as exc:
            message = f"reasoning-gym rejected config {self.config} for {self.generator!r}: {exc}"
            raise ValueError(message) from exc
        doc = (type(scorer).__doc__ or "").strip().splitlines()
        self.description = f"reasoning-gym '{self.generator}': {doc[0] if doc else 'procedural task'}"

    def problem(self, split: str, index: int) -> Problem:
        chunk, slot = divmod(index, INSTANCES_PER_CHUNK)
        base = instance_seed(self.name, split, chunk, self.splits) * ROUNDS
        for round_ in range(ROUNDS):
            seed = (base + round_) * DATASET_SIZE % SEED_MODULUS
            for position in range(slot * CANDIDATES, (slot + 1) * CANDIDATES):
                entry = _entry(self.generator, self._config_key, seed, position)
                if key_split(self.name, str(entry["question"]), self.splits, heldout_share=2) == split:
                    metadata = {"generator": self.generator, "seed": seed, "position": position}
                    return Problem(prompt=str(entry["question"]), index=index, split=split, metadata=metadata,
                                   answer=reference_answer(self.generator, entry))
        draws = ROUNDS * CANDIDATES
        raise RuntimeError(f"{self.name}: no {split!r} question in {draws} draws; the generator's "
                           f"config {self.config} gives too few distinct questions to split")

    def verify(self, problem: Problem, answer: str, new_session: SessionFactory) -> Score:
        meta = problem.metadata
        entry = _entry(self.generator, self._config_key, int(meta["seed"]), int(meta["position"]))
        try:
            value = _scorer(self.generator, self._config_key).score_answer(answer.strip(), entry=entry)
        except Exception as exc:  # reasoning-gym scorers raise on some malformed answers
            return Score(0.0, f"reasoning-gym could not score the answer ({type(exc).__name__}: {exc})"[:300])
        if not isinstance(value, int | float) or math.isnan(value) or not 0.0 <= value <= 1.0:
            raise RuntimeError(f"reasoning-gym '{self.generator}' returned an invalid score {value!r}")
        value = float(value)
        return Score(value, "correct" if value >= 1.0 else f"reasoning-gym score {value:.3g}")


def make_rg(generator: str, **config: Any) -> ReasoningGymFamily:
    """Factory for `toolgym/rg-<generator>-v0`; keyword arguments go to the generator's config."""
    return ReasoningGymFamily(generator=generator, config=config)
