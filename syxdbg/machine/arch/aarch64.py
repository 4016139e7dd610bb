"""AArch64 guest."""

from __future__ import annotations

import capstone
import unicorn
from unicorn import arm64_const as A

from .base import ArchSpec, SyscallABI

_SPECIAL = {
    "sp": A.UC_ARM64_REG_SP,
    "pc": A.UC_ARM64_REG_PC,
    "cpsr": A.UC_ARM64_REG_PSTATE,
    "fpsr": A.UC_ARM64_REG_FPSR,
    "fpcr": A.UC_ARM64_REG_FPCR,
    "tpidr": A.UC_ARM64_REG_TPIDR_EL0,
}


def _cpu_init(uc: unicorn.Uc) -> None:
    # Unicorn's default model is a Cortex-A72 (ARMv8.0). Static glibc uses LSE atomics
    # (casa, ldadd...) when AT_HWCAP says so; the "max" model implements them.
    uc.ctl_set_cpu_model(A.UC_CPU_ARM64_MAX)


def _uc_id(name: str) -> int | None:
    if name in _SPECIAL:
        return _SPECIAL[name]
    return int(getattr(A, f"UC_ARM64_REG_{name.upper()}"))


AARCH64 = ArchSpec(
    name="aarch64",
    uc_arch=unicorn.UC_ARCH_ARM64,
    uc_mode=unicorn.UC_MODE_ARM,
    cs_arch=capstone.CS_ARCH_ARM64,
    cs_mode=capstone.CS_MODE_ARM,
    elf_machine=183,  # EM_AARCH64
    xml_file="aarch64.xml",
    uc_register_id=_uc_id,
    pc="pc",
    sp="sp",
    fp="x29",
    syscall=SyscallABI("x8", ("x0", "x1", "x2", "x3", "x4", "x5"), "x0"),
    aliases={"fp": "x29", "lr": "x30", "nzcv": "cpsr", "tpidr_el0": "tpidr"},
    gdb_arch="aarch64",
    gdb_binary="gdb-multiarch",
    platform="aarch64",
    # fp asimd aes pmull sha1 sha2 crc32 atomics fphp asimdhp asimdrdm: all implemented by
    # the "max" CPU model. Not cpuid (EL0 reads of MIDR_EL1 are a kernel emulation).
    hwcap=0x0000_17FB,
    cpu_init=_cpu_init,
    direct_branches=frozenset({
        "b", "bl", "cbz", "cbnz", "tbz", "tbnz", "b.eq", "b.ne", "b.cs", "b.hs", "b.cc",
        "b.lo", "b.mi", "b.pl", "b.vs", "b.vc", "b.hi", "b.ls", "b.ge", "b.lt", "b.gt", "b.le",
        "b.al", "b.nv",
    }),
    user_address_end=1 << 48,
    stack_top=0xFFFF_F000_0000,
    mmap_base=0xFFFF_E000_0000,
    pie_base=0xAAAA_AAAA_0000,
    # DWARF for the Arm 64-bit architecture (AADWARF64): x0-x30, then sp.
    dwarf_registers={**{i: f"x{i}" for i in range(31)}, 31: "sp"},
    trace_registers=(*(f"x{i}" for i in range(31)), "sp"),
)
