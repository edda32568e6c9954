"""`countdown`: reach a target from given numbers with + - * / (each number used at most once).

Why this family: it needs search. A model can guess, but a short brute-force program finds an
expression reliably, so the interpreter pays off. Instances are made by building a random expression
over the numbers, so every target is reachable; the reference program searches on its own (it does
not peek at the generating expression) and prints a solution.

The verifier never evaluates model text as code: it parses the answer with `ast` and accepts only
integer literals, parentheses and the four binary operators, checks the multiset of numbers used and
evaluates exactly with `Fraction`.
"""

from __future__ import annotations

import ast
import random
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction

from toolgym.envs.task import Problem, Score, SessionFactory
from toolgym.tasks.common import DEFAULT_SPLITS, sample_instance

MAX_ANSWER_CHARS = 500
_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}

# The reference program: exhaustive search over pairs with exact fractions, memoising dead states.
SOLVER_SOURCE = '''\
from fractions import Fraction
from itertools import combinations


def solve(numbers, target):
    dead = set()

    def search(items):
        for value, expr in items:
            if value == target:
                return expr
        key = tuple(sorted(value for value, _ in items))
        if len(items) < 2 or key in dead:
            return None
        for i, j in combinations(range(len(items)), 2):
            (a, ea), (b, eb) = items[i], items[j]
            rest = [items[k] for k in range(len(items)) if k not in (i, j)]
            options = [(a + b, f"({ea} + {eb})"), (a * b, f"({ea} * {eb})"),
                       (a - b, f"({ea} - {eb})"), (b - a, f"({eb} - {ea})")]
            if b != 0:
                options.append((a / b, f"({ea} / {eb})"))
            if a != 0:
                options.append((b / a, f"({eb} / {ea})"))
            for value, expr in options:
                found = search(rest + [(value, expr)])
                if found is not None:
                    return found
        dead.add(key)
        return None

    return search([(Fraction(n), str(n)) for n in numbers])
'''


def _random_expression(rng: random.Random, numbers: list[int]) -> tuple[Fraction, str] | None:
    """Combine `numbers` in random order with random operators; None on a division by zero."""
    items = [(Fraction(n), str(n)) for n in numbers]
    while len(items) > 1:
        (a, ea), (b, eb) = items.pop(rng.randrange(len(items))), items.pop(rng.randrange(len(items)))
        op = rng.choice("+-*/")
        if op == "/" and b == 0:
            return None
        value = {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else a}[op]
        items.append((value, f"({ea} {op} {eb})"))
    return items[0]


def answer_source(answer: str) -> str:
    """The expression part of an answer: common symbols mapped to ASCII, anything after '=' dropped."""
    source = answer.strip().replace("\u00d7", "*").replace("\u00f7", "/").replace("\u2212", "-")
    return source.split("=", 1)[0].strip()


def parse_expression(text: str) -> tuple[ast.expr, list[int]] | str:
    """(syntax tree, integer literals used) of an arithmetic expression, or a message saying why not."""
    source = answer_source(text)
    if not source:
        return "empty answer: give an arithmetic expression such as (3 + 5) * 7"
    if len(source) > MAX_ANSWER_CHARS:
        return f"expression too long ({len(source)} > {MAX_ANSWER_CHARS} chars)"
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return f"not a valid arithmetic expression ({type(exc).__name__})"
    literals: list[int] = []
    for node in ast.walk(tree.body):
        if isinstance(node, ast.Constant) and type(node.value) is int:
            literals.append(node.value)
        elif not isinstance(node, (ast.BinOp, *_OPS)):
            return f"only integers, parentheses and + - * / are allowed (found {type(node).__name__})"
    return tree.body, literals


def evaluate(node: ast.expr) -> Fraction:
    """The exact value of a tree accepted by `parse_expression`; raises ZeroDivisionError."""
    if isinstance(node, ast.Constant):
        return Fraction(node.value)
    if not isinstance(node, ast.BinOp):
        raise TypeError(f"evaluate() takes trees from parse_expression, got {type(node).__name__}")
    a, b = evaluate(node.left), evaluate(node.right)
    if isinstance(node.op, ast.Div):
        return a / b
    return {ast.Add: a + b, ast.Sub: a - b, ast.Mult: a * b}[type(node.op)]


@dataclass
class CountdownFamily:
    """Reach `target` from `n_numbers` numbers (1..100) with + - * /; each number at most once."""

    n_numbers: int = 4
    name: str = "countdown"
    splits: tuple[str, ...] = DEFAULT_SPLITS
    tool_format: str = "fenced"
    description: str = field(init=False, default="")

    def __post_init__(self) -> None:
        if not 2 <= self.n_numbers <= 6:
            raise ValueError(f"countdown: n_numbers must be between 2 and 6, got {self.n_numbers}")
        self.description = (f"Countdown with {self.n_numbers} numbers: write an expression with + - * / "
                            "that reaches the target; answer with the expression.")

    def _instance(self, rng: random.Random) -> tuple[list[int], int, str]:
        while True:
            numbers = [rng.randint(1, 100) for _ in range(self.n_numbers)]
            built = _random_expression(rng, list(numbers))
            if built is None:
                continue
            value, expr = built
            if value.denominator == 1 and 10 <= value <= 999 and int(value) not in numbers:
                return numbers, int(value), expr[1:-1]

    def problem(self, split: str, index: int) -> Problem:
        numbers, target, solution = sample_instance(
            self.name, split, index, self._instance, key=lambda inst: f"{sorted(inst[0])}->{inst[1]}",
            salt=f"n{self.n_numbers}", splits=self.splits)
        listed = ", ".join(map(str, numbers))
        prompt = (f"Using the numbers {listed} (each at most once) and the operations + - * /, "
                  f"write an expression equal to {target}. Answer with the expression only.")
        code = f"{SOLVER_SOURCE}\n\nprint(solve({numbers}, {target}))\n"
        return Problem(prompt=prompt, answer=target, index=index, split=split, reference_code=code,
                       metadata={"numbers": numbers, "target": target, "solution": solution})

    def verify(self, problem: Problem, answer: str, new_session: SessionFactory) -> Score:
        numbers, target = problem.metadata["numbers"], int(problem.answer)
        parsed = parse_expression(answer)
        if isinstance(parsed, str):
            return Score(0.0, parsed)
        tree, literals = parsed
        extra = Counter(literals) - Counter(numbers)
        if extra:
            unavailable = sorted(extra.elements())
            return Score(0.0, f"uses numbers not available (or more often than given): {unavailable}")
        try:
            value = evaluate(tree)
        except ZeroDivisionError:
            return Score(0.0, "the expression divides by zero")
        if value != target:
            return Score(0.0, f"the expression equals {value}, not {target}")
        return Score(1.0, "correct")


def make_countdown(n_numbers: int = 4) -> CountdownFamily:
    """Factory for `toolgym/countdown-v0`."""
    return CountdownFamily(n_numbers=n_numbers)
