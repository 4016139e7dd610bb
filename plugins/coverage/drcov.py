"""Write drcov coverage files (DynamoRIO's ``drcov`` format, version 2).

The layout, as DynamoRIO writes it and as Lighthouse (IDA, Binary Ninja) and bncov read it::

    DRCOV VERSION: 2
    DRCOV FLAVOR: drcov
    Module Table: version 2, count N
    Columns: id, base, end, entry, checksum, timestamp, path
     0, 0x0000000000400000, 0x00000000004c7000, 0x0000000000401650, 0x00000000, 0x00000000, /p
    BB Table: M bbs
    <M binary entries: uint32 start (offset from its module's base), uint16 size, uint16 id>

Readers split module rows on ", " (so the path is the last field) and match a module to
the program open in the disassembler by the file name of its path. The entries follow the
``BB Table`` line directly, little-endian and packed (8 bytes each), with nothing after
them (bncov warns about trailing bytes).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

VERSION = 2
FLAVOR = "drcov"
COLUMNS = "id, base, end, entry, checksum, timestamp, path"
_ENTRY = struct.Struct("<IHH")


@dataclass(frozen=True)
class Module:
    """One row of the module table: ``[base, end)`` holds the blocks that refer to it."""

    id: int
    base: int
    end: int
    entry: int
    path: str
    checksum: int = 0
    timestamp: int = 0

    def row(self) -> str:
        return (f"{self.id:2d}, 0x{self.base:016x}, 0x{self.end:016x}, 0x{self.entry:016x}, "
                f"0x{self.checksum:08x}, 0x{self.timestamp:08x}, {self.path}")


@dataclass(frozen=True)
class Block:
    """A basic block as drcov stores it: offset from its module's base, size, module."""

    offset: int
    size: int
    module: int


def write(out: BinaryIO, modules: Sequence[Module], blocks: Iterable[Block]) -> int:
    """Write a drcov file; returns the number of block entries."""
    entries = b"".join(_ENTRY.pack(b.offset, min(b.size, 0xFFFF), b.module) for b in blocks)
    count = len(entries) // _ENTRY.size
    header = [f"DRCOV VERSION: {VERSION}", f"DRCOV FLAVOR: {FLAVOR}",
              f"Module Table: version 2, count {len(modules)}", f"Columns: {COLUMNS}"]
    header += [m.row() for m in modules]
    header.append(f"BB Table: {count} bbs")
    # Paths are file names from the host: keep undecodable bytes as they were.
    out.write(("\n".join(header) + "\n").encode("utf-8", "surrogateescape"))
    out.write(entries)
    return count


def module_name(path: str) -> str:
    """What Lighthouse and bncov match against the disassembler's file: the base name."""
    return os.path.basename(path)
