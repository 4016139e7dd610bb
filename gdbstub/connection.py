"""Byte transports for one GDB connection: a TCP socket, or an in-memory script for tests.

The server needs only two operations: a ``recv`` that can wait, or just poll (``timeout=0``,
used between run chunks to catch Ctrl-C), and ``send``.
"""

from __future__ import annotations

import contextlib
import select
import socket
from collections import deque
from collections.abc import Iterable
from typing import Protocol


class Transport(Protocol):
    def recv(self, timeout: float | None) -> bytes | None:
        """Bytes received; ``b""`` at end of stream; ``None`` if nothing came within timeout.

        ``timeout=None`` waits indefinitely, ``timeout=0`` only polls. May raise ``OSError``.
        """
        ...

    def send(self, data: bytes) -> None:
        """Send all of ``data``; may raise ``OSError``."""
        ...

    def close(self) -> None: ...


class TcpTransport:
    """A connected socket. ``wake`` is a socket that becomes readable when the server closes;
    it makes every ``recv`` return end-of-stream so a blocked session ends promptly."""

    def __init__(self, sock: socket.socket, wake: socket.socket | None = None) -> None:
        self.sock = sock
        self.wake = wake

    def recv(self, timeout: float | None) -> bytes | None:
        watched = [self.sock] if self.wake is None else [self.sock, self.wake]
        readable, _, _ = select.select(watched, [], [], timeout)
        if self.wake is not None and self.wake in readable:
            return b""
        if not readable:
            return None
        return self.sock.recv(65536)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):  # already disconnected
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class MemoryTransport:
    """Scripted input for tests: each ``recv`` returns the next chunk.

    Once the script is drained, a poll (``timeout=0``) sees an idle peer (``None``) and a
    blocking ``recv`` sees end-of-stream. A ``b""`` chunk is an explicit end-of-stream, e.g. a
    disconnect in the middle of a run. Everything the server sends accumulates in :attr:`sent`.
    """

    def __init__(self, chunks: Iterable[bytes] = ()) -> None:
        self.chunks: deque[bytes] = deque(chunks)
        self.sent = bytearray()
        self.closed = False

    def recv(self, timeout: float | None) -> bytes | None:
        if self.chunks:
            return self.chunks.popleft()
        return None if timeout == 0 else b""

    def send(self, data: bytes) -> None:
        self.sent += data

    def close(self) -> None:
        self.closed = True
