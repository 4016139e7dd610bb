"""The ARM kernel user helpers page (Documentation/arm/kernel_user_helpers.rst).

Linux maps a read-only, executable page at 0xffff0000 whose last 160 bytes hold small ARM
functions user code may call (older glibc and libgcc for atomics and TLS when the CPU's own
instructions are not assumed):

============  ==========================  ===============================================
0xffff0f60    ``__kuser_cmpxchg64``       r0 -> old, r1 -> new, r2 -> value; r0 = 0 and C
                                          set when swapped
0xffff0fa0    ``__kuser_memory_barrier``  ``dmb ish``
0xffff0fc0    ``__kuser_cmpxchg``         r0 old, r1 new, r2 -> value; r0 = 0 and C set
                                          when swapped
0xffff0fe0    ``__kuser_get_tls``         r0 = TPIDRURO (set by the ``set_tls`` call)
0xffff0ffc    ``__kuser_helper_version``  5 (the number of 32-byte helper slots)
============  ==========================  ===============================================

The helpers are real ARMv7 code (ldrex/strex loops, as the kernel's SMP versions), so they
run, step and reverse like any other guest code. The rest of the page is the kernel's fill
pattern, an undefined instruction.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from ..machine.memory import PAGE, Perm

if TYPE_CHECKING:
    from ..machine import Machine

KUSER_PAGE = 0xFFFF_0000
KUSER_CMPXCHG64 = 0xFFFF_0F60
KUSER_MEMORY_BARRIER = 0xFFFF_0FA0
KUSER_CMPXCHG = 0xFFFF_0FC0
KUSER_GET_TLS = 0xFFFF_0FE0
KUSER_HELPER_VERSION = 0xFFFF_0FFC
#: The kernel's filler for the vectors page: an undefined instruction (0xe7fddef1).
_FILL = 0xE7FDDEF1

#: (page offset, ARM instruction words).
_HELPERS: tuple[tuple[int, tuple[int, ...]], ...] = (
    (0xF60, (
        0xE92D00F0,  # push    {r4, r5, r6, r7}
        0xE1C040D0,  # ldrd    r4, r5, [r0]
        0xE1C160D0,  # ldrd    r6, r7, [r1]
        0xE1B20F9F,  # 1: ldrexd r0, r1, [r2]
        0xE0303004,  # eors    r3, r0, r4
        0x00313005,  # eorseq  r3, r1, r5
        0x01A23F96,  # strexdeq r3, r6, r7, [r2]
        0x03330001,  # teqeq   r3, #1          (the store failed: retry)
        0x0AFFFFF9,  # beq     1b
        0xE2730000,  # rsbs    r0, r3, #0      (r0 = 0 and C set on success)
        0xE8BD00F0,  # pop     {r4, r5, r6, r7}
        0xE12FFF1E,  # bx      lr
    )),
    (0xFA0, (
        0xF57FF05B,  # dmb     ish
        0xE12FFF1E,  # bx      lr
    )),
    (0xFC0, (
        0xE1923F9F,  # 1: ldrex r3, [r2]
        0xE0533000,  # subs    r3, r3, r0
        0x01823F91,  # strexeq r3, r1, [r2]
        0x03330001,  # teqeq   r3, #1
        0x0AFFFFFA,  # beq     1b
        0xE2730000,  # rsbs    r0, r3, #0
        0xE12FFF1E,  # bx      lr
    )),
    (0xFE0, (
        0xEE1D0F70,  # mrc     p15, 0, r0, c13, c0, 3   (TPIDRURO)
        0xE12FFF1E,  # bx      lr
    )),
)
HELPER_VERSION = 5


def kuser_page() -> bytes:
    """The page's 4096 bytes."""
    page = bytearray(struct.pack("<I", _FILL) * (PAGE // 4))
    for offset, words in _HELPERS:
        page[offset:offset + 4 * len(words)] = struct.pack(f"<{len(words)}I", *words)
    page[0xFFC:0x1000] = struct.pack("<I", HELPER_VERSION)
    return bytes(page)


def map_kuser_page(machine: Machine) -> None:
    """Map the helpers page (read and execute, as Linux's vectors page is to user code)."""
    machine.mem.map(KUSER_PAGE, PAGE, Perm.R | Perm.X, "[vectors]")
    machine.mem.write(KUSER_PAGE, kuser_page())
