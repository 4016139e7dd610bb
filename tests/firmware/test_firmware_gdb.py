"""gdb-multiarch on Cortex-M firmware: the M-profile target description, the exception
frame in backtraces, and reverse debugging of the interrupt bug of tests/firmware/fw/hello.c
(a watchpoint on ``message`` found backwards in the SysTick handler, then reverse-step out
of the handler into the interrupted ``wfi`` loop of main)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from fwbuild import BOARD, build_firmware

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gdb"))
from gdbmi import Gdb, served  # noqa: E402


def gdb_outputs(gdb_path: str, commands: list[str]) -> list[str]:
    elf = build_firmware("hello")
    with served(str(elf), options={"board": str(BOARD)}) as srv:
        gdb = Gdb(gdb_path, str(elf))
        try:
            out = [gdb.cli(f"target remote :{srv.port}")]
            out += [gdb.cli(c, check=False) for c in commands]
        finally:
            gdb.close()
    return out


def test_info_registers_has_the_m_profile_registers(gdb_multiarch: str) -> None:
    out = gdb_outputs(gdb_multiarch, ["info registers", "break SysTick_Handler", "continue",
                                      "bt", "info registers xpsr msp primask control",
                                      "print/x $lr"])
    assert "Reset_Handler () at startup.c" in out[0]
    regs = out[1]
    for name in ("r12", "sp", "lr", "pc", "xpsr", "msp", "psp", "primask", "basepri",
                 "faultmask", "control"):
        assert f"\n{name} " in "\n" + regs, name
    assert re.search(r"\npc +0x[0-9a-f]+ +0x[0-9a-f]+ <Reset_Handler>\n", regs)
    assert "sp             0x20010000" in regs
    assert "Breakpoint 1, SysTick_Handler () at hello.c:52" in out[3]
    # gdb unwinds the exception frame (EXC_RETURN in lr) back into main.
    assert "#1  <signal handler called>" in out[4] and "#2  main () at hello.c:88" in out[4]
    # Handler mode, SysTick (exception 15), on the main stack, the frame below the top.
    assert "xpsr           0x" in out[5] and out[5].split("\n")[0].strip().endswith(
        str(0x8100000F - (1 << 32)))
    assert "msp            0x2000ffd0" in out[5]
    assert "$1 = 0xfffffff9" in out[6]  # EXC_RETURN: back to Thread mode, main stack


def test_reverse_debugging_the_interrupt_bug(gdb_multiarch: str) -> None:
    out = gdb_outputs(gdb_multiarch, [
        "break main", "continue", "delete", "watch message[0]", "continue", "bt", "continue",
        "reverse-continue", "bt", "reverse-step", "reverse-step", "info registers pc",
        "print ticks", "stepi", "bt"])
    # Forward: the handler's store corrupts the message.
    assert "Old value = 104 'h'\nNew value = 8 '\\b'" in out[5]
    assert "in SysTick_Handler () at hello.c:54" in out[5]
    assert "<signal handler called>" in out[6]
    assert "No more reverse-execution history." in out[7]
    # Backwards to the same store, undone.
    assert "Old value = 8 '\\b'\nNew value = 104 'h'" in out[8]
    assert "in SysTick_Handler () at hello.c:53" in out[8]
    assert re.search(r"#0  0x[0-9a-f]+ in SysTick_Handler \(\) at hello.c:53", out[9])
    # reverse-step leaves the handler for the interrupted code: main's wfi loop.
    assert "main () at hello.c:89" in out[11]
    assert "<main+" in out[12]
    assert "$1 = 7" in out[13]  # the tick before the one that corrupted the message
    # Forward one instruction: the interrupt is taken again at the same point.
    assert "SysTick_Handler () at hello.c:52" in out[14]
    assert "<signal handler called>" in out[15]


def test_syxdbg_gdb_command_with_a_board(gdb_multiarch: str) -> None:
    """``syxdbg gdb --board``: the stub and gdb-multiarch, connected, symbols loaded."""
    elf = build_firmware("hello")
    p = subprocess.run([sys.executable, "-m", "syxdbg", "gdb", "--batch", "--gdb-arg=-nx",
                        "--ex", "break SysTick_Handler", "--ex", "continue", "--ex", "bt",
                        "--ex", "info registers xpsr", "--board", str(BOARD), str(elf)],
                       capture_output=True, text=True, timeout=300, check=False)
    out = p.stdout + p.stderr
    assert "Breakpoint 1, SysTick_Handler () at hello.c:52" in out, out
    assert "#1  <signal handler called>" in out and "#2  main () at hello.c:88" in out
    assert re.search(r"xpsr +0x8100000f", out), out
