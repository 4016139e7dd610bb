"""Helpers shared by test modules (import this, never ``conftest``: several conftest.py
files exist in the tree and the name ``conftest`` is ambiguous)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from syxdbg.machine import Machine
    from syxdbg.machine.arch import ArchSpec


def in_ci() -> bool:
    """True when running under CI (env var CI set to anything but '', 0, false, no)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def tool_missing(reason: str) -> None:
    """Skip the current test on a developer machine, fail it under CI."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: every tool must be installed)", pytrace=False)
    pytest.skip(reason)


#: Cross tools that turn an assembly snippet into raw machine code, per architecture.
ASM_TOOLS = {"x86_64": ("gcc", "objcopy"),
             "aarch64": ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-objcopy")}


def assemble(arch: str, source: str, workdir: Path, *, name: str = "code",
             flags: Sequence[str] = ()) -> Path:
    """Assemble ``source`` for ``arch`` into ``workdir/NAME.bin`` (its .text section, raw).

    ``workdir/NAME.o`` stays beside it for symbol look-ups. A missing tool skips the test on
    a developer machine and fails it under CI.
    """
    cc, objcopy = ASM_TOOLS[arch]
    src, obj, out = (workdir / f"{name}{ext}" for ext in (".S", ".o", ".bin"))
    src.write_text(source)
    try:
        subprocess.run([cc, *flags, "-c", str(src), "-o", str(obj)], check=True)
        subprocess.run([objcopy, "-O", "binary", "-j", ".text", str(obj), str(out)], check=True)
    except FileNotFoundError as exc:
        tool_missing(f"{exc.filename} is not installed")
    return out


#: Where toy_machine() maps code and data.
TOY_CODE = 0x400000
TOY_DATA = 0x600000

#: What toy_machine() builds its Machine with: ``syxdbg.machine.Machine`` when None. Suites
#: that rerun the machine tests on a variant (tests/snapshot/test_machine_tracked.py: a
#: machine with the snapshot journal attached) set it (with pytest's monkeypatch).
MACHINE_FACTORY: Callable[[ArchSpec], Machine] | None = None


def toy_machine(arch: str, code: bytes, *, rwx: bool = False, data_pages: int = 1,
                host_write: tuple[int, bytes] | None = None) -> Machine:
    """A bare Machine running ``code`` at TOY_CODE: data at TOY_DATA (``data_pages`` pages),
    a one-page stack below 0x800000, and a tiny syscall layer: exit (60/93) ends the run
    with its first argument, any other call returns 4242 (after writing ``host_write``'s
    bytes to guest memory, as a kernel filling a buffer would)."""
    from syxdbg.machine import Machine, Perm, get_arch

    m = (MACHINE_FACTORY or Machine)(get_arch(arch))
    m.mem.map(TOY_CODE, 0x1000, Perm.RWX if rwx else Perm.RX, "code")
    m.mem.map(TOY_DATA, 0x1000, Perm.RW, "data")
    for i in range(1, data_pages):
        m.mem.map(TOY_DATA + i * 0x1000, 0x1000, Perm.RW, f"data{i + 1}")
    m.mem.map(0x7FF000, 0x1000, Perm.RW, "stack")
    m.mem.write(TOY_CODE, code)
    m.regs.pc = TOY_CODE
    m.regs.sp = 0x800000

    def syscall(mm: Machine) -> None:
        abi = mm.arch.syscall
        if mm.regs[abi.number] in (60, 93):
            mm.request_exit(mm.regs[abi.args[0]])
            return
        if host_write is not None:
            mm.mem.write(*host_write)
        mm.regs[abi.ret] = 4242

    m.set_syscall_handler(syscall)
    return m


# -- recordings: the one forger ------------------------------------------------------------------
def split_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(tag, payload) of every chunk of a recording; END!'s payload without the whole-file
    digest of format 2 (format 1 has none)."""
    from syxdbg.recording._format import _CHUNK, _HEADER

    version = int.from_bytes(data[8:12], "little")
    out = []
    off = _HEADER.size
    while off < len(data):
        tag, _, n = _CHUNK.unpack_from(data, off)
        body = data[off + _CHUNK.size:off + _CHUNK.size + n]
        off += _CHUNK.size + n
        out.append((tag, body[32:] if tag == b"END!" and version >= 2 else body))
    return out


def join_chunks(header: bytes, chunks: list[tuple[bytes, bytes]]) -> bytes:
    """A recording from chunks with valid CRCs and (format 2) a valid whole-file digest: what
    a forger who knows the format writes."""
    import hashlib
    import zlib

    from syxdbg.recording._format import _CHUNK

    version = int.from_bytes(header[8:12], "little")
    digest = hashlib.sha256(header)
    out = bytearray(header)
    for tag, body in chunks:
        if tag == b"END!" and version >= 2:
            final = digest.copy()
            final.update(b"END!" + hashlib.sha256(body).digest())
            body = final.digest() + body
        head = _CHUNK.pack(tag, zlib.crc32(body), len(body))
        digest.update(head + hashlib.sha256(body).digest())
        out += head + body
    return bytes(out)


def forge_recording(src: Path, dst: Path, *, meta=None, change=None, raw=None,  # noqa: ANN001
                    crc_only: bool = False) -> None:
    """Rewrite a recording as a forger would: ``meta(dict)`` edits the JSON description,
    ``change(tag, obj)`` a pickled chunk's object, ``raw(tag, payload)`` any payload (END!'s
    without the digest). Checksums and the whole-file digest are made valid, unless
    ``crc_only`` (a naive forger: the old digest is kept)."""
    import json
    import pickle
    import zlib

    from syxdbg.recording._format import _HEADER

    data = src.read_bytes()
    chunks = []
    for tag, body in split_chunks(data):
        if tag == b"META" and meta is not None:
            body = json.dumps(meta(json.loads(body))).encode()
        elif tag not in (b"META", b"PROG", b"INTP", b"PAGE") and change is not None:
            body = zlib.compress(pickle.dumps(change(tag, pickle.loads(zlib.decompress(body))),
                                              5))
        if raw is not None:
            body = raw(tag, body)
        chunks.append((tag, body))
    header = data[:_HEADER.size]
    if not crc_only or int.from_bytes(header[8:12], "little") < 2:
        dst.write_bytes(join_chunks(header, chunks))
        return
    # A forger who only fixes CRCs: the END! chunk keeps the original digest.
    from syxdbg.recording._format import _CHUNK

    end = data.rindex(b"END!")
    old_digest = data[end + _CHUNK.size:end + _CHUNK.size + 32]
    out = bytearray(header)
    for tag, body in chunks:
        if tag == b"END!":
            body = old_digest + body
        out += _CHUNK.pack(tag, zlib.crc32(body), len(body)) + body
    dst.write_bytes(bytes(out))
