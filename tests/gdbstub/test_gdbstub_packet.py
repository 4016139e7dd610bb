"""Framing: checksums, escaping, RLE, and the incremental reader."""

from __future__ import annotations

import random

import pytest

from gdbstub.packet import (
    Ack,
    Corrupt,
    Interrupt,
    Nack,
    Packet,
    PacketReader,
    checksum,
    decode_body,
    encode_packet,
    escape,
    hex_decode,
    hex_int,
    rle_decode,
    unescape,
)


def test_checksum_is_sum_mod_256() -> None:
    assert checksum(b"") == 0
    assert checksum(b"OK") == 0x9A
    assert checksum(b"\xff\xff") == 0xFE


@pytest.mark.parametrize(
    ("payload", "frame"),
    [(b"OK", b"$OK#9a"), (b"", b"$#00"), (b"bs", b"$bs#d5"), (b"g", b"$g#67")],
)
def test_encode_packet_known_frames(payload: bytes, frame: bytes) -> None:
    assert encode_packet(payload) == frame


def test_escape_covers_all_special_bytes() -> None:
    assert escape(b"a#b$c}d*e") == b"a}\x03b}\x04c}]d}\x0ae"
    assert escape(b"plain") == b"plain"


def test_escape_round_trips_every_byte() -> None:
    data = bytes(range(256)) * 2
    escaped = escape(data)
    assert not set(escaped) & set(b"#$*") - {0x7D}
    assert unescape(escaped) == data


def test_encode_packet_escapes_and_checksums_the_escaped_body() -> None:
    frame = encode_packet(b"l<a*b>")
    assert frame == b"$l<a}\x0ab>#" + b"%02x" % checksum(b"l<a}\x0ab>")
    assert PacketReader().feed(frame) == [Packet(b"l<a*b>")]


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        (b"0* ", b"0000"),  # ' ' = 32 -> 3 more repeats
        (b"ab*!c", b"abbbbbc"),  # '!' = 33 -> 4 more
        (b"x*~", b"x" * 98),  # '~' = 126 -> 97 more
        (b"*!", b"*!"),  # nothing to repeat: literal
        (b"a*", b"a*"),  # truncated run: literal
        (b"a*\x05", b"a*\x05"),  # count below the bias: literal
    ],
)
def test_rle_decode(raw: bytes, decoded: bytes) -> None:
    assert rle_decode(raw) == decoded


def test_decode_body_escapes_are_not_run_markers() -> None:
    assert decode_body(b"a}\x0a!") == b"a*!"  # escaped '*' is data
    assert decode_body(b"}") == b""  # lone trailing escape dropped


def test_hex_helpers_are_strict() -> None:
    assert hex_decode(b"00ff10") == b"\x00\xff\x10"
    assert hex_int(b"DeadBeef") == 0xDEADBEEF
    for bad in (b"0", b"0g", b" 00", b"+1"):
        with pytest.raises(ValueError):
            hex_decode(bad)
    for bad in (b"", b"-1", b"1_0", b" 1", b"0x10"):
        with pytest.raises(ValueError):
            hex_int(bad)


def test_reader_reports_acks_interrupts_and_skips_garbage() -> None:
    events = PacketReader().feed(b"+junk-\x03\r\n$g#67+")
    assert events == [Ack(), Nack(), Interrupt(), Packet(b"g"), Ack()]


def test_reader_keeps_interrupt_byte_inside_binary_packet() -> None:
    body = b"X1000,1:\x03"
    assert PacketReader().feed(b"$" + body + b"#%02x" % checksum(body)) == [Packet(body)]


def test_reader_bad_checksum_is_corrupt_with_data() -> None:
    assert PacketReader().feed(b"$g#00") == [Corrupt("checksum mismatch", b"g")]


def test_reader_non_hex_checksum_is_corrupt() -> None:
    reader = PacketReader()
    assert reader.feed(b"$g#zz") == [Corrupt("non-hex checksum digit")]
    # the reader resynchronises: the stray 'z' is garbage, the next packet is fine
    assert reader.feed(b"$g#67") == [Packet(b"g")]


def test_reader_drops_oversized_packets_and_recovers() -> None:
    reader = PacketReader(max_packet_size=8)
    body = b"m" + b"1" * 20
    events = reader.feed(encode_packet(body) + encode_packet(b"12345678"))
    assert isinstance(events[0], Corrupt) and events[0].data is None
    assert events[1:] == [Packet(b"12345678")]


def test_reader_dollar_inside_body_restarts_packet() -> None:
    assert PacketReader().feed(b"$m10$g#67") == [Packet(b"g")]


def test_reader_decodes_rle_and_escapes() -> None:
    body = b"X0,4:}\x03*!"  # escaped '#', then 4 more copies of it
    events = PacketReader().feed(b"$" + body + b"#%02x" % checksum(body))
    assert events == [Packet(b"X0,4:#####")]


STREAM_PACKETS = [b"qSupported:swbreak+;hwbreak+", b"X400000,3:a}\x03b", b"g", b"vCont;c", b""]


def _stream() -> tuple[bytes, list[object]]:
    data = bytearray()
    expected: list[object] = []
    for i, payload in enumerate(STREAM_PACKETS):
        data += b"+" if i % 2 else b"\x03"
        expected.append(Ack() if i % 2 else Interrupt())
        data += encode_packet(payload)
        expected.append(Packet(payload))
    return bytes(data), expected


def test_reader_fed_byte_by_byte() -> None:
    data, expected = _stream()
    reader = PacketReader()
    events = [e for i in range(len(data)) for e in reader.feed(data[i : i + 1])]
    assert events == expected


@pytest.mark.parametrize("seed", range(20))
def test_reader_fed_in_random_chunks(seed: int) -> None:
    data, expected = _stream()
    rng = random.Random(seed)
    reader = PacketReader()
    events: list[object] = []
    pos = 0
    while pos < len(data):
        size = rng.randint(1, 12)
        events += reader.feed(data[pos : pos + size])
        pos += size
    assert events == expected


def test_whole_frames_read_at_once_match_byte_by_byte_reading() -> None:
    """The reader's whole-frame shortcut (one recv, one packet: every stepi) gives exactly
    the events of the byte-by-byte rules, for good, damaged and oversized frames."""
    rnd = random.Random(12)
    for _ in range(5000):
        body = bytes(rnd.choice(b"ab$#}*\x03+-0f") for _ in range(rnd.randint(0, 12)))
        frame = rnd.choice([encode_packet(body), b"$" + body + b"#00",
                            b"$" + body + b"#" + bytes(rnd.choice(b"0fgz$") for _ in range(2))])
        size = rnd.choice([4, 8, 0x4000])
        whole, bytewise = PacketReader(max_packet_size=size), PacketReader(max_packet_size=size)
        got = whole.feed(frame) + whole.feed(b"$?#3f")
        want = [e for b in frame + b"$?#3f" for e in bytewise.feed(bytes([b]))]
        assert got == want, (frame, got, want)
