"""The system call a stopped machine is about to make, by name and arguments: what
``last-write`` reports when the bytes it looks for were written by the kernel (a read or
recv filling a buffer lands on the system call instruction, before it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ..registry import Handler

if TYPE_CHECKING:
    from syxdbg.machine import Machine

#: Mnemonics of the system call instructions (x86_64, aarch64/arm, riscv64).
SYSCALL_MNEMONICS = frozenset({"syscall", "svc", "ecall", "swi"})


def syscall_at(machine: Machine, dispatch: Mapping[int, Handler],
               name_of: Callable[[int], str | None]) -> tuple[str, tuple[int, ...]] | None:
    """(name, arguments as the handler reads them) of the system call instruction at the
    machine's pc, None if the pc is not at one."""
    insn = machine.disassemble(machine.pc, 1)
    if not insn or insn[0][1] not in SYSCALL_MNEMONICS:
        return None
    abi = machine.arch.syscall
    nr = int(machine.regs[abi.number])
    handler = dispatch.get(nr)
    name = name_of(nr)
    if handler is None:
        return (str(name or f"syscall_{nr}"), ())
    raw = [int(machine.regs[r]) for r in abi.args[:len(handler.converters)]]
    args = tuple(conv(v) for conv, v in zip(handler.converters, raw, strict=True))
    return (str(name or handler.name.rpartition(":")[2]), args)


def format_call(name: str, args: tuple[int, ...]) -> str:
    """``name(arg, ...)`` with small numbers in decimal, the others in hex."""
    shown = ", ".join(hex(a) if a > 9 or a < -9 else str(a) for a in args)
    return f"{name}({shown})"
