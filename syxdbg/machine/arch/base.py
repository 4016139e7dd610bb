"""Architecture specifications.

An :class:`ArchSpec` holds everything syxdbg needs to know about one guest architecture:
how to create the Unicorn engine, the register table (generated from the GDB target
description XML in ``xml/`` so that gdb's ``g``/``p`` packets and syxdbg agree by
construction), the Linux syscall ABI and the process start-up conventions.

Adding an architecture (arm/thumb, riscv64) means writing one module like ``x86_64.py``
plus its XML file; nothing else in the machine layer is architecture specific.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from unicorn import Uc


@dataclass(frozen=True)
class RegisterInfo:
    """One register as gdb numbers it, with the Unicorn id that backs it.

    ``uc_id`` is ``None`` for registers Unicorn does not model (x86 ``orig_rax``): those read
    as a value kept by the machine itself.
    """

    name: str
    regnum: int
    bitsize: int
    feature: str
    uc_id: int | None
    encoding: str = "int"  # "int" (little-endian integer) or "x87" (80-bit mantissa/exponent)

    @property
    def size(self) -> int:
        return self.bitsize // 8


def parse_tdesc(xml_text: str) -> list[tuple[str, int, int, str]]:
    """Return ``(name, regnum, bitsize, feature)`` for every register of a target description.

    Numbering follows gdb's rule: a ``regnum`` attribute sets the number, otherwise a register
    takes the previous number plus one.
    """
    root = ET.fromstring(xml_text)
    out: list[tuple[str, int, int, str]] = []
    next_num = 0
    for feature in root.iter("feature"):
        fname = feature.get("name", "")
        for reg in feature.iter("reg"):
            num = int(reg.get("regnum", next_num))
            out.append((reg.get("name", ""), num, int(reg.get("bitsize", "0")), fname))
            next_num = num + 1
    return out


@dataclass(frozen=True)
class SyscallABI:
    number: str
    args: tuple[str, ...]
    ret: str


@dataclass(frozen=True)
class ArchSpec:
    """Everything architecture specific, as data plus a few small callables."""

    name: str
    uc_arch: int
    uc_mode: int
    cs_arch: int
    cs_mode: int
    elf_machine: int
    xml_file: str
    uc_register_id: Callable[[str], int | None]
    pc: str
    sp: str
    fp: str
    syscall: SyscallABI
    aliases: Mapping[str, str] = field(default_factory=dict)
    x87_registers: frozenset[str] = frozenset()
    bits: int = 64
    page_size: int = 4096
    gdb_arch: str = ""
    gdb_binary: str = "gdb"
    platform: str = ""
    hwcap: int = 0
    hwcap2: int = 0
    # Default layout of a Linux process (user-space addresses).
    #: End of the user address space a Linux process can map (x86_64: 47 bits, 4-level
    #: paging; aarch64: 48 bits): a segment beyond it cannot be loaded.
    user_address_end: int = 1 << 47
    stack_top: int = 0x7FFF_F000_0000
    stack_size: int = 8 * 1024 * 1024
    mmap_base: int = 0x7FFF_E000_0000
    pie_base: int = 0x5555_5555_4000
    cpu_init: Callable[[Uc], None] | None = None
    #: Mnemonics (capstone) of branches whose target is an immediate operand.
    direct_branches: frozenset[str] = frozenset()
    #: DWARF register numbers (call frame information, location expressions) to names.
    dwarf_registers: Mapping[int, str] = field(default_factory=dict)
    #: The general registers an instruction trace records, in order (without the pc).
    #: x86_64's is the Tenet trace explorer's AMD64 set exactly (a name Tenet does not know
    #: makes it reject the line).
    trace_registers: tuple[str, ...] = ()

    @property
    def tdesc_xml(self) -> str:
        return resources.files("syxdbg.machine.arch").joinpath("xml", self.xml_file).read_text()

    @cached_property
    def registers(self) -> tuple[RegisterInfo, ...]:
        """The register table in gdb's numbering (cached; frozen dataclasses allow this)."""
        regs = []
        for name, num, bits, feat in parse_tdesc(self.tdesc_xml):
            enc = "x87" if name in self.x87_registers else "int"
            regs.append(RegisterInfo(name, num, bits, feat, self.uc_register_id(name), enc))
        return tuple(sorted(regs, key=lambda r: r.regnum))

    @cached_property
    def _by_name(self) -> dict[str, RegisterInfo]:
        return {r.name: r for r in self.registers}

    def register(self, name: str) -> RegisterInfo | None:
        """Look a register up by gdb name or alias (``pc``, ``sp``, ``fp``, ``lr``...)."""
        key = name.lower()
        return self._by_name.get(self.aliases.get(key, key))
