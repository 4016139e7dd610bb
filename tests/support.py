"""Helpers shared by test modules (import this, never ``conftest``: several conftest.py
files exist in the tree and the name ``conftest`` is ambiguous)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from syxdbg.machine import Machine


def in_ci() -> bool:
    """True when running under CI (env var CI set to anything but '', 0, false, no)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def tool_missing(reason: str) -> None:
    """Skip the current test on a developer machine, fail it under CI."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: every tool must be installed)", pytrace=False)
    pytest.skip(reason)


#: Cross tools that turn an assembly snippet into raw machine code, per architecture.
ASM_TOOLS = {"x86_64": ("gcc", "objcopy"),
             "aarch64": ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-objcopy")}


def assemble(arch: str, source: str, workdir: Path, *, name: str = "code",
             flags: Sequence[str] = ()) -> Path:
    """Assemble ``source`` for ``arch`` into ``workdir/NAME.bin`` (its .text section, raw).

    ``workdir/NAME.o`` stays beside it for symbol look-ups. A missing tool skips the test on
    a developer machine and fails it under CI.
    """
    cc, objcopy = ASM_TOOLS[arch]
    src, obj, out = (workdir / f"{name}{ext}" for ext in (".S", ".o", ".bin"))
    src.write_text(source)
    try:
        subprocess.run([cc, *flags, "-c", str(src), "-o", str(obj)], check=True)
        subprocess.run([objcopy, "-O", "binary", "-j", ".text", str(obj), str(out)], check=True)
    except FileNotFoundError as exc:
        tool_missing(f"{exc.filename} is not installed")
    return out


#: Where toy_machine() maps code and data.
TOY_CODE = 0x400000
TOY_DATA = 0x600000


def toy_machine(arch: str, code: bytes, *, rwx: bool = False, data_pages: int = 1,
                host_write: tuple[int, bytes] | None = None) -> Machine:
    """A bare Machine running ``code`` at TOY_CODE: data at TOY_DATA (``data_pages`` pages),
    a one-page stack below 0x800000, and a tiny syscall layer: exit (60/93) ends the run
    with its first argument, any other call returns 4242 (after writing ``host_write``'s
    bytes to guest memory, as a kernel filling a buffer would)."""
    from syxdbg.machine import Machine, Perm, get_arch

    m = Machine(get_arch(arch))
    m.mem.map(TOY_CODE, 0x1000, Perm.RWX if rwx else Perm.RX, "code")
    m.mem.map(TOY_DATA, 0x1000, Perm.RW, "data")
    for i in range(1, data_pages):
        m.mem.map(TOY_DATA + i * 0x1000, 0x1000, Perm.RW, f"data{i + 1}")
    m.mem.map(0x7FF000, 0x1000, Perm.RW, "stack")
    m.mem.write(TOY_CODE, code)
    m.regs.pc = TOY_CODE
    m.regs.sp = 0x800000

    def syscall(mm: Machine) -> None:
        abi = mm.arch.syscall
        if mm.regs[abi.number] in (60, 93):
            mm.request_exit(mm.regs[abi.args[0]])
            return
        if host_write is not None:
            mm.mem.write(*host_write)
        mm.regs[abi.ret] = 4242

    m.set_syscall_handler(syscall)
    return m
