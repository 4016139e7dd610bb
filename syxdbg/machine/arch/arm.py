"""32-bit ARM guest (ARMv7-A, AArch32 EABI hard-float; ARM and Thumb-2 code mixed).

The CPU is a Cortex-A15 (VFPv4 with 32 double registers, NEON, integer division, LPAE)
in User mode with the VFP enabled (FPEXC.EN), as Linux starts a process. The instruction
set is the CPSR's T bit: the machine starts Unicorn with the pc's low bit set in Thumb
state, and writing the pc keeps the current state unless the value's low bit asks for
Thumb (an ELF entry point or a ``bx`` target, as the hardware's interworking does).
"""

from __future__ import annotations

import capstone
import unicorn
from unicorn import arm_const as A

from .base import ArchSpec, SyscallABI

#: CPSR bits.
CPSR_T = 1 << 5
CPSR_MODE_USR = 0x10
#: The IT state (Thumb If-Then) bits of the CPSR: IT[1:0] at 25-26, IT[7:2] at 10-15.
CPSR_IT_MASK = (0x3 << 25) | (0x3F << 10)
FPEXC_EN = 1 << 30

_SPECIAL = {
    "sp": A.UC_ARM_REG_SP,
    "lr": A.UC_ARM_REG_LR,
    "pc": A.UC_ARM_REG_PC,
    "cpsr": A.UC_ARM_REG_CPSR,
    "fpscr": A.UC_ARM_REG_FPSCR,
    "tpidruro": A.UC_ARM_REG_C13_C0_3,
}


def _uc_id(name: str) -> int | None:
    if name in _SPECIAL:
        return _SPECIAL[name]
    return int(getattr(A, f"UC_ARM_REG_{name.upper()}"))


def _cpu_init(uc: unicorn.Uc) -> None:
    uc.ctl_set_cpu_model(A.UC_CPU_ARM_CORTEX_A15)
    uc.reg_write(A.UC_ARM_REG_FPEXC, FPEXC_EN)
    uc.reg_write(A.UC_ARM_REG_CPSR, CPSR_MODE_USR)


# arch/arm/include/uapi/asm/hwcap.h: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4
# idiva idivt vfpd32 lpae (what a Cortex-A15 reports; glibc's ifuncs look at vfp/neon).
_HWCAP = (2 | 4 | 16 | 64 | 128 | 4096 | 8192 | 32768 | 65536 | 131072 | 262144
          | 524288 | 1048576)

_CONDITIONS = ("eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge",
               "lt", "gt", "le", "al")

ARM = ArchSpec(
    name="arm",
    uc_arch=unicorn.UC_ARCH_ARM,
    uc_mode=unicorn.UC_MODE_ARM,
    cs_arch=capstone.CS_ARCH_ARM,
    cs_mode=capstone.CS_MODE_ARM,
    elf_machine=40,  # EM_ARM
    xml_file="arm.xml",
    uc_register_id=_uc_id,
    pc="pc",
    sp="sp",
    fp="r11",
    syscall=SyscallABI("r7", ("r0", "r1", "r2", "r3", "r4", "r5"), "r0"),
    aliases={"fp": "r11", "ip": "r12", "r13": "sp", "r14": "lr", "r15": "pc",
             "sb": "r9", "sl": "r10"},
    bits=32,
    gdb_arch="arm",
    gdb_binary="gdb-multiarch",
    platform="v7l",
    hwcap=_HWCAP,
    cpu_init=_cpu_init,
    direct_branches=frozenset({
        "b", "bl", "blx", "cbz", "cbnz", "b.w", "bl.w",
        *(f"b{c}" for c in _CONDITIONS), *(f"b{c}.w" for c in _CONDITIONS),
        *(f"bl{c}" for c in _CONDITIONS),
    }),
    # A 3G/1G split (TASK_SIZE 0xbf000000): the stack just below it, mmap below the stack.
    user_address_end=0xBF00_0000,
    stack_top=0xBEFF_F000,
    mmap_base=0xB6F0_0000,
    pie_base=0x0040_0000,
    # DWARF for the ARM architecture: r0-r15, then (VFPv3) d0-d31 at 256.
    dwarf_registers={**{i: f"r{i}" for i in range(13)}, 13: "sp", 14: "lr", 15: "pc",
                     **{256 + i: f"d{i}" for i in range(32)}},
    trace_registers=(*(f"r{i}" for i in range(13)), "sp", "lr"),
)
