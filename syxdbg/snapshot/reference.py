"""Pure-Python reference implementation of the snapshot core: slow, obviously right.

Each log keeps a full copy of every RAM buffer as it was when the log was opened, so no store
can be missed and no tracking is needed at all. Restoring compares page by page and writes
back the pages that differ. The API layer (:mod:`._api`) is shared with the compiled core;
the test suite runs against both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _api
from ._api import JournalFull, PageDiff

if TYPE_CHECKING:
    from ..machine import Machine
    from ..machine.memory import Backing

PAGE = 4096

Image = dict[int, tuple["Backing", bytes]]


class ReferenceJournal:
    """A journal engine that stores full RAM images (see the module docstring)."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self._logs: dict[int, Image] = {}
        self._next = 0
        self._limit: int | None = None

    def _capture(self) -> Image:
        img: Image = {}
        for r in self.machine.mem.regions():
            b = r.backing
            if b.id not in img:
                img[b.id] = (b, bytes(b.buf))
        return img

    def _ram_bytes(self) -> int:
        return sum({r.backing.id: r.backing.size for r in self.machine.mem.regions()}.values())

    def set_limit(self, max_bytes: int | None) -> None:
        self._limit = max_bytes

    @property
    def full(self) -> bool:
        """Another image would not fit in the limit."""
        return self._limit is not None and self.stats()["bytes"] + self._ram_bytes() > \
            self._limit

    def open_log(self) -> int:
        if self.full:
            raise JournalFull(f"snapshot journal full: its {self._limit} bytes limit is "
                              "reached (go back in time or drop history to free it)")
        self._next += 1
        self._logs[self._next] = self._capture()
        return self._next

    def restore_to(self, log: int) -> int:
        img = self._logs[log]
        machine = self.machine
        regions = machine.mem.regions()
        written = 0
        code: list[tuple[int, int]] = []
        for backing, data in img.values():
            buf = backing.buf
            for off in range(0, backing.size, PAGE):
                old = data[off : off + PAGE]
                if buf[off : off + PAGE] == old:
                    continue
                buf[off : off + PAGE] = old
                written += 1
                for r in regions:
                    if (r.backing is backing and r.offset <= off < r.offset + r.size
                            and r.perms & 4):
                        addr = r.start + off - r.offset
                        code.append((addr, addr + PAGE))
        if code:
            machine.code_restored(code)
        for k in [k for k in self._logs if k > log]:
            del self._logs[k]
        return written

    def drop_log(self, log: int) -> None:
        self._logs.pop(log, None)

    def drop_older(self, log: int) -> None:
        for k in [k for k in self._logs if k < log]:
            del self._logs[k]

    def has_log(self, log: int) -> bool:
        return log in self._logs

    def pages_since(self, log: int) -> list[int]:
        """Pages (mapped now) that differ from the image taken when ``log`` was opened: a
        full comparison, as everything in the reference."""
        img = self._logs[log]
        out = []
        for r in self.machine.mem.regions():
            entry = img.get(r.backing.id)
            if entry is None:
                continue  # a backing created since: the region is new (the caller's part)
            buf, old = r.backing.buf, entry[1]
            for off in range(0, r.size, PAGE):
                boff = r.offset + off
                if buf[boff : boff + PAGE] != old[boff : boff + PAGE]:
                    out.append(r.start + off)
        return sorted(out)

    def check(self) -> list[PageDiff]:
        img = self._logs[max(self._logs)] if self._logs else {}
        out = []
        for r in self.machine.mem.regions():
            entry = img.get(r.backing.id)
            for off in range(0, r.size, PAGE):
                boff = r.offset + off
                cur = bytes(r.backing.buf[boff : boff + PAGE])
                exp = entry[1][boff : boff + PAGE] if entry else bytes(PAGE)
                if cur != exp:
                    first = next(i for i in range(PAGE) if cur[i] != exp[i])
                    out.append(PageDiff(r.start + off, r.name, first))
        return out

    def stats(self) -> dict[str, int]:
        nbytes = sum(len(d) for img in self._logs.values() for _, d in img.values())
        return {"pages": nbytes // PAGE, "bytes": nbytes, "logs": len(self._logs)}

    def enable_verify(self) -> None:
        """Nothing to do: full images are always kept."""

    def close(self) -> None:
        self._logs.clear()


class SyxSnapshot(_api.SyxSnapshot):
    """:class:`syxdbg.snapshot.SyxSnapshot` on the reference journal."""

    _engine_factory = staticmethod(ReferenceJournal)
    _backend = "reference"


SyxSnapshotTracker = _api.SyxSnapshotTracker
DeviceSnapshotKind = _api.DeviceSnapshotKind
SnapshotError = _api.SnapshotError

__all__ = ["DeviceSnapshotKind", "ReferenceJournal", "SnapshotError", "SyxSnapshot",
           "SyxSnapshotTracker"]
