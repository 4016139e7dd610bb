"""Deterministic time and cycle counters of the 32-bit ARM and RISC-V 64 Linux machines.

A counter that read the host's clock would make every re-execution (reverse steps, seeks,
``replay``) read other values. x86 ``rdtsc`` and aarch64 ``mrs CNTVCT_EL0`` have Unicorn
instruction hooks (``core.CounterHooks``); 32-bit ARM's coprocessor reads and RISC-V's CSR
reads have none, so this module answers them from the exceptions Unicorn raises, and makes
an exception where Unicorn would read the host's clock. What a program sees is what a
Linux user program sees, with every value a function of the reading instruction's
position (measured with Unicorn 2.1.4, see docs/architectures.md):

* **32-bit ARM** (a Cortex-A15 in User mode, PL0): Unicorn's CNTKCTL is 0, so every
  generic-timer access from user mode is UNDEFINED. Linux sets CNTKCTL.PL0VCTEN (the vDSO
  reads the virtual counter) and leaves PL0PCTEN, PL0VTEN, PL0PTEN clear: ``mrrc p15, 1,
  Rt, Rt2, c14`` (CNTVCT) reads the position and ``mrc p15, 0, Rt, c14, c0, 0`` (CNTFRQ,
  readable when either counter is) :data:`ARM_CNTFRQ`; CNTPCT and the timer registers stay
  SIGILL. The PMU's PMCCNTR is UNDEFINED in user mode with PMUSERENR.EN clear, as Linux
  leaves it (SIGILL in both); PMUSERENR itself reads 0 in both.
* **RISC-V 64**: Unicorn raises an illegal instruction for ``rdtime`` (no timer); it is
  answered with the position. ``rdcycle``, ``rdinstret`` and ``hpmcounter3..31`` read the
  host's cycle counter (or 0) in Unicorn, which cannot be made to trap (priv spec 1.10+
  counters are always readable there); Linux 6.6+ lets user mode read only ``time``
  (``scounteren`` = TM, sysctl ``perf_user_access`` = 1 by default), so they are SIGILL:
  a code hook on each such instruction, planted when its block is first seen, reports the
  fault before it executes.

Unicorn ends the emulation at an UNDEFINED ARM instruction through ``UC_HOOK_INSN_INVALID``
(no interrupt hook call) and reports RISC-V's illegal instruction to the interrupt hook
with pc after it. Emulated reads happen after ``emu_start`` returns (the machine's
deferred work): the reading instruction retires at its position, pc moves past it (in an
IT block, the IT state advances) and the run goes on.
"""

from __future__ import annotations

import signal
import struct
from collections.abc import Callable
from typing import Any, Protocol

import unicorn


class Machine(Protocol):
    """What of :class:`syxdbg.machine.core.Machine` the counter traps use (a Protocol, so
    that this module does not import the core that imports it)."""

    arch: Any
    mem: Any
    regs: Any
    _deferred: Callable[[], None] | None
    _fault: tuple[int, int, str] | None

    @property
    def uc(self) -> unicorn.Uc: ...

    @property
    def native_core(self) -> Any: ...

    @property
    def thumb(self) -> bool: ...

    def insn_position(self, address: int) -> int: ...

    def _insn_before(self, address: int) -> int: ...

#: CNTFRQ as 32-bit ARM programs read it (QEMU's generic timer default, 62.5 MHz; the
#: counter itself is the instruction position).
ARM_CNTFRQ = 62_500_000

_RISCV_ILLEGAL = 2
_CPSR_T = 1 << 5
_CPSR_IT = (0x3 << 25) | (0x3F << 10)

_RISCV_CSR_TIME = 0xC01
#: User counters Linux traps by default: cycle, instret, hpmcounter3-31.
_RISCV_TRAPPED = frozenset({0xC00, *range(0xC02, 0xC20)})

Action = Callable[[], None]


def riscv_csr_read(word: int) -> tuple[int, int] | None:
    """(csr, rd) when ``word`` is a CSR instruction that only reads (``csrrs``/``csrrc``
    with rs1 x0, ``csrrsi``/``csrrci`` with 0), else None."""
    if word & 0x7F != 0x73 or (word >> 15) & 0x1F:
        return None
    if (word >> 12) & 7 not in (2, 3, 6, 7):
        return None
    return word >> 20, (word >> 7) & 0x1F


def arm_cp15_read(word: int) -> tuple[str, int, int] | None:
    """("cntvct", Rt, Rt2) for ``mrrc p15, 1, Rt, Rt2, c14`` or ("cntfrq", Rt, 0) for
    ``mrc p15, 0, Rt, c14, c0, 0``; ``word`` is the ARM encoding or a Thumb-2 one as
    (first halfword << 16) | second. Transfers to or from pc are left UNDEFINED."""
    if (word >> 8) & 0xF != 15:
        return None
    rt = (word >> 12) & 0xF
    if word & 0x0FF000F0 == 0x0C500010 and word & 0xF == 14:  # mrrc p15, 1, .., c14
        rt2 = (word >> 16) & 0xF
        if 15 in (rt, rt2) or rt == rt2:
            return None
        return "cntvct", rt, rt2
    if word & 0x0FFF0FFF == 0x0E1E0F10 and rt != 15:  # mrc p15, 0, Rt, c14, c0, 0
        return "cntfrq", rt, 0
    return None


def _it_advance(cpsr: int) -> int:
    """The CPSR after an instruction inside an IT block retired (ITAdvance)."""
    it = ((cpsr >> 25) & 0x3) | (((cpsr >> 10) & 0x3F) << 2)
    if not it & 0xF:
        return cpsr
    it = 0 if it & 0x7 == 0 else (it & 0xE0) | ((it << 1) & 0x1F)
    return (cpsr & ~_CPSR_IT) | ((it & 0x3) << 25) | (((it >> 2) & 0x3F) << 10)


class CounterTraps:
    """The counter emulation of one machine (see the module docstring). ``exception``
    is asked first about every CPU exception the machine's interrupt hook gets."""

    def __init__(self, machine: Machine) -> None:
        self._m = machine
        self._arch = machine.arch.name
        #: RISC-V: addresses with a SIGILL code hook (kept for the machine's life).
        self._hooked: dict[int, int] = {}
        if self._arch == "arm":
            # An UNDEFINED instruction ends the emulation through this hook (no interrupt
            # hook call on 32-bit ARM); True: no error, the deferred work goes on.
            machine.uc.hook_add(unicorn.UC_HOOK_INSN_INVALID, self._on_invalid)
        if self._arch == "riscv64":
            core = machine.native_core
            resolve = core.resolver

            def resolver(start: int, size: int) -> tuple[int, int]:
                answer = resolve(start, size)
                self._scan(start, size)
                return answer

            core.resolver = resolver

    # -- emulated reads ---------------------------------------------------------------------
    def exception(self, intno: int) -> Action | None:
        """RISC-V: the work that answers a trapped counter read (None: not one of ours)."""
        if self._arch == "riscv64" and intno == _RISCV_ILLEGAL:
            return self._riscv_read()
        return None

    def _on_invalid(self, uc: unicorn.Uc, user_data: object) -> bool:
        answer = self._arm_read()
        if answer is None:
            return False  # the machine's SIGILL
        # (True alone would run the instruction again: stop, and answer after emu_start.)
        self._m._deferred = answer
        uc.emu_stop()
        return True

    def _arm_read(self) -> Action | None:
        m = self._m
        pc = m.regs.pc
        thumb = m.thumb
        raw = bytes(m.mem.read_partial(pc, 4))
        if len(raw) < 4:
            return None
        if thumb:
            hw1, hw2 = struct.unpack("<HH", raw)
            if hw1 >> 12 != 0xE:  # (0xF: mrrc2/mrc2)
                return None
            word = (hw1 << 16) | hw2
        else:
            word = struct.unpack("<I", raw)[0]
            if word >> 28 == 0xF:  # (mrrc2/mrc2)
                return None
        decoded = arm_cp15_read(word)
        if decoded is None:
            return None
        kind, rt, rt2 = decoded
        position = m.insn_position(pc)

        def answer() -> None:
            if kind == "cntvct":
                m.regs[f"r{rt}"] = position & 0xFFFFFFFF
                m.regs[f"r{rt2}"] = (position >> 32) & 0xFFFFFFFF
            else:
                m.regs[f"r{rt}"] = ARM_CNTFRQ
            cpsr = m.regs["cpsr"]
            if thumb and cpsr & _CPSR_IT:
                m.regs["cpsr"] = _it_advance(cpsr)
            self._retire(pc + 4, position)

        return answer

    def _riscv_read(self) -> Action | None:
        m = self._m
        # Unicorn leaves pc after the instruction that raised the illegal instruction.
        at = m._insn_before(m.regs.pc)
        raw = bytes(m.mem.read_partial(at, 4))
        if len(raw) < 4:
            return None
        decoded = riscv_csr_read(struct.unpack("<I", raw)[0])
        if decoded is None or decoded[0] != _RISCV_CSR_TIME:
            return None
        rd = decoded[1]
        position = m.insn_position(at)

        def answer() -> None:
            if rd:
                m.regs[f"x{rd}"] = position
            self._retire(at + 4, position)

        return answer

    def _retire(self, next_pc: int, position: int) -> None:
        """The reading instruction at ``position`` retired; the run goes on at next_pc."""
        m = self._m
        m.regs.pc = next_pc
        m.native_core.total = position + 1
        m.native_core.forget_block()

    # -- RISC-V: counters Unicorn reads from the host --------------------------------------
    def _scan(self, start: int, size: int) -> None:
        """Plant a SIGILL hook on each counter read of a new block; when one is new, stop
        before the block (nothing of it ran) so that it is translated again with it."""
        m = self._m
        code = bytes(m.mem.read_partial(start, size))
        if b"\xc0" not in code and b"\xc1" not in code:  # the CSR number's top byte
            return
        new = False
        for off in range(0, len(code) - 3, 2):
            if code[off + 3] not in (0xC0, 0xC1):
                continue
            decoded = riscv_csr_read(struct.unpack_from("<I", code, off)[0])
            address = start + off
            if decoded is None or decoded[0] not in _RISCV_TRAPPED or address in self._hooked:
                continue
            self._hooked[address] = m.uc.hook_add(unicorn.UC_HOOK_CODE, self._on_trapped,
                                                  None, address, address)
            m.uc.ctl_remove_cache(address, address + 4)
            new = True
        if new:
            # The block hook stops before the block (its count is settled at the stop); the
            # machine's deferred work, nothing here, makes the run go on from that pc.
            m._deferred = _nothing
            m.uc.emu_stop()

    def _on_trapped(self, uc: unicorn.Uc, address: int, size: int, user_data: object) -> None:
        m = self._m
        decoded = riscv_csr_read(struct.unpack("<I", bytes(m.mem.read_partial(address, 4)))[0])
        if decoded is None or decoded[0] not in _RISCV_TRAPPED:
            return  # other code there now
        # As Linux 6.6+ with perf_user_access=1: SIGILL before the instruction executes.
        m._fault = (int(signal.SIGILL), address, "invalid instruction")
        uc.emu_stop()


def _nothing() -> None:
    return None


def install(machine: Machine) -> CounterTraps | None:
    """The counter emulation the machine's architecture needs (None: none)."""
    if machine.arch.name in ("arm", "riscv64"):
        return CounterTraps(machine)
    return None
