"""Scripted conversations against the toy targets over an in-memory transport (no sockets)."""

from __future__ import annotations

import typing

import pytest
from gdbstub_doubles import (
    EXIT,
    MEM_BASE,
    MEM_SIZE,
    NOP,
    PC,
    TARGET_XML,
    CrashingTarget,
    FullToyTarget,
    ToyTarget,
    converse,
    jump,
    program,
    replies,
    store,
)

from gdbstub import (
    Cap,
    Capabilities,
    GdbStub,
    MemoryTransport,
    ReplayLogBegin,
    SessionEnd,
    Signal,
    SwBreak,
    Watch,
    WatchKind,
)
from gdbstub import requests as rq
from gdbstub.packet import encode_packet, hex_encode
from gdbstub.replies import stop_reply
from gdbstub.server import HANDLERS

OFFER = b"qSupported:multiprocess+;swbreak+;hwbreak+;vContSupported+;xmlRegisters=i386"
RIP0 = b"10:0000400000000000;"  # rip = 0x400000, little endian
EXPEDITED0 = RIP0 + b"7:00ff400000000000;6:0000000000000000;"


def rip_field(value: int) -> bytes:
    return b"10:" + hex_encode(value.to_bytes(8, "little")) + b";"


def stub_for(code: bytes = b"", target_cls: type[ToyTarget] = FullToyTarget) -> GdbStub:
    return GdbStub(target_cls(program(code)))


def one(stub: GdbStub, *packets: bytes) -> bytes:
    """The reply to the last packet."""
    return converse(stub, *packets).replies[-1]


# --- handshake and negotiation ------------------------------------------------------------


def test_qsupported_advertises_exactly_the_capabilities() -> None:
    reply = one(stub_for(), OFFER)
    assert reply.split(b";") == [
        b"PacketSize=4000",
        b"QStartNoAckMode+",
        b"qXfer:features:read+",
        b"vContSupported+",
        b"swbreak+",
        b"hwbreak+",
        b"ReverseStep+",
        b"ReverseContinue+",
    ]


def test_swbreak_and_hwbreak_are_advertised_only_when_gdb_offers_them() -> None:
    assert b"swbreak+" not in one(stub_for(), b"qSupported:multiprocess+")
    assert b"hwbreak+" not in one(stub_for(), b"qSupported:swbreak+")
    reply = one(stub_for(), b"qSupported:swbreak+").split(b";")
    assert b"swbreak+" in reply and b"ReverseStep+" in reply


def test_minimal_target_does_not_advertise_reverse_or_breakpoints() -> None:
    reply = one(stub_for(target_cls=ToyTarget), OFFER)
    assert reply == b"PacketSize=4000;QStartNoAckMode+;qXfer:features:read+;vContSupported+"


def test_minimal_target_answers_gated_packets_empty() -> None:
    conv = converse(stub_for(target_cls=ToyTarget), b"bs", b"bc", b"Z0,400000,1", b"qRcmd,00")
    assert conv.replies == [b"", b"", b"", b""]


def test_full_handshake_replies() -> None:
    conv = converse(
        stub_for(),
        OFFER,
        b"vMustReplyEmpty",
        b"QStartNoAckMode",
        b"Hg0",
        b"qTStatus",
        b"?",
        b"qfThreadInfo",
        b"qsThreadInfo",
        b"qAttached",
        b"Hc-1",
        b"qOffsets",
        b"qC",
        b"T1",
        b"T2",
        b"qSymbol::",
    )
    assert conv.replies[1:] == [
        b"",
        b"OK",
        b"OK",
        b"",
        b"T05" + EXPEDITED0 + b"thread:1;",
        b"m1",
        b"l",
        b"1",
        b"OK",
        b"",
        b"QC1",
        b"OK",
        b"E16",
        b"OK",
    ]
    assert conv.end is SessionEnd.DISCONNECTED


def test_acks_stop_after_no_ack_mode() -> None:
    conv = converse(stub_for(), b"qC", b"QStartNoAckMode", b"qC", b"qC")
    assert conv.sent == b"+$QC1#c5+$OK#9a$QC1#c5$QC1#c5"


def test_bad_checksum_is_nacked_in_ack_mode() -> None:
    conv = converse(stub_for(), raw=b"$qC#00")
    assert conv.sent == b"-"


def test_bad_checksum_is_accepted_in_no_ack_mode() -> None:
    conv = converse(stub_for(), b"QStartNoAckMode", raw=b"$qC#00")
    assert conv.replies == [b"OK", b"QC1"]


def test_nack_resends_the_last_packet() -> None:
    conv = converse(stub_for(), b"qC", raw=b"-")
    assert conv.sent == b"+$QC1#c5$QC1#c5"


def test_garbage_and_oversized_packets_do_not_end_the_session() -> None:
    oversized = encode_packet(b"M400000,1:" + b"00" * 0x4000)
    conv = converse(
        stub_for(), raw=b"\x00\xffgarbage#$" + oversized + b"}}}" + encode_packet(b"qC")
    )
    assert conv.sent.startswith(b"-")
    assert conv.replies == [b"QC1"]


def test_unsupported_and_malformed_replies() -> None:
    conv = converse(stub_for(), b"vFile:open:6a", b"m400000", b"Zx", b"qXfer:exec-file:read::0,1")
    assert conv.replies == [b"", b"E01", b"", b""]


def test_every_request_type_has_a_handler() -> None:
    assert set(typing.get_args(rq.Request)) <= set(HANDLERS)


# --- target description -------------------------------------------------------------------


def test_qxfer_features_chunks_reassemble_the_xml() -> None:
    stub = stub_for()
    xml = TARGET_XML.encode()
    packets = [b"qXfer:features:read:target.xml:%x,100" % off for off in range(0, len(xml), 0x100)]
    chunks = converse(stub, *packets).replies
    assert all(c.startswith(b"m") for c in chunks[:-1])
    assert chunks[-1].startswith(b"l")
    assert b"".join(c[1:] for c in chunks) == xml


def test_qxfer_features_edges() -> None:
    xml = TARGET_XML.encode()
    conv = converse(
        stub_for(),
        b"qXfer:features:read:target.xml:0,%x" % len(xml),
        b"qXfer:features:read:target.xml:%x,100" % (len(xml) + 5),
        b"qXfer:features:read:nope.xml:0,100",
    )
    assert conv.replies == [b"l" + xml, b"l", b"E00"]


# --- registers ----------------------------------------------------------------------------


def test_g_is_all_registers_in_order() -> None:
    stub = stub_for()
    target = typing.cast(FullToyTarget, stub.target)
    assert one(stub, b"g") == hex_encode(b"".join(target.regs))


def test_G_writes_all_registers() -> None:
    stub = stub_for()
    target = typing.cast(FullToyTarget, stub.target)
    blob = bytes(range(256)) * 2
    data = blob[: sum(len(r) for r in target.regs)]
    conv = converse(stub, b"G" + hex_encode(data), b"g", b"G00")
    assert conv.replies == [b"OK", hex_encode(data), b"E16"]


def test_p_and_P_single_registers() -> None:
    conv = converse(stub_for(), b"p10", b"P10=1122334455667788", b"p10", b"p100", b"P100=00")
    assert conv.replies == [
        b"0000400000000000",
        b"OK",
        b"1122334455667788",
        b"E16",
        b"E16",
    ]


# --- memory -------------------------------------------------------------------------------


def test_memory_reads_and_writes() -> None:
    stub = stub_for(b"\x90\x91\x92\x93")
    special = b"#$}*\x03\x00"
    conv = converse(
        stub,
        b"m400000,4",
        b"M400010,2:beef",
        b"m400010,2",
        b"X400020,%x:" % len(special) + special,
        b"m400020,%x" % len(special),
        b"X400000,0:",
        b"m500000,4",
        b"m%x,10" % (MEM_BASE + MEM_SIZE - 2),
        b"M500000,1:00",
    )
    assert conv.replies == [
        b"90919293",
        b"OK",
        b"beef",
        b"OK",
        hex_encode(special),
        b"OK",
        b"E14",
        b"0000",  # partial read
        b"E14",
    ]


def test_huge_memory_read_is_capped_to_the_packet_size() -> None:
    reply = one(stub_for(), b"m400000,ffffffff")
    assert len(reply) <= 0x4000
    assert set(reply) == {ord("0")}


# --- run control --------------------------------------------------------------------------


def test_single_step_reports_the_new_pc() -> None:
    conv = converse(stub_for(bytes([NOP, NOP])), b"s", b"vCont;s:1")
    assert conv.replies == [
        b"T05" + rip_field(0x400001) + b"7:00ff400000000000;6:0000000000000000;thread:1;",
        b"T05" + rip_field(0x400002) + b"7:00ff400000000000;6:0000000000000000;thread:1;",
    ]


def test_resume_at_address_and_with_signal() -> None:
    stub = stub_for(bytes([NOP] * 16))
    target = typing.cast(FullToyTarget, stub.target)
    conv = converse(stub, b"s400008", b"S0b;400004", b"vCont;S0a:1;c")
    assert [r[:3] for r in conv.replies] == [b"T05"] * 3
    assert rip_field(0x400009) in conv.replies[0]
    assert rip_field(0x400005) in conv.replies[1]
    assert target.signals == [None, 0xB, 0xA]


def test_continue_to_software_breakpoint_reports_swbreak_when_negotiated() -> None:
    stub = stub_for(bytes([NOP] * 8))
    conv = converse(stub, OFFER, b"Z0,400004,1", b"c")
    assert conv.replies[1:] == [b"OK", b"T05swbreak:;" + rip_field(0x400004) + _tail()]


def test_swbreak_not_sent_unless_gdb_offered_it() -> None:
    stub = stub_for(bytes([NOP] * 8))
    conv = converse(stub, b"qSupported:hwbreak+", b"Z0,400004,1", b"c")
    assert conv.replies[2] == b"T05" + rip_field(0x400004) + _tail()


def test_hardware_breakpoint_reports_hwbreak() -> None:
    stub = stub_for(bytes([NOP] * 8))
    conv = converse(stub, OFFER, b"Z1,400003,1", b"vCont;c", b"z1,400003,1", b"c")
    assert conv.replies[2] == b"T05hwbreak:;" + rip_field(0x400003) + _tail()
    assert conv.replies[4].startswith(b"T04")  # ran off the end of the nops: SIGILL


def test_write_watchpoint_reports_watch_with_address() -> None:
    stub = stub_for(store(0x400100, 7) + bytes([NOP]))
    target = typing.cast(FullToyTarget, stub.target)
    conv = converse(stub, OFFER, b"Z2,400100,4", b"c", b"z2,400100,4", b"Z2,400100,0")
    assert conv.replies[1:] == [
        b"OK",
        b"T05watch:400100;" + rip_field(0x400006) + _tail(),
        b"OK",
        b"E16",  # the target refused a zero-length watchpoint
    ]
    assert target.mem[0x100] == 7


@pytest.mark.parametrize(("ztype", "name"), [(3, b"rwatch"), (4, b"awatch")])
def test_read_and_access_watch_names(ztype: int, name: bytes) -> None:
    caps = Capabilities.probe(FullToyTarget())
    reply = stop_reply(Watch(WatchKind(ztype), 0x1234), caps, set())
    assert reply == b"T05" + name + b":1234;thread:1;"


def test_exit_reports_w_status() -> None:
    stub = stub_for(bytes([NOP, EXIT]))
    typing.cast(FullToyTarget, stub.target).set_reg("rax", 0x2A)
    conv = converse(stub, b"c", b"?")
    assert conv.replies == [b"W2a", b"W2a"]


def test_vcont_query_lists_c_and_C_and_range() -> None:
    assert one(stub_for(), b"vCont?") == b"vCont;c;C;s;S;r"


def test_vcont_query_offers_range_only_to_a_range_stepping_target() -> None:
    assert stub_for().caps.has(Cap.RANGE_STEP)
    assert not stub_for(target_cls=ToyTarget).caps.has(Cap.RANGE_STEP)
    assert one(stub_for(target_cls=ToyTarget), b"vCont?") == b"vCont;c;C;s;S"


def test_vcont_range_is_unsupported_without_range_stepping() -> None:
    stub = stub_for(bytes([NOP] * 6), ToyTarget)
    target = stub.target
    assert isinstance(target, ToyTarget)
    conv = converse(stub, b"vCont;r400000,400004:1;c", b"vCont;s:1")
    assert conv.replies[0] == b""  # not a stop: gdb falls back to single steps
    assert target.executed == 1 and target.chunks == 1  # only the vCont;s ran
    assert conv.replies[1] == b"T05" + rip_field(0x400001) + _tail()


def test_vcont_range_step_stays_inside_the_range() -> None:
    stub = stub_for(bytes([NOP] * 6))
    target = typing.cast(FullToyTarget, stub.target)
    reply = one(stub, b"vCont;r400000,400004:1;c")
    assert reply == b"T05" + rip_field(0x400004) + _tail()
    assert target.executed == 4
    # One move performed by the target, not one resume per instruction by the stub.
    assert target.signals == [] and target.chunks == 1


def test_vcont_range_step_is_chunked_and_interruptible() -> None:
    stub = stub_for(jump(-2))  # loops inside [400000, 400002) forever
    target = typing.cast(FullToyTarget, stub.target)
    conv = converse(stub, b"vCont;r400000,400002:1", raw=b"\x03")
    assert conv.replies == [b"T02" + EXPEDITED0 + b"thread:1;"]
    assert target.interrupted == 1 and target.executed > 0


def test_vcont_range_step_ends_when_a_jump_leaves_the_range() -> None:
    stub = stub_for(bytes([NOP]) + jump(0x10))
    reply = one(stub, b"vCont;r400000,400008")
    assert reply == b"T05" + rip_field(0x400013) + _tail()


def test_vcont_range_step_stops_at_breakpoint_inside_range() -> None:
    stub = stub_for(bytes([NOP] * 8))
    target = typing.cast(FullToyTarget, stub.target)
    conv = converse(
        stub,
        OFFER,
        b"Z0,400002,1",
        b"Z1,400005,1",
        b"vCont;r400000,400008",
        b"z0,400002,1",
        b"vCont;r400002,400008",
        b"z1,400005,1",
        b"vCont;r400005,400008",
    )
    assert conv.replies[3] == b"T05swbreak:;" + rip_field(0x400002) + _tail()
    assert conv.replies[5] == b"T05hwbreak:;" + rip_field(0x400005) + _tail()
    assert conv.replies[7] == b"T05" + rip_field(0x400008) + _tail()
    assert target.executed == 8


def test_vcont_without_an_action_for_our_thread_is_an_error() -> None:
    conv = converse(stub_for(), b"vCont;c:2", b"vCont;t")
    assert conv.replies == [b"E16", b"T00" + EXPEDITED0 + b"thread:1;"]


# --- reverse --------------------------------------------------------------------------------


def test_reverse_step_undoes_and_hits_begin_of_history() -> None:
    stub = stub_for(bytes([NOP, NOP, NOP]))
    conv = converse(stub, OFFER, b"s", b"s", b"bs", b"bs", b"bs")
    assert conv.replies[3] == b"T05" + rip_field(0x400001) + _tail()
    assert conv.replies[4] == b"T05" + rip_field(0x400000) + _tail()
    assert conv.replies[5] == b"T05replaylog:begin;" + rip_field(0x400000) + _tail()


def test_reverse_continue_stops_at_earlier_breakpoint_not_the_current_one() -> None:
    stub = stub_for(bytes([NOP] * 10))
    conv = converse(stub, OFFER, b"Z0,400008,1", b"c", b"Z0,400002,1", b"bc", b"z0,400002,1", b"bc")
    assert conv.replies[2] == b"T05swbreak:;" + rip_field(0x400008) + _tail()
    assert conv.replies[4] == b"T05swbreak:;" + rip_field(0x400002) + _tail()
    assert conv.replies[6] == b"T05replaylog:begin;" + rip_field(0x400000) + _tail()


def test_illegal_stop_reasons_degrade_to_a_plain_stop() -> None:
    minimal = Capabilities.probe(ToyTarget())
    offered = {"swbreak+", "hwbreak+"}
    assert stop_reply(ReplayLogBegin(), minimal, offered) == b"T05thread:1;"
    assert stop_reply(SwBreak(), minimal, offered) == b"T05thread:1;"
    assert stop_reply(Watch(WatchKind.WRITE, 1), minimal, offered) == b"T05thread:1;"
    assert stop_reply(Signal(2), minimal, offered) == b"T02thread:1;"


# --- interrupt, disconnect, monitor, k, D -------------------------------------------------


def test_ctrl_c_interrupts_a_long_continue() -> None:
    stub = stub_for(jump(-2))  # loops forever
    target = typing.cast(FullToyTarget, stub.target)
    conv = converse(stub, b"c", raw=b"\x03")
    assert conv.replies == [b"T02" + EXPEDITED0 + b"thread:1;"]
    assert target.executed > 0
    assert target.interrupted == 1


def test_packets_queued_while_running_are_handled_after_the_stop() -> None:
    stub = stub_for(jump(-2))
    conv = converse(stub, b"c", b"qC", raw=b"\x03")
    assert [r[:3] for r in conv.replies] == [b"T02", b"QC1"]


def test_disconnect_while_running_interrupts_and_keeps_the_target() -> None:
    stub = stub_for(jump(-2))
    target = typing.cast(FullToyTarget, stub.target)
    transport = MemoryTransport([encode_packet(b"M400100,1:aa"), encode_packet(b"c"), b""])
    end = stub.serve_connection(transport)
    assert replies(bytes(transport.sent)) == [b"OK"]
    assert end is SessionEnd.DISCONNECTED
    assert target.interrupted == 1
    again = converse(stub, b"?", b"m400100,1")
    assert again.replies == [b"T02" + EXPEDITED0 + b"thread:1;", b"aa"]


def test_monitor_command_output_then_ok() -> None:
    conv = converse(stub_for(), b"qRcmd," + hex_encode(b"hello"), b"qRcmd,6661696c")
    assert conv.replies == [
        b"O" + hex_encode(b"you said: hello\n"),
        b"O" + hex_encode(b"done\n"),
        b"OK",
        b"E16",
    ]


def test_kill_ends_the_session_without_reply() -> None:
    stub = stub_for()
    conv = converse(stub, b"k", b"qC")
    assert conv.end is SessionEnd.KILLED
    assert conv.replies == []
    assert typing.cast(FullToyTarget, stub.target).killed


def test_detach_replies_ok_and_ends_the_session() -> None:
    conv = converse(stub_for(), b"D;1", b"qC")
    assert conv.end is SessionEnd.DETACHED
    assert conv.replies == [b"OK"]


def test_target_exceptions_become_error_replies() -> None:
    stub = GdbStub(CrashingTarget())
    conv = converse(stub, b"g", b"m400000,4", b"c", b"qRcmd,6372617368", b"p10", b"qC")
    assert conv.replies == [b"E05", b"E14", b"E05", b"E05", b"0000400000000000", b"QC1"]


def _tail() -> bytes:
    return b"7:00ff400000000000;6:0000000000000000;thread:1;"


def test_pc_is_target_register_sized() -> None:
    assert PC == 16


class _TalkingTarget(FullToyTarget):
    """Has console output to give once (a ConsoleOutput target)."""

    def __init__(self, code: bytes) -> None:
        super().__init__(code)
        self.pending = ""

    def take_console_output(self) -> str:
        text, self.pending = self.pending, ""
        return text

    def write_memory(self, addr: int, data: bytes) -> None:
        super().write_memory(addr, data)
        self.pending = "history rewritten\n"


def test_console_output_target_is_probed() -> None:
    assert stub_for(b"", _TalkingTarget).caps.has(Cap.CONSOLE)
    assert not stub_for(b"").caps.has(Cap.CONSOLE)


def test_target_console_output_is_sent_once_before_the_next_stop_reply() -> None:
    stub = stub_for(bytes([NOP] * 8), _TalkingTarget)
    conv = converse(stub, b"M400100,1:05", b"s", b"s")
    # The M reply stays a plain OK; the text goes out as O while the next resume runs.
    assert conv.replies[0] == b"OK"
    assert conv.replies[1] == b"O" + b"history rewritten\n".hex().encode()
    assert conv.replies[2].startswith(b"T05")
    assert conv.replies[3].startswith(b"T05")
    assert len(conv.replies) == 4
