"""Hostile input for the GDB stub, against the real SessionTarget (issue 20).

Hypothesis drives structured malformed packets (Z/z with odd types, sizes and addresses,
P/G/M/X with bad lengths, binary escapes, resumes, monitor commands, no-ack mode, Ctrl-C
bytes between packets) and raw byte noise into a stub over a real syxdbg session on a raw
x86-64 blob. Properties: nothing escapes the stub, every packet gets exactly one legal reply
(plus console output), no traceback is logged, and the session still answers ``?``.
Bounded to a few tens of seconds (example counts below).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_STUB_TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "gdbstub")
if _STUB_TESTS not in sys.path:
    sys.path.insert(0, _STUB_TESTS)

from gdbstub_doubles import replies  # noqa: E402
from session_targets import BASE, COUNTER, StubUnderTest, stub_factory  # noqa: E402

from gdbstub import MemoryTransport  # noqa: E402
from gdbstub.packet import encode_packet, hex_encode  # noqa: E402

HOSTILE = settings(max_examples=120, deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.too_slow,
                                          HealthCheck.function_scoped_fixture])

#: Every reply the stub may legally send (the body of a well-framed packet).
LEGAL_REPLY = re.compile(
    rb"|OK|E[0-9a-f]{2}|E\..*|[TS][0-9a-f]{2}(.*;)?|[WX][0-9a-f]{2}(;.*)?|[0-9a-fx]+"
    rb"|[ml].*|QC[0-9a-f]+|PacketSize=[0-9a-f]+(;[^;]+)*|vCont(;[cCsSrt])+",
    re.S,
)
STOP_REPLY = re.compile(rb"[TS][0-9a-f]{2}.*|[WX][0-9a-f]{2}(;.*)?", re.S)

TOP = (1 << 64) - 1
addresses = st.one_of(
    st.sampled_from([0, 0x10, BASE, BASE + 1, COUNTER, COUNTER + 7, TOP, TOP - 7, 1 << 63,
                     1 << 64, (1 << 64) + 1, 1 << 80]),
    st.integers(0, 1 << 72),
)
lengths = st.one_of(st.sampled_from([0, 1, 2, 3, 4, 8, 16, 0x4000, TOP, 1 << 64]),
                    st.integers(0, 1 << 66))
binary = st.binary(max_size=24).map(lambda b: b + b"#$}*\x03"[: len(b) % 6])


def _hex(n: int) -> bytes:
    return b"%x" % n


@st.composite
def breakpoint_packets(draw: st.DrawFn) -> bytes:
    letter = draw(st.sampled_from([b"Z", b"z"]))
    ztype = draw(st.sampled_from([b"0", b"1", b"2", b"3", b"4", b"5", b"", b"x"]))
    tail = draw(st.sampled_from([b"", b";X2,0a", b";cmds:1,2", b",extra"]))
    return letter + ztype + b"," + _hex(draw(addresses)) + b"," + _hex(draw(lengths)) + tail


@st.composite
def write_packets(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from([b"M", b"X", b"P", b"G"]))
    if kind == b"G":
        return b"G" + hex_encode(draw(st.binary(max_size=900)))[: draw(st.integers(0, 1800))]
    if kind == b"P":
        regnum = draw(st.one_of(st.integers(0, 0x60), st.integers(0, 1 << 70)))
        value = hex_encode(draw(st.binary(max_size=20)))
        return b"P" + _hex(regnum) + b"=" + value[: draw(st.integers(0, len(value)))]
    data = draw(binary)
    length = draw(st.one_of(st.just(len(data)), lengths))
    body = hex_encode(data) if kind == b"M" else data
    return kind + _hex(draw(addresses)) + b"," + _hex(length) + b":" + body


@st.composite
def other_packets(draw: st.DrawFn) -> bytes:
    return draw(st.sampled_from([
        b"?", b"g", b"s", b"c", b"bs", b"bc", b"vCont;s:1", b"vCont;c", b"vCont?", b"qC",
        b"vCont;r400000,400010:1", b"C0b", b"S05", b"vCont;C0b:1;c",
        b"m" + _hex(draw(addresses)) + b"," + _hex(draw(lengths)),
        b"p" + _hex(draw(st.integers(0, 1 << 66))),
        b"c" + _hex(draw(addresses)), b"s" + _hex(draw(addresses)),
        b"qXfer:features:read:target.xml:" + _hex(draw(lengths)) + b"," + _hex(draw(lengths)),
        b"qRcmd," + hex_encode(b"help"), b"qRcmd,",
        b"qRcmd," + hex_encode(b"goto +1000000000000000"),
        b"qRcmd," + hex_encode(b"x/4xb 0x%x" % draw(addresses)),
        b"Hg" + _hex(draw(st.integers(0, 1 << 70))), b"T" + _hex(draw(st.integers(0, 9))),
    ]))


packets = st.one_of(breakpoint_packets(), write_packets(), other_packets(),
                    st.binary(max_size=40).filter(lambda p: not p.startswith((b"D", b"k"))))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stub-hostile")


def _problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and (r.exc_info or r.name == "gdbstub")]


@HOSTILE
@given(no_ack=st.booleans(), sequence=st.lists(packets, min_size=1, max_size=8))
def test_structured_hostile_packets_get_legal_replies(
        workdir: Path, caplog: pytest.LogCaptureFixture, no_ack: bool,
        sequence: list[bytes]) -> None:
    caplog.clear()
    script = ([b"QStartNoAckMode"] if no_ack else []) + sequence + [b"?"]
    chunks: list[bytes] = []
    for payload in script:
        # A Ctrl-C after every packet: any run the packet starts is cut short.
        chunks += [encode_packet(payload), b"\x03"]
    with ExitStack() as stack:
        sut: StubUnderTest = stub_factory("session", workdir, stack)("steps")
        sut.stub.chunk_seconds = 0.005
        transport = MemoryTransport(chunks)
        sut.stub.serve_connection(transport)
        answers = [r for r in replies(bytes(transport.sent))
                   if not (r.startswith(b"O") and r != b"OK")]
    assert len(answers) == len(script), (script, answers)
    for payload, answer in zip(script, answers, strict=True):
        assert LEGAL_REPLY.fullmatch(answer), (payload, answer)
    assert STOP_REPLY.fullmatch(answers[-1]), answers[-1]
    # the gdbstub logger only warns about target bugs: none here, and never a traceback
    assert _problems(caplog) == []


noise = st.lists(st.one_of(
    st.binary(max_size=32),
    st.sampled_from([b"$", b"#", b"$g#", b"$g#3", b"}", b"\x03", b"+", b"-", b"$qC#00",
                     b"*", b"$m0,1*#"]),
    packets.map(encode_packet),
), max_size=12)


@HOSTILE
@given(no_ack=st.booleans(), pieces=noise)
def test_byte_noise_never_breaks_the_session(
        workdir: Path, caplog: pytest.LogCaptureFixture, no_ack: bool,
        pieces: list[bytes]) -> None:
    caplog.clear()
    prefix = [encode_packet(b"QStartNoAckMode")] if no_ack else []
    # "#00" closes any frame the noise left open; the '$' of '?' resynchronises anyway.
    # (an empty chunk would be MemoryTransport's end of stream)
    chunks = prefix + [p for piece in pieces if piece for p in (piece, b"\x03")] + [
        b"#00" + encode_packet(b"?")]
    with ExitStack() as stack:
        sut = stub_factory("session", workdir, stack)("steps")
        sut.stub.chunk_seconds = 0.005
        transport = MemoryTransport(chunks)
        sut.stub.serve_connection(transport)
        answers = [r for r in replies(bytes(transport.sent))
                   if not (r.startswith(b"O") and r != b"OK")]
    assert all(LEGAL_REPLY.fullmatch(a) for a in answers), answers
    assert answers and STOP_REPLY.fullmatch(answers[-1]), answers[-1:]
    assert _problems(caplog) == []


@pytest.mark.parametrize("packets", [
    (b"Z0,ffffffffffffffff,1", b"s"),
    (b"Z0,10000000000000000,1", b"s"),
    (b"Z1,fffffffffffffff0,1", b"c"),
    (b"Z1,10000000000000000,1", b"c"),
    (b"Z2,ffffffffffffffff,2", b"s"),
    (b"Z3,fffffffffffffff8,8", b"vCont;c"),
    (b"Z3,fffffffffffffff8,10", b"vCont;c"),
    (b"Z4,10000000000000000,1", b"vCont;s:1"),
    (b"P16=ffff0000", b"?"),  # fs: a value Unicorn refuses
    (b"P17=ffffffff", b"?"),  # gs
])
def test_session_target_refuses_what_it_cannot_do(
        workdir: Path, caplog: pytest.LogCaptureFixture, packets: tuple[bytes, bytes]) -> None:
    """Either refused at once with an error reply, or accepted and then harmless: never an
    accepted request that makes later requests fail (the wedge of issue 20)."""
    with ExitStack() as stack:
        sut = stub_factory("session", workdir, stack)("steps")
        transport = MemoryTransport([encode_packet(p) for p in packets] + [b"\x03"])
        sut.stub.serve_connection(transport)
        first, second = replies(bytes(transport.sent))[:2]
    assert first.startswith(b"E") or not second.startswith(b"E"), (first, second)
    assert _problems(caplog) == []


@pytest.mark.parametrize("register", ["fs", "gs"])
def test_a_G_write_the_cpu_refuses_is_an_error_reply(
        workdir: Path, caplog: pytest.LogCaptureFixture, register: str) -> None:
    """``G`` with a selector Unicorn refuses: an error reply, no traceback, nothing wedged."""
    with ExitStack() as stack:
        sut = stub_factory("session", workdir, stack)("steps")
        transport = MemoryTransport([encode_packet(b"g"), b"\x03"])
        sut.stub.serve_connection(transport)
        block = bytes.fromhex(replies(bytes(transport.sent))[0].decode())
        offset = 0
        for reg in sut.stub.target.machine.arch.registers:
            if reg.name == register:
                break
            offset += reg.size
        forged = block[:offset] + (0xffff).to_bytes(4, "little") + block[offset + 4:]
        transport = MemoryTransport([encode_packet(b"G" + hex_encode(forged)),
                                     encode_packet(b"s"), encode_packet(b"g"), b"\x03"])
        sut.stub.serve_connection(transport)
        answer, step, after = replies(bytes(transport.sent))[:3]
    assert answer.startswith(b"E"), answer
    assert step.startswith(b"T05"), step
    assert bytes.fromhex(after.decode())[offset:offset + 4] == block[offset:offset + 4]
    assert _problems(caplog) == []


def test_a_breakpoint_at_the_top_address_can_be_removed(
        workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Z0 at ffffffffffffffff is honoured; removing it (z0) and stepping on still works."""
    script = [b"Z0,ffffffffffffffff,1", b"s", b"z0,ffffffffffffffff,1", b"s", b"s"]
    with ExitStack() as stack:
        sut = stub_factory("session", workdir, stack)("steps")
        transport = MemoryTransport([encode_packet(p) for p in script] + [b"\x03"])
        sut.stub.serve_connection(transport)
        answers = replies(bytes(transport.sent))[:len(script)]
    assert answers[0] == answers[2] == b"OK", answers
    assert all(a.startswith(b"T05") for a in (answers[1], answers[3], answers[4])), answers
    assert _problems(caplog) == []
