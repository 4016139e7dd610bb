"""Issue 20, "the stub never wedges": each defect reproduced against the stub's doubles.

Out-of-range breakpoints, refused register writes, a malformed packet in no-ack mode, a
second or silent client, IPv6 listening and interruptible monitor commands. Tests block on
sockets or events, never on sleeps; the one latency bound (Ctrl-C during a monitor command)
is a generous upper limit.
"""

from __future__ import annotations

import logging
import socket
import time
import typing
from collections.abc import Callable

import pytest
from gdbstub_doubles import (
    NOP,
    REGNUM,
    BlockingMonitorTarget,
    Client,
    FullToyTarget,
    RefusingTarget,
    RunningServer,
    converse,
    jump,
    replies,
)
from support import tool_missing

from gdbstub import GdbServer, GdbStub, MemoryTransport, SessionEnd
from gdbstub.packet import Ack, Corrupt, Interrupt, Packet, PacketReader, encode_packet, hex_encode
from gdbstub.server import BUSY_REPLY

Serve = Callable[..., RunningServer]
TIMEOUT = 10
T05_AT_1 = b"T0510:0100400000000000;"


def _stub(target: FullToyTarget | None = None) -> GdbStub:
    return GdbStub(target or FullToyTarget(bytes([NOP] * 8)))


# --- breakpoints the target can never hit ---------------------------------------------------


@pytest.mark.parametrize("packet", [b"Z0,10000000000000000,1", b"Z1,10000000000000000,1",
                                    b"Z3,10000000000000000,1", b"Z2,ffffffffffffffff,8"])
def test_out_of_range_breakpoint_is_refused_and_resumes_still_work(packet: bytes) -> None:
    stub = _stub()
    target = typing.cast(FullToyTarget, stub.target)
    conv = converse(stub, packet, b"s", b"vCont;c")
    assert conv.replies[0] == b"E01"
    assert conv.replies[1].startswith(T05_AT_1)
    assert conv.replies[2].startswith(b"T04")  # ran off the nops: the toy's SIGILL
    assert not target.sw_bps and not target.hw_bps and not target.watches
    assert stub.breakpoints == {0: set(), 1: set()}


def test_breakpoints_the_target_refuses_are_errors_and_not_recorded() -> None:
    stub = _stub(RefusingTarget(bytes([NOP] * 8)))
    conv = converse(stub, b"Z0,ffffffffffffffff,1", b"Z1,ffffffffffffffff,1",
                    b"Z0,400004,1", b"s")
    assert conv.replies[:3] == [b"E16", b"E16", b"OK"]
    assert conv.replies[3].startswith(T05_AT_1)
    assert stub.breakpoints == {0: {0x400004}, 1: set()}


# --- register writes the target refuses -------------------------------------------------------


def test_refused_register_writes_are_error_replies_without_tracebacks(
        caplog: pytest.LogCaptureFixture) -> None:
    stub = _stub(RefusingTarget(bytes([NOP] * 8)))
    caplog.set_level(logging.DEBUG, logger="gdbstub")
    fs = b"P%x=ffff0000" % REGNUM["fs"]
    rbx = b"P%x=0100000000000000" % REGNUM["rbx"]
    conv = converse(stub, fs, rbx, b"G" + b"00" * 8, b"qC", b"s")
    assert conv.replies[:4] == [b"E16", b"E05", b"E05", b"QC1"]
    assert conv.replies[4].startswith(T05_AT_1)
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    # The expected refusal (TargetError) is not a problem; each target bug is ONE line.
    assert [r.getMessage() for r in problems] == [
        "target failed handling WriteRegister(regnum=1, value=b'\\x01\\x00\\x00\\x00\\x00"
        "\\x00\\x00\\x00'): RuntimeError: emulator refused the register write",
        "target failed handling WriteRegisters(data=b'\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
        "\\x00'): RuntimeError: emulator refused the register file",
    ]
    assert all(r.exc_info is None for r in problems)


def test_a_huge_failing_request_is_logged_short(caplog: pytest.LogCaptureFixture) -> None:
    stub = _stub(RefusingTarget())
    converse(stub, b"G" + b"ab" * 4000)
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(record.getMessage()) < 200


# --- framing: no-ack mode resynchronises on the next '$' ------------------------------------


def test_no_ack_malformed_packet_does_not_swallow_the_next_one() -> None:
    conv = converse(_stub(), b"QStartNoAckMode", raw=b"$g#" + encode_packet(b"qC"))
    assert conv.replies == [b"OK", b"QC1"]
    conv = converse(_stub(), b"QStartNoAckMode", raw=b"$g#3" + encode_packet(b"qC"))
    assert conv.replies == [b"OK", b"QC1"]


def test_ack_mode_nacks_the_malformed_packet_and_answers_the_next() -> None:
    conv = converse(_stub(), raw=b"$g#" + encode_packet(b"qC"))
    assert conv.sent == b"-+" + encode_packet(b"QC1")


def test_reader_resynchronises_on_the_byte_after_a_truncated_checksum() -> None:
    events = PacketReader().feed(b"$g#\x03$qC#b4$m#+")
    assert events[0] == Corrupt("non-hex checksum digit")
    assert events[1:] == [Interrupt(), Packet(b"qC"), Corrupt("non-hex checksum digit"), Ack()]


# --- one client at a time ---------------------------------------------------------------------


class _ScriptedSilence(MemoryTransport):
    """Silent until ``speak_after`` timed-out waits; records every timeout asked for."""

    def __init__(self, chunks: list[bytes]) -> None:
        super().__init__(chunks)
        self.timeouts: list[float | None] = []

    def recv(self, timeout: float | None) -> bytes | None:
        self.timeouts.append(timeout)
        return super().recv(timeout)


def test_idle_timeout_applies_only_until_the_first_packet() -> None:
    stub = GdbStub(FullToyTarget(), idle_timeout=5.0)
    transport = _ScriptedSilence([encode_packet(b"qC")])
    stub.serve_connection(transport)
    assert transport.timeouts[0] is not None and 0 < transport.timeouts[0] <= 5.0
    assert transport.timeouts[1:] == [None]  # after a packet: wait for gdb forever


def test_silent_connection_is_dropped_and_the_next_client_served(serve: Serve) -> None:
    target = FullToyTarget()
    running = serve(target, idle_timeout=0.2)
    silent = running.connect()
    start = time.monotonic()
    assert silent.read_all() == b""  # dropped without a word
    assert time.monotonic() - start < TIMEOUT
    silent.close()
    client = running.connect()
    assert client.request(b"qC") == b"QC1"
    client.close()


def test_second_client_is_refused_clearly_while_the_first_is_served(serve: Serve) -> None:
    running = serve(FullToyTarget())
    first = running.connect()
    assert first.request(b"qC") == b"QC1"
    second = running.connect()
    second.send(b"qSupported")  # what gdb sends at once
    assert second.read_all() == b"+" + encode_packet(BUSY_REPLY)
    second.close()
    assert first.request(b"p10") == b"0000400000000000"  # the first session is unharmed
    first.close()
    third = running.connect()
    assert third.request(b"qC") == b"QC1"
    third.close()
    assert running.server.refused == 1


def test_a_client_waiting_behind_a_silent_one_is_served_once_it_is_dropped(
        serve: Serve) -> None:
    running = serve(FullToyTarget(), idle_timeout=0.2)
    silent = running.connect()
    waiting = running.connect()  # within the busy grace of the drop
    assert waiting.request(b"qC") == b"QC1"
    assert silent.read_all() == b""
    silent.close()
    waiting.close()


def test_a_connection_flood_is_refused_and_cannot_fill_the_accept_queue(
        serve: Serve) -> None:
    running = serve(FullToyTarget())
    first = running.connect()
    assert first.request(b"qC") == b"QC1"
    flood = 300  # more than the listen backlog, all at once
    others = [running.connect() for _ in range(flood)]
    for other in others:  # one waits out the busy grace (1 s), the rest are refused at once
        assert other.read_all() == b"+" + encode_packet(BUSY_REPLY)
        other.close()
    assert running.server.refused == flood
    assert first.request(b"qC") == b"QC1"
    first.close()
    after = running.connect()
    assert after.request(b"qC") == b"QC1"
    after.close()


# --- listening on IPv6, clean errors ---------------------------------------------------------


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize("host", ["::1", "::"])
def test_listen_on_ipv6(serve: Serve, host: str) -> None:
    if not _ipv6_loopback():
        # A developer's container may lack ::1 (Docker disables IPv6 by default); CI must
        # have it: there this is a failure, not a silent skip.
        tool_missing("no IPv6 loopback (::1) here")
    running = serve(FullToyTarget(), host=host)
    bound, port = running.server.address
    assert bound == host and port > 0
    client = Client(port, "::1")
    assert client.request(b"qC") == b"QC1"
    client.close()


@pytest.mark.parametrize(("host", "port"), [("127.0.0.1", 70000), ("127.0.0.1", -1),
                                            ("no-such-host.invalid", 0), ("a\0b", 0),
                                            ("192.0.2.1", 0)])
def test_listen_errors_are_oserrors(host: str, port: int) -> None:
    with pytest.raises(OSError):
        GdbServer.listen(FullToyTarget(), host, port)


def test_listen_on_a_port_in_use_is_an_oserror() -> None:
    with GdbServer.listen(FullToyTarget()) as server, pytest.raises(OSError):
        GdbServer.listen(FullToyTarget(), "127.0.0.1", server.port)


# --- monitor commands are interruptible ------------------------------------------------------


def test_ctrl_c_interrupts_a_monitor_command_in_a_scripted_session() -> None:
    stub = GdbStub(BlockingMonitorTarget())
    target = typing.cast(BlockingMonitorTarget, stub.target)
    conv = converse(stub, b"qRcmd," + hex_encode(b"spin"), b"qC", raw=b"\x03")
    assert conv.replies == [b"O" + hex_encode(b"spinning\n"),
                            b"O" + hex_encode(b"interrupted\n"), b"OK", b"QC1"]
    assert target.interrupted == 1
    assert target.monitor_thread is not None and not target.monitor_thread.is_alive()


def test_ctrl_c_interrupts_a_monitor_command_over_tcp_within_a_second(serve: Serve) -> None:
    target = BlockingMonitorTarget()
    running = serve(target)
    client = running.connect()
    assert client.request(b"QStartNoAckMode") == b"OK"
    client.send(b"qRcmd," + hex_encode(b"spin"))
    assert client.recv_packet() == b"O" + hex_encode(b"spinning\n")
    assert target.started.wait(TIMEOUT)
    start = time.monotonic()
    client.send_raw(b"\x03")
    assert client.recv_packet() == b"O" + hex_encode(b"interrupted\n")
    assert client.recv_packet() == b"OK"
    assert time.monotonic() - start <= 1.0
    assert client.request(b"qC") == b"QC1"  # and the session goes on
    client.close()


def test_disconnect_during_a_monitor_command_interrupts_it(serve: Serve) -> None:
    target = BlockingMonitorTarget(jump(-2))
    running = serve(target)
    client = running.connect()
    client.send(b"qRcmd," + hex_encode(b"spin"))
    assert target.started.wait(TIMEOUT)
    client.close()
    again = running.connect()
    assert again.request(b"qC") == b"QC1"
    assert target.stop.is_set() and target.interrupted == 1
    again.close()


def test_monitor_output_and_errors_are_unchanged_on_the_worker_thread() -> None:
    conv = converse(_stub(), b"qRcmd," + hex_encode(b"hi"), b"qRcmd," + hex_encode(b"fail"),
                    b"qRcmd," + hex_encode(b"crash"), b"qC")
    assert replies(conv.sent) == [b"O" + hex_encode(b"you said: hi\n"),
                                  b"O" + hex_encode(b"done\n"), b"OK", b"E16", b"E05", b"QC1"]
    assert conv.end is SessionEnd.DISCONNECTED
