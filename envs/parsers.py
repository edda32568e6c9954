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

Whichever construct opens first extends to its own closer: a ```python block inside an <answer> is
part of the answer (code tasks answer with code), and "</answer>" inside code is code. In the fenced
format the engine stops at the closing fence even inside an answer, so an answer left open right
after a closed code block is taken as complete.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Protocol

from toolgym.envs.info import ActionKind

from toolgym.registry import Registry

PYTHON_LANGS = frozenset({"python", "py", "python3", "ipython"})
# Blocks in these languages are quoted text (data, output), not code meant to run; they are ignored.
TEXT_LANGS = frozenset({"", "text", "txt", "output", "plaintext", "plain", "markdown", "md", "json",
                        "latex", "tex", "math", "csv", "yaml", "console"})
ANSWER_EXAMPLE = "<answer>your final answer</answer>"


# tool format name -> parser class; a third-party format registers through the entry-point group
# "toolgym.parsers" (`my-format = "my_pkg.parsing:MyParser"`, a class with the ToolParser methods)
PARSERS: Registry[type] = Registry("tool format", entry_points="toolgym.parsers",
                                   hint="Set tool_format to one of them, or None for the task's own.")

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


Span = tuple[int, int, "str | ParsedTurn | None"]  # (start, end, code | problem | None: quoted text)


class _Tagged:
    """Finds the next `<tag ...>...</tag>` span from a position (case-insensitive tag names)."""

    def __init__(self, tag: str, attributes: bool = False) -> None:
        self.opener = re.compile(rf"<{tag}(?:\s[^<>]*)?>" if attributes else rf"<{tag}>", re.IGNORECASE)
        self.closer = re.compile(rf"</{tag}>", re.IGNORECASE)
        self.either = re.compile(rf"{self.opener.pattern}|{self.closer.pattern}", re.IGNORECASE)
        self.tag = tag

    def next_span(self, body: str, pos: int) -> tuple[int, int, str | ParsedTurn, str] | None:
        """(start, end, inner text or the problem, opening tag) of the next span from `pos`, or None."""
        first = self.either.search(body, pos)
        if first is None:
            return None
        start = first.start()
        if first.group(0).startswith("</"):
            problem = invalid("stray_close", f"Your turn has </{self.tag}> without a matching <{self.tag}>.")
            return start, len(body), problem, ""
        close = self.closer.search(body, first.end())
        if close is None:
            what = "answer" if self.tag == "answer" else "code"
            problem = invalid(f"unclosed_{what}",
                              f"Your <{self.tag}> was not closed: end it with </{self.tag}>.")
            return start, len(body), problem, ""
        if self.opener.search(body, first.end(), close.start()):
            return start, len(body), _many(f"<{self.tag}>"), ""
        return start, close.end(), body[first.end():close.start()], first.group(0)


def _many(what: str) -> ParsedTurn:
    if what == "<answer>":
        return invalid("multiple_answers", "Your turn contains more than one <answer>. Give exactly one "
                       f"final answer, once: {ANSWER_EXAMPLE}.")
    return invalid("multiple_code", f"Your turn contains more than one {what}. Make one tool call per "
                   "turn, then wait for its output.")


_ANSWERS = _Tagged("answer")


def _next_answer(body: str, pos: int) -> Span | None:
    span = _ANSWERS.next_span(body, pos)
    return None if span is None else span[:3]


def strip_thinking(text: str) -> str:
    """The text after the last `</think>` (reasoning is not parsed for tool calls)."""
    cut = text.rfind("</think>")
    return text if cut < 0 else text[cut + len("</think>"):]


class _BaseParser:
    """The rule shared by all formats; subclasses find the next tool call of their format.

    The turn is scanned left to right: whichever construct opens first -- a tool call or an
    <answer> -- extends to its own closer, so a ```python block inside an answer is part of the
    answer (code tasks answer with code) and an "</answer>" inside code is code.
    """

    name = ""
    stops: tuple[str, ...] = ()
    instructions = ""
    call_example = ""
    call_name = ""  # for messages: "```python block", "<code> block", "<tool_call>"

    def __init__(self) -> None:
        self.stop_strings: list[str] = list(self.stops)

    def _next_call(self, body: str, pos: int) -> Span | None:
        raise NotImplementedError

    def _hint(self, body: str) -> str:
        return ""

    def _scan(self, body: str) -> tuple[list[str], list[str]] | ParsedTurn:
        """The codes of the tool calls and the texts of the answers, in order, or the first problem."""
        calls: list[str] = []
        answers: list[str] = []
        call, answer = self._next_call(body, 0), _next_answer(body, 0)
        while call is not None or answer is not None:
            take_call = answer is None or (call is not None and call[0] < answer[0])
            _, end, payload = call if take_call else answer  # type: ignore[misc]
            if isinstance(payload, ParsedTurn):
                return payload
            if payload is not None:
                (calls if take_call else answers).append(payload)
            if call is not None and call[0] < end:
                call = self._next_call(body, end)
            if answer is not None and answer[0] < end:
                answer = _next_answer(body, end)
        return calls, answers


    def parse(self, text: str) -> ParsedTurn:
        if not text or not text.strip():
            return invalid("empty", "Your turn was empty. " + self._what_to_do())
        body = strip_thinking(text)
        found = self._scan(body)
        if isinstance(found, ParsedTurn):
            return found
        calls, answers = found
        if calls and answers:
            return invalid("code_and_answer", "Your turn both calls the tool and gives an answer. Do one per "
                           "turn: run the code, read its output, then answer in a later turn.")
        if len(calls) > 1:
            return _many(self.call_name)
        if len(answers) > 1:
            return _many("<answer>")
        if calls:
            if not calls[0].strip():
                return invalid("empty_code", "Your code block is empty. Put the Python code to run in it.")
            return ParsedTurn(kind="code", code=calls[0])
        if answers:
            answer = answers[0].strip()
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


@PARSERS.register("fenced")
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

    def _next_call(self, body: str, pos: int) -> Span | None:
        while True:  # every find() scans forward only: linear in len(body)
            start = body.find("```", pos)
            if start < 0:
                return None
            nxt = body.find("```", start + 3)
            newline = body.find("\n", start + 3, nxt if nxt >= 0 else len(body))
            if newline < 0 and nxt >= 0:
                pos = nxt + 3  # ```inline``` on one line: quoted text
                continue
            lang = _lang(body[start + 3:newline if newline >= 0 else start + 64])
            if nxt < 0:
                return start, len(body), _unclosed_fence(lang)
            if lang in PYTHON_LANGS:
                return start, nxt + 3, body[newline + 1:nxt]
            if lang in TEXT_LANGS:
                return start, nxt + 3, None
            return start, nxt + 3, invalid("unknown_language", "Only Python can be run, but your code "
                                           f"block is marked ```{lang[:40]}. Rewrite it in Python in a "
                                           "```python block.")

    def _hint(self, body: str) -> str:
        if "```\n" in body or body.rstrip().endswith("```"):
            return "A code block needs a language tag to run: open it with ```python. "
        seen = _looks_like(body)
        return f"You used {seen}; this task uses ```python blocks. " if seen and "```" not in seen else ""

    def format_call(self, code: str) -> str:
        return f"```python\n{code.rstrip()}\n```\n"

    def parse(self, text: str) -> ParsedTurn:
        turn = super().parse(text)
        if turn.problem == "unclosed_answer" and _answer_ends_in_fence(strip_thinking(text)):
            # The engine stopped at the closing fence of a code block inside the answer (code tasks
            # answer with code): the answer is complete when its code block is.
            return super().parse(text + "</answer>")
        return turn


def _answer_ends_in_fence(body: str) -> bool:
    opened = [m.end() for m in _ANSWERS.opener.finditer(body)]
    if len(opened) != 1:
        return False
    inner = body[opened[0]:]
    return inner.rstrip().endswith("```") and inner.count("```") % 2 == 0 and "</answer>" not in inner.lower()


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


@PARSERS.register("xml")
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

    def _next_call(self, body: str, pos: int) -> Span | None:
        span = self._tags.next_span(body, pos)
        if span is None or isinstance(span[2], ParsedTurn):
            return None if span is None else span[:3]
        start, end, inner, opening = span
        lang = _LANG_ATTRIBUTE.search(opening)
        if lang and lang.group(1).lower() not in PYTHON_LANGS:
            return start, end, invalid("unknown_language", "Only Python can be run, but your <code> is "
                                       f"marked {lang.group(1)[:40]!r}. Write Python in <code>...</code>.")
        return start, end, _strip_inner_fence(inner)

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


@PARSERS.register("json")
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

    def _next_call(self, body: str, pos: int) -> Span | None:
        span = self._tags.next_span(body, pos)
        if span is None or isinstance(span[2], ParsedTurn):
            return None if span is None else span[:3]
        return span[0], span[1], _decode_call(span[2])

    def _hint(self, body: str) -> str:
        seen = _looks_like(body)
        wrong = seen and "tool_call" not in seen
        return f"You used {seen}; this task uses <tool_call> JSON. " if wrong else ""

    def format_call(self, code: str) -> str:
        call = json.dumps({"name": "python", "arguments": {"code": code}})
        return f"<tool_call>\n{call}\n</tool_call>"


DEFAULT_FORMAT = "fenced"


def get_parser(name: str) -> ToolParser:
    """The parser for a tool format: "fenced" (default), "xml", "json" or a plugin's."""
    return PARSERS.get(name)()


def list_formats() -> list[str]:
    return PARSERS.names()
