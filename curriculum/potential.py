"""Improvement potential and the probe step (R1-Code-Interpreter, arXiv 2505.21668).

    P(unit) = 4 * p * (1 - p)        p = the policy's success rate on the unit

P is 1 at p = 0.5 and 0 at p in {0, 1}. It is proportional to p(1-p), the variance of a binary
reward, which is what a GRPO group's advantage signal scales with: a group that is all solved or all
failed has zero advantage and teaches nothing. Ranking units by P trains first where the gradient
is largest.

The probe estimates p for every unit before training by sampling `n` episodes per unit with the
current policy. R1-Code-Interpreter samples under several agent modes (text only, code only, free
mix) to get about 20 samples per unit; here each mode is one call of a callback

    probe(units: list[str], n: int, mode: str) -> list[Outcome]      # mode in PROMPT_MODES

supplied by the trainer (who owns the engine and the rollouts), so the curriculum never imports
agents. `toolgym.curriculum.unit_requests(unit, n, rng)` turns a unit into `n` train requests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from toolgym.envs.types import Outcome

# text: reason in text only (no tool); code: answer by running code; free: the agent decides.
PROMPT_MODES = ("text", "code", "free")
ProbeFn = Callable[[list[str], int, str], list[Outcome]]


def improvement_potential(p: float | np.ndarray) -> float | np.ndarray:
    """4 p (1 - p) for a success rate (or an array of rates) in [0, 1]; NaN passes through."""
    arr = np.asarray(p, dtype=float)
    if np.any((arr < 0) | (arr > 1)):
        raise ValueError(f"success rates must lie in [0, 1], got {p!r}")
    out = 4.0 * arr * (1.0 - arr)
    return float(out) if out.ndim == 0 else out


def run_probe(probe: ProbeFn, units: Sequence[str], n: int,
              modes: Sequence[str] = ("free",)) -> list[Outcome]:
    """Call `probe(units, n, mode)` once per mode and return all outcomes (validated for split)."""
    if n < 1:
        raise ValueError(f"the probe needs n >= 1 episodes per unit and mode, got {n}")
    if isinstance(modes, str):
        modes = (modes,)
    if not modes:
        raise ValueError(f"give at least one probe mode from {PROMPT_MODES}")
    unknown = [m for m in modes if m not in PROMPT_MODES]
    if unknown:
        raise ValueError(f"unknown probe mode(s) {unknown}; known: {', '.join(PROMPT_MODES)}")
    if len(set(modes)) != len(modes):
        raise ValueError(f"probe modes repeat: {list(modes)}; raise n instead for more samples")
    outcomes: list[Outcome] = []
    for mode in modes:
        got = probe(list(units), n, mode)
        if not isinstance(got, list) or not all(isinstance(o, Outcome) for o in got):
            raise TypeError(f"the probe callback must return a list of toolgym.envs.types.Outcome "
                            f"(mode {mode!r} returned {type(got).__name__})")
        outcomes += got
    return outcomes
