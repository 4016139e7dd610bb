"""The TCP server over real loopback sockets: Ctrl-C, reconnects, k and D.

The server runs ``serve()`` in a thread on port 0. Tests never sleep: they block on socket
reads, or on an Event the toy target sets when it starts running.
"""

from __future__ import annotations

from collections.abc import Callable

from gdbstub_doubles import NOP, FullToyTarget, RunningServer, jump

from gdbstub import GdbServer, SessionEnd
from gdbstub.packet import encode_packet

Serve = Callable[..., RunningServer]
TIMEOUT = 10


def test_port_is_known_before_serving() -> None:
    with GdbServer.listen(FullToyTarget(), port=0) as server:
        host, port = server.address
        assert host == "127.0.0.1"
        assert port > 0


def test_ctrl_c_interrupts_a_long_continue_over_tcp(serve: Serve) -> None:
    target = FullToyTarget(jump(-2))  # an endless loop
    running = serve(target, chunk_seconds=0.01)
    client = running.connect()
    assert client.request(b"QStartNoAckMode") == b"OK"
    client.send(b"c")
    assert target.first_chunk.wait(TIMEOUT), "target never started running"
    client.send_raw(b"\x03")
    reply = client.recv_packet()
    assert reply.startswith(b"T02")
    assert b"thread:1;" in reply
    assert target.interrupted == 1
    assert target.chunks >= 1
    # still serving after the interrupt
    assert client.request(b"qC") == b"QC1"
    client.close()


def test_reconnect_after_disconnect_mid_run_keeps_target_state(serve: Serve) -> None:
    target = FullToyTarget(jump(-2))
    running = serve(target, chunk_seconds=0.01)
    first = running.connect()
    assert first.request(b"M400100,2:cafe") == b"OK"
    first.send(b"c")
    assert target.first_chunk.wait(TIMEOUT)
    first.close()  # gdb vanishes while the target runs

    second = running.connect()
    assert second.request(b"?").startswith(b"T02")
    assert second.request(b"m400100,2") == b"cafe"
    assert target.interrupted == 1
    second.close()


def test_detach_closes_the_connection_and_keeps_serving(serve: Serve) -> None:
    target = FullToyTarget(bytes([NOP] * 4))
    running = serve(target)
    client = running.connect()
    assert client.request(b"s").startswith(b"T05")
    assert client.request(b"D") == b"OK"
    assert client.wait_closed()
    client.close()

    again = running.connect()
    assert again.request(b"p10") == b"0100400000000000"  # pc kept from the step
    again.close()
    assert not target.killed


def test_kill_ends_serve(serve: Serve) -> None:
    target = FullToyTarget()
    running = serve(target)
    client = running.connect()
    client.send(b"k")
    assert client.wait_closed()
    running.thread.join(TIMEOUT)
    assert running.result == [SessionEnd.KILLED]
    assert target.killed
    client.close()


def test_garbage_and_bad_packets_over_tcp_do_not_kill_the_server(serve: Serve) -> None:
    running = serve(FullToyTarget())
    client = running.connect()
    client.send_raw(b"\xff\x00junk$m#00" + encode_packet(b"M0," + b"0" * 0x5000))
    client.send_raw(b"$qC#00")  # bad checksum: NAKed in ack mode
    assert client.request(b"qC") == b"QC1"
    client.close()
    again = running.connect()
    assert again.request(b"qC") == b"QC1"
    again.close()


def test_close_wakes_an_idle_server(serve: Serve) -> None:
    running = serve(FullToyTarget())
    client = running.connect()
    assert client.request(b"qC") == b"QC1"
    running.server.close()
    running.thread.join(TIMEOUT)
    assert running.result == [SessionEnd.CLOSED]
    client.close()
