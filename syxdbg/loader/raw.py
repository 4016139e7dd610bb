"""Raw firmware blobs: bytes mapped at a base address, executed from an entry point."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..errors import LoadError
from ..machine.memory import Perm, page_round_down, page_round_up
from .elf import open_program
from .image import LoadedImage, Segment

if TYPE_CHECKING:
    from ..machine import Machine

#: Stack given to raw blobs: 1 MiB just below this address unless it would overlap the blob.
RAW_STACK_SIZE = 1 << 20


def load_raw(machine: Machine, path: str, base: int, entry: int | None = None) -> LoadedImage:
    """Map the blob read-write-execute at ``base`` (page aligned) and point pc at ``entry``.

    A 1 MiB read-write stack is mapped below the arch's default stack top and ``sp`` points
    at its top; firmware that sets its own stack pointer simply overrides it.
    """
    try:
        with open_program(path) as f:
            data = f.read()
    except OSError as exc:
        raise LoadError(f"{path}: cannot read ({exc.strerror})") from None
    if not data:
        raise LoadError(f"{path}: empty file")
    if base < 0 or base % 4096:
        raise LoadError(f"--base {base:#x} is not page aligned (4 KiB)")
    entry = base if entry is None else entry
    size = page_round_up(len(data))
    if not base <= entry < base + len(data):
        end = base + len(data)
        raise LoadError(f"--entry {entry:#x} is outside the blob [{base:#x}, {end:#x})")
    machine.mem.map(base, size, Perm.RWX, os.path.basename(path))
    machine.mem.write(base, data)
    stack_top = page_round_down(machine.arch.stack_top)
    if stack_top - RAW_STACK_SIZE < base + size and base < stack_top:
        below_fits = base >= RAW_STACK_SIZE
        stack_top = page_round_down(base) if below_fits else base + size + RAW_STACK_SIZE
    machine.mem.map(stack_top - RAW_STACK_SIZE, RAW_STACK_SIZE, Perm.RW, "[stack]")
    machine.regs.sp = stack_top
    machine.regs.pc = entry
    image = LoadedImage(path=os.path.abspath(path), kind="raw", arch=machine.arch.name,
                        entry=entry, load_bias=base, brk=0, stack_top=stack_top,
                        stack_size=RAW_STACK_SIZE, initial_sp=stack_top,
                        segments=[Segment(base, base + len(data), "rwx")])
    return image
