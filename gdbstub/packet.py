"""RSP framing: checksums, ``$data#cs`` encoding, binary escaping, run-length decoding.

Pure functions plus :class:`PacketReader`, an incremental reader that turns an arbitrary byte
stream into :data:`Event` values. Nothing here raises on any byte input: garbage is skipped,
damaged packets become :class:`Corrupt` events (the server answers them with ``-``).
GDB manual, "Overview": https://sourceware.org/gdb/current/onlinedocs/gdb/Overview.html
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass

ESCAPE = 0x7D  # '}'
RLE_MARK = 0x2A  # '*'
INTERRUPT_BYTE = 0x03
# Bytes a reply must escape: '#', '$', '}' always, and '*' because GDB decodes it as RLE.
_MUST_ESCAPE = frozenset(b"#$}*")
_ESCAPE_SEARCH = re.compile(rb"[#$}*]").search
_BODY_END_SEARCH = re.compile(rb"[#$]").search
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
_ALL_HEX = re.compile(rb"[0-9a-fA-F]*").fullmatch
# An RLE count byte is the repeat count plus 29; GDB keeps it printable and avoids '#'/'$'.
_RLE_BIAS = 29


def checksum(data: bytes) -> int:
    """Modulo-256 sum of the bytes, as used in ``$data#cs``."""
    return sum(data) & 0xFF


def escape(data: bytes) -> bytes:
    """Escape ``#``, ``$``, ``}`` and ``*`` as ``}`` followed by the byte XOR 0x20."""
    if _ESCAPE_SEARCH(data) is None:
        return data
    out = bytearray()
    for b in data:
        if b in _MUST_ESCAPE:
            out.append(ESCAPE)
            out.append(b ^ 0x20)
        else:
            out.append(b)
    return bytes(out)


def unescape(data: bytes) -> bytes:
    """Undo :func:`escape`. A trailing lone escape byte is dropped."""
    return decode_body(data, rle=False)


def rle_decode(data: bytes) -> bytes:
    """Expand ``X*<n+29>`` runs (``X`` repeated ``n`` more times). Invalid runs stay literal."""
    return decode_body(data, escapes=False)


def decode_body(raw: bytes, *, escapes: bool = True, rle: bool = True) -> bytes:
    """Decode a received packet body: binary escapes and run-length encoding in one pass.

    NOTE(gdb): this mirrors ``read_frame`` in gdb's remote.c, which resolves both for every
    packet; GDB escapes ``*`` in binary data, so an unescaped ``*`` is always a run marker.
    """
    if ESCAPE not in raw and RLE_MARK not in raw:
        return raw
    out = bytearray()
    i = 0
    n = len(raw)
    while i < n:
        b = raw[i]
        if escapes and b == ESCAPE:
            if i + 1 < n:
                out.append(raw[i + 1] ^ 0x20)
            i += 2
        elif rle and b == RLE_MARK and out and i + 1 < n and raw[i + 1] > _RLE_BIAS:
            out.extend(out[-1:] * (raw[i + 1] - _RLE_BIAS))
            i += 2
        else:
            out.append(b)
            i += 1
    return bytes(out)


def encode_packet(payload: bytes) -> bytes:
    """Frame a reply payload as ``$<escaped payload>#<checksum>``.

    Escaping every reply is safe: GDB unescapes all packets, and only binary replies
    (``qXfer``) can contain the special bytes at all.
    """
    body = escape(payload)
    return b"$" + body + b"#" + b"%02x" % checksum(body)


def hex_encode(data: bytes) -> bytes:
    """Lower-case hex, two digits per byte."""
    return binascii.hexlify(data)


def hex_decode(text: bytes) -> bytes:
    """Strict hex decoding: raises ``ValueError`` on odd length or a non-hex digit."""
    if len(text) % 2 or _ALL_HEX(text) is None:
        raise ValueError(f"bad hex data {text[:32]!r}")
    return binascii.unhexlify(text)


def hex_int(text: bytes) -> int:
    """Strict unsigned hex integer: raises ``ValueError`` unless non-empty and all hex digits."""
    if not text or _ALL_HEX(text) is None:
        raise ValueError(f"bad hex number {text[:32]!r}")
    return int(text, 16)


# --- incremental reader ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Packet:
    """A packet whose checksum matched; ``data`` is unescaped and RLE-decoded."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Ack:
    """A ``+`` between packets."""


@dataclass(frozen=True, slots=True)
class Nack:
    """A ``-`` between packets: the peer wants the last packet again."""


@dataclass(frozen=True, slots=True)
class Interrupt:
    """The raw 0x03 byte sent outside a packet (GDB's Ctrl-C)."""


@dataclass(frozen=True, slots=True)
class Corrupt:
    """A damaged packet, to be answered with ``-`` in ack mode.

    ``data`` holds the decoded body when only the checksum was wrong (so a no-ack server can
    still use it, as gdbserver does); it is ``None`` for oversized or unterminated packets.
    """

    reason: str
    data: bytes | None = None


Event = Packet | Ack | Nack | Interrupt | Corrupt

_IDLE, _BODY, _CSUM1, _CSUM2 = range(4)


class PacketReader:
    """Incremental frame reader: ``feed(bytes) -> list[Event]``, never raises.

    Between packets it reports ``+``/``-``/0x03 and skips anything else. Inside a packet every
    byte except ``#`` is data (binary ``X`` data may contain 0x03). A ``$`` inside a body
    restarts the packet, which resynchronises after a lost ``#``; a non-hex byte where a
    checksum digit belongs ends the frame as :class:`Corrupt` and is then read again (a ``$``
    there starts the next packet, a 0x03 is an interrupt). Bodies longer than
    ``max_packet_size`` raw bytes are not buffered and end as a :class:`Corrupt` event.
    """

    def __init__(self, max_packet_size: int = 0x4000) -> None:
        self.max_packet_size = max_packet_size
        self._state = _IDLE
        self._body = bytearray()
        self._oversized = False
        self._csum_hi = 0

    def feed(self, data: bytes) -> list[Event]:
        if self._state == _IDLE and data[:1] == b"$":
            # The usual case (no-ack mode): exactly one whole frame. Same result as the
            # byte-by-byte rules below, which handle everything else.
            end = data.find(b"#")
            if (end > 0 and end + 3 == len(data) and data.find(b"$", 1, end) < 0
                    and end - 1 <= self.max_packet_size
                    and _ALL_HEX(data, end + 1) is not None):
                raw = data[1:end]
                body = decode_body(raw)
                if int(data[end + 1:], 16) != checksum(raw):
                    return [Corrupt("checksum mismatch", body)]
                return [Packet(body)]
        events: list[Event] = []
        i, n = 0, len(data)
        while i < n:
            if self._state == _BODY:
                # Body bytes up to the next '#' or '$' in one copy (the per-byte rules below
                # would append them one by one, up to max_packet_size).
                found = _BODY_END_SEARCH(data, i)
                stop = n if found is None else found.start()
                if stop > i:
                    room = self.max_packet_size - len(self._body)
                    if stop - i > room:
                        self._body += data[i:i + max(room, 0)]
                        self._oversized = True
                    else:
                        self._body += data[i:stop]
                    i = stop
                    if i == n:
                        break
            b = data[i]
            i += 1
            event = self._feed_byte(b)
            if event is not None:
                events.append(event)
                if isinstance(event, Corrupt) and b not in _HEX_DIGITS:
                    # A non-hex byte where a checksum digit belongs ends the damaged frame
                    # and is read again, between packets, as the start of what follows:
                    # "$g#$?#3f" still delivers the '?' (without acks nothing is resent).
                    again = self._feed_byte(b)
                    if again is not None:
                        events.append(again)
        return events

    def _feed_byte(self, b: int) -> Event | None:
        state = self._state
        if state == _IDLE:
            if b == 0x24:  # '$'
                self._start()
            elif b == 0x2B:  # '+'
                return Ack()
            elif b == 0x2D:  # '-'
                return Nack()
            elif b == INTERRUPT_BYTE:
                return Interrupt()
            return None  # garbage between packets
        if state == _BODY:
            if b == 0x23:  # '#'
                self._state = _CSUM1
            elif b == 0x24:
                self._start()
            elif len(self._body) < self.max_packet_size:
                self._body.append(b)
            else:
                self._oversized = True
            return None
        if b not in _HEX_DIGITS:
            self._state = _IDLE
            return Corrupt("non-hex checksum digit")
        if state == _CSUM1:
            self._csum_hi = int(chr(b), 16)
            self._state = _CSUM2
            return None
        self._state = _IDLE
        raw = bytes(self._body)
        if self._oversized:
            return Corrupt(f"packet longer than {self.max_packet_size} bytes")
        data = decode_body(raw)
        if (self._csum_hi << 4) | int(chr(b), 16) != checksum(raw):
            return Corrupt("checksum mismatch", data)
        return Packet(data)

    def _start(self) -> None:
        self._state = _BODY
        self._body.clear()
        self._oversized = False
