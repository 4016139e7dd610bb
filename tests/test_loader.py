"""The ELF and raw loaders: mapping, symbols and the initial process stack."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from syxdbg.errors import LoadError
from syxdbg.loader import inspect_elf, load_elf, load_raw
from syxdbg.loader.elf import (
    AT_ENTRY,
    AT_EXECFN,
    AT_HWCAP,
    AT_NULL,
    AT_PAGESZ,
    AT_PHDR,
    AT_PHENT,
    AT_PHNUM,
    AT_PLATFORM,
    AT_RANDOM,
    AT_UID,
)
from syxdbg.machine import Machine, Perm, get_arch


def read_u64(m: Machine, addr: int) -> int:
    return int.from_bytes(m.mem.read(addr, 8), "little")


def parse_stack(m: Machine, sp: int) -> tuple[list[str], list[str], dict[int, int]]:
    argc = read_u64(m, sp)
    p = sp + 8
    argv = []
    for _ in range(argc):
        argv.append(m.mem.read_cstring(read_u64(m, p)).decode())
        p += 8
    assert read_u64(m, p) == 0
    p += 8
    envp = []
    while (ptr := read_u64(m, p)) != 0:
        envp.append(m.mem.read_cstring(ptr).decode())
        p += 8
    p += 8
    auxv = {}
    while True:
        key, value = read_u64(m, p), read_u64(m, p + 8)
        p += 16
        auxv[key] = value
        if key == AT_NULL:
            break
    return argv, envp, auxv


@pytest.mark.parametrize("toolchain,pie", [("gcc", False), ("musl", False), ("aarch64", False),
                                           ("gcc-pie", True), ("aarch64-pie", True)])
def test_initial_stack_is_laid_out_as_linux_does(build_program, toolchain: str, pie: bool
                                                 ) -> None:
    path = build_program("hello", toolchain)
    info = inspect_elf(str(path))
    assert info.is_pie is pie
    m = Machine(info.arch)
    argv = ["prog-name", "one", "two words", ""]
    envp = ["A=1", "SYXDBG_TEST_VAR=x y"]
    image = load_elf(m, str(path), argv, envp, random_bytes=bytes(range(16)))
    sp = m.regs.sp
    assert sp % 16 == 0 and sp == image.initial_sp
    got_argv, got_envp, auxv = parse_stack(m, sp)
    assert got_argv == argv
    assert got_envp == envp
    with open(path, "rb") as f:
        elf = ELFFile(f)
        phnum, phentsize, phoff = elf["e_phnum"], elf["e_phentsize"], elf["e_phoff"]
        entry = elf["e_entry"]
        f.seek(phoff)
        phdrs = f.read(phnum * phentsize)
    bias = image.load_bias
    assert (bias != 0) is pie
    assert auxv[AT_ENTRY] == entry + bias == m.regs.pc == image.entry
    assert auxv[AT_PHNUM] == phnum and auxv[AT_PHENT] == phentsize
    # AT_PHDR points at the program headers as mapped in memory.
    assert m.mem.read(auxv[AT_PHDR], len(phdrs)) == phdrs
    assert auxv[AT_PAGESZ] == 4096
    assert m.mem.read(auxv[AT_RANDOM], 16) == bytes(range(16))
    assert m.mem.read_cstring(auxv[AT_EXECFN]).decode() == str(path)
    assert m.mem.read_cstring(auxv[AT_PLATFORM]).decode() == m.arch.platform
    assert AT_UID in auxv and AT_HWCAP in auxv
    # Strings live above the tables, inside the stack mapping, with the end marker on top.
    region = m.mem.find(sp)
    assert region is not None and region.name == "[stack]" and region.end == image.stack_top
    assert read_u64(m, image.stack_top - 8) == 0
    # brk starts on the page after the highest segment.
    assert image.brk % 4096 == 0
    assert image.brk >= max(s.end for s in image.segments)
    assert not m.mem.is_mapped(image.brk)
    # Symbols are relocated.
    assert image.symbols["main"] >= bias and m.mem.is_mapped(image.symbols["main"])


def test_segments_keep_their_permissions(build_program) -> None:
    path = build_program("hello", "gcc")
    m = Machine(get_arch("x86_64"))
    image = load_elf(m, str(path), [str(path)], [])
    text = m.mem.find(image.entry)
    assert text is not None and text.perms & Perm.X and not text.perms & Perm.W
    data = m.mem.find(image.symbols["environ"]) if "environ" in image.symbols else None
    if data is None:
        data = m.mem.find(image.brk - 1)
    assert data is not None and data.perms & Perm.W and not data.perms & Perm.X


def _patched(src: Path, dst: Path, offset: int, data: bytes) -> Path:
    blob = bytearray(src.read_bytes())
    blob[offset : offset + len(data)] = data
    dst.write_bytes(bytes(blob))
    return dst


def test_bad_inputs_give_clear_load_errors(build_program, tmp_path: Path) -> None:
    hello = build_program("hello", "gcc")
    (tmp_path / "text").write_text("#!/bin/sh\necho hi\n")
    (tmp_path / "trunc").write_bytes(hello.read_bytes()[:100])
    (tmp_path / "empty").write_bytes(b"")
    _patched(hello, tmp_path / "mips", 18, struct.pack("<H", 8))
    _patched(hello, tmp_path / "elf32", 4, b"\x01")
    cases = {
        "text": "not an ELF file",
        "trunc": "truncated",
        "empty": "not an ELF file",
        "mips": "unsupported machine",
        "elf32": "64-bit",
        "missing": "no such file",
    }
    for name, message in cases.items():
        with pytest.raises(LoadError, match=message):
            inspect_elf(str(tmp_path / name))
    with pytest.raises(LoadError, match="is a directory"):
        inspect_elf(str(tmp_path))


def test_dynamic_executable_without_its_interpreter_is_one_error(tmp_path: Path) -> None:
    import subprocess

    src = Path(__file__).parent / "programs" / "hello.c"
    out = tmp_path / "hello-dyn"
    subprocess.run(["gcc", "-O1", "-o", str(out), str(src)], check=True)
    assert inspect_elf(str(out)).interp is not None
    with pytest.raises(LoadError, match="interpreter .* not found in sysroot"):
        load_elf(Machine(get_arch("x86_64")), str(out), [str(out)], [],
                 sysroot=str(tmp_path))


def test_raw_blob_is_mapped_at_base_with_a_stack(tmp_path: Path) -> None:
    blob = tmp_path / "fw.bin"
    blob.write_bytes(b"\x90" * 5000)
    m = Machine(get_arch("x86_64"))
    image = load_raw(m, str(blob), 0x10000, 0x10010)
    assert m.regs.pc == 0x10010 and image.kind == "raw"
    assert m.mem.read(0x10000, 5000) == b"\x90" * 5000
    assert m.mem.find(0x10000).perms == Perm.RWX  # type: ignore[union-attr]
    assert m.mem.is_mapped(m.regs.sp - 8, 8)
    with pytest.raises(LoadError, match="not page aligned"):
        load_raw(Machine(get_arch("x86_64")), str(blob), 0x10001)
    with pytest.raises(LoadError, match="outside the blob"):
        load_raw(Machine(get_arch("x86_64")), str(blob), 0x10000, 0x20000)


def test_a_program_from_memory_loads_as_from_its_file(build_program) -> None:
    """execve hands the loader an in-memory file (read through the event log): the segments
    come from a view of its buffer; the result is the file's, and a truncated one is one
    LoadError (the view is released before the file closes)."""
    import io

    path = build_program("hello", "gcc")
    data = path.read_bytes()
    images = []
    for opener in (None, lambda name: io.BytesIO(data)):
        m = Machine(get_arch("x86_64"))
        image = load_elf(m, str(path), [str(path)], [], random_bytes=bytes(16), opener=opener)
        images.append((image.entry, image.brk, image.segments,
                       [m.mem.read(s.start, s.end - s.start) for s in image.segments]))
    assert images[0] == images[1]
    text = max(images[0][2], key=lambda s: s.end - s.start)
    cut = data[:text.file_offset + 100]
    with pytest.raises(LoadError, match="truncated|malformed"):
        load_elf(Machine(get_arch("x86_64")), str(path), [str(path)], [],
                 opener=lambda name: io.BytesIO(cut))
