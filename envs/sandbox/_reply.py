"""Host side of the session protocol: every byte from the sandbox is hostile, so replies are checked.

Model code runs in the very process that answers the host, and can write frames on the session's
socket itself. The host therefore trusts nothing it reads:

- each request carries a fresh random id, and only a frame echoing that id answers it; frames with
  another id (forged, or left over from an earlier call) are skipped, so the conversation can never
  fall one reply behind. (Code that digs the id out of the server's own frames can answer its own
  call -- which tells the host nothing it could not have printed -- but never a later call.)
- a reply must match the schema below exactly: known keys, the right types, bounded sizes;
- anything else -- bad JSON, JSON nested deep enough to exhaust the recursion limit, wrong types,
  an `internal_error` from the server -- raises `ProtocolError`, which the session turns into a
  crashed result (and kills the process, whose state can no longer be trusted).
"""

from __future__ import annotations

import secrets
import socket
from typing import Any

from toolgym.envs.sandbox import _wire
from toolgym.envs.sandbox.base import ExecResult

_STALE_FRAMES = 64  # frames with a foreign id skipped per call before the session counts as broken
_TEXT = ("stdout", "stderr")
_OPTIONAL_TEXT = ("error_type", "error_message", "traceback")
_FLAGS = ("memory", "truncated")
_KNOWN = {"id", "exit", "internal_error", *_TEXT, *_OPTIONAL_TEXT, *_FLAGS}


class ProtocolError(_wire.WireError):
    """A frame from the sandbox that does not follow the protocol (forged, malformed, or a server error)."""


def new_id() -> str:
    return secrets.token_hex(8)


def receive(sock: socket.socket, request_id: str, deadline: float, max_bytes: int) -> dict[str, Any]:
    """The reply that carries `request_id`; stale or forged frames before it are skipped."""
    for _ in range(_STALE_FRAMES):
        reply, _fds = _wire.recv(sock, max_bytes=max_bytes, deadline=deadline)
        if reply.get("id") != request_id:
            continue
        if "internal_error" in reply:
            raise ProtocolError(f"the session server failed: {clean(str(reply['internal_error']))[:500]}")
        return reply
    raise ProtocolError(f"{_STALE_FRAMES} frames in a row did not answer the request")


def to_result(reply: dict[str, Any], cap: int, duration: float) -> ExecResult:
    """An ExecResult from a `run` reply, after checking every field (raises ProtocolError)."""
    unknown = sorted(set(reply) - _KNOWN)
    if unknown:
        raise ProtocolError(f"unexpected reply fields {unknown[:5]}")
    limit = 4 * cap + 256  # backslash escapes make up to 4 characters per byte, plus the truncation note
    texts = {key: _text(reply, key, limit, required=True) for key in _TEXT}
    optional = {key: _text(reply, key, limit, required=False) for key in _OPTIONAL_TEXT}
    error_type = optional["error_type"]
    if error_type is not None and not (error_type.isidentifier() and len(error_type) <= 200):
        raise ProtocolError("error_type is not an exception class name")
    flags = {}
    for key in _FLAGS:
        if not isinstance(reply.get(key, False), bool):
            raise ProtocolError(f"reply field {key!r} is not a boolean")
        flags[key] = bool(reply.get(key, False))
    if "exit" in reply and not isinstance(reply["exit"], str):
        raise ProtocolError("reply field 'exit' is not a string")
    return ExecResult(stdout=texts["stdout"] or "", stderr=texts["stderr"] or "", error_type=error_type,
                      error_message=optional["error_message"], traceback=optional["traceback"],
                      memory_exceeded=flags["memory"], output_truncated=flags["truncated"], duration=duration)


def check_fork_reply(reply: dict[str, Any]) -> str | None:
    """None when a fork reply says ok, else the error text it carries (raises ProtocolError if malformed)."""
    if set(reply) - {"id", "ok", "error"} or not isinstance(reply.get("ok"), bool):
        raise ProtocolError("malformed fork reply")
    return None if reply["ok"] else clean(str(reply.get("error", "unknown error")))[:500]


def _text(reply: dict[str, Any], key: str, limit: int, *, required: bool) -> str | None:
    value = reply.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ProtocolError(f"reply field {key!r} is not a string")
    if len(value) > limit:
        raise ProtocolError(f"reply field {key!r} is longer than the output limit allows")
    return clean(value)


def clean(text: str) -> str:
    """Replace lone surrogates (valid in JSON escapes, invalid in UTF-8) by backslash escapes."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
