"""Tool-call parsers: every malformed turn yields a clear message, never an exception (hypothesis)."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from toolgym.envs.parsers import PROBLEMS, ParsedTurn, get_parser, list_formats

FORMATS = list_formats()
FENCE = "```"


def parse(fmt: str, text: str) -> ParsedTurn:
    return get_parser(fmt).parse(text)


@pytest.mark.parametrize("fmt", FORMATS)
def test_format_call_and_answer_round_trip(fmt: str) -> None:
    parser = get_parser(fmt)
    code = 'x = {"a": 1}\nprint(x["a"] * 2)  # </answer> is fine in a comment'
    turn = parser.parse(parser.format_call(code))
    assert (turn.kind, turn.code.strip()) == ("code", code)
    turn = parser.parse(parser.format_answer(" 42 "))
    assert (turn.kind, turn.answer) == ("answer", "42")


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_declares_stop_strings_and_instructions(fmt: str) -> None:
    parser = get_parser(fmt)
    assert "</answer>" in parser.stop_strings and len(parser.stop_strings) == 2
    assert "<answer>" in parser.instructions
    # A call formatted by the parser ends with (or right after) one of its stop strings.
    call = parser.format_call("print(1)")
    assert any(call.rstrip().endswith(s.strip()) for s in parser.stop_strings)
    # The example in the instructions is itself a well-formed call.
    example = parser.instructions[parser.instructions.index(":") + 1:]
    example = example.split("Its output")[0].split("The output")[0]
    assert parser.parse(example).kind == "code"


def test_stop_strings_are_fresh_lists() -> None:
    first = get_parser("fenced")
    first.stop_strings.append("zzz")
    assert "zzz" not in get_parser("fenced").stop_strings


# (format, turn text, expected problem) -- the malformed cases the issue names, and more.
MALFORMED = [
    ("fenced", "", "empty"),
    ("fenced", " \n\t ", "empty"),
    ("fenced", f"{FENCE}python\nprint(1)\n", "unclosed_code"),
    ("fenced", f"Let me check:\n{FENCE}python", "unclosed_code"),
    ("fenced", f"{FENCE}\nprint(1)", "unclosed_code"),
    ("fenced", f"{FENCE}bash\nls -la\n{FENCE}\n", "unknown_language"),
    ("fenced", f"{FENCE}javascript\nconsole.log(1)\n{FENCE}\n", "unknown_language"),
    ("fenced", "<answer>1</answer> or maybe <answer>2</answer>", "multiple_answers"),
    ("fenced", "<answer>1<answer>2</answer>", "multiple_answers"),
    ("fenced", f"{FENCE}python\nprint(1)\n{FENCE}\n<answer>1</answer>", "code_and_answer"),
    ("fenced", f"{FENCE}python\na=1\n{FENCE}\n{FENCE}python\nprint(a)\n{FENCE}\n", "multiple_code"),
    ("fenced", f"{FENCE}python\n   \n{FENCE}\n", "empty_code"),
    ("fenced", "<answer>   </answer>", "empty_answer"),
    ("fenced", "<answer>42", "unclosed_answer"),
    ("fenced", "42</answer>", "stray_close"),
    ("fenced", "I think the answer is 42.", "no_action"),
    ("fenced", f"{FENCE}\nprint(1)\n{FENCE}\n", "no_action"),
    ("xml", "<code>print(1)", "unclosed_code"),
    ("xml", '<code lang="bash">ls</code>', "unknown_language"),
    ("xml", f"<code>{FENCE}rust\nfn main() {{}}\n{FENCE}</code>", "unknown_language"),
    ("xml", "<code>a=1</code><code>print(a)</code>", "multiple_code"),
    ("xml", f"{FENCE}python\nprint(1)\n{FENCE}\n", "no_action"),
    ("json", "<tool_call>{not json}</tool_call>", "bad_json"),
    ("json", "<tool_call>[1, 2]</tool_call>", "bad_json"),
    ("json", '<tool_call>{"name": "bash", "arguments": {"cmd": "ls"}}</tool_call>', "unknown_tool"),
    ("json", '<tool_call>{"name": "python", "arguments": {"source": "1"}}</tool_call>', "bad_arguments"),
    ("json", '<tool_call>{"name": "python", "arguments": "not json"}</tool_call>', "bad_arguments"),
    ("json", '<tool_call>{"name": "python", "arguments": {"code": "1"}}', "unclosed_code"),
    ("json", "<tool_call>" + "[" * 50_000 + "</tool_call>", "bad_json"),
]


@pytest.mark.parametrize(("fmt", "text", "problem"), MALFORMED)
def test_malformed_turns_get_a_clear_message(fmt: str, text: str, problem: str) -> None:
    turn = parse(fmt, text)
    assert (turn.kind, turn.problem) == ("invalid", problem)
    assert turn.problem in PROBLEMS
    assert not turn.well_formed and turn.code is None and turn.answer is None
    assert turn.message and len(turn.message) < 400


def test_messages_say_what_to_do() -> None:
    assert "```python" in parse("fenced", f"{FENCE}bash\nls\n{FENCE}\n").message
    assert "</answer>" in parse("fenced", "<answer>4").message
    assert "exactly one" in parse("fenced", "<answer>1</answer><answer>2</answer>").message
    assert "language tag" in parse("fenced", f"{FENCE}\nprint(1)\n{FENCE}\n").message
    assert "<code>" in parse("xml", f"{FENCE}python\nprint(1)\n{FENCE}\n").message
    assert '"python"' in parse("json", '<tool_call>{"name": "sh", "arguments": {}}</tool_call>').message


WELL_FORMED = [
    ("fenced", f"Compute it.\n{FENCE}python\nprint(6 * 7)\n{FENCE}\n", "code", "print(6 * 7)\n"),
    ("fenced", f"{FENCE}py\nprint(1)\n{FENCE}", "code", "print(1)\n"),
    ("fenced", f"The output was\n{FENCE}text\n42\n{FENCE}\nso <answer>42</answer>", "answer", "42"),
    ("fenced", f"Inline {FENCE}x{FENCE} is text. <answer>7</answer>", "answer", "7"),
    ("fenced", f"<think>maybe {FENCE}bash\nls\n{FENCE}</think>\n<answer>3</answer>", "answer", "3"),
    ("fenced", "<ANSWER>x = 2</ANSWER>", "answer", "x = 2"),
    ("xml", '<code lang="python">print(1)</code>', "code", "print(1)"),
    ("xml", f"<code>\n{FENCE}python\nprint(2)\n{FENCE}\n</code>", "code", "print(2)\n"),
    ("json", '<tool_call>{"name": "python", "arguments": "{\\"code\\": \\"print(3)\\"}"}</tool_call>',
     "code", "print(3)"),
    # code tasks answer with code: a block inside the answer is the answer, not a tool call
    ("fenced", f"<answer>\n{FENCE}python\ndef f():\n    return 1\n{FENCE}\n</answer>", "answer",
     f"{FENCE}python\ndef f():\n    return 1\n{FENCE}"),
    # ... also when the engine stopped at the closing fence inside the answer
    ("fenced", f"<answer>\n{FENCE}python\ndef f():\n    return 1\n{FENCE}\n", "answer",
     f"{FENCE}python\ndef f():\n    return 1\n{FENCE}"),
    ("xml", f"<answer>{FENCE}python\nprint(1)\n{FENCE}</answer>", "answer",
     f"{FENCE}python\nprint(1)\n{FENCE}"),
    ("fenced", f"{FENCE}python\nprint('</answer>')  # <answer>\n{FENCE}\n", "code",
     "print('</answer>')  # <answer>\n"),
    ("json", '<tool_call>{"name": "python", "arguments": {"code": "s = \'<answer>\'"}}</tool_call>', "code",
     "s = '<answer>'"),
]


@pytest.mark.parametrize(("fmt", "text", "kind", "value"), WELL_FORMED)
def test_well_formed_turns(fmt: str, text: str, kind: str, value: str) -> None:
    turn = parse(fmt, text)
    assert turn.kind == kind, turn.message
    assert (turn.code if kind == "code" else turn.answer) == value


# ---- fuzzing ---------------------------------------------------------------------------------------
TOKENS = ["```", "```python\n", "```bash\n", "\n", "<answer>", "</answer>", "<code>", "</code>",
          '<code lang="py">', "<tool_call>", "</tool_call>", "<think>", "</think>", "{", "}", '"name"',
          '"python"', '"arguments"', '"code"', ":", ",", "print(1)", " ", "[", "\\", "\x00", "é", "😀"]
turn_text = st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=20)), max_size=60).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(st.text(), turn_text), fmt=st.sampled_from(FORMATS))
def test_fuzz_parsers_never_raise(text: str, fmt: str) -> None:
    turn = parse(fmt, text)
    assert turn.kind in ("code", "answer", "invalid")
    if turn.kind == "invalid":
        assert turn.problem in PROBLEMS and turn.message
    elif turn.kind == "code":
        assert isinstance(turn.code, str) and turn.code.strip()
    else:
        assert isinstance(turn.answer, str) and turn.answer


@settings(max_examples=100, deadline=None)
@given(code=st.text(min_size=1).filter(lambda c: c.strip() and "```" not in c and "</think>" not in c))
def test_fuzz_fenced_round_trip(code: str) -> None:
    parser = get_parser("fenced")
    turn = parser.parse(parser.format_call(code))
    assert turn.kind == "code" and turn.code == code.rstrip() + "\n"


@settings(max_examples=100, deadline=None)
@given(code=st.text(min_size=1).filter(lambda c: c.strip() and "</think>" not in c.lower()
                                       and "tool_call>" not in c.lower() and "answer>" not in c.lower()))
def test_fuzz_json_round_trip(code: str) -> None:
    parser = get_parser("json")
    turn = parser.parse(parser.format_call(code))
    assert turn.kind == "code" and turn.code == code


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("unit", ["x", FENCE, f"{FENCE}python\n", "<answer>", "<code>", "<tool_call>",
                                  "<code ", "\n"])
def test_one_megabyte_turn_is_parsed_quickly(fmt: str, unit: str) -> None:
    text = unit * (1_000_000 // len(unit))
    started = time.perf_counter()
    turn = parse(fmt, text)
    elapsed = time.perf_counter() - started
    assert turn.kind in ("invalid", "code", "answer")
    assert elapsed < 5.0  # a generous bound that only catches quadratic blow-ups, not a benchmark


def test_unknown_format_suggests_a_close_one() -> None:
    with pytest.raises(ValueError, match=r"Did you mean 'json'.*fenced, json, xml"):
        get_parser("jsn")
