"""Answer checks shared by the families: normalisation, integers, numbers, exact text, math-verify.

Why here: every family compares a model's free-form answer text with a reference, and the same
wrappers keep appearing (`$...$`, `\\boxed{...}`, a trailing full stop, thousands separators). A
malformed answer is a 0 score with a detail saying why; only a bug in our own code raises.

math-verify trap: its `parse`/`verify` guard themselves with `signal.alarm`, which fails off the main
thread (environments run in rollout threads). We disable its timeouts and bound the time ourselves:
answers are capped in length and the check runs in a daemon thread joined with a timeout. A check
that overruns is abandoned (the thread cannot be killed, it finishes in the background) and scores 0.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from fractions import Fraction
from typing import Any, TypeVar

from toolgym.envs.task import Score

from toolgym.registry import Registry

# answer checker name -> fn(answer, gold) -> Score; a third-party checker registers through the
# entry-point group "toolgym.verifiers" (`fuzzy = "my_pkg.checks:score_fuzzy"`)
VERIFIERS: Registry[Callable[[str, Any], Score]] = Registry("verifier", entry_points="toolgym.verifiers")

T = TypeVar("T")

MAX_MATH_ANSWER_CHARS = 1000  # longer answers are not sent to math-verify (sympy can take forever)
MAX_NUMBER_CHARS = 4000  # below Python's int-from-str digit limit (4300)

_INT_RE = re.compile(r"[+-]?\d+")
_THOUSANDS_RE = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?")
_DECIMAL_RE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,4})?")
_RATIO_RE = re.compile(r"([+-]?\d+)\s*/\s*([+-]?\d+)")
_LATEX_FRAC_RE = re.compile(r"([+-]?)\\[dt]?frac\{\s*([+-]?\d+)\s*\}\{\s*([+-]?\d+)\s*\}")


def _unwrap_boxed(text: str) -> str:
    """The content of the last `\\boxed{...}` (balanced braces), or `text` unchanged."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return text
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1:j]
    return text


def clean_answer(text: str) -> str:
    """Strip whitespace, math delimiters, `\\boxed{}` and a trailing full stop."""
    s = text.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if len(s) >= len(left) + len(right) and s.startswith(left) and s.endswith(right):
            s = s[len(left):len(s) - len(right)].strip()
            break
    s = _unwrap_boxed(s).strip()
    while s.endswith(".") and not s.endswith(".."):
        s = s[:-1].rstrip()
    return s.replace("\u2212", "-")  # unicode minus


def parse_integer(text: str) -> int | None:
    """A plain integer (`1234`, `-7`, `1,234`, `\\boxed{12}`) or None."""
    s = clean_answer(text).replace(" ", "").replace("_", "")
    if _THOUSANDS_RE.fullmatch(s) and "." not in s:
        s = s.replace(",", "")
    if len(s) > MAX_NUMBER_CHARS or not _INT_RE.fullmatch(s):
        return None
    return int(s)


def parse_number(text: str) -> Fraction | None:
    """An exact rational from an integer, decimal, scientific, `p/q` or `\\frac{p}{q}` answer, or None."""
    s = clean_answer(text).replace(" ", "")
    if len(s) > MAX_NUMBER_CHARS:
        return None
    if _THOUSANDS_RE.fullmatch(s):
        s = s.replace(",", "")
    if match := _LATEX_FRAC_RE.fullmatch(s):
        sign, p, q = match.groups()
        return None if int(q) == 0 else Fraction(int(p), int(q)) * (-1 if sign == "-" else 1)
    if match := _RATIO_RE.fullmatch(s):
        p, q = int(match.group(1)), int(match.group(2))
        return None if q == 0 else Fraction(p, q)
    if _DECIMAL_RE.fullmatch(s):
        return Fraction(s)
    return None


def numbers_close(a: Fraction, b: Fraction, rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> bool:
    """|a - b| <= max(rel_tol * max(|a|, |b|), abs_tol), computed exactly."""
    tol = max(Fraction(rel_tol) * max(abs(a), abs(b)), Fraction(abs_tol))
    return abs(a - b) <= tol


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


@VERIFIERS.register("integer")
def score_integer(answer: str, gold: int) -> Score:
    """1.0 when the answer is the integer `gold`."""
    value = parse_integer(answer)
    if value is None:
        return Score(0.0, f"expected a plain integer, got {_shorten(answer)!r}")
    return Score(1.0, "correct") if value == gold else Score(0.0, f"wrong: {value} != expected")


def normalize_text(text: str, case_sensitive: bool = False) -> str:
    """`clean_answer`, whitespace collapsed, and case-folded unless `case_sensitive`."""
    s = " ".join(clean_answer(text).split())
    return s if case_sensitive else s.casefold()


@VERIFIERS.register("exact")
def score_exact(answer: str, gold: str, case_sensitive: bool = False) -> Score:
    """1.0 when the normalised texts are equal."""
    if normalize_text(answer, case_sensitive) == normalize_text(str(gold), case_sensitive):
        return Score(1.0, "correct")
    return Score(0.0, f"wrong: {_shorten(answer.strip())!r} does not match the reference")


@VERIFIERS.register("numeric")
def score_numeric(answer: str, gold: Any, rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> Score:
    """1.0 when the answer is a number within tolerance of `gold` (a number or a numeric string).

    Two integers must be equal: a relative tolerance would accept 1048577 for 1048576."""
    reference = parse_number(str(gold))
    if reference is None:
        raise ValueError(f"the reference answer {gold!r} is not a number; use the 'exact' or 'math' verifier")
    value = parse_number(answer)
    if value is None:
        return Score(0.0, f"expected a number, got {_shorten(answer)!r}")
    integers = value.denominator == 1 and reference.denominator == 1  # counts: no tolerance
    if value == reference if integers else numbers_close(value, reference, rel_tol, abs_tol):
        return Score(1.0, "correct")
    return Score(0.0, f"wrong: {float(value):.6g} is not within tolerance of the reference")


class _Timeout:
    """Sentinel for a bounded call that did not finish in time."""


TIMED_OUT = _Timeout()


def run_bounded(fn: Callable[[], T], timeout: float) -> T | _Timeout:
    """Run `fn` in a daemon thread; its result, its exception re-raised, or TIMED_OUT."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread below
            box["error"] = exc

    thread = threading.Thread(target=target, name="toolgym-bounded-check", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return TIMED_OUT
    if "error" in box:
        raise box["error"]
    return box["value"]


def _as_math(text: str) -> str:
    return text if text.lstrip().startswith(("$", "\\(", "\\[")) else f"${text}$"


def _math_verify(gold: str, answer: str) -> tuple[bool, str]:
    from math_verify import parse, verify  # imported here: keeps `import toolgym.tasks` light

    parsed_gold = parse(_as_math(gold), parsing_timeout=None)
    if not parsed_gold:
        raise ValueError(f"math-verify cannot parse the reference answer {gold!r}; fix the problem source")
    parsed = parse(answer, parsing_timeout=None) or parse(_as_math(answer), parsing_timeout=None)
    if not parsed:
        return False, f"could not read a mathematical answer from {_shorten(answer)!r}"
    if verify(parsed_gold, parsed, timeout_seconds=None):
        return True, "correct"
    return False, f"wrong: {_shorten(str(parsed[-1]))} is not equivalent to the reference"


@VERIFIERS.register("math")
def score_math(answer: str, gold: str, timeout: float = 5.0) -> Score:
    """1.0 when math-verify finds the answer equivalent to `gold` (LaTeX or plain expression)."""
    text = answer.strip().rstrip(".").strip()
    if not text:
        return Score(0.0, "empty answer")
    if len(text) > MAX_MATH_ANSWER_CHARS:
        limit = MAX_MATH_ANSWER_CHARS
        return Score(0.0, f"answer too long for math verification ({len(text)} > {limit} chars)")
    result = run_bounded(lambda: _math_verify(str(gold), text), timeout)
    if isinstance(result, _Timeout):
        return Score(0.0, f"math verification did not finish within {timeout}s")
    ok, detail = result
    return Score(1.0 if ok else 0.0, detail)


def get_verifier(name: str) -> Callable[[str, Any], Score]:
    """The answer checker `name` (one of VERIFIERS); an unknown name raises UnknownNameError."""
    return VERIFIERS.get(name)
