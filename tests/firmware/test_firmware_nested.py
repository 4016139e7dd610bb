"""Priorities (tests/firmware/fw/nested.c): SysTick (0x40) preempts the timer peripheral's
handler (0xc0), a nested exception with EXC_RETURN to Handler mode; BASEPRI = 0x40 holds
SysTick back until it is lowered again. Reverse execution stays exact across the nesting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fwbuild import BOARD, build_firmware

import syxdbg
from syxdbg.machine.arch import cortex_m as cm


@pytest.fixture(scope="module")
def nested() -> Path:
    return build_firmware("nested")


def test_preemption_and_basepri(nested: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "syxdbg", "run", "--board", str(BOARD),
                        str(nested)], capture_output=True, timeout=300, check=False)
    assert p.stdout == b"nested yes masked yes\ntaken after\n", p.stderr
    assert p.returncode == 0


def test_nested_frames_and_exact_reverse(nested: Path, tmp_path: Path) -> None:
    with syxdbg.open(str(nested), options={"board": str(BOARD)}) as s:
        in_timer = s.symbols["in_timer"]
        seen = []
        found = False
        for _ in range(200):
            s.run(until="SysTick_Handler")
            seen.append((s.position, s.regs.snapshot()))
            if s.mem.read(in_timer, 4) != b"\0\0\0\0":
                found = True
                break
            s.step()
        assert found
        # SysTick entered on top of the timer's handler: Handler-mode return, both active.
        assert s.regs.lr == 0xFFFF_FFF1
        assert cm.current_exception(s.machine) == cm.SYSTICK
        assert str(s.image.symbolize(s.regs.pc)).startswith("SysTick_Handler")
        frame_pc = int.from_bytes(s.mem.read(s.regs.sp + 24, 4), "little")
        assert str(s.image.symbolize(frame_pc)).startswith("TIM0_IRQHandler")
        # Back to the timer's handler, in Handler mode (exception 16).
        s.step("backward")
        assert cm.current_exception(s.machine) == cm.IRQ0
        assert str(s.image.symbolize(s.regs.pc)).startswith("TIM0_IRQHandler")
        for pos, regs in reversed(seen[::3]):
            s.seek(pos)
            assert s.regs.snapshot() == regs, pos
    rec = tmp_path / "nested.syxrec"
    for args in (("record", "-o", str(rec), "--board", str(BOARD), str(nested)),
                 ("replay", "--check", str(rec))):
        p = subprocess.run([sys.executable, "-m", "syxdbg", *args], capture_output=True,
                           timeout=300, check=False)
        assert p.returncode == 0, p.stdout + p.stderr
