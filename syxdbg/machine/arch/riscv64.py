"""RISC-V 64 guest (RV64GC, lp64d ABI).

The hart runs in User mode (as a Linux process does) with the FPU on (``mstatus.FS``
initial). Linux's riscv syscall table is the asm-generic one aarch64 uses too.
"""

from __future__ import annotations

import capstone
import unicorn
from unicorn import riscv_const as R

from .base import ArchSpec, SyscallABI

MSTATUS_FS_INITIAL = 0x2000
PRIV_USER = 0

_FPR = ([f"ft{i}" for i in range(8)] + ["fs0", "fs1"] + [f"fa{i}" for i in range(8)]
        + [f"fs{i}" for i in range(2, 12)] + [f"ft{i}" for i in range(8, 12)])
_GPR = (["zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "fp", "s1"]
        + [f"a{i}" for i in range(8)] + [f"s{i}" for i in range(2, 12)]
        + [f"t{i}" for i in range(3, 7)])


def _uc_id(name: str) -> int | None:
    return int(getattr(R, f"UC_RISCV_REG_{name.upper()}"))


def _cpu_init(uc: unicorn.Uc) -> None:
    uc.reg_write(R.UC_RISCV_REG_MSTATUS, MSTATUS_FS_INITIAL)
    uc.reg_write(R.UC_RISCV_REG_PRIV, PRIV_USER)


# AT_HWCAP: one bit per single-letter extension ('a' is bit 0): I M A F D C.
_HWCAP = sum(1 << (ord(c) - ord("a")) for c in "imafdc")

_BRANCHES = ("beq", "bne", "blt", "bge", "bltu", "bgeu", "beqz", "bnez", "blez", "bgez",
             "bltz", "bgtz", "bgt", "ble", "bgtu", "bleu", "c.beqz", "c.bnez")

RISCV64 = ArchSpec(
    name="riscv64",
    uc_arch=unicorn.UC_ARCH_RISCV,
    uc_mode=unicorn.UC_MODE_RISCV64,
    cs_arch=capstone.CS_ARCH_RISCV,
    cs_mode=capstone.CS_MODE_RISCV64 | capstone.CS_MODE_RISCVC,
    elf_machine=243,  # EM_RISCV
    xml_file="riscv64.xml",
    uc_register_id=_uc_id,
    pc="pc",
    sp="sp",
    fp="fp",
    syscall=SyscallABI("a7", ("a0", "a1", "a2", "a3", "a4", "a5"), "a0"),
    aliases={"s0": "fp", "x0": "zero", "x1": "ra", "x2": "sp", "x3": "gp", "x4": "tp",
             "x8": "fp", **{f"x{i}": n for i, n in enumerate(_GPR) if i not in (0, 1, 2, 3, 4, 8)},
             **{f"f{i}": n for i, n in enumerate(_FPR)}},
    gdb_arch="riscv:rv64",
    gdb_binary="gdb-multiarch",
    platform="",
    hwcap=_HWCAP,
    cpu_init=_cpu_init,
    direct_branches=frozenset({"j", "jal", "c.j", "c.jal", *_BRANCHES}),
    # Sv48 (the kernel's default where the hart has it): a 47-bit user space.
    user_address_end=1 << 47,
    stack_top=0x3F_FFFF_F000,
    mmap_base=0x3F_F000_0000,
    pie_base=0x2A_AAAA_A000,
    # DWARF for RISC-V: x0-x31 are 0-31, f0-f31 are 32-63.
    dwarf_registers={**dict(enumerate(_GPR)), **{32 + i: n for i, n in enumerate(_FPR)}},
    trace_registers=tuple(_GPR[1:]),
)
