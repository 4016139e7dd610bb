"""Raw guest blobs for the gdb tests and the benchmark, assembled by the cross toolchains."""

from __future__ import annotations

from pathlib import Path

import support

BASE = 0x400000

# Every blob: `counter` is a quadword in the blob (raw blobs are mapped rwx), at a fixed
# offset so tests can find it: BASE + 0x1000, on its own page (a store to a page holding
# translated code makes QEMU retranslate mid-block; see the report on position counting).
BLOBS = {
    "x86_64": {
        "tools": ("gcc", "objcopy"),
        # spin: increments counter forever (for Ctrl-C and disconnect tests).
        "spin": """
            .intel_syntax noprefix
            _start:
              lea rbx, [rip + counter]
              mov rbp, 0x1234
            1:
              inc qword ptr [rbx]
              jmp 1b
            .org 0x1000
            counter: .quad 0
        """,
        # steps: straight-line code with two stores to counter, then a fault.
        "steps": """
            .intel_syntax noprefix
            _start:
              lea rbx, [rip + counter]
              mov eax, 7
              mov qword ptr [rbx], rax
              add eax, 1
              nop
              mov qword ptr [rbx], rax
              mov rcx, qword ptr [rbx]
              mov qword ptr [0x10], rax
            .org 0x1000
            counter: .quad 0
        """,
        # count: a counted loop for the benchmark (N in rcx), then ud2.
        "count": """
            .intel_syntax noprefix
            _start:
              mov rcx, 50000000
            1:
              add rax, rcx
              xor rdx, rax
              dec rcx
              jnz 1b
            done:
              ud2
            .org 0x1000
            counter: .quad 0
        """,
    },
    "aarch64": {
        "tools": ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-objcopy"),
        "spin": """
            _start:
              adr x1, counter
              mov x29, #0x1234
            1:
              ldr x0, [x1]
              add x0, x0, #1
              str x0, [x1]
              b 1b
            .org 0x1000
            counter: .quad 0
        """,
        "steps": """
            _start:
              adr x1, counter
              mov x0, #7
              str x0, [x1]
              add x0, x0, #1
              nop
              str x0, [x1]
              ldr x2, [x1]
              mov x3, #0x10
              str x0, [x3]
            .org 0x1000
            counter: .quad 0
        """,
        "count": """
            _start:
              mov x2, #0xf080
              movk x2, #0x2fa, lsl #16
            1:
              add x0, x0, x2
              eor x3, x3, x0
              subs x2, x2, #1
              b.ne 1b
            done:
              .inst 0
            .org 0x1000
            counter: .quad 0
        """,
    },
}

COUNTER = BASE + 0x1000


def assemble(arch: str, name: str, workdir: Path) -> Path:
    """Assemble blob ``name`` for ``arch`` into ``workdir`` (missing tools: see support)."""
    return support.assemble(arch, BLOBS[arch][name], workdir, name=f"{arch}-{name}")
