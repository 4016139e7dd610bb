"""The program file inside a recording, stored by content in bounded memory.

A program may be a few KiB of code followed by gigabytes of zeros (a sparse file, or
padding). Recording reads it in blocks, skips holes (``SEEK_DATA``) and all-zero blocks, and
stores only the non-zero blocks with their offsets (format version 2); replay writes them
back into a sparse file. Neither side ever holds more than one block plus the compressor's
window, whatever the file's size. Its identity is a content digest over the non-zero blocks
and the size, so a sparse copy and a dense copy of the same bytes have the same digest.

``PROG`` payload (version 2, little endian)::

    u64 size   u32 count   count x (u64 offset, u64 length)   zlib(the extents' bytes)

Version 1 stored ``zlib(the whole file)`` and its sha256; it is still read (bounded).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import struct
import zlib
from collections.abc import Iterator
from typing import IO

from ._format import MAX_PROGRAM, RecordingError

#: Granularity of zero detection and of the content digest.
BLOCK = 64 << 10
_ZERO_BLOCK = bytes(BLOCK)
_PROG_HEAD = struct.Struct("<QI")
_EXTENT = struct.Struct("<QQ")
#: Largest program a version-1 recording may declare (it was held in memory whole).
MAX_V1_PROGRAM = 1 << 30


def _data_ranges(f: IO[bytes], size: int) -> Iterator[tuple[int, int]]:
    """(start, end) of the ranges of ``f`` that may hold data (holes skipped when the file
    system says where they are; else the whole file)."""
    fd = f.fileno()
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
            end = os.lseek(fd, start, os.SEEK_HOLE)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                return  # only a hole is left
            yield pos, size  # no SEEK_DATA here (EINVAL): read everything
            return
        yield start, min(end, size)
        pos = end


def nonzero_blocks(f: IO[bytes], size: int) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) of every block of ``f`` that is not all zeros, in order; one block in
    memory at a time."""
    done = 0  # blocks before this offset were read (two data ranges may share a block)
    for start, end in _data_ranges(f, size):
        pos = max(start - start % BLOCK, done)
        while pos < end:
            f.seek(pos)
            block = f.read(min(BLOCK, size - pos))
            if not block:
                return
            if block != _ZERO_BLOCK[:len(block)]:
                yield pos, block
            pos += BLOCK
            done = pos


class ContentDigest:
    """The program's identity: sha256 over (offset, bytes) of its non-zero aligned blocks
    and its size. Holes and zero padding cost nothing to hash. Data may be fed in pieces of
    any size (in increasing offsets): it is regrouped into aligned blocks."""

    def __init__(self) -> None:
        self._h = hashlib.sha256(b"syxdbg program v2\0")
        self._buf = bytearray()
        self._start = 0

    def _flush(self) -> None:
        if self._buf:
            self._h.update(_EXTENT.pack(self._start, len(self._buf)))
            self._h.update(self._buf)
            self._buf.clear()

    def block(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._buf and offset != self._start + len(self._buf):
                self._flush()
            if not self._buf:
                self._start = offset
            boundary = (offset // BLOCK + 1) * BLOCK
            take = min(len(view), boundary - offset)
            self._buf += view[:take]
            offset += take
            view = view[take:]
            if offset == boundary:
                self._flush()

    def finish(self, size: int) -> str:
        self._flush()
        self._h.update(struct.pack("<Q", size))
        return self._h.hexdigest()


def scan(path: str) -> tuple[int, str]:
    """(size, content digest) of the program file ``path``, in bounded memory."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        d = ContentDigest()
        for off, block in nonzero_blocks(f, size):
            d.block(off, block)
    return size, d.finish(size)


def open_regular(path: str, size: int) -> IO[bytes] | None:
    """``path`` opened for reading if it is a regular file of ``size`` bytes, else None.
    Opened without blocking, so a FIFO or a device named by a forged recording cannot hang
    or be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except (OSError, ValueError):
        return None
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_size == size:
            return os.fdopen(fd, "rb", buffering=0)
    except OSError:
        pass
    os.close(fd)
    return None


def digest_of_file(path: str, size: int) -> str | None:
    """The content digest of the regular file ``path`` if it has ``size`` bytes, else None."""
    f = open_regular(path, size)
    if f is None:
        return None
    try:
        with f:
            d = ContentDigest()
            for off, block in nonzero_blocks(f, size):
                d.block(off, block)
            return d.finish(size)
    except OSError:
        return None


def write_chunk(path: str, out: IO[bytes], expect: str) -> tuple[int, int]:
    """Write the version-2 ``PROG`` payload of ``path`` to ``out`` (streamed, compressed);
    returns (payload length, crc32). The file must still have digest ``expect``."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        extents: list[list[int]] = []
        for off, block in nonzero_blocks(f, size):
            if extents and extents[-1][0] + extents[-1][1] == off:
                extents[-1][1] += len(block)
            else:
                extents.append([off, len(block)])
        head = _PROG_HEAD.pack(size, len(extents)) + b"".join(
            _EXTENT.pack(o, n) for o, n in extents)
        crc = zlib.crc32(head)
        out.write(head)
        length = len(head)
        comp = zlib.compressobj(6)
        d = ContentDigest()
        for off, n in extents:
            pos = off
            while pos < off + n:
                f.seek(pos)
                block = f.read(min(BLOCK, off + n - pos))
                if not block:
                    raise RecordingError(f"{path}: the program changed while it was recorded")
                d.block(pos, block)
                data = comp.compress(block)
                crc = zlib.crc32(data, crc)
                out.write(data)
                length += len(data)
                pos += len(block)
        data = comp.flush()
        crc = zlib.crc32(data, crc)
        out.write(data)
        length += len(data)
    if d.finish(size) != expect:
        raise RecordingError(f"{path}: the program changed while it was recorded")
    return length, crc


class StoredProgram:
    """The program as stored in a recording (a view on the file's bytes, decoded on
    demand and in bounded memory)."""

    def __init__(self, payload: memoryview, version: int, size: int, digest: str) -> None:
        self.payload = payload
        self.version = version
        self.size = size
        self.digest = digest  # v1: sha256 of the file; v2: the content digest
        self.extents: list[tuple[int, int]] = []
        self._data_at = 0
        if version >= 2:
            self._parse_extents()
        elif size > MAX_V1_PROGRAM:
            raise RecordingError(f"corrupted recording: the program claims {size} bytes")

    def _parse_extents(self) -> None:
        p = self.payload
        if len(p) < _PROG_HEAD.size:
            raise RecordingError("corrupted recording: truncated program chunk")
        size, count = _PROG_HEAD.unpack_from(p)
        end = _PROG_HEAD.size + count * _EXTENT.size
        if size != self.size or size > MAX_PROGRAM or end > len(p):
            raise RecordingError("corrupted recording: malformed program chunk")
        pos = 0
        for i in range(count):
            off, n = _EXTENT.unpack_from(p, _PROG_HEAD.size + i * _EXTENT.size)
            if off < pos or n == 0 or off + n > size:
                raise RecordingError("corrupted recording: malformed program extents")
            self.extents.append((off, n))
            pos = off + n
        self._data_at = end

    def _pieces(self) -> Iterator[tuple[int, bytes]]:
        """(offset, bytes) of the stored data in order, inflated in bounded steps; exactly
        the declared amount or a RecordingError."""
        if self.version < 2:
            extents = [(0, self.size)] if self.size else []
            stream = self.payload
        else:
            extents = self.extents
            stream = self.payload[self._data_at:]
        d = zlib.decompressobj()
        src = 0
        try:
            for off, n in extents:
                pos = off
                while pos < off + n:
                    want = min(BLOCK, off + n - pos)
                    if d.unconsumed_tail:
                        out = d.decompress(d.unconsumed_tail, want)
                    elif src < len(stream) and not d.eof:
                        out = d.decompress(stream[src:src + BLOCK], want)
                        src += BLOCK
                    else:
                        raise RecordingError("corrupted recording: the program chunk is "
                                             "shorter than it claims")
                    if out:
                        yield pos, out
                        pos += len(out)
            while not d.eof:  # the stream must end exactly here
                piece: bytes | memoryview
                if d.unconsumed_tail:
                    piece = d.unconsumed_tail
                elif src < len(stream):
                    piece = stream[src:src + BLOCK]
                    src += BLOCK
                else:
                    raise RecordingError("corrupted recording: the program chunk is "
                                         "incomplete")
                if d.decompress(piece, 1):
                    raise RecordingError("corrupted recording: the program chunk is longer "
                                         "than it claims")
            if d.unconsumed_tail or d.unused_data or src < len(stream):
                raise RecordingError("corrupted recording: stray bytes after the program")
        except zlib.error as exc:
            raise RecordingError(f"corrupted recording: cannot decompress the program ({exc})"
                                 ) from None

    def _check(self, digest: str) -> None:
        if digest != self.digest:
            raise RecordingError("corrupted recording: the program image does not match its "
                                 "digest")

    def write_to(self, out: IO[bytes]) -> None:
        """Write the program into the empty file ``out`` (holes stay holes) and check it."""
        if self.version < 2:
            h = hashlib.sha256()
            for _, data in self._pieces():
                h.update(data)
                out.write(data)
            self._check(h.hexdigest())
            return
        d = ContentDigest()
        for off, data in self._pieces():
            d.block(off, data)
            out.seek(off)
            out.write(data)
        out.truncate(self.size)
        self._check(d.finish(self.size))

    def read(self) -> bytes:
        """The whole program in memory (for small programs and tests)."""
        buf = bytearray(self.size)
        for off, data in self._pieces():
            buf[off:off + len(data)] = data
        return bytes(buf)

    def matches_file(self, path: str) -> bool:
        """Whether ``path`` is a regular file with exactly the recorded contents."""
        if self.version >= 2:
            return digest_of_file(path, self.size) == self.digest
        f = open_regular(path, self.size)
        if f is None:
            return False
        try:
            with f:
                h = hashlib.sha256()
                while block := f.read(1 << 20):
                    h.update(block)
                return h.hexdigest() == self.digest
        except OSError:
            return False
