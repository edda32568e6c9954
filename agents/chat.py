"""Token-faithful chat rendering: the ids the policy sampled are kept; only observations are rendered.

Why: re-rendering a whole conversation with the chat template and re-tokenising it gives ids that
can differ from what the engine sampled (BPE merges across a turn boundary, templates that rewrite
history such as Qwen3 dropping past thinking, stripped whitespace). Training on those ids would
compute log-probs of sequences the policy never produced. So a `Conversation` grows by appending:

    prompt ids   = encode(render(first messages, add_generation_prompt=True))
    after a turn: + the sampled ids, exactly (loss mask 1)
                  + encode(delta) (loss mask 0), where
                    delta = what the template puts after the assistant text to close its turn
                            (minus what the model already sampled, e.g. its <|im_end|>)
                          + render(history + [assistant] + observations, add_generation_prompt=True)
                            with render(history + [assistant]) removed from the front

The delta is only well defined when rendering is append-only (each rendering is a prefix of the next).
The *prefix check* verifies that on every turn; a template that rewrites history is reported
(`check_chat_template`, `toolgym doctor --model PATH`) and, in a rollout, the delta is computed
against a neutral placeholder turn instead (`on_rewrite="fallback"`, a warning) or refused
(`on_rewrite="error"`). Either way the ids the trainer sees are the ids the engine saw.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Message = Mapping[str, str]
_PLACEHOLDER = "ok"


class TemplateError(ValueError):
    """The chat template cannot be rendered append-only (it rewrites history) or lacks a role."""


@dataclass(frozen=True)
class TemplateCheck:
    """The result of `check_chat_template`: `ok`, and a message saying what was checked or what failed."""

    ok: bool
    message: str


class ChatRenderer:
    """Renders messages with a tokenizer's chat template and encodes them without extra specials."""

    def __init__(self, tokenizer: Any, *, on_rewrite: Literal["fallback", "error"] = "fallback",
                 template_kwargs: Mapping[str, Any] | None = None) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise TemplateError("the tokenizer has no chat template: use an instruct/chat checkpoint or "
                                "set tokenizer.chat_template (toolgym's tiny model has one)")
        if on_rewrite not in ("fallback", "error"):
            raise ValueError(f"on_rewrite must be 'fallback' or 'error', got {on_rewrite!r}")
        self.tokenizer = tokenizer
        self.on_rewrite = on_rewrite
        self.template_kwargs = dict(template_kwargs or {})
        self.rewrites = 0  # turns whose delta needed the placeholder fallback

    def render(self, messages: Sequence[Message], add_generation_prompt: bool = False) -> str:
        return self.tokenizer.apply_chat_template(
            [dict(m) for m in messages], tokenize=False, add_generation_prompt=add_generation_prompt,
            **self.template_kwargs)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        """The first prompt: the messages rendered with the generation prompt."""
        return self.encode(self.render(messages, add_generation_prompt=True))

    def observation_delta(self, history: Sequence[Message], sampled_ids: Sequence[int],
                          observations: Sequence[Message]) -> str:
        """The text to append after the sampled ids so the next turn sees the observations."""
        content = self.tokenizer.decode(list(sampled_ids), skip_special_tokens=True)
        generated = self.tokenizer.decode(list(sampled_ids), skip_special_tokens=False)
        try:
            return self._delta(history, content, generated, observations)
        except TemplateError:
            if self.on_rewrite == "error":
                raise
        self.rewrites += 1
        if self.rewrites == 1:
            warnings.warn("the chat template rewrites history (rendering is not append-only); "
                          "observation deltas are computed against a placeholder turn. Run "
                          "`toolgym doctor --model PATH` for details.", RuntimeWarning, stacklevel=2)
        return self._delta(history, _PLACEHOLDER, _PLACEHOLDER, observations)

    def _delta(self, history: Sequence[Message], content: str, generated: str,
               observations: Sequence[Message]) -> str:
        assistant = {"role": "assistant", "content": content}
        before = self.render(history, add_generation_prompt=True)
        with_turn = self.render([*history, assistant])
        full = self.render([*history, assistant, *observations], add_generation_prompt=True)
        _require_prefix(before, with_turn, "adding an assistant turn")
        _require_prefix(with_turn, full, "adding the observations")
        turn = with_turn[len(before):]
        if not turn.startswith(content):
            raise TemplateError(f"the template changes the assistant text: expected it to start with "
                                f"{content[:40]!r}, rendered {turn[:40]!r}")
        # What closes the turn (e.g. "<|im_end|>\n"), minus what the model already sampled of it.
        closing = turn[len(generated):] if turn.startswith(generated) else turn[len(content):]
        return closing + full[len(with_turn):]


class Conversation:
    """One episode's token stream: prompt ids, then sampled ids (mask 1) and observation ids (mask 0)."""

    def __init__(self, renderer: ChatRenderer, messages: Sequence[Message]) -> None:
        self.renderer = renderer
        self.messages: list[dict[str, str]] = [dict(m) for m in messages]
        self.prompt_ids: list[int] = renderer.prompt_ids(self.messages)
        self.response_ids: list[int] = []
        self.loss_mask: list[int] = []
        self.logprobs: list[float] = []

    def next_prompt(self) -> list[int]:
        """The ids the engine continues from: everything so far."""
        return self.prompt_ids + self.response_ids

    def add_sampled(self, ids: Sequence[int], logprobs: Sequence[float], text: str) -> None:
        """Append the policy's turn exactly as sampled (and its text to the message history)."""
        if len(ids) != len(logprobs):
            raise ValueError(f"{len(ids)} ids but {len(logprobs)} log-probs")
        self._last_sampled = list(ids)
        self.response_ids += list(ids)
        self.loss_mask += [1] * len(ids)
        self.logprobs += [float(x) for x in logprobs]
        self.messages.append({"role": "assistant", "content": text})

    def add_observations(self, observations: Sequence[Message]) -> list[int]:
        """Append the rendered observations (mask 0) after the last sampled turn; return their ids."""
        history = self.messages[:-1]
        delta = self.renderer.observation_delta(history, self._last_sampled, observations)
        ids = self.renderer.encode(delta)
        self.response_ids += ids
        self.loss_mask += [0] * len(ids)
        self.logprobs += [0.0] * len(ids)
        self.messages += [dict(m) for m in observations]
        return ids

    def cut_to(self, total: int) -> int:
        """Keep the first `total` ids of the stream (prompt included); return how many were cut.

        For observations that overflow the context: the engine never reads past it, so the ids past
        it are nothing any position is trained on or conditioned by (the episode ends there)."""
        keep = max(0, total - len(self.prompt_ids))
        cut = max(0, len(self.response_ids) - keep)
        if cut:
            del self.response_ids[keep:], self.loss_mask[keep:], self.logprobs[keep:]
        return cut


def _require_prefix(shorter: str, longer: str, what: str) -> None:
    if not longer.startswith(shorter):
        at = next((i for i, (a, b) in enumerate(zip(shorter, longer, strict=False)) if a != b),
                  min(len(shorter), len(longer)))
        raise TemplateError(f"the chat template rewrites history when {what}: renderings differ at "
                            f"character {at}: {shorter[at:at + 40]!r} became {longer[at:at + 40]!r}")


_SAMPLE = [
    {"role": "system", "content": "You can run Python code."},
    {"role": "user", "content": "What is 12 * 34?"},
    {"role": "assistant",
     "content": "<think>\nmultiply\n</think>\nLet me check.\n```python\nprint(12 * 34)\n```"},
    {"role": "tool", "content": "408\n"},
    {"role": "assistant", "content": "Check again.\n```python\nprint(408 // 12)\n```"},
    {"role": "tool", "content": "34\n"},
    {"role": "assistant", "content": "<answer>408</answer>"},
]


def check_chat_template(model_path: str | Path | Any) -> TemplateCheck:
    """Self-test a model's chat template for token-faithful multi-turn rollouts.

    Checks: a template exists; it accepts the system/user/assistant/tool roles; the generation prompt
    is a prefix of the rendered assistant turn; every rendering of the growing sample conversation
    (with thinking, code and tool outputs) is a prefix of the next (no history rewriting); assistant
    text is rendered verbatim. `model_path` is a checkpoint directory (or an already loaded tokenizer).
    """
    try:
        if isinstance(model_path, (str, Path)):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(model_path)
        else:
            tokenizer = model_path
        renderer = ChatRenderer(tokenizer, on_rewrite="error")
        for k in range(2, len(_SAMPLE), 2):
            history, turn, obs = _SAMPLE[:k], _SAMPLE[k], _SAMPLE[k + 1:k + 2]
            renderer._delta(history, turn["content"], turn["content"], obs)
    except TemplateError as exc:
        return TemplateCheck(False, f"chat template not usable for token-faithful rollouts: {exc}")
    except Exception as exc:  # a template that raises (unknown role, jinja error) or a bad path
        return TemplateCheck(False, f"chat template failed on a system/user/assistant/tool conversation: "
                                    f"{type(exc).__name__}: {exc}")
    return TemplateCheck(True, "chat template ok: roles system/user/assistant/tool render; rendering is "
                               "append-only over a 3-turn tool conversation; assistant text verbatim")
