"""Debug Adapter Protocol framing: ``Content-Length: N\\r\\n\\r\\n`` then N bytes of JSON.

:class:`Connection` reads requests from a binary stream and writes responses and events to
another, each message whole under a lock (responses come from the request thread, events
from the motion worker and the guest-output reader).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import IO, Any

#: Longest message body accepted from a client (a launch configuration, a breakpoint list).
MAX_BODY = 16 << 20


class ProtocolError(Exception):
    """The client sent something that is not a DAP message."""


def read_message(stream: IO[bytes]) -> dict[str, Any] | None:
    """One message, or None at the end of the stream."""
    length: int | None = None
    while True:
        line = stream.readline(4096)
        if not line:
            return None
        text = line.decode("ascii", errors="replace").strip()
        if not text:
            if length is None:
                continue  # stray blank line between messages
            break
        name, _, value = text.partition(":")
        if name.strip().lower() == "content-length":
            try:
                length = int(value.strip())
            except ValueError:
                raise ProtocolError(f"bad Content-Length: {value.strip()!r}") from None
    if not 0 <= length <= MAX_BODY:
        raise ProtocolError(f"message of {length} bytes refused (at most {MAX_BODY})")
    body = b""
    while len(body) < length:
        chunk = stream.read(length - len(body))
        if not chunk:
            return None
        body += chunk
    try:
        msg = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise ProtocolError("a message is a JSON object")
    return msg


def encode(msg: dict[str, Any]) -> bytes:
    body = json.dumps(msg, separators=(",", ":")).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class Connection:
    """Sequence numbers and whole-message writes for one client."""

    def __init__(self, reader: IO[bytes], writer: IO[bytes]) -> None:
        self.reader = reader
        self.writer = writer
        self._seq = 0
        self._lock = threading.Lock()
        self.closed = False
        #: Called with every message sent (tests validate them against the schema).
        self.observer: Callable[[dict[str, Any]], None] | None = None

    def read(self) -> dict[str, Any] | None:
        return read_message(self.reader)

    def send(self, msg: dict[str, Any]) -> None:
        with self._lock:
            if self.closed:
                return
            self._seq += 1
            msg = {"seq": self._seq, **msg}
            if self.observer is not None:
                self.observer(msg)
            try:
                self.writer.write(encode(msg))
                self.writer.flush()
            except (OSError, ValueError):
                self.closed = True

    def event(self, event: str, body: dict[str, Any] | None = None) -> None:
        msg: dict[str, Any] = {"type": "event", "event": event}
        if body is not None:
            msg["body"] = body
        self.send(msg)

    def respond(self, request: dict[str, Any], body: dict[str, Any] | None = None) -> None:
        msg: dict[str, Any] = {"type": "response", "request_seq": request.get("seq", 0),
                               "success": True, "command": str(request.get("command", ""))}
        if body is not None:
            msg["body"] = body
        self.send(msg)

    def fail(self, request: dict[str, Any], message: str) -> None:
        self.send({"type": "response", "request_seq": request.get("seq", 0), "success": False,
                   "command": str(request.get("command", "")), "message": message,
                   "body": {"error": {"id": 1, "format": message.replace("{", "(")
                                      .replace("}", ")"), "showUser": True}}})
