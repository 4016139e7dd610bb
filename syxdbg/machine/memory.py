"""Guest memory: regions backed by host buffers that syxdbg owns.

Every RAM region is an anonymous ``mmap`` buffer (page aligned) handed to Unicorn with
``mem_map_ptr``. The guest and the host therefore see the same bytes: host reads and writes go
straight to the buffer, and the snapshot core restores pages with a ``memcpy`` into it.

Unmapping or re-protecting part of a region never asks Unicorn to split a pointer-backed
region: the machine unmaps the whole Unicorn region and maps the remaining pieces again, each
pointing into the same host buffer at its offset. Pieces keep the buffer (a ``Backing``) alive.

Host-side writes notify ``write_observers`` (the snapshot core journals them exactly like guest
stores) and changes of the map notify ``map_observers`` (before the change) and
``layout_observers`` (after the region list changed, including :meth:`Memory.restore_layout`).
"""

from __future__ import annotations

import ctypes
import mmap
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import IntFlag
from typing import TYPE_CHECKING

from ..errors import MemoryAccessError, MemoryMapError

if TYPE_CHECKING:
    from unicorn import Uc

PAGE = 4096

#: Every address lies in [0, ADDRESS_LIMIT): both architectures have 64-bit addresses.
ADDRESS_LIMIT = 1 << 64


class AddressRangeError(MemoryAccessError):
    """An address or size no 64-bit machine has: negative, at or beyond 2**64, a range that
    runs past the end of the address space, or an empty or negative size where one byte at
    least is needed. Raised before anything reaches Unicorn (whose bindings would raise
    OverflowError or wrap around)."""

    def __init__(self, address: int, size: int, what: str = "access") -> None:
        super().__init__(address, size, what)
        where = f"{address:#x}" if address >= 0 else str(address)
        why = ("the size must be positive" if size <= 0 and 0 <= address < ADDRESS_LIMIT
               else "outside the 64-bit address space")
        self.args = (f"cannot {what} {size} byte(s) at {where}: {why}",)


def check_address_range(address: int, size: int, what: str = "access",
                        *, allow_empty: bool = False) -> None:
    """Raise :class:`AddressRangeError` unless ``[address, address+size)`` lies inside the
    64-bit address space (``size`` >= 1, or >= 0 with ``allow_empty``)."""
    if (not 0 <= address < ADDRESS_LIMIT or size < (0 if allow_empty else 1)
            or address + size > ADDRESS_LIMIT):
        raise AddressRangeError(address, size, what)


class Perm(IntFlag):
    """Region permissions; the values are Unicorn's ``UC_PROT_*``."""

    NONE = 0
    R = 1
    W = 2
    X = 4
    RW = 3
    RX = 5
    RWX = 7

    def __str__(self) -> str:
        flags = (("r", Perm.R), ("w", Perm.W), ("x", Perm.X))
        return "".join(c if self & p else "-" for c, p in flags)


class Backing:
    """A page-aligned host buffer holding guest RAM."""

    __slots__ = ("buf", "size", "address", "_anchor", "id")
    _next_id = 0

    def __init__(self, size: int) -> None:
        self.size = size
        self.buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self._anchor = ctypes.c_char.from_buffer(self.buf)
        self.address = ctypes.addressof(self._anchor)
        Backing._next_id += 1
        self.id = Backing._next_id


@dataclass(eq=False)
class Region:
    """A contiguous mapped range: ``[start, end)`` backed by ``backing[offset:offset+size]``."""

    start: int
    size: int
    perms: Perm
    name: str
    backing: Backing
    offset: int = 0
    view: memoryview = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.view = memoryview(self.backing.buf)[self.offset : self.offset + self.size]

    @property
    def end(self) -> int:
        return self.start + self.size

    def __contains__(self, address: object) -> bool:
        return isinstance(address, int) and self.start <= address < self.end

    def __str__(self) -> str:
        return f"{self.start:#014x}-{self.end:#014x} {self.perms} {self.name}"


def _check_range(addr: int, size: int) -> None:
    if size <= 0:
        raise MemoryMapError(f"invalid size {size:#x} for a mapping at {addr:#x}")
    if addr % PAGE or size % PAGE:
        raise MemoryMapError(f"mapping {addr:#x}+{size:#x} is not page aligned")
    if addr < 0 or addr + size > 1 << 64:
        raise MemoryMapError(f"mapping {addr:#x}+{size:#x} is outside the address space")


def page_round_up(n: int) -> int:
    return (n + PAGE - 1) & ~(PAGE - 1)


def page_round_down(n: int) -> int:
    return n & ~(PAGE - 1)


_libc: ctypes.CDLL | None = None
#: Pages asked of ``mincore`` at once (a 1 GiB window: a 256 KiB vector).
_MINCORE_WINDOW = 1 << 18


def _resident_runs(address: int, size: int) -> Iterator[tuple[int, int]]:
    """(offset, length) runs of the host pages of ``[address, address+size)`` that are
    resident (``mincore``). Pages never touched of an anonymous private mapping are not, and
    read as zeros: a copy may skip them (a sparse 64 TiB mapping costs its touched pages)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    pages = size // PAGE
    vec = (ctypes.c_ubyte * min(pages, _MINCORE_WINDOW))()
    run_start = -1
    for first in range(0, pages, _MINCORE_WINDOW):
        n = min(_MINCORE_WINDOW, pages - first)
        if _libc.mincore(ctypes.c_void_p(address + first * PAGE), ctypes.c_size_t(n * PAGE),
                         vec) != 0:
            # Cannot ask (not expected for our own buffers): copy the whole window.
            ok = [1] * n
        else:
            ok = bytes(vec)[:n]  # type: ignore[assignment]
        for i in range(n):
            if ok[i] & 1:
                if run_start < 0:
                    run_start = first + i
            elif run_start >= 0:
                yield run_start * PAGE, (first + i - run_start) * PAGE
                run_start = -1
    if run_start >= 0:
        yield run_start * PAGE, (pages - run_start) * PAGE


def clone_regions(regions: Iterable[Region]) -> list[Region]:
    """A private copy of ``regions`` (fork): each backing they use is copied once into a new
    one (only its resident pages), and each region becomes the same piece of the copy."""
    copies: dict[int, Backing] = {}
    out = []
    for r in regions:
        copy = copies.get(r.backing.id)
        if copy is None:
            old = r.backing
            copy = copies[old.id] = Backing(old.size)
            for off, n in _resident_runs(old.address, old.size):
                ctypes.memmove(copy.address + off, old.address + off, n)
        out.append(Region(r.start, r.size, r.perms, r.name, copy, r.offset))
    return out


WriteObserver = Callable[[int, int], None]
MapObserver = Callable[[str, int, int, Perm], None]
LayoutObserver = Callable[[], None]
#: ``peek(address, size)``: a device's registers for a debugger's read (see Memory.peekers).
Peeker = Callable[[int, int], "bytes | None"]


class Memory:
    """The guest address space of one machine."""

    def __init__(self, uc: Uc, *, on_code_write: Callable[[int, int], None] | None = None) -> None:
        self._uc = uc
        self._regions: list[Region] = []  # sorted by start
        self._starts: list[int] = []
        self.write_observers: list[WriteObserver] = []
        self.map_observers: list[MapObserver] = []
        self.layout_observers: list[LayoutObserver] = []
        #: Reads outside every region go to these (a device's registers, e.g. Cortex-M
        #: MMIO windows): ``peek(address, size)`` gives the bytes from ``address`` on (at
        #: most ``size``) when it owns that address, None when it does not, and raises
        #: MemoryAccessError when it cannot read them without side effects. Only host-side
        #: reads (debuggers) use them: the guest's own accesses never come here.
        self.peekers: list[Peeker] = []
        self._on_code_write = on_code_write

    # -- queries ----------------------------------------------------------------------------
    def regions(self) -> list[Region]:
        return list(self._regions)

    def __iter__(self) -> Iterator[Region]:
        return iter(list(self._regions))

    def find(self, address: int) -> Region | None:
        i = bisect_right(self._starts, address) - 1
        if i >= 0:
            r = self._regions[i]
            if address < r.end:
                return r
        return None

    def is_mapped(self, address: int, size: int = 1) -> bool:
        try:
            for _ in self._spans(address, size):
                pass
        except MemoryAccessError:
            return False
        return True

    def find_free(self, size: int, *, below: int, above: int = 0x10000) -> int:
        """Highest page-aligned address ``a`` with ``[a, a+size)`` free and ``a+size <= below``."""
        size = page_round_up(size)
        top = page_round_down(below)
        for r in reversed(self._regions):
            if r.start >= top:
                continue
            if r.end <= top - size:
                return top - size
            top = min(top, r.start)
        if top - size >= above:
            return top - size
        raise MemoryMapError(f"no free range of {size:#x} bytes below {below:#x}")

    def _spans(self, address: int, size: int) -> Iterator[tuple[Region, int, int]]:
        """Yield (region, offset in region, length) covering ``[address, address+size)``."""
        check_address_range(address, size, allow_empty=True)
        pos = address
        end = address + size
        while pos < end:
            r = self.find(pos)
            if r is None:
                raise MemoryAccessError(address, size)
            n = min(end, r.end) - pos
            yield r, pos - r.start, n
            pos += n

    # -- host access ------------------------------------------------------------------------
    def read(self, address: int, size: int) -> bytes:
        """Read guest memory; raises :class:`MemoryAccessError` if any byte is unmapped.
        Device registers are not memory here: what the guest's kernel and devices read is
        the same on every execution (a debugger reads them with :meth:`read_debug`)."""
        spans = list(self._spans(address, size))
        if len(spans) == 1:
            r, off, n = spans[0]
            return bytes(r.view[off : off + n])
        return b"".join(bytes(r.view[off : off + n]) for r, off, n in spans)

    def read_debug(self, address: int, size: int) -> bytes:
        """A debugger's read (the shell's ``x``, expressions): as :meth:`read`, with device
        registers from :attr:`peekers` (their errors propagate: a read in the past, a
        model that cannot peek)."""
        if not self.peekers:
            return self.read(address, size)
        check_address_range(address, size, allow_empty=True)
        data = self.read_partial(address, size, strict=True)
        if len(data) < size:
            raise MemoryAccessError(address, size)
        return data

    def read_partial(self, address: int, size: int, *, strict: bool = False) -> bytes:
        """Read as many bytes as are mapped from ``address`` on (may be fewer than ``size``).
        Device registers come from :attr:`peekers` (``strict``: their errors propagate)."""
        out = bytearray()
        pos = address
        end = address + size
        while pos < end:
            r = self.find(pos)
            if r is None:
                peeked = None
                for peek in self.peekers:
                    try:
                        peeked = peek(pos, end - pos)
                    except MemoryAccessError:
                        if strict:
                            raise
                        break
                    if peeked is not None:
                        break
                if not peeked:
                    break
                out += peeked
                pos += len(peeked)
                continue
            n = min(end, r.end) - pos
            out += r.view[pos - r.start : pos - r.start + n]
            pos += n
        return bytes(out)

    def read_cstring(self, address: int, limit: int = 1 << 16) -> bytes:
        """Read a NUL-terminated string (without the NUL)."""
        out = bytearray()
        pos = address
        while len(out) < limit:
            r = self.find(pos)
            if r is None:
                raise MemoryAccessError(pos, 1, "read string")
            chunk = r.view[pos - r.start : min(r.size, pos - r.start + 256)]
            i = bytes(chunk).find(b"\0")
            if i >= 0:
                out += chunk[:i]
                return bytes(out[:limit])
            out += chunk
            pos += len(chunk)
        return bytes(out[:limit])

    def write(self, address: int, data: bytes | bytearray | memoryview) -> None:
        """Write guest memory from the host (ignores page protections, as ptrace does).

        The write is reported to ``write_observers`` before the bytes change, so the
        snapshot core can save the pre-image exactly as it does for guest stores.
        """
        data = memoryview(data).cast("B")
        size = len(data)
        spans = list(self._spans(address, size))
        for obs in self.write_observers:
            obs(address, size)
        pos = 0
        for r, off, n in spans:
            r.view[off : off + n] = data[pos : pos + n]
            if r.perms & Perm.X and self._on_code_write is not None:
                self._on_code_write(r.start + off, n)
            pos += n

    # -- map changes ------------------------------------------------------------------------
    def map(self, address: int, size: int, perms: Perm = Perm.RW, name: str = "") -> Region:
        """Map fresh zeroed RAM at ``[address, address+size)``; the range must be free."""
        _check_range(address, size)
        for r in self._regions:
            if r.start < address + size and address < r.end:
                raise MemoryMapError(
                    f"cannot map {address:#x}+{size:#x}: overlaps {r.name or 'a region'} "
                    f"at {r.start:#x}-{r.end:#x}"
                )
        region = Region(address, size, Perm(perms), name, Backing(size))
        self._insert(region)
        for obs in self.map_observers:
            obs("map", address, size, Perm(perms))
        self._layout_changed()
        return region

    def unmap(self, address: int, size: int) -> None:
        """Unmap every mapped page in the range (unmapped holes are fine, as munmap)."""
        _check_range(address, size)
        for obs in self.map_observers:
            obs("unmap", address, size, Perm.NONE)
        self._reshape(address, size, None)
        self._layout_changed()

    def protect(self, address: int, size: int, perms: Perm) -> None:
        """Change permissions of a fully mapped range."""
        _check_range(address, size)
        if not self.is_mapped(address, size):
            raise MemoryMapError(f"cannot protect {address:#x}+{size:#x}: not fully mapped")
        for obs in self.map_observers:
            obs("protect", address, size, Perm(perms))
        self._reshape(address, size, Perm(perms))
        self._layout_changed()

    def _reshape(self, address: int, size: int, perms: Perm | None) -> None:
        end = address + size
        for r in [r for r in self._regions if r.start < end and address < r.end]:
            self._remove(r)
            lo, hi = max(r.start, address), min(r.end, end)
            pieces = []
            if r.start < lo:
                pieces.append((r.start, lo, r.perms))
            if perms is not None:
                pieces.append((lo, hi, perms))
            if hi < r.end:
                pieces.append((hi, r.end, r.perms))
            for s, e, p in pieces:
                piece = Region(s, e - s, p, r.name, r.backing, r.offset + (s - r.start))
                self._insert(piece)

    def restore_layout(self, regions: list[Region]) -> None:
        """Make the map exactly ``regions`` (used by snapshot restores of map changes)."""
        for r in list(self._regions):
            self._remove(r)
        for r in regions:
            self._insert(Region(r.start, r.size, r.perms, r.name, r.backing, r.offset))
        self._layout_changed()

    def _layout_changed(self) -> None:
        for obs in self.layout_observers:
            obs()

    def _insert(self, r: Region) -> None:
        ptr = r.backing.address + r.offset
        self._uc.mem_map_ptr(r.start, r.size, int(r.perms), ptr)
        i = bisect_right(self._starts, r.start)
        self._regions.insert(i, r)
        self._starts.insert(i, r.start)

    def _remove(self, r: Region) -> None:
        self._uc.mem_unmap(r.start, r.size)
        i = self._regions.index(r)
        del self._regions[i]
        del self._starts[i]
