"""Static Linux ELF executables: validation, mapping and the initial process stack."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from ..errors import LoadError
from ..machine.arch import ArchSpec, arch_for_elf_machine
from ..machine.memory import PAGE, Perm, page_round_down, page_round_up
from .image import LoadedImage, Segment

if TYPE_CHECKING:
    from ..machine import Machine

# Auxiliary vector keys (include/uapi/linux/auxvec.h, elf.h).
AT_NULL, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ = 0, 3, 4, 5, 6
AT_BASE, AT_FLAGS, AT_ENTRY = 7, 8, 9
AT_UID, AT_EUID, AT_GID, AT_EGID, AT_PLATFORM, AT_HWCAP, AT_CLKTCK = 11, 12, 13, 14, 15, 16, 17
AT_SECURE, AT_RANDOM, AT_HWCAP2, AT_EXECFN, AT_MINSIGSTKSZ = 23, 25, 26, 31, 51

PT_LOAD, PT_INTERP, PT_PHDR, PT_GNU_STACK = 1, 3, 6, 0x6474E551
_ELF_MAGIC = b"\x7fELF"


@dataclass(frozen=True)
class ElfInfo:
    """What :func:`inspect_elf` learned without loading anything."""

    arch: ArchSpec
    is_pie: bool
    entry: int


def _open(path: str) -> BinaryIO:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise LoadError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise LoadError(f"{path}: is a directory") from None
    except PermissionError:
        raise LoadError(f"{path}: permission denied") from None


def _elffile(path: str, f: BinaryIO) -> ELFFile:
    head = f.read(4)
    if head != _ELF_MAGIC:
        raise LoadError(f"{path}: not an ELF file (use --raw for firmware blobs)")
    f.seek(0)
    try:
        return ELFFile(f)
    except (ELFError, struct.error, ValueError, EOFError) as exc:
        raise LoadError(f"{path}: malformed or truncated ELF file ({exc})") from None


def _validate(path: str, elf: ELFFile) -> ElfInfo:
    try:
        header = elf.header
        e_machine = elf["e_machine"]
        arch = None
        from elftools.elf.descriptions import describe_e_machine

        code = {"EM_X86_64": 62, "EM_AARCH64": 183}.get(e_machine, -1)
        arch = arch_for_elf_machine(code)
        if arch is None:
            raise LoadError(
                f"{path}: unsupported machine {describe_e_machine(e_machine)} "
                "(syxdbg runs x86_64 and aarch64 programs)"
            )
        if elf.elfclass != 64 or not elf.little_endian:
            raise LoadError(f"{path}: only 64-bit little-endian ELF files are supported")
        e_type = header["e_type"]
        segments = list(elf.iter_segments())
        interp = [s for s in segments if s["p_type"] == "PT_INTERP"]
        if interp:
            name = interp[0].get_interp_name() if hasattr(interp[0], "get_interp_name") else "?"
            raise LoadError(
                f"{path}: dynamically linked (interpreter {name}); syxdbg runs static "
                "executables: rebuild with -static"
            )
        if any(s["p_type"] == "PT_DYNAMIC" for s in segments) and e_type == "ET_DYN":
            # static-PIE has PT_DYNAMIC (for self-relocation) but no PT_INTERP: accepted.
            pass
        if e_type not in ("ET_EXEC", "ET_DYN"):
            raise LoadError(f"{path}: not an executable (ELF type {e_type})")
        if not any(s["p_type"] == "PT_LOAD" for s in segments):
            raise LoadError(f"{path}: no loadable segments")
        return ElfInfo(arch, e_type == "ET_DYN", header["e_entry"])
    except (ELFError, struct.error, ValueError, EOFError, KeyError) as exc:
        raise LoadError(f"{path}: malformed or truncated ELF file ({exc})") from None


def inspect_elf(path: str) -> ElfInfo:
    """Validate ``path`` as a static executable syxdbg can run, and say for which arch."""
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
             random_bytes: bytes | None = None) -> LoadedImage:
    """Map ``path`` into ``machine`` and prepare registers and stack for its entry point."""
    with _open(path) as f:
        elf = _elffile(path, f)
        info = _validate(path, elf)
        arch = machine.arch
        if info.arch is not arch:
            raise LoadError(f"{path}: is a {info.arch.name} program, machine is {arch.name}")
        bias = arch.pie_base if info.is_pie else 0
        try:
            image = _map_segments(machine, path, elf, bias)
            _collect_symbols(elf, bias, image)
        except (ELFError, struct.error, ValueError, EOFError) as exc:
            raise LoadError(f"{path}: malformed or truncated ELF file ({exc})") from None
    image.is_pie = info.is_pie
    image.entry = info.entry + bias
    _build_stack(machine, image, argv, envp, path,
                 os.urandom(16) if random_bytes is None else random_bytes)
    machine.regs.pc = image.entry
    machine.image = image
    return image


def _map_segments(machine: Machine, path: str, elf: ELFFile, bias: int) -> LoadedImage:
    loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD" and s["p_memsz"] > 0]
    # Pages shared by two segments get the union of their permissions.
    pages: dict[int, Perm] = {}
    for seg in loads:
        lo = page_round_down(seg["p_vaddr"] + bias)
        hi = page_round_up(seg["p_vaddr"] + bias + seg["p_memsz"])
        for p in range(lo, hi, PAGE):
            pages[p] = pages.get(p, Perm.NONE) | _perm(seg["p_flags"])
    run_start = None
    prev = None
    run_perm = Perm.NONE
    for page in sorted(pages) + [None]:
        if page is not None and prev is not None and page == prev + PAGE \
                and pages[page] == run_perm:
            prev = page
            continue
        if run_start is not None and prev is not None:
            machine.mem.map(run_start, prev + PAGE - run_start, run_perm, os.path.basename(path))
        if page is not None:
            run_start, prev, run_perm = page, page, pages[page]
    image = LoadedImage(path=os.path.abspath(path), kind="elf", arch=machine.arch.name, entry=0,
                        load_bias=bias)
    top = 0
    for seg in loads:
        vaddr = seg["p_vaddr"] + bias
        data = seg.data()
        if len(data) < seg["p_filesz"]:
            raise LoadError(f"{path}: truncated ELF file (segment at {vaddr:#x} is cut short)")
        if data:
            machine.mem.write(vaddr, data)
        image.segments.append(Segment(vaddr, vaddr + seg["p_memsz"], _perm_string(seg["p_flags"]),
                                      seg["p_offset"]))
        top = max(top, vaddr + seg["p_memsz"])
    image.brk = page_round_up(top)
    phoff = elf["e_phoff"]
    phdr = 0
    for seg in elf.iter_segments():
        if seg["p_type"] == "PT_PHDR":
            phdr = seg["p_vaddr"] + bias
            break
    else:
        for seg in loads:
            if seg["p_offset"] <= phoff < seg["p_offset"] + seg["p_filesz"]:
                phdr = seg["p_vaddr"] + bias + (phoff - seg["p_offset"])
                break
    image.phdr = phdr
    image.phent = elf["e_phentsize"]
    image.phnum = elf["e_phnum"]
    return image


def _collect_symbols(elf: ELFFile, bias: int, image: LoadedImage) -> None:
    for section in elf.iter_sections():
        if not isinstance(section, SymbolTableSection):
            continue
        for sym in section.iter_symbols():
            kind = sym["st_info"]["type"]
            if not sym.name or kind not in ("STT_FUNC", "STT_OBJECT", "STT_NOTYPE",
                                            "STT_GNU_IFUNC", "STT_TLS"):
                continue
            if sym["st_shndx"] == "SHN_UNDEF" or kind == "STT_TLS":
                continue
            if kind == "STT_NOTYPE" and sym["st_info"]["bind"] == "STB_LOCAL":
                continue
            addr = sym["st_value"] + bias
            # Prefer global definitions over local ones of the same name.
            if sym.name in image.symbols and sym["st_info"]["bind"] == "STB_LOCAL":
                continue
            image.symbols[sym.name] = addr
            image.symbol_sizes[sym.name] = sym["st_size"]


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
        (AT_BASE, 0),
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
    table = struct.pack(f"<{len(words)}Q", *words)
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
