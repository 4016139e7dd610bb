"""x86-64 (amd64) guest."""

from __future__ import annotations

import capstone
import unicorn
from unicorn import x86_const as X

from .base import ArchSpec, SyscallABI

_SPECIAL = {
    "eflags": X.UC_X86_REG_EFLAGS,
    "fctrl": X.UC_X86_REG_FPCW,
    "fstat": X.UC_X86_REG_FPSW,
    "ftag": X.UC_X86_REG_FPTAG,
    "fiseg": X.UC_X86_REG_FCS,
    "fioff": X.UC_X86_REG_FIP,
    "foseg": X.UC_X86_REG_FDS,
    "fooff": X.UC_X86_REG_FDP,
    "fop": X.UC_X86_REG_FOP,
    "orig_rax": None,
}


def _uc_id(name: str) -> int | None:
    if name in _SPECIAL:
        return _SPECIAL[name]
    if name.startswith("st") and name[2:].isdigit():
        return int(getattr(X, f"UC_X86_REG_FP{name[2:]}"))
    return int(getattr(X, f"UC_X86_REG_{name.upper()}"))


def _cpu_init(uc: unicorn.Uc) -> None:
    # The state Linux gives a new process: x87 control word 0x37f, SSE exceptions masked.
    uc.reg_write(X.UC_X86_REG_FPCW, 0x37F)
    uc.reg_write(X.UC_X86_REG_MXCSR, 0x1F80)


X86_64 = ArchSpec(
    name="x86_64",
    uc_arch=unicorn.UC_ARCH_X86,
    uc_mode=unicorn.UC_MODE_64,
    cs_arch=capstone.CS_ARCH_X86,
    cs_mode=capstone.CS_MODE_64,
    elf_machine=62,  # EM_X86_64
    xml_file="x86_64.xml",
    uc_register_id=_uc_id,
    pc="rip",
    sp="rsp",
    fp="rbp",
    syscall=SyscallABI("rax", ("rdi", "rsi", "rdx", "r10", "r8", "r9"), "rax"),
    aliases={"pc": "rip", "sp": "rsp", "fp": "rbp", "flags": "eflags"},
    x87_registers=frozenset(f"st{i}" for i in range(8)),
    gdb_arch="i386:x86-64",
    gdb_binary="gdb",
    platform="x86_64",
    # fpu tsc cx8 cmov mmx fxsr sse sse2 (the bits glibc's startup looks at).
    hwcap=0x078BFBFF,
    cpu_init=_cpu_init,
    direct_branches=frozenset({
        "jmp", "call", "loop", "loope", "loopne", "jrcxz", "jecxz", "ja", "jae", "jb", "jbe",
        "je", "jne", "jg", "jge", "jl", "jle", "jo", "jno", "jp", "jnp", "js", "jns",
    }),
    # System V AMD64 psABI, figure 3.36.
    dwarf_registers={0: "rax", 1: "rdx", 2: "rcx", 3: "rbx", 4: "rsi", 5: "rdi", 6: "rbp",
                     7: "rsp", **{i: f"r{i}" for i in range(8, 16)}, 16: "rip"},
    trace_registers=("rax", "rbx", "rcx", "rdx", "rbp", "rsp", "rsi", "rdi", "r8", "r9",
                     "r10", "r11", "r12", "r13", "r14", "r15"),
)
