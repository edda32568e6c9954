"""Length-prefixed JSON frames over a Unix stream socket, used by the host and inside the sandbox.

Stdlib only: the zygote imports this file directly (not through the toolgym package). JSON, not
pickle or marshal, because the bytes come from a process running untrusted code; frame sizes are
bounded by the reader so a hostile session cannot make the host allocate without limit.
"""

from __future__ import annotations

import array
import json
import socket
import struct
import time
from typing import Any

_HEADER = struct.Struct(">I")


class WireError(Exception):
    """The peer closed the connection or sent something that is not a valid frame."""


def send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    """Send one frame; `fds` travel with it as SCM_RIGHTS ancillary data."""
    body = json.dumps(message, separators=(",", ":")).encode()
    data = _HEADER.pack(len(body)) + body
    if fds:
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
        sent = sock.sendmsg([data], ancillary)
        data = data[sent:]
    if data:
        sock.sendall(data)


def recv(
    sock: socket.socket, max_bytes: int = 1 << 26, max_fds: int = 0, deadline: float | None = None
) -> tuple[dict[str, Any], list[int]]:
    """Receive one frame (and up to `max_fds` passed file descriptors).

    Raises WireError on EOF or a malformed frame, TimeoutError when `deadline` (time.monotonic())
    passes first.
    """
    fds: list[int] = []
    if max_fds:
        header, fds = _recv_with_fds(sock, _HEADER.size, max_fds)
    else:
        header = _recv_exact(sock, _HEADER.size, deadline)
    (size,) = _HEADER.unpack(header)
    if size > max_bytes:
        raise WireError(f"frame of {size} bytes exceeds the limit of {max_bytes}")
    body = _recv_exact(sock, size, deadline)
    return decode(body), fds


def decode(body: bytes) -> dict[str, Any]:
    """The JSON object in a frame body; anything else (bad JSON, too deep, not an object) is a WireError."""
    try:
        message = json.loads(body)
    except (ValueError, RecursionError, MemoryError) as exc:  # deep nesting raises RecursionError
        raise WireError(f"malformed frame: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(message, dict):
        raise WireError("malformed frame: not a JSON object")
    return message


def _recv_exact(sock: socket.socket, size: int, deadline: float | None = None) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("deadline passed")
            sock.settimeout(remaining)
        chunk = sock.recv(min(size - len(chunks), 1 << 20))
        if not chunk:
            raise WireError("connection closed by peer")
        chunks += chunk
    return bytes(chunks)


def _recv_with_fds(sock: socket.socket, size: int, max_fds: int) -> tuple[bytes, list[int]]:
    fds = array.array("i")
    data, ancdata, _flags, _addr = sock.recvmsg(size, socket.CMSG_SPACE(max_fds * fds.itemsize))
    if not data:
        raise WireError("connection closed by peer")
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % fds.itemsize
            fds.frombytes(payload[:usable])
    rest = _recv_exact(sock, size - len(data)) if len(data) < size else b""
    return data + rest, list(fds)


def send_credentials(sock: socket.socket, message: dict[str, Any], pid: int, uid: int, gid: int) -> None:
    """Send a frame carrying SCM_CREDENTIALS, so the kernel tells the host our pid in *its* namespace."""
    body = json.dumps(message, separators=(",", ":")).encode()
    creds = struct.pack("iII", pid, uid, gid)
    sock.sendmsg([_HEADER.pack(len(body)) + body], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, creds)])


def recv_credentials(
    sock: socket.socket, deadline: float, max_bytes: int = 1 << 16
) -> tuple[dict[str, Any], int]:
    """Receive a frame sent by `send_credentials`; returns (message, sender pid as seen by us).

    The socket must have SO_PASSCRED set before the peer sends.
    """
    sock.settimeout(max(deadline - time.monotonic(), 1e-3))
    data, ancdata, _flags, _addr = sock.recvmsg(_HEADER.size, socket.CMSG_SPACE(12))
    if not data:
        raise WireError("connection closed by peer")
    pid = -1
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(payload) >= 12:
            pid = struct.unpack("iII", payload[:12])[0]
    if len(data) < _HEADER.size:
        data += _recv_exact(sock, _HEADER.size - len(data))
    (size,) = _HEADER.unpack(data)
    if size > max_bytes:
        raise WireError("malformed credentials frame")
    message = decode(_recv_exact(sock, size, deadline))
    if pid <= 0:
        raise WireError("credentials frame without a valid sender pid")
    return message, pid
