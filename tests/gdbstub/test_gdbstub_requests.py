"""Packet body -> typed request, table driven, including capability gating."""

from __future__ import annotations

import pytest
from gdbstub_doubles import FullToyTarget, ToyTarget

from gdbstub import Cap, Capabilities, WatchKind
from gdbstub import requests as rq

FULL = Capabilities.probe(FullToyTarget())
MINIMAL = Capabilities.probe(ToyTarget())


def test_probe_finds_each_capability() -> None:
    assert FULL.caps == (
        Cap.RESUME
        | Cap.RANGE_STEP
        | Cap.SW_BREAK
        | Cap.HW_BREAK
        | Cap.WATCH
        | Cap.REVERSE_STEP
        | Cap.REVERSE_CONTINUE
        | Cap.MONITOR
        | Cap.INTERRUPT
        | Cap.KILL
    )
    assert MINIMAL.caps == Cap.RESUME  # no RangeStepping: the stub does not fake it
    assert FULL.arch.expedited() == (16, 7, 6)


def test_probe_rejects_non_targets() -> None:
    with pytest.raises(TypeError):
        Capabilities.probe(object())  # type: ignore[arg-type]


PARSED = [
    (b"qSupported", rq.QuerySupported(())),
    (
        b"qSupported:swbreak+;xmlRegisters=i386",
        rq.QuerySupported(("swbreak+", "xmlRegisters=i386")),
    ),
    (b"QStartNoAckMode", rq.StartNoAckMode()),
    (b"?", rq.QueryHaltReason()),
    (b"qXfer:features:read:target.xml:0,fff", rq.ReadFeatures("target.xml", 0, 0xFFF)),
    (b"g", rq.ReadRegisters()),
    (b"G00ff", rq.WriteRegisters(b"\x00\xff")),
    (b"p10", rq.ReadRegister(16)),
    (b"P10=0010400000000000", rq.WriteRegister(16, bytes.fromhex("0010400000000000"))),
    (b"m400000,4", rq.ReadMemory(0x400000, 4)),
    (b"M400000,2:abcd", rq.WriteMemory(0x400000, b"\xab\xcd")),
    (b"X400000,3:a#b", rq.WriteMemory(0x400000, b"a#b")),
    (b"X400000,0:", rq.WriteMemory(0x400000, b"")),
    (b"Z0,401000,1", rq.AddBreakpoint(0, 0x401000, 1)),
    (b"z0,401000,1", rq.RemoveBreakpoint(0, 0x401000, 1)),
    (b"Z0,401000,1;X2,0a", rq.AddBreakpoint(0, 0x401000, 1)),
    (b"Z1,401000,1", rq.AddBreakpoint(1, 0x401000, 1)),
    (b"Z2,403000,4", rq.AddBreakpoint(2, 0x403000, 4)),
    (b"z3,403000,8", rq.RemoveBreakpoint(3, 0x403000, 8)),
    (b"Z4,403000,1", rq.AddBreakpoint(4, 0x403000, 1)),
    (b"c", rq.Continue()),
    (b"c401000", rq.Continue(addr=0x401000)),
    (b"C0b", rq.Continue(signal=0xB)),
    (b"C0b;401000", rq.Continue(signal=0xB, addr=0x401000)),
    (b"s", rq.Step()),
    (b"s401000", rq.Step(addr=0x401000)),
    (b"S05;10", rq.Step(signal=5, addr=0x10)),
    (b"vCont?", rq.VContQuery()),
    (b"vCont;c", rq.VCont((rq.VContAction("c"),))),
    (b"vCont;s:1;c", rq.VCont((rq.VContAction("s", tid=1), rq.VContAction("c")))),
    (b"vCont;C05:-1", rq.VCont((rq.VContAction("c", signal=5, tid=-1),))),
    (b"vCont;S0b:p1.1", rq.VCont((rq.VContAction("s", signal=0xB, tid=1, pid=1),))),
    (
        b"vCont;r40100a,401015:1;c",
        rq.VCont((rq.VContAction("r", tid=1, start=0x40100A, end=0x401015), rq.VContAction("c"))),
    ),
    (b"vCont;t:1", rq.VCont((rq.VContAction("t", tid=1),))),
    (b"bs", rq.ReverseStepRequest()),
    (b"bc", rq.ReverseContinueRequest()),
    (b"Hg0", rq.SetThread("g", 0)),
    (b"Hc-1", rq.SetThread("c", -1)),
    (b"Hgp1.-1", rq.SetThread("g", -1, 1)),
    (b"T1", rq.ThreadAlive(1)),
    (b"qC", rq.CurrentThread()),
    (b"qfThreadInfo", rq.ThreadInfoFirst()),
    (b"qsThreadInfo", rq.ThreadInfoNext()),
    (b"qAttached", rq.QueryAttached(None)),
    (b"qAttached:2a", rq.QueryAttached(42)),
    (b"k", rq.Kill()),
    (b"D", rq.Detach(None)),
    (b"D;2a", rq.Detach(42)),
    (b"qRcmd,68656c70", rq.MonitorCommand(b"help")),
    (b"vMustReplyEmpty", rq.MustReplyEmpty()),
    (b"qTStatus", rq.TraceStatus()),
    (b"qOffsets", rq.SectionOffsets()),
    (b"qSymbol::", rq.SymbolLookup()),
]


@pytest.mark.parametrize(
    ("packet", "request_"), PARSED, ids=[p.decode("latin-1") for p, _ in PARSED]
)
def test_parse_known_packets(packet: bytes, request_: rq.Request) -> None:
    assert rq.parse(packet, FULL) == request_


MALFORMED = [
    b"m400000",
    b"m40000g,4",
    b"m,4",
    b"M400000,2:abc",
    b"M400000,3:abcd",
    b"X400000,5:ab",
    b"p",
    b"pzz",
    b"P10",
    b"P10=0",
    b"G0",
    b"Z0,401000",
    b"Z0401000,1",
    b"z2,,4",
    b"C",
    b"Sxx",
    b"c-1",
    b"vCont;x",
    b"vCont;",
    b"vCont;r1000",
    b"vCont;c:",
    b"vCont;cabc",
    b"H",
    b"Hx1",
    b"T",
    b"qXfer:features:read:target.xml:0",
    b"qXfer:features:read:target.xml",
    b"qRcmd,6",
    b"qAttached:",
    b"qAttachedx",
    b"D;",
    b"Dx",
    b"qSupportedfoo",
    # Addresses are at most 64 bits (issue 20: a 65-bit Z0 used to wedge every resume).
    b"Z0,10000000000000000,1",
    b"Z1,10000000000000000,1",
    b"Z3,10000000000000000,1",
    b"z0,10000000000000000,1",
    b"Z0,0,10000000000000000",
    b"Z2,ffffffffffffffff,2",  # the watched range would wrap around
    b"m10000000000000000,1",
    b"M10000000000000000,1:00",
    b"X10000000000000000,0:",
    b"c10000000000000000",
    b"S05;10000000000000000",
    b"vCont;r0,10000000000000000",
    b"C100",  # a signal is one byte
]


@pytest.mark.parametrize("packet", MALFORMED, ids=[p.decode("latin-1") for p in MALFORMED])
def test_malformed_packets_become_malformed_requests(packet: bytes) -> None:
    req = rq.parse(packet, FULL)
    assert isinstance(req, rq.Malformed), req
    assert req.packet == packet


@pytest.mark.parametrize(
    "packet",
    [b"", b"vFile:open:", b"qCRC:0,1", b"Z5,0,1", b"QPassSignals:", b"vCont", b"gg", b"kk", b"bx"],
)
def test_unknown_packets_are_unsupported(packet: bytes) -> None:
    assert rq.parse(packet, FULL) == rq.Unsupported(packet)


@pytest.mark.parametrize(
    "packet",
    [
        b"bs",
        b"bc",
        b"Z0,1,1",
        b"z0,1,1",
        b"Z1,1,1",
        b"Z2,1,1",
        b"z4,1,1",
        b"qRcmd,00",
        b"vCont;r1,2",
        b"vCont;s:2;r1,2:1",
    ],
)
def test_packets_of_missing_capabilities_are_unsupported(packet: bytes) -> None:
    assert rq.parse(packet, MINIMAL) == rq.Unsupported(packet)
    assert not isinstance(rq.parse(packet, FULL), rq.Unsupported)


def test_64_bit_edges_still_parse() -> None:
    top = (1 << 64) - 1
    assert rq.parse(b"Z0,ffffffffffffffff,1", FULL) == rq.AddBreakpoint(0, top, 1)
    assert rq.parse(b"Z2,fffffffffffffffe,2", FULL) == rq.AddBreakpoint(2, top - 1, 2)
    assert rq.parse(b"m0000000000000000ffffffffffffffff,1", FULL) == rq.ReadMemory(top, 1)


def test_watch_kinds_match_z_types() -> None:
    assert [k.value for k in WatchKind] == [2, 3, 4]


def test_every_capability_group_is_in_the_table() -> None:
    gated = {cap for cap in rq.PREFIX_TABLE if cap is not None}
    assert gated == {
        Cap.RESUME,
        Cap.REVERSE_STEP,
        Cap.REVERSE_CONTINUE,
        Cap.SW_BREAK,
        Cap.HW_BREAK,
        Cap.WATCH,
        Cap.MONITOR,
        Cap.AUXV,
        Cap.EXEC_FILE,
        Cap.LIBRARIES_SVR4,
        Cap.THREADS,
        Cap.PROCESSES,
        Cap.PASS_SIGNALS,
    }
