"""`math`: procedurally generated problems with exact rational answers, checked with math-verify.

Why procedurally generated: no dataset can be downloaded here, and generated problems give unlimited
disjoint train/held-out instances. Kinds: fraction arithmetic, linear equations, 2x2 linear systems,
arithmetic and geometric series, and root statistics of quadratics with integer roots. Answers are
rationals written in LaTeX (`\\frac{p}{q}`); math-verify accepts equivalent forms (`7/12`, `0.58333`
to its rounding, `\\boxed{...}`). Named `mathgen` so that it does not shadow the standard `math`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

from toolgym.envs.task import Problem, Score, SessionFactory
from toolgym.tasks.common import DEFAULT_SPLITS, sample_instance
from toolgym.tasks.verifiers import score_math

# (prompt, exact answer, reference program printing the answer)
Instance = tuple[str, Fraction, str]


def latex(value: Fraction) -> str:
    """`-\\frac{p}{q}` or an integer, as a reference answer for math-verify."""
    if value.denominator == 1:
        return str(value.numerator)
    sign = "-" if value < 0 else ""
    return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


def _nonzero(rng: random.Random, low: int, high: int) -> int:
    return rng.choice([v for v in range(low, high + 1) if v != 0])


def _linear_form(*terms: tuple[int, str]) -> str:
    """'3x - y + 4' from [(3, 'x'), (-1, 'y'), (4, '')]."""
    text = ""
    for coef, var in terms:
        if coef == 0:
            continue
        magnitude = "" if abs(coef) == 1 and var else str(abs(coef))
        sign = ("-" if coef < 0 else "") if not text else (" - " if coef < 0 else " + ")
        text += f"{sign}{magnitude}{var}"
    return text


def _fractions(rng: random.Random) -> Instance:
    pairs = [(rng.randint(1, 19), rng.randint(2, 24)) for _ in range(rng.randint(3, 4))]
    signs = ["+", *(rng.choice("+-") for _ in pairs[1:])]
    value = sum(Fraction(n, d) * (1 if s == "+" else -1) for s, (n, d) in zip(signs, pairs, strict=True))
    text = " ".join(f"{sign} {n}/{d}" for sign, (n, d) in zip(signs, pairs, strict=True))[2:]
    code_terms = " ".join(f"{sign} F({n}, {d})" for sign, (n, d) in zip(signs, pairs, strict=True))[2:]
    prompt = f"Compute {text}. Give the answer as a reduced fraction."
    return prompt, value, f"from fractions import Fraction as F\nprint({code_terms})"


def _linear(rng: random.Random) -> Instance:
    a, c = rng.sample([v for v in range(-15, 16) if v != 0], 2)
    b, d = _nonzero(rng, -60, 60), _nonzero(rng, -60, 60)
    x = Fraction(d - b, a - c)
    prompt = (f"Solve for x: {_linear_form((a, 'x'), (b, ''))} = {_linear_form((c, 'x'), (d, ''))}. "
              "Give x as a reduced fraction or an integer.")
    code = f"from fractions import Fraction\nprint(Fraction({d} - {b}, {a} - {c}))"
    return prompt, x, code


def _system(rng: random.Random) -> Instance:
    while True:
        a, b, c, d = (_nonzero(rng, -9, 9) for _ in range(4))
        if a * d - b * c != 0:
            break
    e, f = rng.randint(-40, 40), rng.randint(-40, 40)
    det = a * d - b * c
    x, y = Fraction(e * d - b * f, det), Fraction(a * f - e * c, det)
    prompt = (f"Solve the system {_linear_form((a, 'x'), (b, 'y'))} = {e} and "
              f"{_linear_form((c, 'x'), (d, 'y'))} = {f}. What is x + y? "
              "Give the answer as a reduced fraction or an integer.")
    code = ("from fractions import Fraction as F\n"
            f"a, b, c, d, e, f = {a}, {b}, {c}, {d}, {e}, {f}\ndet = a * d - b * c\n"
            "print(F(e * d - b * f, det) + F(a * f - e * c, det))")
    return prompt, x + y, code


def _arithmetic_series(rng: random.Random) -> Instance:
    first, step, n = rng.randint(-50, 100), _nonzero(rng, -12, 15), rng.randint(20, 300)
    last = first + (n - 1) * step
    prompt = (f"What is the sum of the arithmetic sequence {first}, {first + step}, {first + 2 * step}, ..., "
              f"{last}?")
    code = f"print(sum(range({first}, {last + (1 if step > 0 else -1)}, {step})))"
    return prompt, Fraction(n * (first + last), 2), code


def _geometric_series(rng: random.Random) -> Instance:
    a, r, n = rng.randint(1, 9), rng.choice([2, 3, -2, Fraction(1, 2), Fraction(1, 3)]), rng.randint(6, 20)
    total = sum(a * Fraction(r) ** k for k in range(n + 1))
    r_text = str(r) if isinstance(r, int) and r > 0 else f"({r})"
    prompt = f"Compute the sum of {a} * {r_text}^k for k = 0 to {n}. Give the exact value."
    code = f"from fractions import Fraction\nprint(sum({a} * Fraction('{r}') ** k for k in range({n} + 1)))"
    return prompt, total, code


def _quadratic(rng: random.Random) -> Instance:
    p, q = rng.sample([v for v in range(-12, 13) if v != 0], 2)  # distinct integer roots
    lead = rng.choice([1, 1, 2, 3])
    b, c = -lead * (p + q), lead * p * q
    poly = _linear_form((lead, "x^2"), (b, "x"), (c, "")) + " = 0"
    prompt = f"What is the sum of the squares of the roots of {poly}?"
    code = (f"import math\nfrom fractions import Fraction\na, b, c = {lead}, {b}, {c}\n"
            "d = math.isqrt(b * b - 4 * a * c)\n"
            "print(Fraction(-b + d, 2 * a) ** 2 + Fraction(-b - d, 2 * a) ** 2)")
    return prompt, Fraction(p * p + q * q), code


KINDS: dict[str, Callable[[random.Random], Instance]] = {
    "fractions": _fractions,
    "linear": _linear,
    "system": _system,
    "arithmetic_series": _arithmetic_series,
    "geometric_series": _geometric_series,
    "quadratic": _quadratic,
}


@dataclass
class MathFamily:
    """Generated math problems with rational answers; `kinds` restricts the problem kinds."""

    kinds: tuple[str, ...] = tuple(KINDS)
    timeout: float = 5.0  # seconds for one math-verify check
    name: str = "math"
    splits: tuple[str, ...] = DEFAULT_SPLITS
    tool_format: str = "fenced"
    description: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self.kinds = tuple(self.kinds)
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown or not self.kinds:
            raise ValueError(f"math: unknown kinds {unknown or '(empty)'}; known kinds: {', '.join(KINDS)}")
        self.description = ("Generated math problems (" + ", ".join(self.kinds) + ") with exact answers, "
                            "checked for equivalence with math-verify.")

    def problem(self, split: str, index: int) -> Problem:
        def draw(rng: random.Random) -> tuple[str, Instance]:
            kind = self.kinds[rng.randrange(len(self.kinds))]
            return kind, KINDS[kind](rng)

        kind, (prompt, value, code) = sample_instance(self.name, split, index, draw, key=lambda d: d[1][0],
                                                      salt=",".join(self.kinds), splits=self.splits)
        return Problem(prompt=prompt, answer=latex(value), index=index, split=split, reference_code=code,
                       metadata={"kind": kind, "value": str(value)})

    def verify(self, problem: Problem, answer: str, new_session: SessionFactory) -> Score:
        return score_math(answer, problem.answer, timeout=self.timeout)


def make_math(kinds: tuple[str, ...] | list[str] | None = None, timeout: float = 5.0) -> MathFamily:
    """Factory for `toolgym/math-v0`."""
    return MathFamily(kinds=tuple(kinds) if kinds else tuple(KINDS), timeout=timeout)
