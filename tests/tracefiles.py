"""Readers for the files the coverage and trace plugins write, following the rules of the
tools that load them, and the oracle they are checked against (test helpers; import this
module, never ``conftest``).

* :func:`oracle_pcs`: the pc of every instruction a program executes, in order (index =
  position), from a plain Python ``UC_HOOK_CODE`` on a session with the timeline off:
  independent of the recorders under test.

* :func:`parse_drcov`: Lighthouse's drcov parser (lighthouse/reader/parsers/drcov.py), plus
  bncov's extra expectations (parse.py): the first module row starts with "0" once
  stripped, ids are the first column, and the block entries fill the rest of the file (a
  remainder is "trailing bytes").
* :func:`parse_tenet`: Tenet's text-trace reader (tenet/trace/file.py, ``_process_line``):
  a line is items split on ",", each item exactly one "=", names case-insensitive, the
  architecture's registers, its instruction pointer, and ``mr``/``mw``/``mrw`` entries
  ``ADDR:HEX``; anything else fails the line.
"""

from __future__ import annotations

import binascii
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import capstone
import progs
import unicorn

import syxdbg
from syxdbg.machine import Exited
from syxdbg.session import Session

#: The guest environment of every session these tests open (argv[0] is "prog").
ENV = dict(progs.DEFAULT_ENV)


def open_session(exe: Path | str, args: list[str], **options: Any) -> Session:
    return syxdbg.open(str(exe), args, env=ENV, argv0="prog", options=options)


def oracle_pcs(exe: Path | str, args: list[str]) -> list[int]:
    """pc of every instruction the program executes, in order (index = position)."""
    pcs: list[int] = []
    with open_session(exe, args, timeline=False) as s:
        s.machine.uc.hook_add(unicorn.UC_HOOK_CODE, lambda uc, a, size, ud: pcs.append(a))
        ev = s.run()
        assert isinstance(ev, Exited) and ev.position == len(pcs)
    return pcs

#: Tenet's ArchAMD64 (tenet/trace/arch/amd64.py); the AArch64 module docs/plugins.md gives.
TENET_ARCH: dict[str, tuple[tuple[str, ...], str]] = {
    "x86_64": (("RAX", "RBX", "RCX", "RDX", "RBP", "RSP", "RSI", "RDI", "R8", "R9", "R10",
                "R11", "R12", "R13", "R14", "R15", "RIP"), "RIP"),
    "aarch64": (tuple(f"X{i}" for i in range(31)) + ("SP", "PC"), "PC"),
}


@dataclass
class DrcovModule:
    id: int
    base: int
    end: int
    entry: int
    checksum: int
    timestamp: int
    path: str

    @property
    def filename(self) -> str:
        return os.path.basename(self.path)


@dataclass
class Drcov:
    version: int
    flavor: str
    modules: list[DrcovModule]
    blocks: list[tuple[int, int, int]]  # (offset, size, module id)

    def absolute(self) -> set[tuple[int, int]]:
        """(address, size) of every block."""
        bases = {m.id: m.base for m in self.modules}
        return {(bases[mod] + off, size) for off, size, mod in self.blocks}


def parse_drcov(path: str | os.PathLike[str]) -> Drcov:
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "rb") as f:
        # Lighthouse: two header lines, "DRCOV VERSION: 2" and "DRCOV FLAVOR: x".
        version = int(f.readline().decode("utf-8").strip().split(":")[1])
        assert version == 2, "Only drcov version 2 log files supported"
        flavor = f.readline().decode("utf-8").strip().split(":")[1]
        # "Module Table: version 2, count N"
        name, field_data = f.readline().decode("utf-8").strip().split(": ")
        version_data, count_data = field_data.split(", ")
        table_version = int(version_data.split(" ")[1])
        assert table_version == 2
        count = int(count_data.split(" ")[1])
        # "Columns: ..."
        _, columns = f.readline().decode("utf-8").strip().split(": ")
        assert columns.split(", ") == ["id", "base", "end", "entry", "checksum", "timestamp",
                                       "path"]
        modules = []
        for i in range(count):
            line = f.readline().decode("utf-8").strip()
            if i == 0:
                assert line.startswith("0")  # bncov finds the table by this
            cols = line.split(", ")
            assert len(cols) == 7, line  # Lighthouse: 7 columns -> checksum and timestamp
            modules.append(DrcovModule(int(cols[0]), int(cols[1], 16), int(cols[2], 16),
                                       int(cols[3], 16), int(cols[4], 16), int(cols[5], 16),
                                       str(cols[-1])))
        names = [m.filename for m in modules]
        assert len(set(names)) == len(names), "module name collision"
        # "BB Table: M bbs"
        _, field_data = f.readline().decode("utf-8").strip().split(": ")
        count_text, word = field_data.split(" ")
        assert word == "bbs"
        nbbs = int(count_text)
        start = f.tell()
    body = data[start:]
    assert not body.startswith(b"module id"), "binary table expected"
    assert len(body) == 8 * nbbs, "bncov reads every byte after the header as entries"
    blocks = [struct.unpack_from("<IHH", body, 8 * i) for i in range(nbbs)]
    ids = {m.id for m in modules}
    assert all(mod in ids for _, _, mod in blocks)
    return Drcov(version, flavor, modules, [(o, s, m) for o, s, m in blocks])


def drcov_instructions(session: Session, cov: Drcov) -> set[int]:
    """Addresses of the instructions in the file's blocks (each starts on one)."""
    arch = session.machine.arch
    md = capstone.Cs(arch.cs_arch, arch.cs_mode)
    out: set[int] = set()
    for start, size in cov.absolute():
        found = [a for a, *_ in md.disasm_lite(session.mem.read(start, size), start)]
        assert found and found[0] == start
        out |= set(found)
    return out


@dataclass
class TenetLine:
    ip: int
    regs: dict[str, int]  # as written on the line (the delta)
    reads: list[tuple[int, bytes]] = field(default_factory=list)
    writes: list[tuple[int, bytes]] = field(default_factory=list)
    state: dict[str, int] = field(default_factory=dict)  # cumulative registers


def parse_tenet(path: str | os.PathLike[str], arch: str) -> list[TenetLine]:
    registers, ip_name = TENET_ARCH[arch]
    out: list[TenetLine] = []
    state: dict[str, int] = {}
    with open(path) as f:
        for n, line in enumerate(f):
            regs: dict[str, int] = {}
            reads: list[tuple[int, bytes]] = []
            writes: list[tuple[int, bytes]] = []
            ip = None
            for item in line.split(","):
                name, value = item.split("=")  # exactly one "=" (Tenet unpacks two)
                name = name.upper()
                if name == ip_name:
                    ip = int(value, 16)
                elif name in registers:
                    regs[name] = int(value, 16)
                elif name in ("MR", "MW", "MRW"):
                    address, hex_data = value.split(":")
                    data = binascii.unhexlify(bytes(hex_data.strip(), "utf-8"))
                    if name in ("MR", "MRW"):
                        reads.append((int(address, 16), data))
                    if name in ("MW", "MRW"):
                        writes.append((int(address, 16), data))
                else:
                    raise ValueError(f"line {n}: Tenet rejects {name!r}: {line!r}")
            assert ip is not None, f"line {n} has no {ip_name}"
            if n == 0:
                missing = [r for r in registers if r != ip_name and r not in regs]
                assert not missing, f"first line lacks {missing}"
            state = {**state, **regs}
            out.append(TenetLine(ip, regs, reads, writes, dict(state)))
    return out
