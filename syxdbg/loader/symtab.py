"""ELF symbol tables: their raw bytes as a loader read them (:class:`SymbolTables`) and
their parse into names and addresses, done the first time something asks for a symbol
(:class:`~syxdbg.loader.image.LoadedImage`)."""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass


@dataclass(frozen=True)
class SymbolTables:
    """The raw symbol tables of a loaded ELF file: ``(table, string table)`` bytes per
    ``SHT_SYMTAB``/``SHT_DYNSYM`` section, the load bias, the layout (ELF class, byte
    order) and whether it is an ARM file (Thumb bit in function symbols). Read at load
    time, parsed on first use (:func:`parse_symbol_tables`)."""

    tables: tuple[tuple[bytes, bytes], ...]
    bias: int
    elfclass: int
    order: str
    arm: bool


#: st_info types kept as symbols: NOTYPE, OBJECT, FUNC. Not TLS (offsets, not addresses),
#: SECTION or FILE, nor GNU_IFUNC: an ifunc symbol's value is its resolver, which runs once
#: at start-up, so ``break memcpy`` there would never stop in the memcpy that runs.
_SYMBOL_TYPES = frozenset({0, 1, 2})


def symbol_layout(elfclass: int, order: str) -> tuple[str, tuple[int, ...], int]:
    """The struct format of one symbol, the order of (name, info, shndx, value, size) in
    it, and its size."""
    if elfclass == 64:
        fmt = order + "IBBHQQ"  # name, info, other, shndx, value, size
        return fmt, (0, 1, 3, 4, 5), struct.calcsize(fmt)
    fmt = order + "IIIBBH"  # name, value, size, info, other, shndx
    return fmt, (0, 3, 5, 1, 2), struct.calcsize(fmt)


@functools.lru_cache(maxsize=16)
def parse_symbol_tables(tables: SymbolTables) -> tuple[dict[str, int], dict[str, int]]:
    """Every defined function and object symbol of the tables, relocated: ``(addresses,
    sizes)`` by name. A global definition wins over a local one of the same name.

    Cached by the tables' contents (equal bytes, bias and layout: equal answer), so a
    program exec'd again in the session is parsed once. The dicts are shared: copy
    them before changing them (:class:`LoadedImage` does)."""
    fmt, order, _ = symbol_layout(tables.elfclass, tables.order)
    # ARM: bit 0 of a function symbol's value marks Thumb code (ELF for the Arm
    # architecture, 5.5.3); the instruction is at the even address.
    thumb_bit = ~1 if tables.arm else ~0
    bias = tables.bias
    symbols: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for table, strtab in tables.tables:
        for fields in struct.iter_unpack(fmt, table):
            name_off, info, shndx, value, size = (fields[i] for i in order)
            kind, local = info & 0xF, info >> 4 == 0
            if kind not in _SYMBOL_TYPES or shndx == 0 or not name_off:
                continue
            if kind == 0 and local:
                continue
            end = strtab.find(b"\0", name_off)
            raw = strtab[name_off:end if end >= 0 else len(strtab)]
            if not raw:
                continue
            name = raw.decode("utf-8", errors="replace")
            # Prefer global definitions over local ones of the same name.
            if local and name in symbols:
                continue
            symbols[name] = (value & thumb_bit if kind == 2 else value) + bias
            sizes[name] = size
    return symbols, sizes
