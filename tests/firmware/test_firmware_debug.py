"""Debugging details on the Cortex-M machine: breakpoints inside Thumb IT blocks (raw RSP
and gdb-multiarch, which moves them to the IT instruction) and reading peripheral
registers from gdb."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fwbuild import BOARD, build_firmware

from syxdbg.errors import MemoryAccessError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gdb"))
from gdbmi import Gdb, served  # noqa: E402
from rsp import RspClient, it_block_stops, le, parse_stop  # noqa: E402


def gdb_outputs(gdb_path: str, program: str, commands: list[str]) -> list[str]:
    elf = build_firmware(program)
    with served(str(elf), options={"board": str(BOARD)}) as srv:
        gdb = Gdb(gdb_path, str(elf))
        try:
            gdb.cli(f"target remote :{srv.port}")
            return [gdb.cli(c, check=False) for c in commands]
        finally:
            gdb.close()


def test_rsp_breakpoints_inside_an_it_block() -> None:
    """``Z0`` kind 2 (16-bit ``addgt``) and kind 3 (32-bit ``movle.w``) inside ``ite gt``:
    each stops before its instruction, taken or not, at consecutive positions; backwards
    too."""
    elf = build_firmware("itblock")
    with served(str(elf), options={"board": str(BOARD)}) as srv:
        rsp = RspClient(srv.port)
        try:
            sym = srv.session.symbols
            then, other = sym["it_then"], sym["it_else"]
            seen = it_block_stops(rsp, then, other, lambda: srv.session.position)
            assert [(pc, r0) for pc, r0, _ in seen] == [(then, 1), (other, 1), (then, 11),
                                                        (other, 111)]
            assert seen[1][2] == seen[0][2] + 1 and seen[3][2] == seen[2][2] + 1
            sig, _ = parse_stop(rsp.ask(b"bc"))
            assert (le(rsp.ask(b"pf").decode()), srv.session.position) == (then, seen[2][2])
        finally:
            rsp.close()


def test_gdb_moves_an_it_block_breakpoint_to_the_it_instruction(gdb_multiarch: str) -> None:
    out = gdb_outputs(gdb_multiarch, "itblock", [
        "break *it_then", "continue", "info registers pc r0", "stepi", "x/i $pc", "stepi",
        "x/i $pc", "continue", "info registers r0"])
    assert "Breakpoint address adjusted" in out[0]
    assert "Breakpoint 1," in out[1] and "itfunc (x=x@entry=1)" in out[1]
    assert "addgt" in out[4] and "movle.w" in out[6]
    assert "itfunc (x=x@entry=11)" in out[7] and "0xb" in out[8]


def test_gdb_reads_peripheral_registers_without_side_effects(gdb_multiarch: str) -> None:
    """``x`` of a peripheral window: the model's ``peek`` (its registers now, no side
    effect) at the end of history, an error in the past (the model's state is the live
    one); the system control space is the kernel's snapshotted state, readable anywhere
    (SysTick's CSR read by a debugger keeps COUNTFLAG). Nothing the firmware sees changes:
    it ends at the same position with the same output as without the reads."""
    elf = build_firmware("hello")

    def session_end(commands: list[str]) -> tuple[list[str], int]:
        with served(str(elf), options={"board": str(BOARD)}) as srv:
            gdb = Gdb(gdb_multiarch, str(elf))
            try:
                gdb.cli(f"target remote :{srv.port}")
                out = [gdb.cli(c, check=False) for c in commands]
            finally:
                gdb.close()
            return out, srv.session.position

    plain, end_plain = session_end(["break TIM0_IRQHandler", "continue", "delete",
                                    "continue"])
    out, end = session_end([
        "break TIM0_IRQHandler", "continue", "x/4wx 0x40001000", "x/wx 0xE000E014",
        "x/wx 0xE000E100", "x/wx 0xE000E010", "x/wx 0xE000E010", "x/2wx 0x40004004",
        "reverse-stepi", "x/4wx 0x40001000", "x/wx 0xE000E014", "stepi",
        "x/wx 0x40001004", "delete", "continue"])
    assert end == end_plain and out[-1] == plain[-1]
    # The timer at its first expiry: CTRL 3 (run, IRQ), LOAD 2500, STATUS 1 (expired).
    ctrl, load, _, status = (int(w, 16) for w in out[2].split()[1:5])
    assert (ctrl, load, status) == (3, 2500, 1), out[2]
    assert out[3].split()[1] == "0x000003e7" and out[4].split()[1] == "0x00000001"
    assert out[5] == out[6]  # a debugger's read leaves COUNTFLAG alone
    assert out[7].split()[1:3] == ["0x00000002", "0x00000000"]  # UART STATUS, CTRL
    assert "Cannot access memory at address 0x40001000" in out[9]
    assert out[10].split()[1] == "0x000003e7"  # the SCS in history
    assert out[12].split()[1] == "0x000009c4"  # back at the end of history


def test_peripheral_reads_through_the_api_say_why_they_fail() -> None:
    elf = build_firmware("hello")
    with served(str(elf), options={"board": str(BOARD)}) as srv:
        s = srv.session
        s.run(until="TIM0_IRQHandler")
        assert s.mem.read_debug(0x40001004, 4) == (2500).to_bytes(4, "little")
        with pytest.raises(MemoryAccessError, match="not mapped"):
            s.mem.read(0x40001004, 4)  # (the firmware layer's own reads: no device there)
        end = s.position
        s.step("backward")
        with pytest.raises(MemoryAccessError, match="timer0's model is at the end of history"):
            s.mem.read_debug(0x40001000, 16)
        assert s.mem.read_debug(0xE000E014, 4) == (999).to_bytes(4, "little")
        assert s.mem.read_partial(0x40001000, 16) == b""  # (what gdb's m packet gets)
        s.seek(end)
        with pytest.raises(MemoryAccessError, match="not mapped"):
            s.mem.read_debug(0x50000000, 4)  # nothing there
        with pytest.raises(MemoryAccessError):
            s.write_memory(0x40001000, bytes(4))  # a debugger's store: still an error
        assert s.mem.read_debug(0x40001000, 4) == (3).to_bytes(4, "little")
