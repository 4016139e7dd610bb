"""The snapshot API shared by the compiled core and the pure-Python reference.

This layer owns the *bookkeeping*: checkpoints (CPU context, device states, memory map) and the
rules that keep several snapshots of one machine consistent. Page contents live in a journal
engine (``_core.Journal`` in C, ``reference.ReferenceJournal`` in Python) behind
:class:`Engine`.

Model (see docs/snapshots.md):

* A machine has one :class:`SyxSnapshotTracker` and one journal. The journal is a sequence of
  *logs*, one per interval between two state changes (a push or a restore starts a new
  interval). A checkpoint remembers the log opened when it was taken.
* The state of checkpoint ``c`` is the current RAM with every log from ``c.log`` on undone
  newest to oldest. Guest stores and host writes land in the newest (open) log.
* Restoring ``c`` undoes those logs, so every checkpoint (of any snapshot of the machine) newer
  than ``c`` describes a state that no longer exists: it is dropped, and a snapshot whose root
  is newer becomes invalid. Older checkpoints stay exact.
* A log that no tracked checkpoint refers to is merged into its predecessor (older pre-image
  wins); logs older than every tracked checkpoint are freed.
"""

from __future__ import annotations

import enum
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..errors import SyxdbgError

if TYPE_CHECKING:
    from ..machine import Machine, Region
    from ..machine.core import CpuState
    from ..state import StateRegistry

_PAGE = 4096

#: The device name of the CPU context (registers, position, machine-held registers).
CPU = "cpu"


class SnapshotError(SyxdbgError):
    """A snapshot operation is not possible (stale snapshot, nothing to pop, bad filter...)."""


class JournalFull(SnapshotError):
    """The snapshot journal is out of memory (its limit, or the host's).

    Raised by the push that could not start a new checkpoint, or by the host write whose
    pre-image could not be kept (that write did not happen). Every existing checkpoint stays
    exact: the machine stopped at the end of the block in flight, whose stores' pre-images
    came from a reserve. Restoring an older checkpoint or dropping history frees memory.
    """


class DeviceSnapshotKind(enum.Enum):
    """Which devices (the CPU plus registered states) a snapshot or increment saves."""

    ALL = "all"
    ALLOWLIST = "allowlist"
    DENYLIST = "denylist"


@dataclass(frozen=True)
class PageDiff:
    """One guest page whose bytes differ from the expected state."""

    address: int
    region: str
    first_offset: int  # offset in the page of the first differing byte


class Engine(Protocol):
    """What a journal engine implements (``_core.Journal``, ``reference.ReferenceJournal``)."""

    def open_log(self) -> int:
        """Close the open log and open a new one; return its id (ids increase)."""

    def restore_to(self, log: int) -> int:
        """RAM := state at the start of ``log``; drop newer logs; ``log`` is open and empty.

        The memory map must already be the one of that state. Translations of restored
        executable pages are dropped. Returns the number of pages written.
        """

    def drop_log(self, log: int) -> None:
        """Forget a closed log no checkpoint refers to (merged into its predecessor)."""

    def drop_older(self, log: int) -> None:
        """Free every log older than ``log``."""

    def has_log(self, log: int) -> bool: ...

    def pages_since(self, log: int) -> list[int]:
        """Guest addresses (sorted, mapped now) of the pages whose bytes may differ from the
        state at the start of ``log``: first writes recorded since (guest and host). Regions
        whose mapping changed since are the caller's business."""

    def check(self) -> list[PageDiff]:
        """Pages of mapped RAM that differ from the state at the start of the open log."""

    def stats(self) -> dict[str, int]:
        """At least ``pages`` and ``bytes`` held by the logs."""

    def enable_verify(self) -> None:
        """Keep what :meth:`check` needs (the compiled core keeps a shadow copy of RAM)."""

    def set_limit(self, max_bytes: int | None) -> None:
        """Keep at most ``max_bytes`` of saved memory (None: as much as the host gives);
        past it the journal is full and pushes raise :class:`JournalFull`."""

    @property
    def full(self) -> bool:
        """True while the journal is out of memory."""

    def close(self) -> None: ...


@dataclass(eq=False)
class Checkpoint:
    """One saved state: a root or an increment."""

    log: int
    ordinal: int
    cpu: CpuState | None
    devices: dict[str, Any]
    layout: tuple[Region, ...]
    created: float = field(default_factory=time.time)


def _layout_key(layout: Iterable[Region]) -> tuple[tuple[int, int, int, int, int], ...]:
    return tuple((r.start, r.size, int(r.perms), r.backing.id, r.offset) for r in layout)


class SyxSnapshotTracker:
    """The one notification stream of a machine: every snapshot on it sees every write.

    There is no per-snapshot work per store: the journal has one open log and a per-page epoch
    stamp, whatever the number of tracked snapshots. Tracking a snapshot means its checkpoints
    keep the logs they need alive.
    """

    _by_machine: ClassVar[weakref.WeakKeyDictionary[Machine, SyxSnapshotTracker]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, machine: Machine, engine: Engine, backend: str) -> None:
        self.machine = machine
        self.engine = engine
        self.backend = backend
        self._tracked: list[SyxSnapshot] = []
        self._all: weakref.WeakSet[SyxSnapshot] = weakref.WeakSet()
        self._released: set[int] = set()  # logs whose checkpoint was dropped
        self._open = -1

    @classmethod
    def of(cls, machine: Machine, engine_factory: Callable[[Machine], Engine] | None = None,
           backend: str = "") -> SyxSnapshotTracker:
        """The machine's tracker, created with ``engine_factory`` on first use."""
        tr = cls._by_machine.get(machine)
        if tr is not None:
            if backend and tr.backend != backend:
                raise SnapshotError(
                    f"this machine's snapshots use the {tr.backend!r} core; "
                    f"cannot mix in the {backend!r} core"
                )
            return tr
        if engine_factory is None:
            raise SnapshotError("this machine has no snapshot tracker yet")
        tr = cls(machine, engine_factory(machine), backend)
        cls._by_machine[machine] = tr
        return tr

    @property
    def tracked(self) -> list[SyxSnapshot]:
        return list(self._tracked)

    def set_memory_limit(self, max_bytes: int | None) -> None:
        """Bound the memory the journal keeps for this machine's history (None: the host's
        memory is the bound). Reaching it stops the machine at the end of the current block;
        the next push raises :class:`JournalFull`, every checkpoint still exact."""
        self.engine.set_limit(max_bytes)

    @property
    def memory_full(self) -> bool:
        """The journal is out of memory: a run that stopped for no other reason stopped for
        this, and the next push will raise :class:`JournalFull`."""
        return self.engine.full

    def track(self, snapshot: SyxSnapshot) -> None:
        """Make ``snapshot`` follow writes again (its logs must still exist)."""
        if snapshot.tracker is not self:
            raise SnapshotError("snapshot belongs to another machine")
        if snapshot in self._tracked:
            return
        snapshot._require_live()
        if not all(self.engine.has_log(cp.log) for cp in snapshot._stack):
            snapshot._dead = "its memory history was freed while it was not tracked"
            raise SnapshotError(f"cannot track again: {snapshot._dead}")
        self._tracked.append(snapshot)

    def stop_track(self, snapshot: SyxSnapshot) -> None:
        """Stop keeping ``snapshot``'s history; it cannot restore until tracked again."""
        if snapshot in self._tracked:
            self._tracked.remove(snapshot)
            self._collect()

    # -- shared bookkeeping -----------------------------------------------------------------
    def _live_logs(self) -> set[int]:
        return {cp.log for s in self._tracked for cp in s._stack}

    def _collect(self) -> None:
        """Drop logs no tracked checkpoint needs (merge unreferenced closed logs)."""
        eng = self.engine
        live = self._live_logs()
        if not live:
            return
        oldest = min(live)
        eng.drop_older(oldest)
        for log in self._orphans(live, oldest):
            eng.drop_log(log)

    def _orphans(self, live: set[int], oldest: int) -> list[int]:
        # Candidate logs are those once referenced by a checkpoint and not the open one.
        out = sorted(x for x in self._released if x > oldest and x not in live
                     and x != self._open and self.engine.has_log(x))
        self._released = {x for x in self._released if self.engine.has_log(x)} - set(out)
        return out

    def _release(self, logs: Iterable[int]) -> None:
        self._released |= set(logs)
        self._collect()

    def _new_log(self) -> int:
        self._open = self.engine.open_log()
        return self._open

    def _restore_to(self, cp: Checkpoint) -> int:
        """Layout and RAM := ``cp``'s; drop every newer checkpoint of every snapshot."""
        mem = self.machine.mem
        if _layout_key(mem.regions()) != _layout_key(cp.layout):
            mem.restore_layout(list(cp.layout))
            self.machine.code_restored(everything=True)
        pages = self.engine.restore_to(cp.log)
        self._open = cp.log
        for snap in list(self._all):
            if snap._dead is not None:
                continue
            if snap._stack and snap._stack[0].log > cp.log:
                snap._dead = "a restore went back before its root"
                if snap in self._tracked:
                    self._tracked.remove(snap)
                continue
            while snap._stack and snap._stack[-1].log > cp.log:
                snap._stack.pop()
        self._collect()
        return pages


class SyxSnapshot:
    """A root snapshot of a machine plus a stack of increments (SYX vocabulary, fixed).

    Create with :meth:`new`. Subclasses pick the journal engine (``_engine_factory``).
    """

    #: ``(machine) -> Engine``; a staticmethod in subclasses.
    _engine_factory: ClassVar[Any] = None
    _backend: ClassVar[str] = ""

    def __init__(self, tracker: SyxSnapshotTracker, states: StateRegistry | None) -> None:
        self.tracker = tracker
        self.machine = tracker.machine
        self.states = states
        self._stack: list[Checkpoint] = []
        self._dead: str | None = None
        self._ordinal = 0
        self._last_push_us = 0.0
        self._last_restore_us = 0.0
        self._last_restored_pages = 0

    # -- creation ---------------------------------------------------------------------------
    @classmethod
    def new(cls, machine: Machine, track: bool = True,
            kind: DeviceSnapshotKind = DeviceSnapshotKind.ALL,
            devices: Iterable[str] | None = None, *, states: StateRegistry | None = None,
            verify: bool = False) -> SyxSnapshot:
        """Take the root snapshot of ``machine`` now (the machine must be stopped).

        ``states`` is the session's :class:`~syxdbg.state.StateRegistry`; ``kind`` and
        ``devices`` select which of its states (and ``"cpu"``) are saved. ``verify`` keeps
        what :meth:`check_memory_consistency` needs (a shadow copy of RAM in the compiled
        core: one full copy now, then one extra page copy per dirty page).
        """
        factory = cls._engine_factory
        if factory is None:
            raise SnapshotError("use syxdbg.snapshot.SyxSnapshot or reference.SyxSnapshot")
        tracker = SyxSnapshotTracker.of(machine, factory, cls._backend)
        if verify:
            tracker.engine.enable_verify()
        snap = cls(tracker, states)
        tracker._all.add(snap)
        if track:
            tracker._tracked.append(snap)
        snap._stack.append(snap._capture(kind, devices))
        return snap

    # -- internals --------------------------------------------------------------------------
    def _require_live(self) -> None:
        if self._dead is not None:
            raise SnapshotError(f"this snapshot is no longer valid: {self._dead}")
        if not self._stack:
            raise SnapshotError("this snapshot was freed")

    def _require_tracked(self) -> None:
        self._require_live()
        if self not in self.tracker._tracked:
            raise SnapshotError("this snapshot is not tracked: track() it before restoring")

    def _device_names(self, kind: DeviceSnapshotKind, devices: Iterable[str] | None
                      ) -> list[str]:
        registered = [] if self.states is None else self.states.names()
        known = [CPU, *registered]
        chosen = set(devices or ())
        unknown = chosen - set(known)
        if unknown:
            raise SnapshotError(f"unknown device(s) {sorted(unknown)}; known: {known}")
        if kind is DeviceSnapshotKind.ALL:
            if devices:
                raise SnapshotError("DeviceSnapshotKind.ALL takes no device list")
            return known
        if kind is DeviceSnapshotKind.ALLOWLIST:
            return [n for n in known if n in chosen]
        return [n for n in known if n not in chosen]

    def _capture(self, kind: DeviceSnapshotKind, devices: Iterable[str] | None) -> Checkpoint:
        names = self._device_names(kind, devices)
        cpu = self.machine.save_cpu() if CPU in names else None
        saved: dict[str, Any] = {}
        if self.states is not None:
            saved = self.states.save([n for n in names if n != CPU])
        layout = tuple(self.machine.mem.regions())
        log = self.tracker._new_log()
        cp = Checkpoint(log, self._ordinal, cpu, saved, layout)
        self._ordinal += 1  # the root is 0, increments count pushes from 1
        return cp

    def _restore(self, cp: Checkpoint) -> None:
        t0 = time.perf_counter()
        self._last_restored_pages = self.tracker._restore_to(cp)
        if cp.cpu is not None:  # first: a state may arm the machine's timer (position)
            self.machine.load_cpu(cp.cpu)
        if self.states is not None and cp.devices:
            self.states.load(cp.devices)
        self._last_restore_us = (time.perf_counter() - t0) * 1e6

    # -- SYX API ----------------------------------------------------------------------------
    def increment_push(self, kind: DeviceSnapshotKind = DeviceSnapshotKind.ALL,
                       devices: Iterable[str] | None = None) -> int:
        """Record the current state as a new increment; returns its index (root is 0)."""
        self._require_tracked()
        t0 = time.perf_counter()
        self._stack.append(self._capture(kind, devices))
        self._last_push_us = (time.perf_counter() - t0) * 1e6
        return len(self._stack) - 1

    def increment_restore_last(self) -> None:
        """State := the newest increment (the root when there is none); it stays."""
        self._require_tracked()
        self._restore(self._stack[-1])

    def increment_pop(self) -> None:
        """State := the newest increment, then drop it (the root cannot be popped)."""
        self._require_tracked()
        if len(self._stack) < 2:
            raise SnapshotError("no increment to pop (only the root is left)")
        top = self._stack[-1]
        self._restore(top)
        self._stack.pop()
        self.tracker._release([top.log])

    def restore(self, index: int) -> None:
        """State := checkpoint ``index`` (0 is the root); newer increments are dropped."""
        self._require_tracked()
        cp = self._checkpoint(index)
        self._restore(cp)

    def root_restore(self) -> None:
        """State := root; every increment is dropped."""
        self.restore(0)

    def merge(self, index: int) -> None:
        """Drop increment ``index`` (1..n); every other checkpoint still restores exactly.

        Its pages are folded into the previous interval, keeping the older pre-image, so
        pages written in both intervals are stored once.
        """
        self._require_tracked()
        if not 1 <= index < len(self._stack):
            raise SnapshotError(f"no increment {index} (there are {len(self._stack) - 1})")
        cp = self._stack.pop(index)
        self.tracker._release([cp.log])

    def thin(self, keep_last: int, keep_every: int = 0) -> int:
        """Merge old increments: keep the newest ``keep_last`` and every ``keep_every``-th
        older one (by push order). Returns how many were dropped."""
        self._require_tracked()
        n = len(self._stack) - 1
        drop = []
        for i in range(1, max(0, n - keep_last) + 1):
            cp = self._stack[i]
            if keep_every and cp.ordinal % keep_every == 0:
                continue
            drop.append(cp)
        if drop:
            gone = {id(cp) for cp in drop}
            self._stack = [cp for cp in self._stack if id(cp) not in gone]
            self.tracker._release([cp.log for cp in drop])
        return len(drop)

    def forget_before(self, index: int) -> int:
        """Make checkpoint ``index`` the root: drop every older checkpoint and free the
        memory history only they needed. Returns how many were dropped.

        The states before the new root can no longer be restored (a bounded-memory history
        forgets its oldest part).
        """
        self._require_tracked()
        if not 0 <= index < len(self._stack):
            raise SnapshotError(f"no checkpoint {index} (there are {len(self._stack)})")
        if index == 0:
            return 0
        dropped = self._stack[:index]
        del self._stack[:index]
        self.tracker._release([cp.log for cp in dropped])
        return len(dropped)

    def _checkpoint(self, index: int) -> Checkpoint:
        if not 0 <= index < len(self._stack):
            raise SnapshotError(f"no checkpoint {index} (there are {len(self._stack)})")
        return self._stack[index]

    @property
    def depth(self) -> int:
        """Number of increments (the root not counted)."""
        return max(0, len(self._stack) - 1)

    @property
    def valid(self) -> bool:
        return self._dead is None and bool(self._stack)

    @property
    def positions(self) -> list[int | None]:
        """The machine position of each checkpoint (root first), None without CPU state."""
        return [None if cp.cpu is None else cp.cpu.position for cp in self._stack]

    def dirty_pages_since(self, index: int = -1) -> list[int]:
        """Sorted guest addresses of the mapped pages whose bytes may differ from checkpoint
        ``index`` (default: the newest): the pages written since it, by the guest or the
        host, plus every page of a region mapped or reshaped since.

        A recording persists exactly these at each checkpoint. On the compiled core this
        costs the pages written, never RAM size (the journal already knows them); the
        reference compares its full images.
        """
        self._require_tracked()
        if not -len(self._stack) <= index < len(self._stack):
            raise SnapshotError(f"no checkpoint {index} (there are {len(self._stack)})")
        cp = self._stack[index]
        pages = set(self.tracker.engine.pages_since(cp.log))
        old = {(r.start, r.size, r.backing.id, r.offset) for r in cp.layout}
        for r in self.machine.mem.regions():
            if (r.start, r.size, r.backing.id, r.offset) not in old:
                pages.update(range(r.start, r.end, _PAGE))
        return sorted(pages)

    def written(self, index: int) -> tuple[bytes, list[tuple[int, int]]] | None:
        """What was written in the interval that starts at checkpoint ``index`` and ends at
        the next one (the newest: now), for indexed reverse search: ``(ranges, reshaped)``
        as the compiled journal's ``Journal.written`` returns them (page ranges as
        range-set bytes, and the map entries mapped, unmapped or changed meanwhile). None
        when the journal cannot tell (the pure-Python reference)."""
        self._require_tracked()
        written = getattr(self.tracker.engine, "written", None)
        if written is None:
            return None
        first = self._checkpoint(index).log
        end = self._stack[index + 1].log if index + 1 < len(self._stack) else -1
        result: tuple[bytes, list[tuple[int, int]]] = written(first, end)
        return result

    def check_memory_consistency(self) -> int:
        """Pages of all mapped guest RAM that differ from the state last pushed or restored."""
        return len(self.check_memory_consistency_details())

    def check_memory_consistency_details(self) -> list[PageDiff]:
        self._require_live()
        return self.tracker.engine.check()

    def stats(self) -> dict[str, float]:
        """Increments, pages and bytes held by the machine's journal, last push/restore."""
        es = self.tracker.engine.stats()
        return {
            "increments": self.depth,
            "pages": es["pages"],
            "bytes": es["bytes"],
            "logs": es.get("logs", 0),
            "last_push_us": self._last_push_us,
            "last_restore_us": self._last_restore_us,
            "last_restored_pages": self._last_restored_pages,
        }

    def free(self) -> None:
        """Untrack first, then release every checkpoint; the snapshot becomes unusable."""
        tr = self.tracker
        if self in tr._tracked:
            tr._tracked.remove(self)
        logs = [cp.log for cp in self._stack]
        self._stack = []
        tr._all.discard(self)
        tr._release(logs)
        if not tr._all:
            # The last snapshot of the machine is gone: the journal can go too.
            tr.engine.close()
            SyxSnapshotTracker._by_machine.pop(self.machine, None)
