"""An RTOS-like firmware (tests/firmware/fw/tasks.c): two tasks on the process stack
switched by PendSV, which the highest-priority SysTick pends; a critical section
(cpsid/cpsie) that holds SysTick back; a peripheral model written against the documented
API (tests/firmware/fwmodels.py) raising a mid-priority IRQ; UART input from stdin."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fwbuild import FW_DIR, build_firmware

import syxdbg
from syxdbg.machine.arch import cortex_m as cm

BOARD = FW_DIR / "board-tasks.toml"
OUT = b"tasks\nticks 21 both 1 late 0 counter 1\necho HELLO THERE\n"


@pytest.fixture(scope="module")
def tasks() -> Path:
    return build_firmware("tasks")


def cli(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "syxdbg", *args], input=stdin,
                          capture_output=True, timeout=300, env=env, check=False)


def test_tasks_switch_and_echo_stdin(tasks: Path) -> None:
    p = cli("run", "--board", str(BOARD), str(tasks), stdin=b"hello there\n")
    assert p.stdout == OUT, p.stderr
    assert p.returncode == 0


def test_reverse_across_task_switches_is_exact(tasks: Path) -> None:
    with syxdbg.open(str(tasks), options={"board": str(BOARD)}) as s:
        seen = []
        switches = 0
        last_psp = None
        for _ in range(80):
            s.run(count=97)
            regs = s.regs.snapshot()
            seen.append((s.position, regs))
            if cm.current_exception(s.machine) == 0 and regs["control"] & 2:
                top = regs["psp"] >> 9  # which task's stack
                switches += last_psp is not None and top != last_psp
                last_psp = top
        assert switches >= 2  # both tasks ran, on their own process stacks
        for pos, regs in reversed(seen[::5]):
            s.seek(pos)
            assert s.regs.snapshot() == regs, pos
        # The critical section (cpsid i ... cpsie i) lasts longer than a tick: late_ticks
        # is stored in the task with SysTick pending but masked; it is taken within 16
        # instructions of the cpsie (the mask is polled), and nothing ran in between.
        s.run()
        hit = s.last_write("late_ticks", 4)
        assert hit is not None and str(s.image.symbolize(s.regs.pc)).startswith("task")
        handler = s.symbols["SysTick_Handler"]
        cpsie_at = None
        for _ in range(64):
            if s.regs.pc == handler:
                break
            if s.machine.disassemble(s.regs.pc, 1)[0][1] == "cpsie":
                cpsie_at = s.position
            s.step()
        assert s.regs.pc == handler and cpsie_at is not None
        assert 1 <= s.position - cpsie_at <= 16


def test_record_and_replay_with_stdin(tasks: Path, tmp_path: Path) -> None:
    rec = tmp_path / "tasks.syxrec"
    p = cli("record", "-o", str(rec), "--board", str(BOARD), str(tasks),
            stdin=b"hello there\n")
    assert p.returncode == 0 and p.stdout == OUT, p.stderr
    # The replay needs neither stdin nor the model's module (no PYTHONPATH here).
    p = subprocess.run([sys.executable, "-m", "syxdbg", "replay", "--check", str(rec)],
                       capture_output=True, timeout=300, check=False,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stdout + p.stderr
    assert b"as recorded" in p.stdout
