"""Cycle counters are the instruction position, never the host clock.

x86 RDTSC/RDTSCP and aarch64 CNTVCT_EL0/CNTPCT_EL0 would read the host's time: a program
using them would take another path each time it is re-executed, and time travel and replay
would diverge. The machine answers them with the position of the reading instruction.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import assemble, toy_machine

from syxdbg.machine import Exited, Machine
from syxdbg.timeline import Timeline

# Each snippet reads the counter twice with straight-line work between (same block), once
# after a branch (another block), and exits with status 0.
SNIPPETS = {
    "x86_64": """
        .intel_syntax noprefix
        .globl _start
        _start:
          nop
          nop
          rdtsc
          mov r8, rax
          mov r9, rdx
          add rbx, 1
          add rbx, 1
          rdtscp
          mov r10, rax
          mov r11, rcx
          jmp 1f
        1:
          rdtsc
          mov r12, rax
          mov eax, 60
          xor edi, edi
          syscall
    """,
    "aarch64": """
        .globl _start
        _start:
          nop
          nop
          mrs x9, cntvct_el0
          add x1, x1, #1
          add x1, x1, #1
          mrs x10, cntpct_el0
          mrs x11, tpidr_el0
          b 1f
        1:
          mrs x12, cntvct_el0
          mov x8, #93
          mov x0, #0
          svc #0
    """,
}


def _machine(arch: str, tmp_path: Path) -> Machine:
    m = toy_machine(arch, assemble(arch, SNIPPETS[arch], tmp_path).read_bytes())
    if arch == "aarch64":
        m.regs["tpidr"] = 0x1234
    return m


def _values(m: Machine) -> dict[str, int]:
    names = ("r8", "r9", "r10", "r11", "r12") if m.arch.name == "x86_64" else \
        ("x9", "x10", "x11", "x12")
    return {n: m.regs[n] for n in names}


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_counters_read_the_position_of_the_reading_instruction(arch: str,
                                                               tmp_path: Path) -> None:
    m = _machine(arch, tmp_path)
    assert isinstance(m.run(), Exited)
    v = _values(m)
    if arch == "x86_64":
        # nop nop | rdtsc at 2 | mov mov add add | rdtscp at 7 | mov mov jmp | rdtsc at 11
        assert (v["r8"], v["r9"], v["r10"], v["r11"], v["r12"]) == (2, 0, 7, 0, 11)
    else:
        # nop nop | mrs at 2 | add add | mrs at 5 | mrs tpidr | b | mrs at 8
        assert (v["x9"], v["x10"], v["x12"]) == (2, 5, 8)
        assert v["x11"] == 0x1234  # other system registers are left alone


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_counters_are_the_same_when_execution_is_cut_anywhere(arch: str,
                                                             tmp_path: Path) -> None:
    whole = _machine(arch, tmp_path)
    whole.run()
    for cut in range(1, 12):
        m = _machine(arch, tmp_path)
        m.run(count=cut)  # a stop in the middle of a block, then the rest
        m.run()
        assert _values(m) == _values(whole), cut


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_reexecution_reads_the_same_counters(arch: str, tmp_path: Path) -> None:
    m = _machine(arch, tmp_path)
    tl = Timeline(m, interval=3)
    tl.run()
    first = _values(m)
    for _ in range(6):
        tl.step("backward")
    tl.cont("forward")
    assert _values(m) == first
    tl.close()
