"""Cortex-M guest (ARMv7-M, M profile, Thumb-2 only): bare-metal firmware.

The CPU is Unicorn's Cortex-M4 (``UC_MODE_MCLASS``, ``UC_CPU_ARM_CORTEX_M4``) in Thread
mode, privileged, on the main stack. Measured facts of Unicorn 2.1.4 this module rests on
(``tests/firmware/test_cortex_m_machine.py`` pins them):

* Unicorn does **not** enter exceptions itself when an interrupt hook is installed (the
  machine always has one): ``svc`` reaches the hook as exception 2 (EXCP_SWI) with pc after
  the instruction and nothing stacked; a ``bx``/``pop`` of an EXC_RETURN value in Handler
  mode reaches it as exception 8 (EXCP_EXCEPTION_EXIT) with pc = EXC_RETURN & ~1 and
  nothing unstacked; ``bkpt`` is exception 7 with pc at the instruction. Unicorn has no
  NVIC, no SysTick and no system control space: an access to 0xE000E000 is an ordinary
  (unmapped or MMIO) access. So exception entry and return are done here
  (:func:`exception_entry`, :func:`exception_return`), and the interrupt controller is
  the firmware layer's (``syxdbg_plugins.firmware``).
* Writing XPSR writes the IPSR too (the exception number: Handler mode when non-zero), and
  QEMU switches the current stack pointer between MSP and PSP as the mode and
  CONTROL.SPSEL say; MSP and PSP can be read and written directly.
* ``wfi`` ends ``emu_start`` (QEMU's EXCP_HLT) with pc after it and no hook call: the
  machine asks its idle handler (``Machine.set_idle_handler``).
* In an MMIO callback the pc is the translation block's start, not the accessing
  instruction's, unless a memory hook covers the range (Unicorn then restores the CPU
  state before calling hooks): :func:`map_mmio` installs one on the window only, and the
  callbacks get the exact position of the access.
* A pc written with bit 0 clear leaves Thumb state (an INVSTATE fault on the next
  instruction): every pc this module writes has bit 0 set.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Protocol

import capstone
import unicorn
from unicorn import arm_const as A

from ...errors import MemoryAccessError
from .arm import ARM
from .base import ArchSpec, SyscallABI


class Machine(Protocol):
    """What this module uses of :class:`syxdbg.machine.Machine` (no import: the machine
    imports the architectures)."""

    @property
    def uc(self) -> unicorn.Uc: ...

    @property
    def mem(self) -> Any: ...

    def insn_position(self, address: int) -> int: ...

#: XPSR bits.
XPSR_T = 1 << 24
XPSR_IPSR_MASK = 0x1FF
XPSR_ALIGN = 1 << 9  # in a stacked xPSR: the frame was realigned by 4 bytes
XPSR_FLAGS = 0xF8000000 | 0x000F0000  # N Z C V Q and GE
CONTROL_SPSEL = 1 << 1
#: Unicorn's exception numbers passed to the interrupt hook (QEMU target/arm/cpu.h).
EXCP_UDEF = 1
EXCP_SWI = 2
EXCP_BKPT = 7
EXCP_EXCEPTION_EXIT = 8
EXCP_INVSTATE = 18
#: Exception numbers of the M profile.
RESET, NMI, HARDFAULT, MEMMANAGE, BUSFAULT, USAGEFAULT = 1, 2, 3, 4, 5, 6
SVCALL, DEBUGMONITOR, PENDSV, SYSTICK = 11, 12, 14, 15
IRQ0 = 16


def _uc_id(name: str) -> int | None:
    return int(getattr(A, f"UC_ARM_REG_{name.upper()}"))


def _cpu_init(uc: unicorn.Uc) -> None:
    uc.ctl_set_cpu_model(A.UC_CPU_ARM_CORTEX_M4)
    uc.reg_write(A.UC_ARM_REG_XPSR, XPSR_T)  # Thumb (the M profile has no ARM state)


CORTEX_M = ArchSpec(
    name="cortex-m",
    uc_arch=unicorn.UC_ARCH_ARM,
    uc_mode=unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS,
    cs_arch=capstone.CS_ARCH_ARM,
    cs_mode=capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS,
    elf_machine=40,  # EM_ARM (an ELF says arm; --board or --arch cortex-m chooses this)
    xml_file="cortex-m.xml",
    uc_register_id=_uc_id,
    pc="pc",
    sp="sp",
    fp="r7",
    # No operating system: an svc is the SVCall exception (no syscall ABI is used).
    syscall=SyscallABI("r7", ("r0", "r1", "r2", "r3"), "r0"),
    aliases={"fp": "r7", "ip": "r12", "r13": "sp", "r14": "lr", "r15": "pc",
             "sb": "r9", "sl": "r10", "cpsr": "xpsr"},
    bits=32,
    gdb_arch="arm",
    gdb_binary="gdb-multiarch",
    cpu_init=_cpu_init,
    direct_branches=ARM.direct_branches,
    user_address_end=1 << 32,
    stack_top=0x2001_0000,
    mmap_base=0,
    pie_base=0,
    dwarf_registers={**{i: f"r{i}" for i in range(13)}, 13: "sp", 14: "lr", 15: "pc"},
    trace_registers=(*(f"r{i}" for i in range(13)), "sp", "lr"),
)

# -- memory-mapped I/O --------------------------------------------------------------------
#: A window's read callback: (offset, size, position, pc) -> value.
MmioRead = Callable[[int, int, int, int], int]
#: A window's write callback: (offset, size, value, position, pc).
MmioWrite = Callable[[int, int, int, int, int], None]
#: A window's debugger read: (offset, size) -> the register's value now, without any effect
#: on the emulation; raises :class:`DeviceReadError` when it cannot.
MmioPeek = Callable[[int, int], int]


class DeviceReadError(MemoryAccessError):
    """A debugger read of device registers that cannot be done without side effects (or
    not here in time): the reason is the message."""

    def __init__(self, address: int, size: int, reason: str) -> None:
        MemoryAccessError.__init__(self, address, size, "read")
        self.args = (f"cannot read {size} byte(s) at {address:#x}: {reason}",)


class MmioWindow:
    """Guest addresses ``[base, base+size)`` whose loads and stores call Python.

    ``position`` and ``pc`` passed to the callbacks are the exact position
    (:meth:`Machine.insn_position`) and address of the accessing instruction. Not guest
    RAM: the snapshot journal never sees these bytes; a device keeps its registers as its
    own state."""

    def __init__(self, machine: Machine, base: int, size: int, read: MmioRead,
                 write: MmioWrite, peek: MmioPeek | None = None) -> None:
        self.machine = machine
        self.base = base
        self.size = size
        self._read = read
        self._write = write
        self._peek = peek
        self._pc = 0
        # Debuggers' reads (gdb's x, the shell's x): Memory.peekers.
        machine.mem.peekers.append(self.peek)
        uc = machine.uc
        uc.mmio_map(base, size, self._on_read, None, self._on_write, None)
        # Only for the exact pc (see the module docstring).
        self._hook = uc.hook_add(unicorn.UC_HOOK_MEM_READ | unicorn.UC_HOOK_MEM_WRITE,
                                 self._on_access, None, base, base + size - 1)

    def _on_access(self, uc: unicorn.Uc, access: int, address: int, size: int, value: int,
                   user_data: object) -> None:
        self._pc = int(uc.reg_read(A.UC_ARM_REG_PC))

    def _on_read(self, uc: unicorn.Uc, offset: int, size: int, user_data: object) -> int:
        pc = self._pc
        return int(self._read(offset, size, self.machine.insn_position(pc), pc)) \
            & ((1 << (8 * size)) - 1)

    def _on_write(self, uc: unicorn.Uc, offset: int, size: int, value: int,
                  user_data: object) -> None:
        pc = self._pc
        self._write(offset, size, value & ((1 << (8 * size)) - 1),
                    self.machine.insn_position(pc), pc)

    def peek(self, address: int, size: int) -> bytes | None:
        """Memory.peekers: the bytes of ``[address, address+size)`` inside this window, read
        word by word through the window's peek callback (None: not this window's)."""
        if not self.base <= address < self.base + self.size:
            return None
        end = min(address + size, self.base + self.size)
        if self._peek is None:
            raise DeviceReadError(address, end - address,
                                  "device registers, not readable by a debugger")
        out = bytearray()
        word = address & ~3
        while word < end:
            value = self._peek(word - self.base, 4)
            out += struct.pack("<I", value & 0xFFFFFFFF)
            word += 4
        skip = address & 3
        return bytes(out[skip:skip + end - address])

    def close(self) -> None:
        uc = self.machine.uc
        uc.hook_del(self._hook)
        uc.mem_unmap(self.base, self.size)
        if self.peek in self.machine.mem.peekers:
            self.machine.mem.peekers.remove(self.peek)


def map_mmio(machine: Machine, base: int, size: int, read: MmioRead,
             write: MmioWrite, peek: MmioPeek | None = None) -> MmioWindow:
    """Map an MMIO window (page aligned ``base`` and ``size``) on ``machine``; ``peek``
    answers debuggers' reads (none: they are an error)."""
    return MmioWindow(machine, base, size, read, write, peek)


# -- exception entry and return -------------------------------------------------------------
def _r(uc: unicorn.Uc, name: str) -> int:
    return int(uc.reg_read(getattr(A, f"UC_ARM_REG_{name}")))


def _w(uc: unicorn.Uc, name: str, value: int) -> None:
    uc.reg_write(getattr(A, f"UC_ARM_REG_{name}"), value & 0xFFFFFFFF)


def current_exception(machine: Machine) -> int:
    """The IPSR: the exception being handled (0: Thread mode)."""
    return _r(machine.uc, "XPSR") & XPSR_IPSR_MASK


def exception_entry(machine: Machine, number: int, return_pc: int, vtor: int) -> int:
    """Take exception ``number``: stack the basic frame (r0-r3, r12, lr, the return address
    ``return_pc``, xPSR; 8-byte aligned) on the current stack, switch to Handler mode on
    the main stack with lr = EXC_RETURN and pc = the vector at ``vtor + 4 * number``.
    Returns the handler's address. Raises MemoryAccessError when the stack is not
    writable (the hardware would lock up)."""
    uc = machine.uc
    xpsr = _r(uc, "XPSR")
    handler_mode = bool(xpsr & XPSR_IPSR_MASK)
    on_psp = not handler_mode and bool(_r(uc, "CONTROL") & CONTROL_SPSEL)
    sp = _r(uc, "SP")
    stacked_xpsr = xpsr & ~XPSR_ALIGN
    if sp & 4:
        sp -= 4
        stacked_xpsr |= XPSR_ALIGN
    sp -= 32
    frame = struct.pack("<8I", _r(uc, "R0"), _r(uc, "R1"), _r(uc, "R2"), _r(uc, "R3"),
                        _r(uc, "R12"), _r(uc, "LR"), return_pc & ~1, stacked_xpsr)
    machine.mem.write(sp, frame)
    handler = struct.unpack("<I", machine.mem.read(vtor + 4 * number, 4))[0]
    _w(uc, "SP", sp)
    # Handler mode: QEMU switches to the main stack pointer.
    _w(uc, "XPSR", (xpsr & XPSR_FLAGS) | XPSR_T | number)
    # EXC_RETURN: back to Handler mode, to Thread mode on the process or the main stack.
    exc_return = 0xFFFFFFF1 if handler_mode else (0xFFFFFFFD if on_psp else 0xFFFFFFF9)
    _w(uc, "LR", exc_return)
    _w(uc, "PC", handler | 1)
    return handler & ~1


def exception_return(machine: Machine, exc_return: int) -> tuple[int, int]:
    """Return from the current exception through ``exc_return``: unstack the frame from
    the stack it names, restore the mode, stack pointer, registers and xPSR (IT state and
    flags). Returns (the exception number returned to (0: Thread mode), the pc)."""
    uc = machine.uc
    on_psp = bool(exc_return & 4)
    to_thread = bool(exc_return & 8)
    sp = _r(uc, "PSP") if on_psp else _r(uc, "MSP")
    words = struct.unpack("<8I", machine.mem.read(sp, 32))
    r0, r1, r2, r3, r12, lr, pc, xpsr = words
    sp += 32 + (4 if xpsr & XPSR_ALIGN else 0)
    number = 0 if to_thread else (xpsr & XPSR_IPSR_MASK)
    _w(uc, "XPSR", (xpsr & ~(XPSR_ALIGN | XPSR_IPSR_MASK)) | XPSR_T | number)
    if to_thread:
        control = _r(uc, "CONTROL")
        _w(uc, "CONTROL", (control & ~CONTROL_SPSEL) | (CONTROL_SPSEL if on_psp else 0))
    _w(uc, "PSP" if on_psp else "MSP", sp)
    for name, value in (("R0", r0), ("R1", r1), ("R2", r2), ("R3", r3), ("R12", r12),
                        ("LR", lr)):
        _w(uc, name, value)
    _w(uc, "PC", pc | 1)
    return number, pc & ~1


def special(machine: Machine, name: str) -> int:
    """A special register: PRIMASK, BASEPRI, FAULTMASK, CONTROL, MSP, PSP, XPSR."""
    return _r(machine.uc, name.upper())


def set_special(machine: Machine, name: str, value: int) -> None:
    _w(machine.uc, name.upper(), value)


__all__ = ["CORTEX_M", "MmioWindow", "current_exception", "exception_entry",
           "exception_return", "map_mmio", "set_special", "special"]
