"""Tool-call formats: how an assistant turn asks to run Python, or gives its final answer.

Three formats, selectable per task (`TaskFamily.tool_format`) or per environment (`EnvConfig`):

    fenced (default)  ```python\\n<code>\\n```            answer: <answer>...</answer>
    xml               <code><code></code>               answer: <answer>...</answer>
    json              <tool_call>{"name": "python", "arguments": {"code": "..."}}</tool_call>
                      (what Qwen-family chat templates produce)  answer: <answer>...</answer>

The rule every parser applies: a well-formed turn does exactly one thing -- one code call or one
final answer. Anything else (an empty turn, an unclosed block, code in another language, two
answers, code *and* an answer, broken JSON, nothing actionable) parses to kind "invalid" with a
machine-readable `problem` and a `message` that tells the model what was wrong and how to fix it;
nothing is run or scored for such a turn. Parsers never raise on any string, and run in linear time
(no backtracking regexes), so a 1 MB turn is cheap.

`stop_strings` are where an engine should stop generating a turn. The turn text given to `parse`
must *include* the stop string (engines keep the sampled tokens: vLLM's
`include_stop_str_in_output=True`); a turn cut just before its closing fence is an unclosed block.
A leading `<think>...</think>` section (reasoning models) is ignored: only the text after the last
`</think>` is parsed.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Protocol

from toolgym.envs.info import ActionKind

PYTHON_LANGS = frozenset({"python", "py", "python3", "ipython"})
# Blocks in these languages are quoted text (data, output), not code meant to run; they are ignored.
TEXT_LANGS = frozenset({"", "text", "txt", "output", "plaintext", "plain", "markdown", "md", "json",
                        "latex", "tex", "math", "csv", "yaml", "console"})
ANSWER_EXAMPLE = "<answer>your final answer</answer>"


@dataclass(frozen=True)
class ParsedTurn:
    """What one assistant turn asked for."""

    kind: ActionKind  # "code", "answer" or "invalid"
    code: str | None = None  # the code to run, when kind == "code"
    answer: str | None = None  # the final answer text (stripped), when kind == "answer"
    problem: str | None = None  # when invalid: "empty", "no_action", "unclosed_code", ... (see below)
    message: str | None = None  # when invalid: feedback for the model, shown as the next observation

    @property
    def well_formed(self) -> bool:
        return self.kind != "invalid"


# Every `problem` a parser or the environment can report.
PROBLEMS = ("empty", "too_long", "no_action", "unclosed_code", "unknown_language", "empty_code",
            "multiple_code", "unclosed_answer", "stray_close", "multiple_answers", "empty_answer",
            "code_and_answer", "bad_json", "unknown_tool", "bad_arguments")


def invalid(problem: str, message: str) -> ParsedTurn:
    return ParsedTurn(kind="invalid", problem=problem, message=message)


class ToolParser(Protocol):
    """A tool-call format."""

    name: str
    stop_strings: list[str]  # where the engine stops a turn (the parser expects them kept in the text)
    instructions: str  # how to call the tool and answer; goes into the system prompt

    def parse(self, text: str) -> ParsedTurn: ...

    def format_call(self, code: str) -> str:
        """A well-formed turn that runs `code` (for scripted policies and teacher demonstrations)."""
        ...

    def format_answer(self, answer: str) -> str:
        """A well-formed turn that gives the final answer."""
        ...


class _Tagged:
    """Finds `<tag ...>...</tag>` spans with a linear scan (case-insensitive tag names)."""

    def __init__(self, tag: str, attributes: bool = False) -> None:
        opener = rf"<{tag}(?:\s[^<>]*)?>" if attributes else rf"<{tag}>"
        self.pattern = re.compile(rf"{opener}|</{tag}>", re.IGNORECASE)
        self.tag = tag

    def spans(self, body: str) -> list[tuple[str, str, int, int]] | ParsedTurn:
        """(opening tag, inner text, start, end) per span, or the problem: unclosed, nested, stray close."""
        found: list[tuple[str, str, int, int]] = []
        opened: re.Match[str] | None = None
        for match in self.pattern.finditer(body):
            closing = match.group(0).startswith("</")
            if not closing and opened is not None:
                return _many(f"<{self.tag}>")
            if closing and opened is None:
                return invalid("stray_close", f"Your turn has </{self.tag}> without a matching <{self.tag}>.")
            if closing:
                assert opened is not None
                found.append((opened.group(0), body[opened.end():match.start()], opened.start(), match.end()))
                opened = None
            else:
                opened = match
        if opened is not None:
            what = "answer" if self.tag == "answer" else "code"
            return invalid(f"unclosed_{what}",
                           f"Your <{self.tag}> was not closed: end it with </{self.tag}>.")
        return found


def _many(what: str) -> ParsedTurn:
    if what == "<answer>":
        return invalid("multiple_answers", "Your turn contains more than one <answer>. Give exactly one "
                       f"final answer, once: {ANSWER_EXAMPLE}.")
    return invalid("multiple_code", f"Your turn contains more than one {what}. Make one tool call per "
                   "turn, then wait for its output.")


_ANSWERS = _Tagged("answer")
Call = tuple[str, int, int]  # (code, start, end) of one tool call in the turn


def _outside(body: str, calls: list[Call]) -> str:
    """`body` without the spans of its tool calls."""
    if not calls:
        return body
    pieces, last = [], 0
    for _code, start, end in calls:
        pieces.append(body[last:start])
        last = end
    pieces.append(body[last:])
    return "\n".join(pieces)


def strip_thinking(text: str) -> str:
    """The text after the last `</think>` (reasoning is not parsed for tool calls)."""
    cut = text.rfind("</think>")
    return text if cut < 0 else text[cut + len("</think>"):]


class _BaseParser:
    """The rule shared by all formats; subclasses find the code calls of their format."""

    name = ""
    stops: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.stop_strings: list[str] = list(self.stops)
    instructions = ""
    call_example = ""
    call_name = ""  # for messages: "```python block", "<code> block", "<tool_call>"

    def _calls(self, body: str) -> list[Call] | ParsedTurn:
        raise NotImplementedError

    def _hint(self, body: str) -> str:
        return ""

    def parse(self, text: str) -> ParsedTurn:
        if not text or not text.strip():
            return invalid("empty", "Your turn was empty. " + self._what_to_do())
        body = strip_thinking(text)
        calls = self._calls(body)
        if isinstance(calls, ParsedTurn):
            return calls
        answers = _ANSWERS.spans(_outside(body, calls))  # an "</answer>" inside code is code
        if isinstance(answers, ParsedTurn):
            return answers
        if calls and answers:
            return invalid("code_and_answer", "Your turn both calls the tool and gives an answer. Do one per "
                           "turn: run the code, read its output, then answer in a later turn.")
        if len(calls) > 1:
            return _many(self.call_name)
        if len(answers) > 1:
            return _many("<answer>")
        if calls:
            code = calls[0][0]
            if not code.strip():
                return invalid("empty_code", "Your code block is empty. Put the Python code to run in it.")
            return ParsedTurn(kind="code", code=code)
        if answers:
            answer = answers[0][1].strip()
            if not answer:
                return invalid("empty_answer", f"Your <answer> is empty. Put the final answer in it: "
                               f"{ANSWER_EXAMPLE}.")
            return ParsedTurn(kind="answer", answer=answer)
        return invalid("no_action", "Your turn has neither code to run nor a final answer. "
                       + self._hint(body) + self._what_to_do())

    def _what_to_do(self) -> str:
        return f"To run Python write {self.call_example}; to finish write {ANSWER_EXAMPLE}."

    def format_answer(self, answer: str) -> str:
        return f"<answer>{answer}</answer>"


def _looks_like(body: str) -> str:
    """Name the format a misplaced call seems to use (for hints)."""
    lowered = body.lower()
    if "```python" in lowered or "```py" in lowered:
        return "a ```python block"
    if "<code" in lowered:
        return "a <code> tag"
    if "<tool_call>" in lowered:
        return "a <tool_call>"
    return ""


class FencedParser(_BaseParser):
    """Markdown code blocks: ```python ... ```; other languages are refused, text blocks ignored."""

    name = "fenced"
    call_name = "```python block"
    stops = ("```\n", "</answer>")
    call_example = "one ```python block (```python, new line, the code, new line, ```)"
    instructions = (
        "To run Python, write one code block and end your turn:\n```python\nprint(2 ** 10)\n```\n"
        "Its output comes back in the next message. The interpreter keeps variables between calls. "
        f"When you know the result, give the final answer as {ANSWER_EXAMPLE}. "
        "Each turn either runs one code block or gives the final answer."
    )

    def _calls(self, body: str) -> list[Call] | ParsedTurn:
        calls: list[Call] = []
        pos = body.find("```")
        while pos >= 0:  # every find() scans forward only: linear in len(body)
            nxt = body.find("```", pos + 3)
            newline = body.find("\n", pos + 3, nxt if nxt >= 0 else len(body))
            if newline < 0:
                if nxt < 0:
                    return _unclosed_fence(_lang(body[pos + 3:pos + 64]))
                pos = body.find("```", nxt + 3)  # ```inline``` on one line: quoted text
                continue
            lang = _lang(body[pos + 3:newline])
            if nxt < 0:
                return _unclosed_fence(lang)
            if lang in PYTHON_LANGS:
                calls.append((body[newline + 1:nxt], pos, nxt + 3))
            elif lang not in TEXT_LANGS:
                return invalid("unknown_language", f"Only Python can be run, but your code block is marked "
                               f"```{lang[:40]}. Rewrite it in Python inside a ```python block.")
            pos = body.find("```", nxt + 3)
        return calls

    def _hint(self, body: str) -> str:
        if "```\n" in body or body.rstrip().endswith("```"):
            return "A code block needs a language tag to run: open it with ```python. "
        seen = _looks_like(body)
        return f"You used {seen}; this task uses ```python blocks. " if seen and "```" not in seen else ""

    def format_call(self, code: str) -> str:
        return f"```python\n{code.rstrip()}\n```\n"


def _lang(info: str) -> str:
    words = info.strip().split(maxsplit=1)
    return words[0].lower() if words else ""


def _unclosed_fence(lang: str) -> ParsedTurn:
    if lang in PYTHON_LANGS:
        return invalid("unclosed_code", "Your ```python block was not closed: end the code with a line "
                       "containing only ```.")
    if not lang:
        return invalid("unclosed_code", "Your code block has no language tag and was not closed: open it "
                       "with ```python and end it with ```.")
    return invalid("unclosed_code", f"Your ```{lang[:40]} block was not closed, and only Python can run: "
                   "write a ```python block ending with ```.")


_LANG_ATTRIBUTE = re.compile(r"""(?:lang|language|type)\s*=\s*["']?([\w.+#-]+)""", re.IGNORECASE)


def _strip_inner_fence(inner: str) -> str | ParsedTurn:
    """Models often wrap the code inside <code> in a markdown fence too; unwrap a Python one."""
    stripped = inner.strip()
    if not stripped.startswith("```"):
        return inner
    first_line, _, rest = stripped.partition("\n")
    lang = first_line[3:].strip().lower()
    if lang and lang not in PYTHON_LANGS:
        return invalid("unknown_language", f"Only Python can be run, but your code is marked ```{lang[:40]}. "
                       "Write Python inside <code>...</code>.")
    rest = rest.rstrip()
    return rest[:-3] if rest.endswith("```") else rest


class XmlParser(_BaseParser):
    """XML-style tags: <code>...</code> (an optional lang="python" attribute is accepted)."""

    name = "xml"
    call_name = "<code> block"
    stops = ("</code>", "</answer>")
    call_example = "<code>your Python code</code>"
    instructions = (
        "To run Python, write the code between <code> and </code> and end your turn:\n"
        "<code>\nprint(2 ** 10)\n</code>\n"
        "Its output comes back in the next message. The interpreter keeps variables between calls. "
        f"When you know the result, give the final answer as {ANSWER_EXAMPLE}. "
        "Each turn either runs one <code> block or gives the final answer."
    )
    _tags = _Tagged("code", attributes=True)

    def _calls(self, body: str) -> list[Call] | ParsedTurn:
        spans = self._tags.spans(body)
        if isinstance(spans, ParsedTurn):
            return spans
        calls: list[Call] = []
        for opening, inner, start, end in spans:
            lang = _LANG_ATTRIBUTE.search(opening)
            if lang and lang.group(1).lower() not in PYTHON_LANGS:
                return invalid("unknown_language", f"Only Python can be run, but your <code> is marked "
                               f"{lang.group(1)[:40]!r}. Write Python inside <code>...</code>.")
            code = _strip_inner_fence(inner)
            if isinstance(code, ParsedTurn):
                return code
            calls.append((code, start, end))
        return calls

    def _hint(self, body: str) -> str:
        seen = _looks_like(body)
        wrong = seen and "<code" not in seen
        return f"You used {seen}; this task uses <code>...</code> tags. " if wrong else ""

    def format_call(self, code: str) -> str:
        return f"<code>\n{code.rstrip()}\n</code>"


def _decode_call(inner: str) -> str | ParsedTurn:
    """The code of one JSON tool call, or what is wrong with it."""
    try:
        call = json.loads(inner)
    except (ValueError, RecursionError) as exc:
        return invalid("bad_json", f"The <tool_call> does not contain valid JSON ({str(exc)[:120]}). Write "
                       f"{JsonParser.call_example}.")
    if not isinstance(call, dict) or "name" not in call:
        return invalid("bad_json", f"A <tool_call> must hold a JSON object with \"name\" and \"arguments\": "
                       f"{JsonParser.call_example}.")
    if call["name"] != "python":
        return invalid("unknown_tool", f"There is no tool named {str(call['name'])[:40]!r}: the only tool is "
                       "\"python\", which runs Python code. Rewrite the call in Python.")
    arguments = call.get("arguments")
    if isinstance(arguments, str):  # OpenAI-style: the arguments object serialised as a string
        try:
            arguments = json.loads(arguments)
        except (ValueError, RecursionError):
            arguments = None
    if not isinstance(arguments, dict) or not isinstance(arguments.get("code"), str):
        return invalid("bad_arguments", "The python tool takes one argument, \"code\", a string: "
                       f"{JsonParser.call_example}.")
    return arguments["code"]


class JsonParser(_BaseParser):
    """JSON tool calls between <tool_call> tags, as Qwen-family chat templates produce them."""

    name = "json"
    call_name = "<tool_call>"
    stops = ("</tool_call>", "</answer>")
    call_example = '<tool_call>{"name": "python", "arguments": {"code": "print(2 ** 10)"}}</tool_call>'
    instructions = (
        "You have one tool, \"python\", which runs Python code and returns what it prints. To call it, "
        "write a JSON object between <tool_call> tags and end your turn:\n"
        f"{call_example}\n"
        "The output comes back in the next message. The interpreter keeps variables between calls. "
        f"When you know the result, give the final answer as {ANSWER_EXAMPLE}. "
        "Each turn either makes one tool call or gives the final answer."
    )
    _tags = _Tagged("tool_call")

    def _calls(self, body: str) -> list[Call] | ParsedTurn:
        spans = self._tags.spans(body)
        if isinstance(spans, ParsedTurn):
            return spans
        calls: list[Call] = []
        for _opening, inner, start, end in spans:
            code = _decode_call(inner)
            if isinstance(code, ParsedTurn):
                return code
            calls.append((code, start, end))
        return calls

    def _hint(self, body: str) -> str:
        seen = _looks_like(body)
        wrong = seen and "tool_call" not in seen
        return f"You used {seen}; this task uses <tool_call> JSON. " if wrong else ""

    def format_call(self, code: str) -> str:
        call = json.dumps({"name": "python", "arguments": {"code": code}})
        return f"<tool_call>\n{call}\n</tool_call>"


PARSERS: dict[str, type[_BaseParser]] = {"fenced": FencedParser, "xml": XmlParser, "json": JsonParser}
DEFAULT_FORMAT = "fenced"


def get_parser(name: str) -> ToolParser:
    """The parser for a tool format: "fenced" (default), "xml" or "json"."""
    cls = PARSERS.get(name)
    if cls is None:
        close = difflib.get_close_matches(str(name), PARSERS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown tool format {name!r}.{hint} Known formats: {', '.join(PARSERS)}.")
    return cls()


def list_formats() -> list[str]:
    return list(PARSERS)
