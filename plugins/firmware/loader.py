"""Firmware images into a board's memory: ELF (segments at their load addresses) or raw."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from syxdbg.errors import LoadError
from syxdbg.loader import LoadedImage
from syxdbg.loader.elf import _collect_symbols, open_program
from syxdbg.loader.image import Segment
from syxdbg.machine import Perm

from .board import Board

if TYPE_CHECKING:
    from syxdbg.machine import Machine


def _perm(text: str) -> Perm:
    p = Perm.NONE
    for c, bit in (("r", Perm.R), ("w", Perm.W), ("x", Perm.X)):
        if c in text:
            p |= bit
    return p


def map_board(machine: Machine, board: Board) -> None:
    """Map the board's RAM and flash regions (aliases come later: :func:`fill_aliases`)."""
    for r in board.memory:
        if not r.alias:
            machine.mem.map(r.base, r.size, _perm(r.perms), r.name)


def fill_aliases(machine: Machine, board: Board) -> None:
    """Map each alias as a copy of its region's loaded contents (see docs/firmware.md)."""
    for r in board.memory:
        if r.alias:
            target = board.region(r.alias)
            machine.mem.map(r.base, r.size, _perm(target.perms), r.name)
            machine.mem.write(r.base, machine.mem.read(target.base, r.size))


def _inside(board: Board, start: int, end: int) -> bool:
    return any(r.base <= start and end <= r.base + r.size for r in board.memory
               if not r.alias)


def load_firmware_elf(machine: Machine, board: Board | None, path: str) -> LoadedImage:
    """Load an ELF's PT_LOAD segments at their physical (load) addresses: the start-up
    code copies ``.data`` to RAM as on the chip. ``board`` None: only read the symbols
    (a replay: its first checkpoint brings the memory)."""
    image = LoadedImage(path=os.path.abspath(path), kind="firmware", arch=machine.arch.name,
                        entry=0, argv=[os.path.abspath(path)])
    with open_program(path) as f:
        if f.read(4) != b"\x7fELF":
            raise LoadError(f"{path}: not an ELF file (use --raw for firmware blobs)")
        f.seek(0)
        try:
            elf = ELFFile(f)
            if elf.elfclass != 32 or elf["e_machine"] != "EM_ARM":
                raise LoadError(f"{path}: not a 32-bit ARM ELF (a Cortex-M firmware)")
            image.entry = elf["e_entry"] & ~1
            for seg in elf.iter_segments():
                if seg["p_type"] != "PT_LOAD" or not seg["p_memsz"]:
                    continue
                start, filesz = seg["p_paddr"], seg["p_filesz"]
                flags = seg["p_flags"]
                perms = "".join(c if flags & b else "-" for c, b in
                                (("r", 4), ("w", 2), ("x", 1)))
                image.segments.append(Segment(seg["p_vaddr"], seg["p_vaddr"] + seg["p_memsz"],
                                              perms, seg["p_offset"]))
                if board is None:
                    continue
                vstart, vend = seg["p_vaddr"], seg["p_vaddr"] + seg["p_memsz"]
                if not _inside(board, vstart, vend):
                    raise LoadError(f"{path}: segment [{vstart:#x}, {vend:#x}) is outside "
                                    f"the memory of board {board.name!r}")
                if filesz:
                    if not _inside(board, start, start + filesz):
                        raise LoadError(f"{path}: segment loaded at [{start:#x}, "
                                        f"{start + filesz:#x}) is outside the memory of "
                                        f"board {board.name!r}")
                    machine.mem.write(start, seg.data()[:filesz])
            _collect_symbols(elf, 0, image)
        except ELFError as exc:
            raise LoadError(f"{path}: malformed ELF ({exc})") from None
    return image


def load_firmware_raw(machine: Machine, board: Board | None, path: str, base: int
                      ) -> LoadedImage:
    """A raw image at ``base`` (inside one of the board's regions)."""
    with open_program(path) as f:
        data = f.read()
    if not data:
        raise LoadError(f"{path}: empty file")
    if board is not None:
        if not _inside(board, base, base + len(data)):
            raise LoadError(f"{path}: [{base:#x}, {base + len(data):#x}) is outside the "
                            f"memory of board {board.name!r}")
        machine.mem.write(base, data)
    return LoadedImage(path=os.path.abspath(path), kind="raw", arch=machine.arch.name,
                       entry=base, load_bias=base,
                       segments=[Segment(base, base + len(data), "rwx")])
