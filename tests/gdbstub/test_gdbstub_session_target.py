"""The stub's scripted conversations, run against the toy double AND the real SessionTarget.

Only behaviour the stub promises whatever the target is checked here (framing, negotiation,
registers and memory round trips, run control shape, Ctrl-C, disconnects, monitor, k and D,
the issue-20 hardening). Target-specific semantics stay in test_gdbstub_dispatch.py (toy)
and tests/gdb/ (the adapter).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gdbstub_doubles import converse, replies
from session_targets import KINDS, MakeStub, stubs

from gdbstub import Cap, MemoryTransport, SessionEnd
from gdbstub.packet import encode_packet, hex_encode

OFFER = b"qSupported:multiprocess+;swbreak+;hwbreak+;vContSupported+;xmlRegisters=i386"


@pytest.fixture(params=KINDS)
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeStub]:
    yield from stubs(request.param, tmp_path)


def _pc_field(reply: bytes, regnum: int) -> int:
    """The expedited pc of a T reply."""
    for field in reply[3:].split(b";"):
        name, _, value = field.partition(b":")
        if name == b"%x" % regnum:
            return int.from_bytes(bytes.fromhex(value.decode()), "little")
    raise AssertionError(f"no pc in {reply!r}")


def test_handshake(make: MakeStub) -> None:
    sut = make("steps")
    conv = converse(sut.stub, OFFER, b"vMustReplyEmpty", b"QStartNoAckMode", b"Hg0",
                    b"qTStatus", b"?", b"qfThreadInfo", b"qsThreadInfo", b"qAttached",
                    b"qC", b"T1", b"T2", b"qSymbol::", b"vCont?")
    features = conv.replies[0].split(b";")
    assert features[:3] == [b"PacketSize=4000", b"QStartNoAckMode+", b"qXfer:features:read+"]
    assert {b"vContSupported+", b"swbreak+", b"hwbreak+"} <= set(features)
    assert conv.replies[1:5] == [b"", b"OK", b"OK", b""]
    assert conv.replies[5].startswith(b"T05")
    assert _pc_field(conv.replies[5], sut.pc_regnum) == sut.entry
    assert conv.replies[6:13] == [b"m1", b"l", b"1", b"QC1", b"OK", b"E16", b"OK"]
    ranged = sut.stub.caps.has(Cap.RANGE_STEP)
    assert conv.replies[13] == b"vCont;c;C;s;S" + (b";r" if ranged else b"")


def test_framing(make: MakeStub) -> None:
    stub = make("steps").stub
    assert converse(stub, b"qC", raw=b"-").sent == b"+$QC1#c5$QC1#c5"
    assert converse(stub, raw=b"$qC#00").sent == b"-"
    assert converse(stub, b"QStartNoAckMode", raw=b"$qC#00").replies == [b"OK", b"QC1"]
    oversized = encode_packet(b"M400000,1:" + b"00" * 0x4000)
    conv = converse(stub, raw=b"\x00\xffgarbage#$" + oversized + b"}}}" + encode_packet(b"qC"))
    assert conv.replies == [b"QC1"]
    # issue 20: a truncated checksum in no-ack mode does not swallow the next packet
    conv = converse(stub, b"QStartNoAckMode", raw=b"$g#" + encode_packet(b"qC"))
    assert conv.replies == [b"OK", b"QC1"]


def test_unsupported_and_malformed(make: MakeStub) -> None:
    conv = converse(make("steps").stub, b"vFile:open:6a", b"m400000", b"Zx",
                    b"qXfer:libraries:read::0,1", b"Z0,10000000000000000,1", b"qC")
    assert conv.replies == [b"", b"E01", b"", b"", b"E01", b"QC1"]


def test_target_description_reassembles(make: MakeStub) -> None:
    stub = make("steps").stub
    chunks = []
    offset = 0
    while True:
        reply = converse(stub, b"qXfer:features:read:target.xml:%x,100" % offset).replies[0]
        chunks.append(reply[1:])
        offset += len(reply) - 1
        if reply.startswith(b"l"):
            break
        assert reply.startswith(b"m")
    xml = b"".join(chunks)
    assert xml.startswith(b"<?xml") and b"</target>" in xml
    assert converse(stub, b"qXfer:features:read:nope.xml:0,100").replies == [b"E00"]


def test_registers_round_trip(make: MakeStub) -> None:
    sut = make("steps")
    conv = converse(sut.stub, b"g", b"p%x" % sut.pc_regnum)
    pc = conv.replies[1]
    assert int.from_bytes(bytes.fromhex(pc.decode()), "little") == sut.entry
    assert pc in conv.replies[0]
    new_pc = hex_encode((sut.entry + 2).to_bytes(8, "little"))
    conv = converse(sut.stub, b"P%x=" % sut.pc_regnum + new_pc, b"p%x" % sut.pc_regnum,
                    b"G" + conv.replies[0], b"p%x" % sut.pc_regnum, b"p100", b"P100=00")
    assert conv.replies == [b"OK", new_pc, b"OK", pc, b"E16", b"E16"]


def test_memory(make: MakeStub) -> None:
    sut = make("steps")
    special = b"#$}*\x03\x00\x7d\x24"
    conv = converse(sut.stub, b"M%x,2:beef" % sut.writable, b"m%x,2" % sut.writable,
                    b"X%x,%x:" % (sut.writable, len(special)) + special,
                    b"m%x,%x" % (sut.writable, len(special)), b"X%x,0:" % sut.writable,
                    b"m%x,4" % sut.unreadable, b"M%x,1:00" % sut.unreadable)
    assert conv.replies == [b"OK", b"beef", b"OK", hex_encode(special), b"OK", b"E14",
                            conv.replies[6]]
    assert conv.replies[6].startswith(b"E")
    huge = converse(sut.stub, b"m%x,ffffffff" % sut.entry).replies[0]
    assert 0 < len(huge) <= 0x4000


def test_step_and_breakpoints(make: MakeStub) -> None:
    sut = make("steps")
    conv = converse(sut.stub, OFFER, b"s", b"vCont;s:1", b"Z0,10000000000000000,1", b"s")
    pcs = [_pc_field(r, sut.pc_regnum) for r in conv.replies[1:3]]
    assert conv.replies[1].startswith(b"T05") and sut.entry < pcs[0] < pcs[1]
    assert conv.replies[3] == b"E01"
    assert conv.replies[4].startswith(b"T05") and _pc_field(conv.replies[4], 0x10) > pcs[1]
    # a breakpoint ahead: continue stops there with swbreak, then it is removed cleanly
    bp = _pc_field(conv.replies[4], sut.pc_regnum)
    stub = make("steps").stub
    conv = converse(stub, OFFER, b"Z0,%x,1" % bp, b"Z0,%x,1" % bp, b"c", b"z0,%x,1" % bp)
    assert conv.replies[1:3] == [b"OK", b"OK"]
    assert conv.replies[3].startswith(b"T05swbreak:;")
    assert _pc_field(conv.replies[3], sut.pc_regnum) == bp
    assert conv.replies[4] == b"OK"


def test_vcont_without_our_thread(make: MakeStub) -> None:
    conv = converse(make("steps").stub, b"vCont;c:2", b"vCont;t")
    assert conv.replies[0] == b"E16" and conv.replies[1].startswith(b"T00")


def test_ctrl_c_interrupts_a_long_continue(make: MakeStub) -> None:
    conv = converse(make("spin").stub, b"c", b"qC", raw=b"\x03")
    assert conv.replies[0].startswith(b"T02") and conv.replies[1] == b"QC1"


def test_disconnect_while_running_keeps_the_target(make: MakeStub) -> None:
    sut = make("spin")
    transport = MemoryTransport([encode_packet(b"M%x,1:aa" % (sut.writable + 0x100)),
                                 encode_packet(b"c"), b""])
    assert sut.stub.serve_connection(transport) is SessionEnd.DISCONNECTED
    assert replies(bytes(transport.sent)) == [b"OK"]
    again = converse(sut.stub, b"?", b"m%x,1" % (sut.writable + 0x100), b"s")
    assert again.replies[0].startswith(b"T02") and again.replies[1] == b"aa"
    assert again.replies[2].startswith(b"T05")


def test_monitor_detach_and_kill(make: MakeStub) -> None:
    stub = make("steps").stub
    conv = converse(stub, b"qRcmd," + hex_encode(b"help"), b"D;1", b"qC")
    assert conv.replies[-2] == b"OK" and conv.end is SessionEnd.DETACHED
    assert all(r.startswith(b"O") for r in conv.replies[:-2])
    conv = converse(stub, b"k", b"qC")
    assert conv.end is SessionEnd.KILLED and conv.replies == []


def test_ctrl_c_interrupts_monitor_goto_on_a_real_session(tmp_path: Path) -> None:
    """issue 20: ``monitor goto +1000000000000000`` on an endless loop used to hang the
    server for minutes, ignoring 0x03."""
    for make_real in stubs("session", tmp_path):
        sut = make_real("spin")
        start = time.monotonic()
        conv = converse(sut.stub, b"qRcmd," + hex_encode(b"goto +1000000000000000"), b"qC",
                        raw=b"\x03")
        assert time.monotonic() - start <= 1.0
        assert conv.replies[-2:] == [b"OK", b"QC1"]
        output = b"".join(bytes.fromhex(r[1:].decode()) for r in conv.replies[:-2])
        assert b"interrupted" in output


def test_range_stepping_is_one_move_that_stops_at_breakpoints(make: MakeStub) -> None:
    probe = make("steps")
    steps = converse(probe.stub, b"s", b"s", b"s").replies
    pcs = [_pc_field(r, probe.pc_regnum) for r in steps]
    sut = make("steps")
    if not sut.stub.caps.has(Cap.RANGE_STEP):
        pytest.skip("this target has no RangeStepping")
    conv = converse(sut.stub, OFFER, b"vCont;r%x,%x:1" % (sut.entry, pcs[2]),
                    b"Z0,%x,1" % pcs[1], b"p%x" % sut.pc_regnum)
    stop = conv.replies[1]
    assert stop.startswith(b"T05") and b"swbreak" not in stop
    assert _pc_field(stop, sut.pc_regnum) == pcs[2]
    fresh = make("steps")
    conv = converse(fresh.stub, OFFER, b"Z0,%x,1" % pcs[1],
                    b"vCont;r%x,%x:1" % (fresh.entry, pcs[2]))
    assert conv.replies[2].startswith(b"T05swbreak:;")
    assert _pc_field(conv.replies[2], fresh.pc_regnum) == pcs[1]
