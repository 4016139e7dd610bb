"""What the program's ELF file says about addresses: symbols, source lines, call frames.

Read once per session, lazily, with pyelftools: an address-sorted symbol index, the DWARF
line table (``.debug_line``: address <-> FILE:LINE, used by step/next/break FILE:LINE and the
source pane) and the call-frame information (``.eh_frame``/``.debug_frame`` CFI, used by
``bt``, ``finish`` and ``reverse-finish``). Addresses are relocated by the image's load bias.
"""

from __future__ import annotations

import bisect
import contextlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import SyxdbgError
from ..machine.arch import ARCHES

if TYPE_CHECKING:
    from ..session import Session
    from .solibs import SharedObject

#: DWARF register numbers -> syxdbg register names, per architecture.
#: DWARF register numbers to names, per architecture (the ArchSpecs own them).
DWARF_REGS: dict[str, dict[int, str]] = {
    name: dict(spec.dwarf_registers) for name, spec in ARCHES.items()
}


@dataclass(frozen=True)
class LineRow:
    address: int
    file: str
    line: int
    is_stmt: bool
    end_sequence: bool


@dataclass(frozen=True)
class Frame:
    """One frame of a backtrace: ``pc`` (for callers: the return address), ``cfa`` (the
    caller's stack pointer after return; None when unknown)."""

    level: int
    pc: int
    cfa: int | None
    regs: dict[str, int]


class DebugInfo:
    """Symbols, lines and CFI of one session's program (raw blobs have none of them)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        image = session.image
        self.bias = image.load_bias if image.is_pie else 0
        self.arch = session.machine.arch.name
        self.path = image.path if image.kind == "elf" else None
        syms = sorted((addr, image.symbol_sizes.get(name, 0), name)
                      for name, addr in image.symbols.items() if name)
        self._sym_addrs = [s[0] for s in syms]
        self._syms = syms
        self._lines: list[LineRow] | None = None
        self._line_addrs: list[int] = []
        self._fdes: list[tuple[int, int, Any]] | None = None
        self._fde_starts: list[int] = []
        self._decoded: dict[int, Any] = {}
        self._sources: dict[str, list[str] | None] = {}
        self._vars: dict[str, tuple[int, Any]] | None = None
        #: (first, end) address of each line sequence whose compilation unit gdb trusts to
        #: describe variables at every pc (see :meth:`after_prologue`).
        self._exact_units: list[tuple[int, int]] = []
        #: The shared libraries (from the link map, read again when the position moved)
        #: and their symbols and CFI, kept per (file, base).
        self._libs: list[ObjectInfo] = []
        self._libs_at: int | None = None
        self._objects: dict[tuple[str, int], ObjectInfo] = {}

    # -- symbols ------------------------------------------------------------------------------
    def symbol_at(self, address: int) -> tuple[str, int, int] | None:
        """(name, start, size) of the symbol containing ``address`` (size 0: unknown)."""
        i = bisect.bisect_right(self._sym_addrs, address) - 1
        best = None
        while i >= 0:
            start, size, name = self._syms[i]
            if start <= address < start + max(size, 1):
                best = (name, start, size)
                break
            if address - start > 1 << 20:
                break
            i -= 1
        if best is None:
            lib = self.library_at(address)
            if lib is not None:
                return lib.symbol_at(address)
        return best

    # -- shared libraries ---------------------------------------------------------------------
    def libraries(self) -> list[ObjectInfo]:
        """The loaded shared libraries now, by address (the loader's link map, read again
        when the position changed; each file's symbols and CFI parsed once per base)."""
        if self.path is None:
            return []
        position = self.session.position
        if self._libs_at != position:
            from .solibs import files_root, shared_objects

            libs = []
            for obj in shared_objects(self.session):
                key = (obj.path, obj.base)
                if key not in self._objects:
                    self._objects[key] = ObjectInfo(obj, files_root(self.session))
                libs.append(self._objects[key])
            self._libs, self._libs_at = libs, position
        return self._libs

    def library_symbol(self, name: str) -> int | None:
        """The address of a shared library's symbol: ``malloc`` (the first library that
        defines it, the dynamic loader last, as symbol lookup goes) or ``libc.so.6:malloc``."""
        interp = self.session.image.interp
        libs = sorted(self.libraries(), key=lambda lib: lib.obj.name == interp)
        lib_name, colon, _ = name.rpartition(":")
        qualified = name if colon else None
        for lib in libs:
            if colon and lib.obj.short != lib_name:
                continue
            address = lib.address_of(qualified or f"{lib.obj.short}:{name}")
            if address is not None:
                return address
        return None

    def library_at(self, address: int) -> ObjectInfo | None:
        """The shared library whose segments span ``address``."""
        for lib in self.libraries():
            if lib.obj.start <= address < lib.obj.end:
                return lib
        return None

    def symbolize(self, address: int) -> str | None:
        """``name+off``; in a library without a symbol there, ``libc.so.6+off`` (the offset
        from the library's load base, as ``/proc/self/maps`` and ``addr2line`` count)."""
        hit = self.symbol_at(address)
        if hit is None:
            lib = self.library_at(address)
            return f"{lib.obj.short}+{address - lib.obj.base:#x}" if lib is not None else None
        name, start, _ = hit
        return name if address == start else f"{name}+{address - start:#x}"

    def symbols(self) -> list[tuple[int, int, str]]:
        """(address, size, name), by address."""
        return list(self._syms)

    # -- source lines -------------------------------------------------------------------------
    def _load_lines(self) -> list[LineRow]:
        if self._lines is not None:
            return self._lines
        rows: list[LineRow] = []
        if self.path is not None:
            try:
                rows = self._read_lines(self.path)
            except Exception:  # no or unreadable DWARF: no line information
                rows = []
        rows.sort(key=lambda r: (r.address, not r.end_sequence))
        self._lines = rows
        self._line_addrs = [r.address for r in rows]
        return rows

    def _read_lines(self, path: str) -> list[LineRow]:
        from elftools.elf.elffile import ELFFile

        rows: list[LineRow] = []
        with open(path, "rb") as f:
            elf = ELFFile(f)
            if not elf.has_dwarf_info():
                return rows
            dwarf = elf.get_dwarf_info()
            for cu in dwarf.iter_CUs():
                lp = dwarf.line_program_for_CU(cu)
                if lp is None:
                    continue
                version = lp.header.version
                files = lp["file_entry"]
                dirs = lp["include_directory"]
                comp_dir = ""
                top = cu.get_top_DIE()
                if "DW_AT_comp_dir" in top.attributes:
                    comp_dir = top.attributes["DW_AT_comp_dir"].value.decode(errors="replace")

                def name_of(index: int, files: Any = files, dirs: Any = dirs,
                            version: int = version, comp_dir: str = comp_dir) -> str:
                    i = index if version >= 5 else index - 1
                    if not 0 <= i < len(files):
                        return "??"
                    entry = files[i]
                    name = entry.name.decode(errors="replace")
                    d = entry.dir_index if version >= 5 else entry.dir_index - 1
                    if not os.path.isabs(name) and 0 <= d < len(dirs):
                        name = os.path.join(dirs[d].decode(errors="replace"), name)
                    if not os.path.isabs(name) and comp_dir:
                        name = os.path.join(comp_dir, name)
                    return os.path.normpath(name)

                exact = _locations_valid(cu)
                seq_start: int | None = None
                for entry in lp.get_entries():
                    st = entry.state
                    if st is None:
                        continue
                    address = st.address + self.bias
                    rows.append(LineRow(address, name_of(st.file), st.line,
                                        bool(st.is_stmt), bool(st.end_sequence)))
                    if seq_start is None:
                        seq_start = address
                    if st.end_sequence:
                        if exact:
                            self._exact_units.append((seq_start, address))
                        seq_start = None
        return rows

    @property
    def has_lines(self) -> bool:
        return bool(self._load_lines())

    def line_at(self, address: int) -> LineRow | None:
        """The line-table row covering ``address`` (None outside every sequence)."""
        rows = self._load_lines()
        i = bisect.bisect_right(self._line_addrs, address) - 1
        while i >= 0 and rows[i].end_sequence and rows[i].address == address:
            i -= 1
        if i < 0 or rows[i].end_sequence or rows[i].line == 0:
            return None
        # As gdb's find_pc_line: a row that is no statement boundary defers to a statement
        # row at the same address before it (optimised code has several rows there).
        j = i
        while (not rows[j].is_stmt and j > 0 and rows[j - 1].address == rows[j].address
               and rows[j - 1].line and not rows[j - 1].end_sequence):
            j -= 1
        return rows[j] if rows[j].is_stmt else rows[i]

    def line_range(self, address: int) -> tuple[int, int] | None:
        """``[start, end)`` of the line-table row containing ``address``."""
        rows = self._load_lines()
        i = bisect.bisect_right(self._line_addrs, address) - 1
        if i < 0 or rows[i].end_sequence:
            return None
        j = i + 1
        while j < len(rows) and rows[j].address == rows[i].address:
            j += 1
        end = rows[j].address if j < len(rows) else rows[i].address + 1
        return rows[i].address, end

    def is_stmt_start(self, address: int) -> bool:
        """True when a statement row starts exactly at ``address``."""
        rows = self._load_lines()
        i = bisect.bisect_left(self._line_addrs, address)
        while i < len(rows) and rows[i].address == address:
            if rows[i].is_stmt and not rows[i].end_sequence and rows[i].line:
                return True
            i += 1
        return False

    def addresses_of(self, file: str, line: int) -> list[int]:
        """Breakpoint addresses for ``FILE:LINE`` (the first statement address of each block
        of that line; the nearest following line when ``line`` has no code)."""
        rows = self._load_lines()
        cands = [r for r in rows if r.is_stmt and not r.end_sequence and _same_file(r.file, file)]
        if not cands:
            raise SyxdbgError(f"no line information for file {file!r}")
        lines = sorted({r.line for r in cands if r.line >= line})
        if not lines:
            raise SyxdbgError(f"{file}:{line}: no code at or after this line")
        best = lines[0]
        addrs = sorted({r.address for r in cands if r.line == best})
        # One address per function (gdb puts one location per inlined/duplicated copy).
        out: list[int] = []
        seen: set[str | None] = set()
        for a in addrs:
            sym = self.symbol_at(a)
            key = sym[0] if sym else None
            if key in seen:
                continue
            seen.add(key)
            out.append(a)
        return out

    def after_prologue(self, start: int) -> int:
        """Where ``break FUNCTION`` stops, as gdb does: past the prologue (the start of the
        function's second line), or ``start`` without line information.

        Optimised code gets no prologue skip, as in gdb: a compilation unit made by GCC
        (4.5 or later) whose variables have location lists describes them at every pc, so
        gdb stops at the entry itself (its ``locations_valid``).
        """
        if self.line_at(start) is None:
            return start
        self._load_lines()
        if any(lo <= start < hi for lo, hi in self._exact_units):
            return start
        return self.step_in_target(start)

    def step_in_target(self, start: int) -> int:
        """Where ``step`` into the function at ``start`` stops, as gdb's
        ``handle_step_into_function``: the architecture's prologue end, moved on to the end
        of its line when that falls mid-line (still inside the function)."""
        first = self.line_at(start)
        if first is None:
            return start
        sym = self.symbol_at(start)
        end = start + sym[2] if sym and sym[1] == start and sym[2] else start + 64
        pc = self._prologue_end(start, end)
        span = self.line_range(pc)
        if pc != start and span is not None and span[0] != pc and span[1] < end:
            return span[1]
        return pc

    def _prologue_end(self, start: int, end: int) -> int:
        """gdb's ``gdbarch_skip_prologue`` for GCC code. x86_64 analyses instructions: past
        ``[endbr64] push %rbp; mov %rsp,%rbp``, else (frameless) the entry. aarch64 uses
        the line table (``skip_prologue_using_sal``): no prologue when the entry address
        has a second row, else the function's next statement on another line."""
        rows = self._load_lines()
        if self.arch == "x86_64":
            code = self.session.mem.read_partial(start, 12)
            pc = 4 if code.startswith(b"\xf3\x0f\x1e\xfa") else 0  # endbr64
            if code[pc:pc + 1] != b"\x55":  # push %rbp
                return start
            if code[pc + 1:pc + 4] in (b"\x48\x89\xe5", b"\x48\x8b\xec"):  # mov %rsp,%rbp
                return start + pc + 4
            return start
        lo = bisect.bisect_left(self._line_addrs, start)
        i = bisect.bisect_right(self._line_addrs, start)
        if sum(1 for r in rows[lo:i] if r.line and not r.end_sequence) > 1:
            return start
        first = self.line_at(start)
        while i < len(rows) and rows[i].address < end:
            r = rows[i]
            if r.end_sequence:
                break
            if r.is_stmt and r.line and first is not None and r.line != first.line:
                return r.address
            i += 1
        return start

    def source_files(self) -> list[str]:
        return sorted({r.file for r in self._load_lines()})

    def source_lines(self, path: str) -> list[str] | None:
        if path not in self._sources:
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    self._sources[path] = f.read().splitlines()
            except OSError:
                self._sources[path] = None
        return self._sources[path]

    # -- variables (DWARF .debug_info) -------------------------------------------------------
    def variable(self, name: str) -> tuple[int, int] | None:
        """``(address, size)`` of a global variable or a member path (``ledger.balance``,
        ``ledger.history``) from DWARF; None when unknown."""
        if self._vars is None:
            self._vars = {}
            if self.path is not None:
                with contextlib.suppress(Exception):  # no or unreadable DWARF: no variables
                    self._read_vars(self.path)
        head, *members = name.split(".")
        got = self._vars.get(head)
        if got is None:
            return None
        address, die = got
        ty = _strip_type(die.get_DIE_from_attribute("DW_AT_type")) \
            if "DW_AT_type" in die.attributes else None
        for m in members:
            if ty is None or ty.tag not in ("DW_TAG_structure_type", "DW_TAG_union_type"):
                return None
            for child in ty.iter_children():
                attr = child.attributes.get("DW_AT_name")
                if child.tag == "DW_TAG_member" and attr is not None \
                        and attr.value.decode() == m:
                    loc = child.attributes.get("DW_AT_data_member_location")
                    address += loc.value if loc is not None and isinstance(loc.value, int) \
                        else 0
                    ty = _strip_type(child.get_DIE_from_attribute("DW_AT_type"))
                    break
            else:
                return None
        size = ty.attributes["DW_AT_byte_size"].value if ty is not None \
            and "DW_AT_byte_size" in ty.attributes else 0
        if ty is not None and ty.tag == "DW_TAG_array_type" and not size:
            size = _array_size(ty)
        return address, int(size)

    def _read_vars(self, path: str) -> None:
        from elftools.elf.elffile import ELFFile

        assert self._vars is not None
        f = open(path, "rb")  # noqa: SIM115 - DIEs are read lazily from this file
        self._var_file = f
        elf = ELFFile(f)
        if not elf.has_dwarf_info():
            return
        for cu in elf.get_dwarf_info().iter_CUs():
            for die in cu.get_top_DIE().iter_children():
                if die.tag != "DW_TAG_variable" or "DW_AT_name" not in die.attributes:
                    continue
                name = die.attributes["DW_AT_name"].value.decode(errors="replace")
                address = self.session.symbols.get(name)
                if address is None:
                    continue
                if "DW_AT_type" not in die.attributes and "DW_AT_specification" in \
                        die.attributes:
                    die = die.get_DIE_from_attribute("DW_AT_specification")
                self._vars[name] = (address, die)

    # -- call frames --------------------------------------------------------------------------
    def _load_cfi(self) -> None:
        if self._fdes is not None:
            return
        fdes: list[tuple[int, int, Any]] = []
        if self.path is not None:
            try:
                fdes = self._read_cfi(self.path)
            except Exception:
                fdes = []
        fdes.sort(key=lambda x: x[0])
        self._fdes = fdes
        self._fde_starts = [f[0] for f in fdes]

    def _read_cfi(self, path: str) -> list[tuple[int, int, Any]]:
        from elftools.dwarf.callframe import FDE
        from elftools.elf.elffile import ELFFile

        out: list[tuple[int, int, Any]] = []
        f = open(path, "rb")  # noqa: SIM115 - pyelftools decodes lazily from this file
        self._cfi_file = f
        elf = ELFFile(f)
        dwarf = elf.get_dwarf_info(follow_links=False)
        entries: list[Any] = []
        if dwarf.has_EH_CFI():
            entries += dwarf.EH_CFI_entries()
        if dwarf.has_CFI():
            entries += dwarf.CFI_entries()
        for e in entries:
            if isinstance(e, FDE):
                start = e.header["initial_location"] + self.bias
                out.append((start, start + e.header["address_range"], e))
        return out

    def cfi_row(self, pc: int) -> tuple[dict[str, Any], int] | None:
        """The CFI row that applies at ``pc`` and the return-address column."""
        self._load_cfi()
        assert self._fdes is not None
        got = _cfi_row(self._fdes, self._fde_starts, self._decoded, pc)
        if got is None:
            lib = self.library_at(pc)
            if lib is not None:
                return lib.cfi_row(pc)
        return got

    def unwind(self, regs: dict[str, int], read: Any, *, max_frames: int = 64) -> list[Frame]:
        """Frames from the innermost (``regs``) outwards. ``read(addr) -> int`` reads one
        8-byte word. CFI first; frame pointers (x86 rbp, aarch64 x29) where there is none."""
        names = DWARF_REGS.get(self.arch, {})
        pcname, spname = ("rip", "rsp") if self.arch == "x86_64" else ("pc", "sp")
        fpname = "rbp" if self.arch == "x86_64" else "x29"
        frames: list[Frame] = []
        cur = dict(regs)
        for level in range(max_frames):
            pc = cur[pcname]
            # For callers, look the CFI up at pc-1 (the call), not at the return address.
            lookup = pc if level == 0 else pc - 1
            cfa: int | None = None
            nxt: dict[str, int] | None = None
            got = self.cfi_row(lookup)
            try:
                if got is not None:
                    row, ra_col = got
                    rule = row["cfa"]
                    if rule.expr is None and rule.reg in names:
                        cfa = cur[names[rule.reg]] + rule.offset
                        nxt = dict(cur)
                        for col, rr in row.items():
                            if not isinstance(col, int):
                                continue
                            if rr.type == "UNDEFINED" and col == ra_col:
                                nxt = None  # the outermost frame (_start)
                                break
                            if rr.type == "OFFSET":
                                value = read(cfa + rr.arg)
                            elif rr.type == "VAL_OFFSET":
                                value = cfa + rr.arg
                            elif rr.type == "REGISTER" and rr.arg in names:
                                value = cur[names[rr.arg]]
                            else:
                                continue
                            if col == ra_col:
                                nxt[pcname] = value
                            if col in names:
                                nxt[names[col]] = value
                        if nxt is None:
                            pass
                        elif ra_col not in row:
                            if ra_col in names and names[ra_col] in cur:  # aarch64 leaf: x30
                                nxt[pcname] = cur[names[ra_col]]
                            else:
                                nxt = None
                        if nxt is not None:
                            nxt[spname] = cfa
                elif level == 0 and self._entry_of(pc):
                    # No CFI (musl's libc has almost none), stopped on a function's first
                    # instruction: nothing is pushed yet, the return address is at the
                    # stack pointer (x86_64) or in the link register (aarch64).
                    nxt = dict(cur)
                    if self.arch == "x86_64":
                        cfa = cur[spname] + 8
                        nxt[pcname] = read(cur[spname])
                    else:
                        cfa = cur[spname]
                        nxt[pcname] = cur["x30"]
                    nxt[spname] = cfa
                elif cur.get(fpname):
                    fp = cur[fpname]
                    cfa = fp + 16
                    nxt = dict(cur)
                    if self.arch == "x86_64":
                        nxt[pcname] = read(fp + 8)
                        nxt[fpname] = read(fp)
                    else:
                        nxt[pcname] = read(fp + 8)
                        nxt[fpname] = read(fp)
                    nxt[spname] = cfa
            except SyxdbgError:
                nxt = None
            frames.append(Frame(level, pc, cfa, cur))
            if nxt is None or not nxt.get(pcname) or (cfa is not None and cfa < cur[spname]):
                break
            if nxt[pcname] == pc and nxt.get(spname) == cur.get(spname):
                break
            if not self.session.mem.is_mapped(nxt[pcname]):
                break
            cur = nxt
        return frames

    def _entry_of(self, pc: int) -> bool:
        """True when ``pc`` is the first instruction of a known function."""
        hit = self.symbol_at(pc)
        return hit is not None and hit[1] == pc

    def close(self) -> None:
        for attr in ("_cfi_file", "_var_file"):
            f = getattr(self, attr, None)
            if f is not None:
                f.close()
        for lib in self._objects.values():
            lib.close()


def _cfi_row(fdes: list[tuple[int, int, Any]], starts: list[int], decoded: dict[int, Any],
             pc: int) -> tuple[dict[str, Any], int] | None:
    """The CFI row of the FDE (sorted ``(start, end, fde)``) that covers ``pc``, and the
    return-address column; ``decoded`` caches decoded FDEs by start."""
    i = bisect.bisect_right(starts, pc) - 1
    if i < 0 or not (fdes[i][0] <= pc < fdes[i][1]):
        return None
    start, _, fde = fdes[i]
    dec = decoded.get(start)
    if dec is None:
        dec = fde.get_decoded()
        decoded[start] = dec
    row = None
    for r in dec.table:
        if r["pc"] - fde.header["initial_location"] + start <= pc:
            row = r
        else:
            break
    if row is None:
        return None
    return row, fde.cie["return_address_register"]


#: Link-time symbols of a file, by host path: (address, size, name), sorted.
_FILE_SYMBOLS: dict[tuple[str, int, int], list[tuple[int, int, str]]] = {}
_SYMBOL_TYPES = frozenset({"STT_FUNC", "STT_OBJECT", "STT_GNU_IFUNC", "STT_LOOS"})


def _debug_file(path: str, elf: Any, root: str) -> str | None:
    """The separate debug file of ``elf`` by build id (``/usr/lib/debug/.build-id/xx/
    rest.debug``), under the sysroot first, then the host's, as gdb looks it up."""
    for sec in elf.iter_sections():
        if sec.name != ".note.gnu.build-id":
            continue
        for note in sec.iter_notes():
            if note["n_type"] == "NT_GNU_BUILD_ID":
                bid = note["n_desc"]
                rel = os.path.join("usr/lib/debug/.build-id", bid[:2], bid[2:] + ".debug")
                for base in dict.fromkeys((root or "/", "/")):
                    candidate = os.path.join(base, rel)
                    if os.path.exists(candidate) and candidate != path:
                        return candidate
    return None


def file_symbols(path: str, root: str = "") -> list[tuple[int, int, str]]:
    """Function and object symbols of the ELF file at ``path`` at their link addresses:
    its ``.symtab`` (or its separate debug file's), else its ``.dynsym``. Cached per file
    version (path, size, modification time)."""
    try:
        st = os.stat(path)
    except OSError:
        return []
    key = (path, st.st_size, st.st_mtime_ns)
    got = _FILE_SYMBOLS.get(key)
    if got is not None:
        return got
    from elftools.elf.elffile import ELFFile

    out: dict[tuple[int, str], int] = {}
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            tables = [elf.get_section_by_name(".symtab")]
            if tables[0] is None:
                debug = _debug_file(path, elf, root)
                if debug is not None:
                    with open(debug, "rb") as g:
                        _add_symbols(out, ELFFile(g).get_section_by_name(".symtab"))
                tables = [elf.get_section_by_name(".dynsym")]
            for table in tables:
                _add_symbols(out, table)
    except Exception:  # unreadable or not ELF: no symbols
        out = {}
    syms = sorted((addr, size, name) for (addr, name), size in out.items())
    _FILE_SYMBOLS[key] = syms
    return syms


def _add_symbols(out: dict[tuple[int, str], int], table: Any) -> None:
    if table is None or not hasattr(table, "iter_symbols"):
        return
    for sym in table.iter_symbols():
        if (sym.name and sym["st_value"] and sym["st_shndx"] != "SHN_UNDEF"
                and sym["st_info"]["type"] in _SYMBOL_TYPES):
            key = (int(sym["st_value"]), sym.name.split("@", 1)[0])
            out[key] = max(out.get(key, 0), int(sym["st_size"]))


class ObjectInfo:
    """Symbols and call-frame information of one shared library at its load base.

    Symbol names carry the library's file name, ``libc.so.6:malloc``, wherever the shell
    shows them (``bt``, ``x``, ``last-write``, the panes)."""

    def __init__(self, obj: SharedObject, root: str = "") -> None:
        self.obj = obj
        prefix = obj.short + ":"
        self._syms = [(a + obj.base, size, prefix + name)
                      for a, size, name in file_symbols(obj.path, root)]
        self._sym_addrs = [s[0] for s in self._syms]
        self._by_name: dict[str, int] | None = None
        self._fdes: list[tuple[int, int, Any]] | None = None
        self._fde_starts: list[int] = []
        self._decoded: dict[int, Any] = {}
        self._file: Any = None

    @property
    def has_symbols(self) -> bool:
        return bool(self._syms)

    def address_of(self, name: str) -> int | None:
        """The address of ``lib:name`` (functions first when a name is both)."""
        if self._by_name is None:
            self._by_name = {}
            for start, _size, sym in reversed(self._syms):
                self._by_name.setdefault(sym, start)
        return self._by_name.get(name)

    def symbol_at(self, address: int) -> tuple[str, int, int] | None:
        """(``lib:name``, start, size) of the symbol containing ``address``."""
        i = bisect.bisect_right(self._sym_addrs, address) - 1
        while i >= 0:
            start, size, name = self._syms[i]
            if start <= address < start + max(size, 1):
                return name, start, size
            if address - start > 1 << 20:
                break
            i -= 1
        return None

    def cfi_row(self, pc: int) -> tuple[dict[str, Any], int] | None:
        if self._fdes is None:
            from elftools.dwarf.callframe import FDE
            from elftools.elf.elffile import ELFFile

            fdes: list[tuple[int, int, Any]] = []
            try:
                self._file = open(self.obj.path, "rb")  # noqa: SIM115 - decoded lazily
                dwarf = ELFFile(self._file).get_dwarf_info(follow_links=False)
                entries = list(dwarf.EH_CFI_entries()) if dwarf.has_EH_CFI() else []
                for e in entries:
                    if isinstance(e, FDE):
                        start = e.header["initial_location"] + self.obj.base
                        fdes.append((start, start + e.header["address_range"], e))
            except Exception:  # no or unreadable CFI: frame pointers only
                fdes = []
            fdes.sort(key=lambda x: x[0])
            self._fdes, self._fde_starts = fdes, [f[0] for f in fdes]
        return _cfi_row(self._fdes, self._fde_starts, self._decoded, pc)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


_LOCLIST_FORMS = frozenset({"DW_FORM_sec_offset", "DW_FORM_loclistx"})


def _locations_valid(cu: Any) -> bool:
    """gdb's ``locations_valid`` of a compilation unit: produced by GCC 4.5 or later and
    some variable or parameter located by a location list (so: optimised code)."""
    top = cu.get_top_DIE()
    producer = top.attributes.get("DW_AT_producer")
    text = producer.value.decode(errors="replace") if producer is not None else ""
    words = text.split()
    if len(words) < 3 or words[0] != "GNU" or "clang" in text:
        return False
    major, _, rest = words[2].partition(".")
    minor = rest.partition(".")[0]
    if not (major.isdigit() and minor.isdigit()) or (int(major), int(minor)) < (4, 5):
        return False
    old_forms = {"DW_FORM_data4", "DW_FORM_data8"} if cu["version"] < 4 else set()
    for die in cu.iter_DIEs():
        if die.tag in ("DW_TAG_variable", "DW_TAG_formal_parameter"):
            loc = die.attributes.get("DW_AT_location")
            if loc is not None and (loc.form in _LOCLIST_FORMS or loc.form in old_forms):
                return True
    return False


def _strip_type(die: Any) -> Any:
    while die is not None and die.tag in ("DW_TAG_typedef", "DW_TAG_const_type",
                                          "DW_TAG_volatile_type", "DW_TAG_atomic_type"):
        if "DW_AT_type" not in die.attributes:
            return None
        die = die.get_DIE_from_attribute("DW_AT_type")
    return die


def _array_size(die: Any) -> int:
    elem = _strip_type(die.get_DIE_from_attribute("DW_AT_type"))
    esize = elem.attributes["DW_AT_byte_size"].value if elem is not None and \
        "DW_AT_byte_size" in elem.attributes else 0
    n = 1
    for sub in die.iter_children():
        if sub.tag == "DW_TAG_subrange_type":
            if "DW_AT_count" in sub.attributes:
                n *= sub.attributes["DW_AT_count"].value
            elif "DW_AT_upper_bound" in sub.attributes:
                n *= sub.attributes["DW_AT_upper_bound"].value + 1
    return int(n * esize)


def _same_file(path: str, name: str) -> bool:
    return path == name or path.endswith("/" + name) or os.path.basename(path) == name
