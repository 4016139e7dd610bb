"""The adapter at the packet level, with a raw RSP client against raw blobs (no gdb)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from blobs import BASE, COUNTER
from gdbmi import Served
from rsp import RspClient, le, parse_stop

import syxdbg
from gdbstub import SessionEnd

ARCHES = ["x86_64", "aarch64"]
PC = {"x86_64": 0x10, "aarch64": 0x20}
SP = {"x86_64": 0x07, "aarch64": 0x1F}
FP = {"x86_64": 0x06, "aarch64": 0x1D}


@contextmanager
def serve_blob(blob: Callable[[str, str], Path], arch: str, name: str) -> Iterator[Served]:
    srv = Served(syxdbg.open(str(blob(arch, name)), raw=True, arch=arch, base=BASE))
    try:
        yield srv
    finally:
        srv.close()


def pc_of(reply: bytes, arch: str) -> int:
    _, fields = parse_stop(reply)
    return le(fields[f"{PC[arch]:x}"])


@pytest.mark.parametrize("arch", ARCHES)
def test_handshake_description_and_registers(blob, arch: str) -> None:
    with serve_blob(blob, arch, "steps") as srv:
        c = RspClient(srv.port, no_ack=False)
        sup = c.ask(b"qSupported:multiprocess+;swbreak+;hwbreak+;vContSupported+")
        for feature in (b"PacketSize=", b"QStartNoAckMode+", b"qXfer:features:read+",
                        b"swbreak+", b"hwbreak+", b"vContSupported+"):
            assert feature in sup
        assert c.ask(b"QStartNoAckMode") == b"OK"
        c.ack = False
        xml = b""
        while True:
            chunk = c.ask(b"qXfer:features:read:target.xml:%x,800" % len(xml))
            xml += chunk[1:]
            if chunk[:1] == b"l":
                break
        if arch == "x86_64":
            for reg in (b"st0", b"fctrl", b"fop", b"xmm15", b"i386:x86-64"):
                assert reg in xml
        else:
            for reg in (b"org.gnu.gdb.aarch64.core", b"org.gnu.gdb.aarch64.fpu", b"v31",
                        b"fpcr"):
                assert reg in xml
        stop = c.ask(b"?")
        sig, fields = parse_stop(stop)
        assert sig == 5
        assert le(fields[f"{PC[arch]:x}"]) == BASE
        assert f"{SP[arch]:x}" in fields and f"{FP[arch]:x}" in fields
        regs = bytes.fromhex(c.ask(b"g").decode())
        arch_spec = srv.session.machine.arch
        assert len(regs) == sum(r.size for r in arch_spec.registers)
        assert c.ask(b"qC") == b"QC1" and c.ask(b"qfThreadInfo") == b"m1"
        assert c.ask(b"qsThreadInfo") == b"l" and c.ask(b"qAttached") == b"1"
        assert c.ask(b"Hg0") == b"OK" and c.ask(b"T1") == b"OK"
        # P then p, and G round trip.
        assert c.ask(b"P%x=%s" % (PC[arch], (BASE + 4).to_bytes(8, "little").hex().encode())) \
            == b"OK"
        assert le(c.ask(b"p%x" % PC[arch]).decode()) == BASE + 4
        assert c.ask(b"G" + regs.hex().encode()) == b"OK"
        assert le(c.ask(b"p%x" % PC[arch]).decode()) == BASE
        assert c.ask(b"p%x" % 0x400).startswith(b"E")
        c.close()


def test_swbreak_only_when_gdb_offers_it(blob) -> None:
    with serve_blob(blob, "x86_64", "steps") as srv:
        c = RspClient(srv.port, no_ack=False)
        # The stub may advertise swbreak+ regardless (gdb ignores features it did not
        # offer); what matters is that no swbreak/hwbreak stop reason is then sent.
        c.ask(b"qSupported:multiprocess+")
        c.ask(b"QStartNoAckMode")
        c.ack = False
        assert c.ask(b"Z0,%x,1" % (BASE + 7)) == b"OK"
        stop = c.ask(b"vCont;c")
        assert stop.startswith(b"T05") and b"swbreak" not in stop
        assert pc_of(stop, "x86_64") == BASE + 7
        c.close()


@pytest.mark.parametrize("arch", ARCHES)
def test_memory_reads_writes_and_unreadable_memory(blob, arch: str) -> None:
    with serve_blob(blob, arch, "steps") as srv:
        c = RspClient(srv.port)
        assert c.ask(b"m%x,8" % COUNTER) == b"00" * 8
        assert c.ask(b"M%x,2:abcd" % COUNTER) == b"OK"
        assert c.ask(b"m%x,2" % COUNTER) == b"abcd"
        assert c.ask(b"X%x,0:" % COUNTER) == b"OK"
        assert c.ask(b"X%x,1:\x7d\x03" % COUNTER) == b"OK"  # escaped '#'
        assert c.ask(b"m%x,1" % COUNTER) == b"23"
        assert c.ask(b"m10,4").startswith(b"E")
        assert c.ask(b"M10,1:00").startswith(b"E")
        assert c.ask(b"mffffffffffffff00,4").startswith(b"E")
        c.close()


@pytest.mark.parametrize("arch", ARCHES)
def test_breakpoints_steps_and_range_steps(blob, arch: str) -> None:
    with serve_blob(blob, arch, "steps") as srv:
        m = srv.session.machine
        c = RspClient(srv.port)
        c.ask(b"qSupported:swbreak+;hwbreak+")
        insns = [a for a, *_ in m.disassemble(BASE, 9)]
        stop = c.ask(b"vCont;s:1")
        assert pc_of(stop, arch) == insns[1] and b"swbreak" not in stop
        assert c.ask(b"Z0,%x,1" % insns[4]) == b"OK"
        assert c.ask(b"Z0,%x,1" % insns[4]) == b"OK"  # idempotent
        assert c.ask(b"Z1,%x,1" % insns[5]) == b"OK"
        stop = c.ask(b"vCont;c")
        assert b"swbreak:;" in stop and pc_of(stop, arch) == insns[4]
        assert m.position == 4
        stop = c.ask(b"vCont;c")  # steps off the breakpoint it is stopped at
        assert b"hwbreak:;" in stop and pc_of(stop, arch) == insns[5]
        assert c.ask(b"z0,%x,1" % insns[4]) == b"OK" and c.ask(b"z1,%x,1" % insns[5]) == b"OK"
        # Range step [insns[5], insns[7]) stops at the first pc outside it.
        stop = c.ask(b"vCont;r%x,%x:1;c" % (insns[5], insns[7]))
        assert pc_of(stop, arch) == insns[7] and m.position == 7
        c.close()


@pytest.mark.parametrize("arch", ARCHES)
def test_watchpoint_stop_follows_the_architecture(blob, arch: str) -> None:
    with serve_blob(blob, arch, "steps") as srv:
        m = srv.session.machine
        c = RspClient(srv.port)
        insns = [a for a, *_ in m.disassemble(BASE, 9)]
        assert c.ask(b"Z2,%x,8" % COUNTER) == b"OK"
        stop = c.ask(b"vCont;c")
        sig, fields = parse_stop(stop)
        assert sig == 5 and int(fields["watch"], 16) == COUNTER
        value = le(c.ask(b"m%x,8" % COUNTER).decode())
        if arch == "x86_64":  # after the write: pc at the next instruction, new value
            assert pc_of(stop, arch) == insns[3] and value == 7 and m.position == 3
        else:  # before the write: pc at the store, old value; gdb steps it (z2, s, Z2)
            assert pc_of(stop, arch) == insns[2] and value == 0 and m.position == 2
            assert c.ask(b"z2,%x,8" % COUNTER) == b"OK"
            assert pc_of(c.ask(b"vCont;s:1"), arch) == insns[3]
            assert le(c.ask(b"m%x,8" % COUNTER).decode()) == 7
            assert c.ask(b"Z2,%x,8" % COUNTER) == b"OK"
        assert c.ask(b"Z3,%x,8" % COUNTER) == b"OK"
        stop = c.ask(b"vCont;c")
        assert "watch" in parse_stop(stop)[1]  # the second store
        assert c.ask(b"z2,%x,8" % COUNTER) == b"OK"
        if arch == "aarch64":
            c.ask(b"vCont;s:1")
        stop = c.ask(b"vCont;c")
        _, fields = parse_stop(stop)
        assert int(fields["rwatch"], 16) == COUNTER  # the load
        c.close()


@pytest.mark.parametrize("arch", ARCHES)
def test_fault_is_a_signal_then_termination(blob, arch: str) -> None:
    with serve_blob(blob, arch, "steps") as srv:
        m = srv.session.machine
        c = RspClient(srv.port)
        insns = [a for a, *_ in m.disassemble(BASE, 9)]
        fault_pc = insns[7] if arch == "x86_64" else insns[8]
        stop = c.ask(b"vCont;c")
        assert stop.startswith(b"T0b") and pc_of(stop, arch) == fault_pc
        assert c.ask(b"?").startswith(b"T0b")
        # Continuing without the signal re-executes the faulting instruction.
        assert c.ask(b"vCont;c").startswith(b"T0b")
        assert c.ask(b"vCont;C0b") == b"X0b"
        c.close()


def test_program_exit_gives_W_with_status(build_program) -> None:
    exe = build_program("hello", "gcc")
    srv = Served(syxdbg.open(str(exe), ("--exit=42",)))
    try:
        c = RspClient(srv.port)
        # The end of history first: a stop gdb can reverse from (rr, record-full) ...
        assert c.ask(b"vCont;c").startswith(b"T05replaylog:end;")
        # ... then resuming forward reports the exit.
        assert c.ask(b"vCont;c") == b"W2a"
        assert c.ask(b"vCont;c") == b"W2a"
        c.close()
    finally:
        srv.close()


@pytest.mark.parametrize("arch", ARCHES)
def test_ctrl_c_disconnect_reconnect_and_kill(blob, arch: str) -> None:
    with serve_blob(blob, arch, "spin") as srv:
        m = srv.session.machine
        c = RspClient(srv.port)
        c.send(b"vCont;c")
        c.send_raw(b"\x03")
        stop = c.reply()
        assert stop.startswith(b"T02")
        pos = m.position
        assert pos > 0
        # The stop is at an exact position: pc and the counter agree with it.
        counter = le(c.ask(b"m%x,8" % COUNTER).decode())
        assert counter > 0
        # Disconnect in the middle of a run: the machine keeps its state.
        c.send(b"vCont;c")
        c.close()
        c2 = RspClient(srv.port)
        assert c2.ask(b"?").startswith(b"T02")
        state = (m.position, m.pc, le(c2.ask(b"m%x,8" % COUNTER).decode()))
        assert state[0] > pos and state[2] > counter
        assert c2.ask(b"vCont;s:1").startswith(b"T05") and m.position == state[0] + 1
        assert c2.ask(b"D") == b"OK"
        c3 = RspClient(srv.port)
        assert c3.ask(b"?").startswith(b"T05")
        c3.send(b"k")
        assert c3.closed_by_peer()
        srv.thread.join(timeout=60)
        assert srv.ends == [SessionEnd.DISCONNECTED, SessionEnd.DETACHED, SessionEnd.KILLED]
        assert srv.target.killed


def test_monitor_commands(blob) -> None:
    with serve_blob(blob, "x86_64", "steps") as srv:
        c = RspClient(srv.port)
        assert c.ask(b"qRcmd," + b"help".hex().encode()) == b"OK"
        text = b"".join(c.console).decode()
        for name in ("help", "info", "regions", "when", "goto", "last-write"):
            assert f"  {name} " in text
        assert "(mappings)" in text and "  stepi " not in text  # gdb steps by itself
        c.console.clear()
        assert c.ask(b"qRcmd," + b"info".hex().encode()) == b"OK"
        text = b"".join(c.console).decode()
        assert "position:  0" in text and f"pc:        {BASE:#x}" in text
        c.console.clear()
        assert c.ask(b"qRcmd," + b"regions".hex().encode()) == b"OK"
        assert "[stack]" in b"".join(c.console).decode()
        c.console.clear()
        assert c.ask(b"qRcmd," + b"bogus".hex().encode()) == b"OK"
        assert "unknown command" in b"".join(c.console).decode()
        c.close()


def test_linux_signals_are_translated_to_gdb_numbers() -> None:
    from syxdbg.gdb_target import gdb_signal

    assert [gdb_signal(s) for s in (4, 5, 6, 7, 8, 10, 11, 12, 31)] == \
        [4, 5, 6, 10, 8, 30, 11, 31, 12]


def test_emulation_error_is_reported_as_a_trap(blob, tmp_path: Path,
                                               capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "sys.bin"
    path.write_bytes(b"\x0f\x05\x90\x90")  # syscall; a raw blob has no syscall layer
    srv = Served(syxdbg.open(str(path), raw=True, arch="x86_64", base=BASE))
    try:
        c = RspClient(srv.port)
        assert c.ask(b"vCont;c").startswith(b"T05")
        assert "no syscall layer" in capfd.readouterr().err
        assert c.ask(b"qRcmd," + b"info".hex().encode()) == b"OK"
        c.close()
    finally:
        srv.close()
