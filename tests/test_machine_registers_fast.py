"""The machine's C register paths (RunCore.reg_write, RunCore.reg_read_many) against the
Unicorn binding: a thread switch saves every register (``Registers.read_all``) and writes
the next thread's, a system call writes its result; both bypass the binding now, and must
give the values and refusals the binding gives, on every architecture."""

from __future__ import annotations

import random

import pytest

from syxdbg.errors import RegisterError
from syxdbg.machine import Machine
from syxdbg.machine.arch import ARCHES, RegisterInfo
from syxdbg.machine.registers import Registers

#: Status, control, segment and system registers: random values there can abort Unicorn
#: (a CPU mode that does not exist) and say nothing about the paths under test.
CONTROL = frozenset({
    "pc", "rip", "sp", "cpsr", "xpsr", "fpsr", "fpcr", "fpscr", "control", "primask",
    "basepri", "faultmask", "msp", "psp", "eflags", "cs", "ss", "ds", "es", "fs", "gs",
    "fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop", "mxcsr", "frm",
    "fcsr", "tpidruro", "tpidr", "fs_base", "gs_base", "zero"})


def data_registers(m: Machine) -> list[RegisterInfo]:
    return [r for r in m.arch.registers if r.uc_id is not None and r.name not in CONTROL]


def slow_registers(m: Machine) -> Registers:
    """The same machine's registers through the binding only (the code before the C paths)."""
    return Registers(m.uc, m.arch)


@pytest.mark.parametrize("name", sorted(ARCHES))
def test_read_all_equals_the_binding(name: str) -> None:
    m = Machine(ARCHES[name])
    rng = random.Random(name)
    slow = slow_registers(m)
    for reg in data_registers(m):  # distinct values in every data register
        slow.write_info(reg, rng.getrandbits(reg.bitsize))
    fast = m.regs.read_all()
    assert [n for n, _ in fast] == [r.name for r in m.arch.registers]
    assert dict(fast) == slow.snapshot()
    assert len({v for _, v in fast}) > len(fast) // 2  # (the values really differ)


@pytest.mark.parametrize("name", sorted(ARCHES))
def test_fast_writes_equal_the_binding(name: str) -> None:
    m = Machine(ARCHES[name])
    rng = random.Random(name + "w")
    slow = slow_registers(m)
    written = 0
    for reg in data_registers(m):
        if reg.bitsize > 64:
            continue
        value = rng.getrandbits(reg.bitsize)
        slow.write_info(reg, value)
        expected = slow.read_info(reg)  # what the CPU made of it
        slow.write_info(reg, 0)
        m.regs.write_info(reg, value)
        assert slow.read_info(reg) == expected, reg.name
        written += 1
    # The pc too (Thumb's bit 0 handling stays the binding's on arm and cortex-m).
    pc = m.arch.register(m.arch.pc)
    assert pc is not None
    m.regs.write_info(pc, 0x1000)
    assert slow.read_info(pc) & ~1 == 0x1000
    assert written >= 12


def test_refused_selector_is_a_register_error_and_keeps_the_value() -> None:
    m = Machine(ARCHES["x86_64"])
    before = m.regs.fs
    with pytest.raises(RegisterError, match="cannot set fs"):
        m.regs.fs = 0xFFFF  # no descriptor: Unicorn refuses it
    assert m.regs.fs == before
