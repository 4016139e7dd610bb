"""The machine's position timer (Machine.set_timer): a callback between two instructions.

The Linux kernel uses it to raise SIGALRM in code that makes no system call; thread
preemption inside such loops can use it too. Its contract: the handler runs when execution
reaches the position exactly (it is not late by a block), and a stop at that position shows
the state after the handler, however the run got there: an unbounded run, a bounded run, a
single step, or a timer set from a system call handler while the guest runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import assemble, toy_machine

from syxdbg.machine import Exited, Machine, Stopped

# A register-only loop (one block per pass) then a system call loop, then exit: the
# counter register counts passes; the handler moves the pc past the first loop.
SOURCES = {
    "x86_64": """
        .intel_syntax noprefix
        .globl _start
        _start:
          xor r12, r12
        spin:
          add r12, 1
          add r13, 2
          jmp spin
        out:
          mov eax, 39
          syscall
          add r14, 1
          cmp r14, 50
          jne out
          mov eax, 60
          xor edi, edi
          syscall
    """,
    "aarch64": """
        .globl _start
        _start:
          mov x19, #0
        spin:
          add x19, x19, #1
          add x20, x20, #2
          b spin
        out:
          mov x8, #172
          svc #0
          add x21, x21, #1
          cmp x21, #50
          b.ne out
          mov x8, #93
          mov x0, #0
          svc #0
    """,
}
COUNTER = {"x86_64": "r12", "aarch64": "x19"}


def _machine(arch: str, tmp_path: Path) -> tuple[Machine, int]:
    obj = assemble(arch, SOURCES[arch], tmp_path)
    code = obj.read_bytes()
    m = toy_machine(arch, code)
    # "out" is 3 instructions from "spin"'s end: find it as the first system call's setup.
    out = m.pc + (code.index(b"\xb8\x27\x00\x00\x00") if arch == "x86_64"
                  else code.index((0xD2801588).to_bytes(4, "little")))
    return m, out


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_the_handler_runs_exactly_at_its_position_and_can_move_the_pc(
        arch: str, tmp_path: Path) -> None:
    m, out = _machine(arch, tmp_path)
    seen: list[tuple[int, int]] = []

    def leave_loop(mm: Machine) -> None:
        seen.append((mm.position, mm.regs[COUNTER[arch]]))
        mm.regs.pc = out

    m.set_timer(1000, leave_loop)
    assert m.timer == 1000
    ev = m.run()
    assert isinstance(ev, Exited) and ev.status == 0
    # 1 instruction before the loop, 3 per pass: at 1000, 333 passes done.
    assert seen == [(1000, 333)]
    assert m.timer is None
    assert ev.position == 1000 + 50 * 5 + 3  # the system call loop and the exit


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_a_stop_at_the_timer_shows_the_state_after_it(arch: str, tmp_path: Path) -> None:
    for how in ("count", "steps"):
        m, out = _machine(arch, tmp_path)

        def leave_loop(mm: Machine, out: int = out) -> None:
            mm.regs.pc = out

        m.set_timer(40, leave_loop)
        if how == "count":
            ev = m.run(count=40)
        else:
            for _ in range(40):
                ev = m.run(count=1)
        assert isinstance(ev, Stopped) and ev.position == 40, (how, ev)
        assert m.pc == out, how
        assert m.regs[COUNTER[arch]] == 13, how  # the loop stopped after 13 passes
        ev = m.run(count=1)  # the first instruction of "out" runs at position 40
        assert ev.position == 41 and m.pc == out + (5 if arch == "x86_64" else 4)


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_a_system_call_can_set_the_timer_inside_a_run(arch: str, tmp_path: Path) -> None:
    m, out = _machine(arch, tmp_path)
    inner = m.syscall_handler
    assert inner is not None
    fired: list[int] = []

    def syscall(mm: Machine) -> None:
        inner(mm)
        if not fired and mm.timer is None:
            mm.set_timer(mm.position + 7, lambda x: fired.append(x.position))

    m.set_syscall_handler(syscall)
    m.set_timer(10, lambda mm: setattr(mm.regs, "pc", out))
    assert isinstance(m.run(), Exited)
    # The first system call is the instruction at position 11: its handler sees 12 (it
    # retired), and the timer fires 7 instructions later.
    assert fired == [12 + 7]


def test_a_timer_must_lie_ahead_and_have_a_handler(tmp_path: Path) -> None:
    m, _ = _machine("x86_64", tmp_path)
    m.run(count=5)
    with pytest.raises(ValueError):
        m.set_timer(5, lambda mm: None)
    with pytest.raises(ValueError):
        m.set_timer(9)
    m.set_timer(9, lambda mm: None)
    m.set_timer(None)
    assert m.timer is None
    assert m.run(count=10).position == 15
