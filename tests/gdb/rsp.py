"""A minimal raw RSP client for protocol-level tests and the benchmark (no gdb involved)."""

from __future__ import annotations

import socket
from collections.abc import Callable


def checksum(body: bytes) -> bytes:
    return b"%02x" % (sum(body) & 0xFF)


class RspClient:
    """Blocking client: :meth:`ask` sends one packet and returns the next reply body.

    ``O`` console packets are collected in :attr:`console` and skipped.
    """

    def __init__(self, port: int, *, no_ack: bool = True, timeout: float = 60.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.ack = True
        self.console: list[bytes] = []
        if no_ack:
            assert self.ask(b"QStartNoAckMode") == b"OK"
            self.ack = False

    def send(self, body: bytes) -> None:
        self.sock.sendall(b"$" + body + b"#" + checksum(body))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def reply(self) -> bytes:
        while True:
            while b"$" not in self.buf:
                self._fill()
            start = self.buf.index(b"$")
            while b"#" not in self.buf[start:] or len(self.buf) < self.buf.index(
                    b"#", start) + 3:
                self._fill()
            end = self.buf.index(b"#", start)
            body = self.buf[start + 1:end]
            assert self.buf[end + 1:end + 3] == checksum(body), self.buf
            self.buf = self.buf[end + 3:]
            if self.ack:
                self.sock.sendall(b"+")
            if body.startswith(b"O") and body != b"OK":
                self.console.append(bytes.fromhex(body[1:].decode()))
                continue
            return body

    def ask(self, body: bytes) -> bytes:
        self.send(body)
        return self.reply()

    def current_thread(self) -> bytes:
        """The stopped thread's id as the stub spells it (``qC``): a Linux program's main
        thread is its pid, not 1."""
        reply = self.ask(b"qC")
        assert reply.startswith(b"QC"), reply
        return reply[2:]

    def closed_by_peer(self) -> bool:
        """True once the server has closed the connection (reads to EOF)."""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
        except OSError:
            return True

    def close(self) -> None:
        self.sock.close()


def parse_stop(reply: bytes) -> tuple[int, dict[str, str]]:
    """(signal, {field: value}) of a ``T`` stop reply."""
    assert reply[:1] == b"T", reply
    sig = int(reply[1:3], 16)
    fields: dict[str, str] = {}
    for part in reply[3:].decode().split(";"):
        if part:
            key, _, value = part.partition(":")
            fields[key] = value
    return sig, fields


def le(hexstr: str) -> int:
    return int.from_bytes(bytes.fromhex(hexstr), "little")


def it_block_stops(rsp: RspClient, then: int, other: int, position: Callable[[], int],
                   stops: int = 4) -> list[tuple[int, int, int]]:
    """Thumb IT-block breakpoints over raw RSP (no gdb adjustment): ``Z0`` kind 2 at
    ``then`` (16-bit), kind 3 at ``other`` (32-bit), then ``stops`` continues, each a
    SIGTRAP: (pc, r0, position) of each stop (the test programs' ``it_then``/``it_else``)."""
    assert rsp.ask(b"Z0,%x,2" % then) == b"OK"
    assert rsp.ask(b"Z0,%x,3" % other) == b"OK"
    seen = []
    for _ in range(stops):
        sig, _ = parse_stop(rsp.ask(b"c"))
        assert sig == 5
        seen.append((le(rsp.ask(b"pf").decode()), le(rsp.ask(b"p0").decode()), position()))
    return seen
