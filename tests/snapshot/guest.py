"""A tiny guest "store interpreter" for the snapshot tests, on x86_64 and aarch64.

The guest reads 32-byte commands ``(op, addr, value, len)`` from ``CMD`` and performs them
with real guest instructions, so random store programs need no assembler per example:

====  =====================================================================================
op    action
====  =====================================================================================
0     end: fall through to ``done`` (the tests run with ``until=done``)
1-4   store 1/2/4/8 bytes of ``value`` at ``addr`` (may cross a page)
5     ``rep stosb`` (aarch64: a byte loop) of ``len`` bytes of ``value`` at ``addr``
6     atomic add of ``value`` to the qword at ``addr`` (``lock xadd`` / ``ldxr``+``stxr``)
7     self-modifying code: patch the immediate of ``f`` with ``value``, call ``f``, store its
      result at ``RESULT``
8     system call 500: the host writes ``len`` bytes of ``value`` at ``addr`` (a host write)
9     call ``f`` and store its result at ``RESULT``
====  =====================================================================================
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import support
from support import tool_missing

from syxdbg.machine import Machine, Perm, get_arch
from syxdbg.snapshot import ReferenceSyxSnapshot

CODE = 0x400000
CMD = 0x500000
RESULT = 0x501FF8
DATA = 0x600000
DATA_PAGES = 8
EXTRA = 0x700000  # pages the tests map, unmap and protect
EXTRA_PAGES = 4
STACK = 0x7FF000
CMD_SIZE = 32

X86 = """
    .intel_syntax noprefix
_start:
    mov rsi, 0x500000
next:
    mov rax, [rsi]
    mov rdi, [rsi+8]
    mov rdx, [rsi+16]
    mov rcx, [rsi+24]
    add rsi, 32
    cmp rax, 0
    je done
    cmp rax, 1
    jne 2f
    mov [rdi], dl
    jmp next
2:  cmp rax, 2
    jne 3f
    mov [rdi], dx
    jmp next
3:  cmp rax, 3
    jne 4f
    mov [rdi], edx
    jmp next
4:  cmp rax, 4
    jne 5f
    mov [rdi], rdx
    jmp next
5:  cmp rax, 5
    jne 6f
    mov eax, edx
    rep stosb
    jmp next
6:  cmp rax, 6
    jne 7f
    lock xadd [rdi], rdx
    jmp next
7:  cmp rax, 7
    jne 8f
    mov dword ptr [rip + f + 1], edx
    call f
    mov [0x501ff8], rax
    jmp next
8:  cmp rax, 8
    jne 9f
    mov r10, rcx
    mov eax, 500
    syscall
    jmp next
9:  call f
    mov [0x501ff8], rax
    jmp next
done:
    nop
    nop
f:
    mov eax, 0x11223344
    ret
"""

A64 = """
_start:
    movz x9, #0x50, lsl #16
next:
    ldp x0, x1, [x9]
    ldp x2, x3, [x9, #16]
    add x9, x9, #32
    cbz x0, done
    cmp x0, #1
    b.ne 2f
    strb w2, [x1]
    b next
2:  cmp x0, #2
    b.ne 3f
    strh w2, [x1]
    b next
3:  cmp x0, #3
    b.ne 4f
    str w2, [x1]
    b next
4:  cmp x0, #4
    b.ne 5f
    str x2, [x1]
    b next
5:  cmp x0, #5
    b.ne 6f
51: cbz x3, next
    strb w2, [x1], #1
    sub x3, x3, #1
    b 51b
6:  cmp x0, #6
    b.ne 7f
61: ldxr x4, [x1]
    add x4, x4, x2
    stxr w5, x4, [x1]
    cbnz w5, 61b
    b next
7:  cmp x0, #7
    b.ne 8f
    and x4, x2, #0xffff
    lsl x4, x4, #5
    movz w5, #0x5280, lsl #16
    orr w4, w4, w5
    adr x5, f
    str w4, [x5]
    bl f
    b 91f
8:  cmp x0, #8
    b.ne 9f
    mov x8, #500
    svc #0
    b next
9:  bl f
91: movz x4, #0x50, lsl #16
    movk x4, #0x1ff8
    str x0, [x4]
    b next
done:
    nop
    nop
f:
    movz w0, #0x3344
    ret
"""

SOURCES = {"x86_64": X86, "aarch64": A64}

_cache: dict[str, tuple[bytes, int, int]] = {}


def assemble(arch: str) -> tuple[bytes, int, int]:
    """(code, offset of ``done``, offset of ``f``) for ``arch``."""
    if arch in _cache:
        return _cache[arch]
    src = SOURCES[arch]
    with tempfile.TemporaryDirectory() as td:
        d = Path(td)
        binf = support.assemble(arch, src, d, name="g")
        nm_tool = "nm" if arch == "x86_64" else "aarch64-linux-gnu-nm"
        try:
            nm = subprocess.run([nm_tool, str(d / "g.o")], check=True, capture_output=True,
                                text=True)
        except FileNotFoundError as exc:
            tool_missing(f"{exc.filename} is not installed")
        syms = {ln.split()[2]: int(ln.split()[0], 16) for ln in nm.stdout.splitlines()
                if len(ln.split()) == 3}
        _cache[arch] = (binf.read_bytes(), syms["done"], syms["f"])
    return _cache[arch]


class Guest:
    """A machine running the store interpreter."""

    def __init__(self, arch: str) -> None:
        code, done, f = assemble(arch)
        self.arch = arch
        self.done = CODE + done
        self.f = CODE + f
        m = self.machine = Machine(get_arch(arch))
        m.mem.map(CODE, 0x1000, Perm.RWX, "code")
        m.mem.map(CMD, 0x2000, Perm.RW, "cmd")
        m.mem.map(DATA, DATA_PAGES * 0x1000, Perm.RW, "data")
        m.mem.map(STACK, 0x1000, Perm.RW, "stack")
        m.mem.write(CODE, code)
        m.regs.pc = CODE
        m.regs.sp = STACK + 0x1000
        m.set_syscall_handler(self._syscall)
        attach_current(m)

    def _syscall(self, m: Machine) -> None:
        if self.arch == "x86_64":
            nr, addr, value, n = m.regs.rax, m.regs.rdi, m.regs.rdx, m.regs.r10
        else:
            nr, addr, value, n = m.regs.x8, m.regs.x1, m.regs.x2, m.regs.x3
        if nr == 500:
            m.mem.write(addr, bytes([value & 0xFF]) * n)
        else:
            m.request_exit(0)

    def f_value(self) -> int:
        """What ``f`` returns according to the code bytes in guest memory now."""
        if self.arch == "x86_64":
            return int.from_bytes(self.machine.mem.read(self.f + 1, 4), "little")
        insn = int.from_bytes(self.machine.mem.read(self.f, 4), "little")
        return (insn >> 5) & 0xFFFF

    def run(self, cmds: list[tuple[int, int, int, int]]) -> None:
        """Write ``cmds`` (host write), run the interpreter from the top until ``done``."""
        blob = b"".join(
            b"".join(x.to_bytes(8, "little") for x in c) for c in [*cmds, (0, 0, 0, 0)]
        )
        m = self.machine
        m.mem.write(CMD, blob)
        m.regs.pc = CODE
        ev = m.run(until=self.done)
        assert ev.reason == "stopped" and m.pc == self.done, ev


#: core-tlb: virtual-TLB fill hook; core-hook: C write hook; reference: pure Python.
IMPLS = ["core-tlb", "core-hook", "reference"]

#: The implementation new Guests attach to (set by ``snapshot_class``).
current_impl = "reference"


def snapshot_class(name: str) -> Any:
    """The SyxSnapshot class of an implementation; skips if the core is not built.

    Guests created afterwards attach the compiled journal in the matching mode before they
    first run (the virtual TLB can only be chosen then).
    """
    global current_impl
    current_impl = name
    if name == "reference":
        return ReferenceSyxSnapshot
    try:
        from syxdbg.snapshot.core import CoreSyxSnapshot
    except ImportError as exc:  # not built: python setup.py build_ext --inplace
        tool_missing(f"compiled snapshot core not built: {exc}")
    return CoreSyxSnapshot


def attach_current(m: Machine) -> None:
    if current_impl.startswith("core-"):
        from syxdbg.snapshot.core import attach

        tracker = attach(m, current_impl.removeprefix("core-"))
        assert tracker.engine.mode == current_impl.removeprefix("core-")  # type: ignore[attr-defined]


def ram(m: Machine) -> dict[int, bytes]:
    """All mapped RAM, by region start."""
    return {r.start: m.mem.read(r.start, r.size) for r in m.mem.regions()}


def layout(m: Machine) -> list[tuple[int, int, int]]:
    return [(r.start, r.size, int(r.perms)) for r in m.mem.regions()]
