"""Helpers for the timeline tests (import this module; fixtures stay in tests/conftest.py)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import progs

import syxdbg
from syxdbg.session import Session

ENV = dict(progs.DEFAULT_ENV)


def open_session(exe: Path | str, args: tuple[str, ...] | list[str] = (), **options: Any
                 ) -> Session:
    """A session on ``exe`` with a fixed environment and argv[0] (timeline options as
    ``interval=``/``budget=`` keywords)."""
    opts = {f"timeline.{k}": v for k, v in options.items()}
    return syxdbg.open(str(exe), list(args), env=ENV, argv0="prog", options=opts)


@dataclass(frozen=True)
class State:
    """Everything that determines the future of the guest at one position."""

    position: int
    regs: tuple[tuple[str, int], ...]
    ram: tuple[tuple[int, int, str], ...]  # (start, size, blake2b of the bytes)
    kernel: Any
    cursor: int

    def diff(self, other: State) -> list[str]:
        out = []
        if self.position != other.position:
            out.append(f"position {self.position} != {other.position}")
        a, b = dict(self.regs), dict(other.regs)
        out += [f"reg {k}: {a[k]:#x} != {b.get(k, -1):#x}" for k in a if a[k] != b.get(k)]
        ra = {s: (n, h) for s, n, h in self.ram}
        rb = {s: (n, h) for s, n, h in other.ram}
        out += [f"ram region {s:#x}" for s in ra.keys() | rb.keys() if ra.get(s) != rb.get(s)]
        if self.kernel != other.kernel:
            out.append("linux kernel state")
        if self.cursor != other.cursor:
            out.append(f"eventlog cursor {self.cursor} != {other.cursor}")
        return out


def capture(session: Session) -> State:
    m = session.machine
    ram = []
    for r in m.mem.regions():
        ram.append((r.start, r.size, hashlib.blake2b(m.mem.read(r.start, r.size)).hexdigest()))
    kernel = session.states.get("linux").save_state() if "linux" in session.states else None
    cursor = session.eventlog.cursor if session.has_timeline else 0
    return State(m.position, tuple(sorted(m.regs.snapshot().items())), tuple(ram), kernel,
                 cursor)


def source_line(exe: Path | str, pc: int) -> tuple[str, int] | None:
    """(file name, line) of ``pc`` from the DWARF line table (pyelftools)."""
    from elftools.elf.elffile import ELFFile

    with open(exe, "rb") as f:
        elf = ELFFile(f)
        if not elf.has_dwarf_info():
            return None
        dwarf = elf.get_dwarf_info()
        for cu in dwarf.iter_CUs():
            lp = dwarf.line_program_for_CU(cu)
            if lp is None:
                continue
            prev = None
            for entry in lp.get_entries():
                st = entry.state
                if st is None:
                    continue
                if prev is not None and prev.address <= pc < st.address:
                    fe = lp["file_entry"][prev.file - (0 if lp.header.version >= 5 else 1)]
                    return fe.name.decode(), prev.line
                prev = None if st.end_sequence else st
    return None


def function_at(session: Session, pc: int) -> str | None:
    image = session.image
    for name, addr in image.symbols.items():
        size = image.symbol_sizes.get(name, 0)
        if addr <= pc < addr + size:
            return name
    return None


#: A program that dirties 64 MiB of pages in about 100k instructions (one byte per page: a
#: snapshot journal must keep 64 MiB of pre-images for one interval).
DIRTY_C = r"""
#include <sys/mman.h>

int main(void)
{
    unsigned long n = 64UL << 20, i;
    volatile char *p = mmap(0, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 1;
    for (i = 0; i < n; i += 4096)
        p[i] = (char)(i >> 12);
    for (i = 0; i < n; i += 4096)
        if (p[i] != (char)(i >> 12))
            return 2;
    return 0;
}
"""


def build_dirty(directory: Path) -> str:
    """Build :data:`DIRTY_C` with the suite's gcc toolchain in ``directory``."""
    import subprocess

    from support import tool_missing

    tc = progs.toolchain_for("gcc")
    if not tc.available():
        tool_missing(f"{tc.cc} is not installed")
    src, exe = directory / "dirty.c", directory / "dirty"
    src.write_text(DIRTY_C)
    subprocess.run(tc.command(src, exe), check=True, cwd=directory)
    return str(exe)
