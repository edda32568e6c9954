"""Gymnasium spaces for chat environments: the action is text, the observation a list of chat messages.

Two deliberate departures from the stock spaces, so that `check_env` passes on real data:

* `ChatText` is a `spaces.Text` that *samples* printable ASCII (the stock default charset is
  alphanumeric only, which cannot even produce a space or a newline) but *contains* any Python string
  within its length bounds. Model turns, prompts and tool output are arbitrary Unicode (an emoji in a
  print, a "π" in a prompt), and no finite charset declared up front can list them all.
* `ChatMessages` is a `spaces.Sequence` of `{"role", "content"}` dicts that contains lists as well as
  tuples: chat messages are lists everywhere else (`messages.extend(obs)`), and the stock `Sequence`
  only accepts tuples. Its samples are lists too.
"""

from __future__ import annotations

import string
from typing import Any

from gymnasium import spaces

PRINTABLE = string.printable  # letters, digits, punctuation and whitespace (space, \t, \n, \r, ...)
ROLES = ("system", "user", "assistant", "tool")


class ChatText(spaces.Text):
    """Text of any Unicode characters, `min_length <= len <= max_length`; samples printable ASCII."""

    def __init__(self, max_length: int, *, min_length: int = 0, seed: int | None = None) -> None:
        super().__init__(max_length, min_length=min_length, charset=PRINTABLE, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"ChatText({self.min_length}, {self.max_length})"


class Role(spaces.Text):
    """One of the chat roles in `ROLES`."""

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(9, min_length=4, charset=string.ascii_lowercase, seed=seed)

    def contains(self, x: Any) -> bool:
        return x in ROLES

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        return ROLES[int(self.np_random.integers(len(ROLES)))]

    def __repr__(self) -> str:
        return f"Role({', '.join(ROLES)})"


class ChatMessages(spaces.Sequence):
    """A list (or tuple) of chat messages `{"role": str, "content": str}`."""

    def __init__(self, max_content_length: int, seed: int | None = None) -> None:
        message = spaces.Dict({"role": Role(), "content": ChatText(max_content_length)})
        super().__init__(message, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, list | tuple) and all(self.feature_space.contains(m) for m in x)

    def sample(self, mask: Any = None, probability: Any = None) -> list[dict[str, str]]:  # type: ignore[override]
        return list(super().sample(mask=mask, probability=probability))

    def __repr__(self) -> str:
        return f"ChatMessages({self.feature_space})"


def text_action_space(max_chars: int) -> ChatText:
    """The action space of a chat environment: one assistant turn of at most `max_chars` characters."""
    return ChatText(max_chars, min_length=0)


def chat_observation_space(max_chars: int) -> ChatMessages:
    """The observation space: the new chat messages, each at most `max_chars` characters of content."""
    return ChatMessages(max_chars)


__all__ = ["ROLES", "ChatMessages", "ChatText", "Role", "chat_observation_space", "text_action_space"]
