"""Linux ELF executables: validation, mapping (with the program interpreter of a dynamically
linked program) and the initial process stack.

A program with ``PT_INTERP`` is loaded as Linux's ``load_elf_binary`` (fs/binfmt_elf.c) does:
the program at its link address (ET_EXEC) or at ``arch.pie_base`` (PIE), its interpreter
(``ld-linux``, ``ld-musl``), read from the sysroot, at :func:`interp_base`; the entry pc is
the interpreter's, and the auxiliary vector tells it where the program is (``AT_PHDR``,
``AT_PHENT``, ``AT_PHNUM``, ``AT_ENTRY``) and where itself is (``AT_BASE``). No vDSO is
provided (no ``AT_SYSINFO_EHDR``): glibc and musl then make real system calls.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from ..errors import LoadError
from ..machine.arch import ArchSpec, arch_for_elf_machine
from ..machine.memory import PAGE, Perm, page_round_down, page_round_up
from .image import LoadedImage, Segment
from .kuser import map_kuser_page
from .symtab import SymbolTables, parse_symbol_tables, symbol_layout

if TYPE_CHECKING:
    from ..machine import Machine

# Auxiliary vector keys (include/uapi/linux/auxvec.h, elf.h).
AT_NULL, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ = 0, 3, 4, 5, 6
AT_BASE, AT_FLAGS, AT_ENTRY = 7, 8, 9
AT_UID, AT_EUID, AT_GID, AT_EGID, AT_PLATFORM, AT_HWCAP, AT_CLKTCK = 11, 12, 13, 14, 15, 16, 17
AT_SECURE, AT_RANDOM, AT_HWCAP2, AT_EXECFN, AT_MINSIGSTKSZ = 23, 25, 26, 31, 51

PT_LOAD, PT_INTERP, PT_PHDR, PT_GNU_STACK = 1, 3, 6, 0x6474E551
ET_EXEC, ET_DYN = 2, 3
_ET_NAMES = {0: "ET_NONE", 1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}
_ELF_MAGIC = b"\x7fELF"
_EM_NAMES = {62: "x86-64", 183: "AArch64", 40: "ARM", 243: "RISC-V"}


@dataclass(frozen=True)
class ElfInfo:
    """What :func:`inspect_elf` learned without loading anything."""

    arch: ArchSpec
    is_pie: bool
    entry: int
    #: The program interpreter named by ``PT_INTERP`` (a guest path), None for a static one.
    interp: str | None = None


class _Malformed(ValueError):
    """A header that points outside the file or cannot be decoded."""


class _ElfFile:
    """The parts of an ELF file that loading needs, unpacked with :mod:`struct`.

    Only the file header and the program headers are read here (what Linux's
    ``load_elf_binary`` reads); sections are read only for the symbol tables
    (:meth:`symbol_tables`). pyelftools' ``ELFFile`` built its header and segment objects
    through ``construct``: about a millisecond per exec, and its import 25 ms of start-up.
    """

    def __init__(self, path: str, f: BinaryIO) -> None:
        self.path = path
        self.stream = f
        ident = f.read(64)
        if ident[:4] != _ELF_MAGIC:
            raise LoadError(f"{path}: not an ELF file (use --raw for firmware blobs)")
        if len(ident) < 16 or ident[4] not in (1, 2) or ident[5] not in (1, 2):
            raise LoadError(f"{path}: malformed or truncated ELF file (bad ELF identification)")
        self.elfclass = 64 if ident[4] == 2 else 32
        self.little_endian = ident[5] == 1
        self.order = "<" if self.little_endian else ">"
        # type machine version entry phoff shoff flags ehsize phentsize phnum shentsize
        # shnum shstrndx
        fmt = self.order + ("HHIQQQIHHHHHH" if self.elfclass == 64 else "HHIIIIIHHHHHH")
        if len(ident) < 16 + struct.calcsize(fmt):
            raise LoadError(f"{path}: malformed or truncated ELF file (the file header is cut "
                            "short)")
        (self.e_type, self.e_machine, _, self.e_entry, self.e_phoff, self.e_shoff, _,
         _, self.e_phentsize, self.e_phnum, self.e_shentsize, self.e_shnum,
         self.e_shstrndx) = struct.unpack_from(fmt, ident, 16)
        f.seek(0, os.SEEK_END)
        self.size = f.tell()
        self._phdrs: list[dict[str, int]] | None = None

    def read(self, offset: int, size: int) -> bytes:
        """``size`` bytes at ``offset`` (fewer at the end of the file)."""
        self.stream.seek(offset)
        return self.stream.read(size)

    def segments(self) -> list[dict[str, int]]:
        """The program headers, as dicts keyed by the ELF field names (``p_type``...)."""
        if self._phdrs is not None:
            return self._phdrs
        if self.elfclass == 64:
            fmt, names = self.order + "IIQQQQQQ", ("p_type", "p_flags", "p_offset", "p_vaddr",
                                                   "p_paddr", "p_filesz", "p_memsz", "p_align")
        else:
            fmt, names = self.order + "IIIIIIII", ("p_type", "p_offset", "p_vaddr", "p_paddr",
                                                   "p_filesz", "p_memsz", "p_flags", "p_align")
        entry = struct.calcsize(fmt)
        if self.e_phnum and self.e_phentsize < entry:
            raise _Malformed(f"program header entries of {self.e_phentsize} bytes")
        table = self.read(self.e_phoff, self.e_phnum * self.e_phentsize)
        if len(table) < self.e_phnum * self.e_phentsize:
            raise _Malformed("the program headers are past the end of the file")
        self._phdrs = [dict(zip(names, struct.unpack_from(fmt, table, i * self.e_phentsize),
                                strict=True))
                       for i in range(self.e_phnum)]
        return self._phdrs

    def segment_data(self, seg: dict[str, int]) -> bytes | memoryview:
        """A segment's file bytes (fewer at the end of the file). From an in-memory file
        (execve's, read through the event log) a view of its buffer: no copy."""
        getbuffer = getattr(self.stream, "getbuffer", None)
        if getbuffer is None:
            return self.read(seg["p_offset"], seg["p_filesz"])
        start = seg["p_offset"]
        return getbuffer()[start:start + seg["p_filesz"]]

    def symbol_tables(self) -> list[tuple[bytes, bytes]]:
        """``(symbol table, its string table)`` bytes of every ``SHT_SYMTAB`` and
        ``SHT_DYNSYM`` section, in section order. A section table that cannot be read
        gives none: Linux runs a program without looking at its sections."""
        try:
            return self._symbol_tables()
        except (_Malformed, struct.error, ValueError, OverflowError):
            return []

    def _symbol_tables(self) -> list[tuple[bytes, bytes]]:
        # name type flags addr offset size link info addralign entsize
        fmt = self.order + ("IIQQQQIIQQ" if self.elfclass == 64 else "IIIIIIIIII")
        entry = struct.calcsize(fmt)
        if not self.e_shoff or self.e_shentsize < entry:
            return []
        count = self.e_shnum
        if count == 0:  # extended numbering: section 0's sh_size holds the count
            first = self.read(self.e_shoff, entry)
            if len(first) < entry:
                return []
            count = struct.unpack_from(fmt, first)[5]
        if count > 1 << 20:
            raise _Malformed(f"{count} sections")
        table = self.read(self.e_shoff, count * self.e_shentsize)
        if len(table) < count * self.e_shentsize:
            raise _Malformed("the section headers are past the end of the file")
        headers = [struct.unpack_from(fmt, table, i * self.e_shentsize) for i in range(count)]
        sym = symbol_layout(self.elfclass, self.order)[2]
        out = []
        for _, sh_type, _, _, offset, size, link, _, _, entsize in headers:
            if sh_type not in (_SHT_SYMTAB, _SHT_DYNSYM):
                continue
            if entsize not in (0, sym) or link >= count:
                continue
            strtab = headers[link]
            out.append((self.read(offset, size // sym * sym),
                        self.read(strtab[4], strtab[5])))
        return out


#: The sysroot of a guest of another architecture than the host's, when none is given:
#: where Debian's cross C libraries install (``libc6-dev-arm64-cross``, ``libc6-dev-amd64-cross``).
CROSS_SYSROOTS = {"aarch64": "/usr/aarch64-linux-gnu", "x86_64": "/usr/x86_64-linux-gnu",
                  "arm": "/usr/arm-linux-gnueabihf", "riscv64": "/usr/riscv64-linux-gnu"}


def interp_base(arch: ArchSpec) -> int:
    """Where a dynamic program's interpreter is loaded: ``arch.mmap_base``, the top of the
    area ``mmap`` allocates from downwards (Linux maps ld.so there too, as its first mmap;
    without address randomisation every run has the same layout)."""
    return arch.mmap_base


def default_sysroot(arch: ArchSpec) -> str | None:
    """The sysroot used when none is given: ``/`` for a guest of the host's architecture,
    else :data:`CROSS_SYSROOTS` if that directory exists, else None."""
    if arch.name == os.uname().machine:
        return "/"
    cross = CROSS_SYSROOTS.get(arch.name)
    return cross if cross is not None and os.path.isdir(cross) else None


def find_in_sysroot(root: str, path: str) -> str:
    """The host path of absolute guest ``path`` under ``root``, every symbolic link on the way
    (absolute ones included) resolved inside ``root``, as a chroot would; a missing
    component ends the walk (the caller's open reports it)."""
    if root in ("", "/"):
        return path
    todo = [c for c in path.split("/") if c]
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        here = os.path.join(root, *done, part)
        if os.path.islink(here):
            links += 1
            if links > 40:
                raise LoadError(f"{path}: too many levels of symbolic links in {root}")
            target = os.readlink(here)
            if target.startswith("/"):
                done = []
            todo = [c for c in target.split("/") if c] + todo
            continue
        done.append(part)
    return os.path.join(root, *done)


def open_program(path: str) -> BinaryIO:
    """Open a program or blob for reading: a regular file, or one :class:`LoadError` line.

    ``O_NONBLOCK`` keeps a FIFO (or a device) given as the program from blocking the open;
    it is then refused as not a regular file. Every ``OSError`` (no such file, symlink loop,
    a path through a regular file, a name too long) becomes one line.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise LoadError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise LoadError(f"{path}: is a directory") from None
    except PermissionError:
        raise LoadError(f"{path}: permission denied") from None
    except (OSError, ValueError) as exc:  # ELOOP, ENOTDIR, ENAMETOOLONG, NUL in the name...
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise LoadError(f"{path}: cannot open ({reason})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise LoadError(f"{path}: is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise LoadError(f"{path}: not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


_open = open_program


def _elffile(path: str, f: BinaryIO) -> _ElfFile:
    try:
        return _ElfFile(path, f)
    except (struct.error, ValueError, EOFError) as exc:
        raise LoadError(f"{path}: malformed or truncated ELF file ({exc})") from None


def _machine_name(e_machine: int) -> str:
    """pyelftools' description of an ELF machine number (only for the error message)."""
    from elftools.elf.descriptions import describe_e_machine
    from elftools.elf.enums import ENUM_E_MACHINE

    names: dict[int, Any] = {v: k for k, v in ENUM_E_MACHINE.items() if isinstance(v, int)}
    return str(describe_e_machine(names.get(e_machine, e_machine)))


def _validate(path: str, elf: _ElfFile) -> ElfInfo:
    try:
        arch = arch_for_elf_machine(elf.e_machine)
        if arch is None:
            raise LoadError(
                f"{path}: unsupported machine {_machine_name(elf.e_machine)} "
                "(syxdbg runs x86_64, aarch64, arm and riscv64 programs)"
            )
        if elf.elfclass != arch.bits or not elf.little_endian:
            raise LoadError(f"{path}: only {arch.bits}-bit little-endian {arch.name} ELF files "
                            "are supported")
        segments = elf.segments()
        interp_segs = [s for s in segments if s["p_type"] == PT_INTERP]
        interp: str | None = None
        if interp_segs:
            seg = interp_segs[0]
            interp = bytes(elf.segment_data(seg)).split(b"\0", 1)[0].decode(
                "utf-8", "surrogateescape")
            if not interp or not interp.startswith("/"):
                raise LoadError(f"{path}: malformed ELF file (interpreter {interp!r} is not "
                                "an absolute path)")
        if elf.e_type not in (ET_EXEC, ET_DYN):
            name = _ET_NAMES.get(elf.e_type, f"{elf.e_type:#x}")
            raise LoadError(f"{path}: not an executable (ELF type {name})")
        if not any(s["p_type"] == PT_LOAD for s in segments):
            raise LoadError(f"{path}: no loadable segments")
        return ElfInfo(arch, elf.e_type == ET_DYN, elf.e_entry, interp)
    except (struct.error, ValueError, EOFError, KeyError) as exc:
        raise LoadError(f"{path}: malformed or truncated ELF file ({exc})") from None


def inspect_elf(path: str) -> ElfInfo:
    """Validate ``path`` as an executable syxdbg can run, and say for which arch."""
    with _open(path) as f:
        return _validate(path, _elffile(path, f))


def _perm_string(flags: int) -> str:
    return "".join(c if flags & b else "-" for c, b in (("r", 4), ("w", 2), ("x", 1)))


def _perm(flags: int) -> Perm:
    p = Perm.NONE
    if flags & 4:
        p |= Perm.R
    if flags & 2:
        p |= Perm.W
    if flags & 1:
        p |= Perm.X
    return p


def load_elf(machine: Machine, path: str, argv: list[str], envp: list[str], *,
             random_bytes: bytes | None = None, sysroot: str | None = None,
             interp_file: str | None = None,
             opener: Callable[[str], BinaryIO] | None = None) -> LoadedImage:
    """Map ``path`` into ``machine`` and prepare registers and stack for its entry point.

    A dynamically linked program also gets its interpreter, looked up in ``sysroot`` (None:
    :func:`default_sysroot`), or read from ``interp_file`` when given (a replay's copy from
    the recording). ``image.sysroot`` is where the guest's absolute paths resolve: the given
    or default sysroot of a dynamic program, the given one (or ``""``, the host's root) of a
    static one. ``opener`` opens the program and its interpreter (default: the host file;
    the Linux kernel's execve passes one that reads through its event log).
    """
    arch = machine.arch
    open_ = _open if opener is None else opener
    with open_(path) as f:
        elf = _elffile(path, f)
        info = _validate(path, elf)
        if info.arch is not arch:
            raise LoadError(f"{path}: is a {info.arch.name} program, machine is {arch.name}")
        bias = arch.pie_base if info.is_pie else 0
        try:
            image = _map_segments(machine, path, elf, bias, os.path.basename(path))
        except (struct.error, ValueError, EOFError) as exc:
            raise LoadError(f"{path}: malformed or truncated ELF file ({exc})") from None
        image.symbol_tables = _symbol_tables(elf, bias)
    image.is_pie = info.is_pie
    image.entry = info.entry + bias
    image.sysroot = sysroot if sysroot is not None else ""
    start = image.entry
    if info.interp is not None:
        root = sysroot if sysroot is not None else default_sysroot(arch)
        if root is None:
            raise LoadError(f"{path}: dynamically linked {arch.name} program: no {arch.name} "
                            f"libraries found (install them or give --sysroot DIR)")
        image.sysroot = root
        start = _load_interp(machine, image, info.interp, root, interp_file, open_)
    if arch.name == "arm":
        map_kuser_page(machine)
    _build_stack(machine, image, argv, envp, path,
                 os.urandom(16) if random_bytes is None else random_bytes)
    machine.regs.pc = start
    return image


def _load_interp(machine: Machine, image: LoadedImage, interp: str, root: str,
                 interp_file: str | None,
                 open_: Callable[[str], BinaryIO] = open_program) -> int:
    """Map the interpreter ``interp`` (from ``root``, or ``interp_file``) at
    :func:`interp_base`; fill the image's ``interp*`` fields; return its entry point."""
    arch = machine.arch
    host = interp_file if interp_file is not None else find_in_sysroot(root, interp)
    where = "" if interp_file is not None else f" in sysroot {root}" if root != "/" else ""
    try:
        f = open_(host)
    except LoadError:
        raise LoadError(f"{image.path}: interpreter {interp} not found{where} "
                        "(give --sysroot DIR)") from None
    with f:
        elf = _elffile(host, f)
        info = _validate(host, elf)
        if info.arch is not arch:
            raise LoadError(f"{host}: interpreter is a {info.arch.name} file, the program is "
                            f"{arch.name}{where} (give --sysroot DIR)")
        if info.interp is not None:
            raise LoadError(f"{host}: an interpreter cannot have an interpreter")
        try:
            loads = [s for s in elf.segments() if s["p_type"] == PT_LOAD]
            low = page_round_down(min(s["p_vaddr"] for s in loads))
            bias = interp_base(arch) - low if info.is_pie else 0
            loaded = _map_segments(machine, host, elf, bias, interp)
        except (struct.error, ValueError, EOFError) as exc:
            raise LoadError(f"{host}: malformed or truncated ELF file ({exc})") from None
    image.interp = interp
    image.interp_path = os.path.abspath(host)
    image.interp_base = bias + low
    image.interp_segments = loaded.segments
    return info.entry + bias


def _check_segments(path: str, loads: list[dict[str, int]], bias: int, arch: ArchSpec,
                    file_size: int) -> None:
    """Refuse, in one line, segments that Linux could not map: beyond the address space,
    more file bytes than memory bytes, or file bytes past the end of the file."""
    end_of_space = arch.user_address_end
    for seg in loads:
        vaddr, memsz = seg["p_vaddr"] + bias, seg["p_memsz"]
        filesz, offset = seg["p_filesz"], seg["p_offset"]
        if vaddr + memsz > end_of_space or memsz > end_of_space:
            raise LoadError(f"{path}: segment at {seg['p_vaddr']:#x} of {memsz:#x} bytes lies "
                            f"beyond the {arch.name} address space (ends at {end_of_space:#x})")
        if filesz > memsz:
            raise LoadError(f"{path}: malformed ELF file (segment at {seg['p_vaddr']:#x} has "
                            f"more file bytes than memory bytes)")
        if offset + filesz > file_size:
            raise LoadError(f"{path}: truncated ELF file (segment at {seg['p_vaddr']:#x} is "
                            "cut short)")


def _page_runs(loads: list[Any], bias: int) -> list[tuple[int, int, Perm]]:
    """Page-aligned ``(start, end, perm)`` runs covering the segments, in address order.

    Pages shared by two segments get the union of their permissions. A sweep over the
    segments' page-rounded boundaries: O(segments log segments), whatever their sizes.
    """
    events: list[tuple[int, int, Perm]] = []  # (address, +1/-1, perm)
    for seg in loads:
        lo = page_round_down(seg["p_vaddr"] + bias)
        hi = page_round_up(seg["p_vaddr"] + bias + seg["p_memsz"])
        perm = _perm(seg["p_flags"])
        events += [(lo, 1, perm), (hi, -1, perm)]
    events.sort(key=lambda e: e[0])
    active: dict[Perm, int] = {}
    runs: list[tuple[int, int, Perm]] = []
    i = 0
    while i < len(events):
        here = events[i][0]
        while i < len(events) and events[i][0] == here:
            _, delta, perm = events[i]
            active[perm] = active.get(perm, 0) + delta
            i += 1
        if i == len(events):
            break
        covering = [p for p, n in active.items() if n > 0]
        if not covering:
            continue
        union = Perm.NONE
        for p in covering:
            union |= p
        nxt = events[i][0]
        if runs and runs[-1][1] == here and runs[-1][2] == union:
            runs[-1] = (runs[-1][0], nxt, union)
        else:
            runs.append((here, nxt, union))
    return runs


def _map_segments(machine: Machine, path: str, elf: _ElfFile, bias: int,
                  name: str) -> LoadedImage:
    segments = elf.segments()
    loads = [s for s in segments if s["p_type"] == PT_LOAD and s["p_memsz"] > 0]
    _check_segments(path, loads, bias, machine.arch, elf.size)
    for start, end, perm in _page_runs(loads, bias):
        try:
            machine.mem.map(start, end - start, perm, name)
        except (OSError, MemoryError, OverflowError) as exc:  # host memory refused
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else \
                type(exc).__name__
            raise LoadError(f"{path}: cannot map {end - start:#x} bytes at {start:#x} "
                            f"({reason})") from None
    image = LoadedImage(path=os.path.abspath(path), kind="elf", arch=machine.arch.name, entry=0,
                        load_bias=bias)
    top = 0
    for seg in loads:
        vaddr = seg["p_vaddr"] + bias
        data = elf.segment_data(seg)
        try:
            if len(data) < seg["p_filesz"]:
                raise LoadError(f"{path}: truncated ELF file (segment at {vaddr:#x} is cut "
                                "short)")
            if data:
                machine.mem.write(vaddr, data)
        finally:
            if isinstance(data, memoryview):
                data.release()  # (the in-memory file is closed next: no export may remain)
        image.segments.append(Segment(vaddr, vaddr + seg["p_memsz"], _perm_string(seg["p_flags"]),
                                      seg["p_offset"]))
        top = max(top, vaddr + seg["p_memsz"])
    image.brk = page_round_up(top)
    phoff = elf.e_phoff
    phdr = 0
    for seg in segments:
        if seg["p_type"] == PT_PHDR:
            phdr = seg["p_vaddr"] + bias
            break
    else:
        for seg in loads:
            if seg["p_offset"] <= phoff < seg["p_offset"] + seg["p_filesz"]:
                phdr = seg["p_vaddr"] + bias + (phoff - seg["p_offset"])
                break
    image.phdr = phdr
    image.phent = elf.e_phentsize
    image.phnum = elf.e_phnum
    return image


_SHT_SYMTAB, _SHT_DYNSYM = 2, 11
_EM_ARM = 40


def _symbol_tables(elf: _ElfFile, bias: int) -> SymbolTables:
    """The raw symbol tables of ``elf`` (read now, while the file is open: what is parsed
    later is what was loaded), to be parsed when something first asks for a symbol."""
    return SymbolTables(tuple(elf.symbol_tables()), bias, elf.elfclass, elf.order,
                        elf.e_machine == _EM_ARM)


def _collect_symbols(elf: Any, bias: int, image: LoadedImage) -> None:
    """Add the symbols of a pyelftools ``ELFFile`` to ``image`` (the firmware loader's
    way; programs loaded by :func:`load_elf` parse theirs on first use)."""
    order = "<" if elf.little_endian else ">"
    entry = symbol_layout(elf.elfclass, order)[2]
    raw: list[tuple[bytes, bytes]] = []
    for section in elf.iter_sections():
        header = section.header
        if header["sh_type"] not in ("SHT_SYMTAB", "SHT_DYNSYM", _SHT_SYMTAB, _SHT_DYNSYM):
            continue
        if header["sh_entsize"] not in (0, entry) or header["sh_link"] >= elf.num_sections():
            continue
        raw.append((section.data()[:header["sh_size"] // entry * entry],
                    elf.get_section(header["sh_link"]).data()))
    symbols, sizes = parse_symbol_tables(SymbolTables(tuple(raw), bias, elf.elfclass, order,
                                                      elf["e_machine"] == "EM_ARM"))
    image.symbols.update(symbols)
    image.symbol_sizes.update(sizes)


def _build_stack(machine: Machine, image: LoadedImage, argv: list[str], envp: list[str],
                 execfn: str, random_bytes: bytes) -> None:
    """Lay out argc/argv/envp/auxv and their strings as Linux's exec does."""
    arch = machine.arch
    top = arch.stack_top
    size = arch.stack_size
    machine.mem.map(top - size, size, Perm.RW, "[stack]")
    blob = bytearray()
    sp = top

    def push_bytes(data: bytes) -> int:
        nonlocal sp
        sp -= len(data)
        blob[0:0] = data
        return sp

    push_bytes(b"\0" * 8)  # end marker
    execfn_addr = push_bytes(os.fsencode(execfn) + b"\0")
    env_addrs = [0] * len(envp)
    for i in range(len(envp) - 1, -1, -1):
        env_addrs[i] = push_bytes(os.fsencode(envp[i]) + b"\0")
    arg_addrs = [0] * len(argv)
    for i in range(len(argv) - 1, -1, -1):
        arg_addrs[i] = push_bytes(os.fsencode(argv[i]) + b"\0")
    platform_addr = push_bytes(arch.platform.encode() + b"\0") if arch.platform else 0
    random_addr = push_bytes(random_bytes[:16].ljust(16, b"\0"))
    # Align what is below to 16 bytes.
    pad = sp % 16
    if pad:
        push_bytes(b"\0" * pad)
    auxv: list[tuple[int, int]] = [
        (AT_HWCAP, arch.hwcap),
        (AT_PAGESZ, PAGE),
        (AT_CLKTCK, 100),
        (AT_PHDR, image.phdr),
        (AT_PHENT, image.phent),
        (AT_PHNUM, image.phnum),
        (AT_BASE, image.interp_base),
        (AT_FLAGS, 0),
        (AT_ENTRY, image.entry),
        (AT_UID, os.getuid()),
        (AT_EUID, os.geteuid()),
        (AT_GID, os.getgid()),
        (AT_EGID, os.getegid()),
        (AT_SECURE, 0),
        (AT_RANDOM, random_addr),
        (AT_HWCAP2, arch.hwcap2),
        (AT_EXECFN, execfn_addr),
    ]
    if platform_addr:
        auxv.append((AT_PLATFORM, platform_addr))
    auxv.append((AT_NULL, 0))
    words = [len(argv), *arg_addrs, 0, *env_addrs, 0]
    for k, v in auxv:
        words += [k, v]
    table = struct.pack(f"<{len(words)}{'Q' if arch.bits == 64 else 'I'}", *words)
    # sp must end 16-byte aligned at argc.
    final_sp = (sp - len(table)) & ~0xF
    gap = sp - len(table) - final_sp
    if gap:
        push_bytes(b"\0" * gap)
    push_bytes(table)
    assert sp == final_sp
    machine.mem.write(sp, bytes(blob))
    machine.regs.sp = sp
    image.argv = list(argv)
    image.envp = list(envp)
    image.execfn = execfn
    image.stack_top = top
    image.stack_size = size
    image.initial_sp = sp
    image.auxv = dict(auxv)
    image.random_bytes = bytes(random_bytes[:16])
