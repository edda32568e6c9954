"""`arith`: multi-step integer arithmetic that is hard without the interpreter and easy with it.

Why this family: it is the quickstart task. A tiny transformer trained on CPU for minutes cannot
multiply 4-digit numbers in its head, but it can learn by imitation to copy the expression into a
`print(...)` call, read the tool output and copy the number into the answer. Level 1 is built for
that: three short, uniform templates of the form "Compute EXPR." whose reference program is the
single line `print(EXPR)`. Higher levels vary the wording and need real programs (series sums,
modular powers with huge exponents, digit sums, Fibonacci numbers, prime counts).

Every instance has a reference program (`Problem.reference_code`) that prints exactly the answer;
the teacher uses it to write demonstrations, and the tests run it. Answers are plain integers.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from toolgym.envs.task import Problem, Score, SessionFactory
from toolgym.tasks.common import DEFAULT_SPLITS, check_choice, sample_instance
from toolgym.tasks.verifiers import score_integer

# (prompt, answer, reference program)
Instance = tuple[str, int, str]
Template = Callable[[random.Random], Instance]


def _expr(expr: str, value: int) -> Instance:
    """'Compute EXPR.' with the reference `print(EXPR)`; EXPR is Python that evaluates to `value`."""
    return f"Compute {expr}.", value, f"print({expr})"


# ---- level 1: "Compute EXPR." -------------------------------------------------------------------
def _product(rng: random.Random) -> Instance:
    a, b = rng.randint(1000, 9999), rng.randint(1000, 9999)
    return _expr(f"{a} * {b}", a * b)


def _modpow(rng: random.Random) -> Instance:
    a, e, m = rng.randint(11, 99), rng.randint(11, 99), rng.randint(101, 999)
    return _expr(f"{a} ** {e} % {m}", pow(a, e, m))


def _sum_of_products(rng: random.Random) -> Instance:
    a, b, c, d = (rng.randint(100, 999) for _ in range(4))
    return _expr(f"{a} * {b} + {c} * {d}", a * b + c * d)


# ---- level 2: varied wording, bigger numbers, series ----------------------------------------------
def _big_product(rng: random.Random) -> Instance:
    a, b = rng.randint(10**4, 10**6), rng.randint(10**4, 10**6)
    return f"What is {a} multiplied by {b}?", a * b, f"print({a} * {b})"


def _remainder_power(rng: random.Random) -> Instance:
    a, e, m = rng.randint(2, 999), rng.randint(10**3, 10**6), rng.randint(10**3, 10**5)
    return (f"Find the remainder when {a} to the power {e} is divided by {m}.", pow(a, e, m),
            f"print(pow({a}, {e}, {m}))")


def _power_sum(rng: random.Random) -> Instance:
    p, n = rng.randint(2, 5), rng.randint(50, 500)
    return (f"Compute the sum of k**{p} for k from 1 to {n}.", sum(k**p for k in range(1, n + 1)),
            f"print(sum(k ** {p} for k in range(1, {n} + 1)))")


def _range_sum(rng: random.Random) -> Instance:
    a = rng.randint(10, 9999)
    b = a + rng.randint(100, 99999)
    return (f"Compute the sum of the integers from {a} to {b}.", (a + b) * (b - a + 1) // 2,
            f"print(sum(range({a}, {b} + 1)))")


def _mixed(rng: random.Random) -> Instance:
    a, b, c, d = (rng.randint(1000, 99999) for _ in range(4))
    return f"Compute ({a} - {b}) * ({c} + {d}).", (a - b) * (c + d), f"print(({a} - {b}) * ({c} + {d}))"


# ---- level 3: multi-step programs -----------------------------------------------------------------
def _digit_sum_power(rng: random.Random) -> Instance:
    a, e = rng.randint(2, 99), rng.randint(50, 400)
    return (f"Compute the sum of the digits of {a}**{e}.", sum(map(int, str(a**e))),
            f"print(sum(int(c) for c in str({a} ** {e})))")


def _fibonacci_mod(rng: random.Random) -> Instance:
    n, m = rng.randint(100, 5000), rng.randint(100, 10**6)
    x, y = 0, 1
    for _ in range(n):
        x, y = y, (x + y) % m
    code = f"a, b = 0, 1\nfor _ in range({n}):\n    a, b = b, (a + b) % {m}\nprint(a)"
    return f"Let F(0) = 0, F(1) = 1, F(n) = F(n-1) + F(n-2). Compute F({n}) modulo {m}.", x, code


def _multiples_sum(rng: random.Random) -> Instance:
    a, b = rng.sample(range(3, 30), 2)
    while a % b == 0 or b % a == 0:  # keep both conditions meaningful
        a, b = rng.sample(range(3, 30), 2)
    n = rng.randint(1000, 100000)
    answer = sum(k for k in range(n) if k % a == 0 or k % b == 0)
    return (f"Compute the sum of all positive integers below {n} that are multiples of {a} or {b}.", answer,
            f"print(sum(k for k in range({n}) if k % {a} == 0 or k % {b} == 0))")


def _factorial_mod(rng: random.Random) -> Instance:
    n, m = rng.randint(50, 2000), rng.randint(10**6, 10**9)
    value = 1
    for k in range(2, n + 1):
        value = value * k % m
    return f"Compute {n}! modulo {m}.", value, f"import math\nprint(math.factorial({n}) % {m})"


def _prime_count(rng: random.Random) -> Instance:
    n = rng.randint(1000, 100000)
    sieve = bytearray([1]) * n
    sieve[:2] = b"\x00\x00"
    for p in range(2, int(n**0.5) + 1):
        if sieve[p]:
            sieve[p * p::p] = bytearray(len(range(p * p, n, p)))
    code = ("n = {n}\nis_prime = [True] * n\nis_prime[0] = is_prime[1] = False\n"
            "for p in range(2, int(n ** 0.5) + 1):\n    if is_prime[p]:\n"
            "        for q in range(p * p, n, p):\n            is_prime[q] = False\nprint(sum(is_prime))")
    return f"How many prime numbers are there below {n}?", sum(sieve), code.format(n=n)


LEVELS: dict[int, tuple[Template, ...]] = {
    1: (_product, _modpow, _sum_of_products),
    2: (_big_product, _remainder_power, _power_sum, _range_sum, _mixed),
    3: (_digit_sum_power, _fibonacci_mod, _multiples_sum, _factorial_mod, _prime_count),
}


@dataclass
class ArithFamily:
    """Integer arithmetic at difficulty `level` (1, 2 or 3); answers are plain integers."""

    level: int = 1
    name: str = "arith"
    splits: tuple[str, ...] = DEFAULT_SPLITS
    tool_format: str = "fenced"
    description: str = field(init=False, default="")

    def __post_init__(self) -> None:
        check_choice(self.name, "level", self.level, list(LEVELS))
        self.description = (f"Integer arithmetic, level {self.level}: big products, modular powers, "
                            "sums of series. Answer with the integer only; use the interpreter.")

    def problem(self, split: str, index: int) -> Problem:
        templates = LEVELS[self.level]

        def draw(rng: random.Random) -> tuple[Template, Instance]:
            template = templates[rng.randrange(len(templates))]
            return template, template(rng)

        template, (prompt, answer, code) = sample_instance(
            self.name, split, index, draw, key=lambda drawn: drawn[1][0], salt=f"level{self.level}",
            splits=self.splits)
        return Problem(prompt=prompt, answer=answer, index=index, split=split, reference_code=code,
                       metadata={"level": self.level, "template": template.__name__.lstrip("_")})

    def verify(self, problem: Problem, answer: str, new_session: SessionFactory) -> Score:
        return score_integer(answer, int(problem.answer))


def make_arith(level: int = 1) -> ArithFamily:
    """Factory for `toolgym/arith-v0`."""
    return ArithFamily(level=level)
