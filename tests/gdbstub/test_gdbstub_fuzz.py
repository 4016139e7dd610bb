"""Hypothesis: no byte stream or packet payload makes the framing, parser or dispatcher raise,
and valid packets round-trip."""

from __future__ import annotations

from gdbstub_doubles import FullToyTarget, ToyTarget, converse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gdbstub import Capabilities, GdbStub
from gdbstub import requests as rq
from gdbstub.packet import Packet, PacketReader, encode_packet, escape, unescape

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PREFIXES = sorted(
    {row.prefix for group in rq.PREFIX_TABLE.values() for row in group}
    | {b"qXfer:", b"vFile:", b"Z5", b"bx", b""}
)
_FIELD_BYTES = b"0123456789abcdefABCDEF,:;=-p.xg#$}*\x03"
payloads = st.one_of(
    st.binary(max_size=64),
    st.builds(
        lambda prefix, tail: prefix + tail,
        st.sampled_from(PREFIXES),
        st.one_of(
            st.binary(max_size=40),
            st.lists(st.sampled_from(list(_FIELD_BYTES)), max_size=40).map(bytes),
        ),
    ),
)


@FUZZ
@given(st.binary(max_size=512), st.lists(st.integers(1, 64), max_size=40))
def test_reader_never_raises_and_is_chunking_invariant(data: bytes, cuts: list[int]) -> None:
    whole = PacketReader(max_packet_size=64).feed(data)
    reader = PacketReader(max_packet_size=64)
    events = []
    pos = 0
    for size in [*cuts, len(data)]:
        events += reader.feed(data[pos : pos + size])
        pos += size
    assert events == whole


@FUZZ
@given(st.binary(max_size=300))
def test_valid_packets_round_trip(payload: bytes) -> None:
    assert unescape(escape(payload)) == payload
    assert PacketReader(max_packet_size=1024).feed(encode_packet(payload)) == [Packet(payload)]


@FUZZ
@given(payloads)
def test_parser_never_raises(payload: bytes) -> None:
    for target in (FullToyTarget(), ToyTarget()):
        request = rq.parse(payload, Capabilities.probe(target))
        assert isinstance(request, rq.Request)


@FUZZ
@given(st.lists(payloads, min_size=1, max_size=4))
def test_dispatcher_never_raises(packets: list[bytes]) -> None:
    stub = GdbStub(FullToyTarget(), chunk_seconds=0.001)
    # a trailing Ctrl-C ends any endless run the packets may start
    converse(stub, *packets, raw=b"\x03")
