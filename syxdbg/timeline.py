"""The timeline owns time: position, frontier, checkpoints, breakpoints, watchpoints.

* **position** is the machine's exact retired-instruction count; the **frontier** is the
  furthest position ever executed; the **origin** is where history begins (the root
  checkpoint, normally position 0).
* **Checkpoints** are snapshot increments (:mod:`syxdbg.snapshot`), pushed at every stop and
  every :attr:`Timeline.interval` instructions while running, so going to any position
  re-executes a bounded distance. Going backwards pushes denser checkpoints just before the
  target (rr's "expect short reverse execution"), so the next reverse-stepi is cheap.
  Restoring a checkpoint drops every newer one (undo logs cannot go forward), so every
  checkpoint is at or before the current position and forward motion is always re-execution.
* **Run control is direction-symmetric**: :meth:`Timeline.step`, :meth:`Timeline.cont`,
  :meth:`Timeline.seek`. Backwards (QEMU/rr): reverse-stepi from P restores the newest
  checkpoint <= P-1 and runs forward; reverse-continue scans checkpoint intervals newest to
  oldest, re-executing each with breakpoints and watchpoints armed, and lands on the last hit
  strictly before P, or at the origin (:class:`HistoryBoundary`).
* **Determinism**: host inputs are recorded in the :class:`~syxdbg.eventlog.EventLog` at the
  frontier and replayed behind it (states that implement ``attach_eventlog``, the Linux
  kernel, route their host access through it); host side effects are not repeated.
* **Writes in the past** (memory, registers) discard the recorded future, as gdb's
  ``record full`` does (:class:`FutureDiscarded`), and execution continues live from there.
* **Memory budget**: undo logs plus recorded events are kept under :attr:`Timeline.budget`
  by merging old checkpoints (the older, the sparser), and as a last resort by forgetting
  the oldest history (the origin moves forward).

See docs/timetravel.md.
"""

from __future__ import annotations

import bisect
import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .errors import SyxdbgError
from .eventlog import STATE_NAME as EVENTLOG_STATE
from .eventlog import Divergence, EventLog, Recordable
from .machine.events import Exited, Fault, Killed, StopEvent, Stopped, WatchHit
from .machine.probes import CodeIndex, ranges_overlap, ranges_pack, ranges_union
from .sigint import reset_host_waits, wake_host_waits
from .snapshot import JournalFull
from .state import StateRegistry

if TYPE_CHECKING:
    from .machine import Machine

#: Default distance between automatic checkpoints (instructions): ~50 ms of re-execution.
DEFAULT_INTERVAL = 1_000_000
#: Default memory budget for undo logs, checkpoints and recorded inputs (bytes).
DEFAULT_BUDGET = 1 << 30
#: Smallest distance of the dense checkpoints pushed before a backward target.
DENSE_GAP = 64
#: Each dense checkpoint further back is this many times further from the target (4: a
#: reverse step over the end of a long run pushes ~7 of them instead of ~14, while steps
#: further back still re-execute at most 3x their distance from the target).
DENSE_FACTOR = 4
#: Newest checkpoints never merged by thinning.
KEEP_RECENT = 4
#: What one checkpoint costs besides its undo log (CPU context, states, bookkeeping).
CHECKPOINT_OVERHEAD = 16 * 1024
#: The snapshot journal's hard memory limit is the budget, but at least this much (its pool
#: grows by 1 MiB chunks; the soft budget is enforced by thinning after each push).
MIN_JOURNAL_LIMIT = 8 << 20

PollFn = Callable[[], bool]
#: Decides whether a breakpoint/watchpoint stop counts (called with the machine at the hit).
AcceptFn = Callable[[StopEvent], bool]
#: A stop takes a checkpoint only this many instructions after the last one (a stepi does
#: not pay for a snapshot; re-executing this far costs well under a millisecond).
STOP_GAP = 4096
#: Longest address range a range step disassembles to find its exits (else it single-steps).
RANGE_MAX = 1 << 16
#: Jump to a persisted checkpoint of a recording instead of re-executing at least this far.
JUMP_MIN = DEFAULT_INTERVAL // 4


@runtime_checkable
class Recorded(Protocol):
    """A finished recording the timeline replays (see :mod:`syxdbg.recording`).

    History is then bounded: forward motion stops at :attr:`end` (``replaylog:end``), the
    guest state is read-only, re-execution is checked against the recorded digests, and
    persisted checkpoints ("seeds") let the timeline jump far ahead without re-executing.
    """

    #: The position where the recording stops.
    end: int
    #: How the recorded run ended (a fault there is reported again when replay reaches it).
    final: StopEvent

    def seed(self, low: int, high: int) -> int | None:
        """The latest persisted checkpoint position ``p`` with ``low < p <= high``."""

    def load_seed(self, position: int) -> None:
        """Make the machine and the registered states those recorded at ``position``."""

    def next_check(self, position: int) -> int | None:
        """The first position after ``position`` with a recorded digest, if any."""

    def check(self, position: int) -> None:
        """Compare the state at ``position`` with the recording; raise
        :class:`~syxdbg.eventlog.Divergence` if it differs."""


class TimelineError(SyxdbgError):
    """A time-travel request that cannot be served (unknown name, forgotten history...)."""


class ReadOnlyHistory(TimelineError):
    """A write to the guest while replaying a recording (its future cannot change)."""


class HistoryFull(TimelineError):
    """The snapshot journal is out of memory and no older history is left to forget: going
    forward would record more than it can hold (go back in time, or raise the budget)."""


class TimelineInterrupted(TimelineError):
    """A search was interrupted before it found anything; ``event`` is where it stopped."""

    def __init__(self, event: StopEvent) -> None:
        super().__init__(f"interrupted at position {event.position}")
        self.event = event


class Direction(str, enum.Enum):
    FORWARD = "forward"
    BACKWARD = "backward"

    @classmethod
    def of(cls, value: Direction | str) -> Direction:
        if isinstance(value, Direction):
            return value
        v = value.strip().lower()
        if v in ("forward", "fwd", "f", "+"):
            return cls.FORWARD
        if v in ("backward", "backwards", "reverse", "back", "b", "r", "-"):
            return cls.BACKWARD
        raise ValueError(f"unknown direction {value!r} (forward or backward)")


FORWARD = Direction.FORWARD
BACKWARD = Direction.BACKWARD


class Client(str, enum.Enum):
    """Who holds a breakpoint or watchpoint reference (see :meth:`Timeline.add_breakpoint`).

    ``INTERNAL`` references (temporary breakpoints of stepping algorithms, ``last-write``'s
    watchpoint) are never listed by :attr:`Timeline.breakpoints`/:attr:`~Timeline.watchpoints`.
    """

    GDB = "gdb"
    SHELL = "shell"
    PLUGIN = "plugin"
    INTERNAL = "internal"

    @classmethod
    def of(cls, value: Client | str) -> Client:
        try:
            return value if isinstance(value, Client) else cls(value)
        except ValueError:
            raise TimelineError(f"unknown breakpoint client {value!r}") from None


#: Watchpoint kinds the machine knows.
WATCH_KINDS = ("write", "read", "access")
#: Guest addresses are 64-bit at most.
_ADDRESS_LIMIT = 1 << 64


def _check_address(address: int) -> int:
    """A guest address, or a clear error (``break *-1``, ``watch 0x1_0000_0000_0000_0000``)."""
    if not isinstance(address, int) or isinstance(address, bool):
        raise TimelineError(f"not an address: {address!r}")
    if not 0 <= address < _ADDRESS_LIMIT:
        raise TimelineError(f"address {address:#x} is outside the 64-bit address space"
                            if address >= 0 else f"negative address {address}")
    return address


@dataclass(frozen=True, eq=False)
class Breakpoint:
    """A handle on one reference in the timeline's breakpoint table (identity matters: two
    clients at one address hold two handles)."""

    address: int
    client: Client


@dataclass(frozen=True, eq=False)
class Watchpoint:
    """A handle on one reference in the timeline's watchpoint table."""

    address: int
    size: int
    kind: str
    client: Client

    @property
    def key(self) -> tuple[int, int, str]:
        return (self.address, self.size, self.kind)


def _drop_reference(refs: list[Any], handle: Breakpoint | Watchpoint | None,
                    client: Client | str | None) -> bool:
    """Remove one reference from a table entry: ``handle`` itself, or (without a handle)
    the newest reference of ``client`` (of any client if None). False if there is none."""
    if handle is not None:
        drop = next((h for h in refs if h is handle), None)
    else:
        want = None if client is None else Client.of(client)
        drop = next((h for h in reversed(refs) if want is None or h.client is want), None)
    if drop is None:
        return False
    refs[:] = [h for h in refs if h is not drop]
    return True


# -- results ------------------------------------------------------------------------------
@dataclass(frozen=True)
class HistoryBoundary(StopEvent):
    """Execution reached the edge of history: ``edge`` is "begin" (the origin: nothing
    older can be replayed) or "end". gdb: ``T05replaylog:begin;``."""

    edge: str = "begin"

    def describe(self) -> str:
        where = "beginning" if self.edge == "begin" else "end"
        return f"reached the {where} of history at position {self.position} (pc {self.pc:#x})"


@dataclass(frozen=True)
class OutOfMemory(Stopped):
    """A forward run stopped (``why`` "memory") because the snapshot journal is full and
    the history since the newest checkpoint cannot be forgotten. Every state is still exact;
    going back works and frees memory; going forward from here raises :class:`HistoryFull`.
    """

    def describe(self) -> str:
        return (f"history is out of memory at position {self.position} (pc {self.pc:#x}): "
                f"the snapshot journal is full; go back in time, or raise timeline.budget")


@dataclass(frozen=True)
class WatchStop(WatchHit):
    """A watchpoint hit reported by the timeline (either direction).

    On top of :class:`~syxdbg.machine.events.WatchHit` it names the accessing instruction:
    ``insn_position`` is its position (the number of instructions retired before it ran) and
    ``insn_pc`` its address (None when unknown: a forward hit reported after the access).
    ``before`` says which side of it the machine now is. Backwards the side follows
    :attr:`Timeline.reverse_watch_after` (gdb: x86 wants the state before the write with pc
    at the writing instruction; aarch64 the state after it, then gdb steps back itself).
    """

    insn_position: int = 0
    insn_pc: int | None = None
    direction: str = "forward"


@dataclass(frozen=True)
class FutureDiscarded:
    """A write in the past made the recorded future unusable; it was dropped."""

    position: int
    old_frontier: int
    events: int  # recorded host inputs dropped

    def describe(self) -> str:
        return (f"writing in the past discarded the recorded future: positions "
                f"{self.position}..{self.old_frontier} ({self.old_frontier - self.position} "
                f"instructions, {self.events} host events); execution continues live from "
                f"position {self.position}")


@dataclass(frozen=True)
class CheckpointInfo:
    index: int
    position: int
    pc: int
    pages: int  # undo-log pages held for the interval that starts here (approximate)
    pinned: bool


@dataclass(frozen=True)
class NamedPoint:
    name: str
    position: int
    pc: int


@dataclass(frozen=True)
class When:
    position: int
    frontier: int
    origin: int
    #: True when history is a recording (``syxdbg replay``): the frontier is its end.
    recorded: bool = False

    @property
    def replaying(self) -> bool:
        """True behind the frontier (host inputs come from the event log)."""
        return self.position < self.frontier

    @property
    def mode(self) -> str:
        """"replaying" (behind the frontier, or anywhere in a recording) or "recording"."""
        return "replaying" if self.replaying or self.recorded else "recording"


@dataclass(frozen=True)
class LastWrite:
    """The answer to "who wrote this byte": the writing instruction and where it is."""

    position: int  # of the writing instruction (instructions retired before it)
    pc: int
    address: int  # first watched byte it wrote
    event: StopEvent  # the stop the timeline is now at (before the write)


@dataclass
class _Meta:
    position: int
    pc: int
    cursor: int
    pinned: bool = False
    #: Pages first written in the interval that starts here (closed intervals; merges add
    #: up, so it is an upper bound after thinning).
    pages: int = 0
    #: The interval's summaries for indexed reverse search (range-set bytes, see
    #: :class:`~syxdbg.machine.probes.CodeIndex`): the code executed and the memory written
    #: (pages, and regions reshaped). None: unknown (the interval must be re-executed). For
    #: the newest checkpoint, what its interval held before the live index's last reset.
    code: bytes | None = b""
    writes: bytes | None = b""


@dataclass
class ScanStats:
    """What the last backward search did (:attr:`Timeline.scan_stats`).

    ``intervals``: checkpoint intervals it went through, newest first, down to the answer;
    ``scanned``: those re-executed (the candidates; all of them without the index);
    ``skipped``: those the summaries excluded; ``hits``: scanned intervals that held a hit
    (at most one: the search stops there), so ``scanned - hits`` are the index's false
    positives; ``instructions``: re-executed by the scan (landing not counted).
    """

    indexed: bool
    intervals: int = 0
    scanned: int = 0
    skipped: int = 0
    hits: int = 0
    instructions: int = 0

    def describe(self) -> str:
        how = "indexed" if self.indexed else "full scan"
        return (f"{how}: {self.intervals} intervals, {self.scanned} re-executed, "
                f"{self.skipped} skipped, {self.instructions:,} instructions")


@dataclass(frozen=True)
class _Query:
    """What a backward search can hit, for the interval summaries: breakpoint addresses
    and written byte ranges [lo, hi)."""

    breakpoints: tuple[int, ...]
    writes: tuple[tuple[int, int], ...]


def _union(a: bytes | None, b: bytes | None) -> bytes | None:
    return None if a is None or b is None else ranges_union(a, b)


@dataclass(frozen=True)
class _Hit:
    """A breakpoint or watchpoint hit found while scanning, by position of the instruction."""

    at: int  # bp: the position of the stop; watch: the accessing instruction's position
    event: StopEvent


_TERMINAL = (Exited, Fault, Killed)
#: Capstone groups that change the flow (jump, call, ret, int, iret, privilege, relative).
_FLOW_GROUPS = {1, 2, 3, 4, 5, 6, 7}
#: Instructions that stop the program or enter the kernel whatever their group.
_TRAPS = {"ud2", "ud1", "ud0", "hlt", "int3", "into", "brk", "udf", "svc", "hvc", "smc",
          "syscall", "sysenter", "int"}


class _Motion:
    """:meth:`Timeline.motion` (a class, not a generator: a stepi pays for it)."""

    __slots__ = ("_tl",)

    def __init__(self, timeline: Timeline) -> None:
        self._tl = timeline

    def __enter__(self) -> None:
        tl = self._tl
        if tl._depth == 0:
            tl._interrupt.clear()
            reset_host_waits()  # (syxdbg.sigint: a guest's host wait ends at interrupts)
        tl._depth += 1

    def __exit__(self, *exc: object) -> None:
        tl = self._tl
        tl._depth -= 1
        if tl._depth == 0:
            tl._settle()


class Timeline:
    """Time travel over one machine. See the module docstring.

    ``states`` is the session's :class:`~syxdbg.state.StateRegistry` (the event log registers
    in it, and recordable states are attached to the log). ``snapshot_cls`` picks the
    snapshot implementation (default :class:`syxdbg.snapshot.SyxSnapshot`).
    """

    def __init__(self, machine: Machine, states: StateRegistry | None = None, *,
                 interval: int = DEFAULT_INTERVAL, budget: int = DEFAULT_BUDGET,
                 snapshot_cls: Any = None, reverse_watch_after: bool | None = None,
                 verify: bool = False, eventlog: EventLog | None = None,
                 recorded: Recorded | None = None) -> None:
        if interval < 1:
            raise ValueError("interval must be >= 1")
        self.machine = machine
        self.states = states if states is not None else StateRegistry()
        self.interval = interval
        self.budget = budget
        #: Backwards, report a watchpoint with the state after the accessing instruction
        #: (aarch64's gdb convention) instead of before it (x86's).
        self.reverse_watch_after = (machine.arch.name == "aarch64"
                                    if reverse_watch_after is None else reverse_watch_after)
        self.eventlog = eventlog if eventlog is not None else EventLog()
        #: The recording being replayed (None: live history).
        self.recorded = recorded
        if EVENTLOG_STATE in self.states:
            raise TimelineError("this session already has a timeline")
        self.states.register(EVENTLOG_STATE, self.eventlog)
        self._recordables: list[Recordable] = []
        for name in self.states.names():
            obj = self.states.get(name)
            if isinstance(obj, Recordable):
                obj.attach_eventlog(self.eventlog)
                self._recordables.append(obj)
        if snapshot_cls is None:
            from .snapshot import SyxSnapshot
            snapshot_cls = SyxSnapshot
        self._snap = snapshot_cls.new(machine, states=self.states, verify=verify)
        self.budget = budget  # (again: now the journal's hard limit follows it)
        self.origin = machine.position
        self.frontier = machine.position if recorded is None else recorded.end
        #: Forward motion never goes past this position (the end of a recording).
        self.end: int | None = None if recorded is None else recorded.end
        self._meta = [_Meta(self.origin, machine.pc, self.eventlog.cursor)]
        self._pages_mark = self._pages()  # pages held when the open interval began
        self._names: dict[str, NamedPoint] = {}
        #: Debugger writes, by position: part of history, re-applied by re-execution.
        self._patches: dict[int, list[tuple[str, Any, Any]]] = {}
        self._interrupt = threading.Event()
        #: Asked at every breakpoint, watchpoint and until hit of every motion, before the
        #: motion's own ``accept``: a refused hit is passed over (the Session sets it to
        #: keep to the followed process of a program that forks).
        self.hit_filter: AcceptFn | None = None
        #: The breakpoint and watchpoint table: references by address / (address, size,
        #: kind), each tagged with its client. The machine holds one hook per key.
        self._bps: dict[int, list[Breakpoint]] = {}
        self._watches: dict[tuple[int, int, str], list[Watchpoint]] = {}
        #: The last write in the past that discarded the future (front ends report it once).
        self.last_discarded: FutureDiscarded | None = None
        #: Minimum distance from the last checkpoint for a stop to take one.
        self.stop_gap = STOP_GAP
        self._depth = 0  # nesting of motion()
        self._exits: dict[tuple[int, int], list[int] | None] = {}  # range step exits, cached
        self._cs: Any = None  # capstone with details, for range steps
        #: Indexed reverse search: backward searches skip the checkpoint intervals whose
        #: summaries (code executed, memory written) exclude every breakpoint and watched
        #: range (docs/timetravel.md). False: re-execute every interval (the full scan).
        self.indexed = True
        self._index: CodeIndex | None = CodeIndex(machine)
        self._jumped = False  # the open interval holds a jump (a recording's seed)
        #: What the last backward search did (:class:`ScanStats`).
        self.scan_stats: ScanStats | None = None
        self.closed = False

    # -- status -----------------------------------------------------------------------------
    @property
    def budget(self) -> int:
        """Bytes of history kept (undo logs, checkpoints, recorded inputs). Also the snapshot
        journal's hard limit (at least :data:`MIN_JOURNAL_LIMIT`): when a run fills it, the
        oldest history is forgotten; if only the newest interval is left, the run stops
        with :class:`OutOfMemory`."""
        return self._budget

    @budget.setter
    def budget(self, value: int) -> None:
        self._budget = int(value)
        snap = getattr(self, "_snap", None)
        if snap is not None and snap.tracker.backend == "core":
            # (the pure-Python reference journal keeps whole RAM images: no hard limit)
            snap.tracker.set_memory_limit(max(self._budget, MIN_JOURNAL_LIMIT))

    @property
    def position(self) -> int:
        return self.machine.position

    def when(self) -> When:
        self._note_progress()
        return When(self.machine.position, self.frontier, self.origin,
                    self.recorded is not None)

    @property
    def replaying(self) -> bool:
        return self.machine.position < self.frontier

    def checkpoints(self) -> list[CheckpointInfo]:
        out = []
        last = len(self._meta) - 1
        for i, mt in enumerate(self._meta):
            pages = max(0, self._pages() - self._pages_mark) if i == last else mt.pages
            out.append(CheckpointInfo(i, mt.position, mt.pc, pages, mt.pinned))
        return out

    def stats(self) -> dict[str, Any]:
        snap = self._snap.stats()
        return {
            "checkpoints": len(self._meta),
            "pages": int(snap["pages"]),
            "bytes": self._held(),
            "budget": self.budget,
            "eventlog": self.eventlog.stats(),
            "origin": self.origin,
            "frontier": self.frontier,
        }

    @property
    def snapshot(self) -> Any:
        """The underlying :class:`~syxdbg.snapshot.SyxSnapshot` (for checks and tests)."""
        return self._snap

    # -- breakpoints and watchpoints: one reference-counted table -----------------------------
    def add_breakpoint(self, address: int, client: Client | str = Client.PLUGIN
                       ) -> Breakpoint:
        """Add a reference to a breakpoint at ``address`` for ``client``; the machine's hook
        is installed with the first reference of any client. Keep the handle to remove it."""
        address = _check_address(address)
        handle = Breakpoint(address, Client.of(client))
        refs = self._bps.setdefault(address, [])
        if not refs:
            self.machine.add_breakpoint(address)
        refs.append(handle)
        return handle

    def remove_breakpoint(self, handle: Breakpoint | int, client: Client | str | None = None
                          ) -> None:
        """Drop one reference: the handle itself, or (given an address) the newest one of
        ``client`` (any client if None) there. The machine's hook goes with the last one.
        Removing what is not there is not an error (gdb removes what it never inserted)."""
        address = handle.address if isinstance(handle, Breakpoint) else handle
        refs = self._bps.get(address, [])
        if not _drop_reference(refs, handle if isinstance(handle, Breakpoint) else None,
                               client):
            return
        if not refs:
            self._bps.pop(address, None)
            self.machine.remove_breakpoint(address)  # (drops the address's translations)

    @property
    def breakpoints(self) -> frozenset[int]:
        """Addresses with a breakpoint of a user-facing client (internal stepping
        breakpoints are not listed)."""
        return frozenset(a for a, refs in self._bps.items()
                         if any(h.client is not Client.INTERNAL for h in refs))

    def breakpoint_table(self) -> list[Breakpoint]:
        """Every reference, internal ones included, oldest first per address."""
        return [h for refs in self._bps.values() for h in refs]

    def breakpoint_clients(self, address: int) -> frozenset[Client]:
        """Which clients hold a breakpoint at ``address`` (who a stop there is for)."""
        return frozenset(h.client for h in self._bps.get(address, ()))

    def add_watchpoint(self, address: int, size: int, kind: str = "write",
                       client: Client | str = Client.PLUGIN) -> Watchpoint:
        """Add a reference to a watchpoint on ``[address, address+size)``; installed in the
        machine with the first reference to the same (address, size, kind)."""
        address = _check_address(address)
        if size <= 0 or address + size > 1 << 64:
            raise TimelineError(f"bad watchpoint size {size} at {address:#x}")
        if kind not in WATCH_KINDS:
            raise TimelineError(f"unknown watchpoint kind {kind!r} (write, read or access)")
        handle = Watchpoint(address, size, kind, Client.of(client))
        key = (address, size, kind)
        refs = self._watches.setdefault(key, [])
        if not refs:
            self.machine.add_watchpoint(address, size, kind)
        refs.append(handle)
        return handle

    def remove_watchpoint(self, handle: Watchpoint | int, size: int = 0, kind: str = "write",
                          client: Client | str | None = None) -> None:
        """Drop one reference (see :meth:`remove_breakpoint`)."""
        key = handle.key if isinstance(handle, Watchpoint) else (handle, size, kind)
        refs = self._watches.get(key, [])
        if not _drop_reference(refs, handle if isinstance(handle, Watchpoint) else None,
                               client):
            return
        if not refs:
            self._watches.pop(key, None)
            self.machine.remove_watchpoint(*key)

    @property
    def watchpoints(self) -> list[tuple[int, int, str]]:
        """(address, size, kind) with a user-facing reference."""
        return [k for k, refs in self._watches.items()
                if any(h.client is not Client.INTERNAL for h in refs)]

    def watchpoint_table(self) -> list[Watchpoint]:
        return [h for refs in self._watches.values() for h in refs]

    # -- interrupt --------------------------------------------------------------------------
    def interrupt(self) -> None:
        """Stop a running step/cont/seek as soon as possible. Safe from any thread."""
        self._interrupt.set()
        self.machine.interrupt()
        wake_host_waits()  # a system call waiting on the host (syxdbg.sigint)

    def _interrupted(self, poll: PollFn | None) -> bool:
        if self._interrupt.is_set():
            return True
        if poll is not None and poll():
            self._interrupt.set()
            return True
        # Asked again: an interrupt that arrived while poll() ran would otherwise be lost
        # for a whole chunk (starting a run clears the machine's own interrupt flag).
        return self._interrupt.is_set()

    # -- one motion, one stop ---------------------------------------------------------------
    def motion(self) -> _Motion:
        """Make everything inside one motion (a context manager): the interrupt flag is
        cleared once, when the outermost motion starts (an interrupt between two of its
        parts is not lost), and the stop checkpoint is considered once, when it ends
        (:meth:`_settle`). Every public run-control method is a motion; front ends group
        several (a source-line step) through :meth:`syxdbg.session.Session.motion`."""
        return _Motion(self)

    def _settle(self) -> None:
        """The end of a motion: a checkpoint at the stop only when the interval policy wants
        one (:attr:`stop_gap` instructions since the last), so a stepi costs a step."""
        self._note_progress()
        if self.machine.position - self._meta[-1].position >= self.stop_gap:
            self._push()

    # -- public run control -----------------------------------------------------------------
    def step(self, direction: Direction | str = FORWARD, count: int = 1, *,
             poll: PollFn | None = None) -> StopEvent:
        """Execute (or un-execute) ``count`` instructions.

        Forward: like ``machine.run(count=...)`` (stops early at breakpoints, watchpoints,
        exit). Backward with count 1: reverse-stepi (a watchpoint on what the un-executed
        instruction accessed is reported, see :class:`WatchStop`); with a larger count it
        stops at the last breakpoint/watchpoint hit in between. At the origin:
        :class:`HistoryBoundary`.
        """
        if count < 0:
            raise ValueError("count must be >= 0")
        d = Direction.of(direction)
        with self.motion():
            m = self.machine
            if count == 0:
                return Stopped(m.pc, m.position, "step")
            if d is FORWARD:
                ev, _ = self._advance(m.position + count, "stop", poll=poll)
                if isinstance(ev, Stopped) and ev.why == "count":
                    ev = Stopped(ev.pc, ev.position, "step")
                return self._forward_event(ev)
            if count == 1:
                return self._step_back(poll)
            floor = m.position - count
            return self._reverse(max(floor, self.origin), floor < self.origin, poll)

    def cont(self, direction: Direction | str = FORWARD, *, poll: PollFn | None = None,
             until: int | None = None, accept: AcceptFn | None = None) -> StopEvent:
        """Run to the next (forward) or previous (backward) breakpoint or watchpoint hit.

        Forward: also stops at exit, fatal faults, ``until`` (an address: a ``"until"``
        stop) and interrupts; behind the frontier it replays and continues live past it.
        Backward: lands on the last hit strictly before the current position (a breakpoint
        at the current pc is not a hit), or at the origin with :class:`HistoryBoundary`;
        ``until`` is then an internal breakpoint reported as an ``"until"`` stop.
        ``accept(event)`` (called with the machine at the hit) filters hits: a refused one is
        passed, in either direction, without stopping (a condition, a frame check).
        ``poll`` is called between chunks; returning True interrupts (like :meth:`interrupt`).
        """
        d = Direction.of(direction)
        if until is not None:
            until = _check_address(until)
        with self.motion():
            if d is FORWARD:
                ev, _ = self._advance(None, "stop", poll=poll, until=until, accept=accept)
                return self._forward_event(ev)
            handle = None if until is None else self.add_breakpoint(until, Client.INTERNAL)
            try:
                return self._reverse(self.origin, True, poll, accept)
            finally:
                if handle is not None:
                    self.remove_breakpoint(handle)

    def range_step(self, start: int, end: int, direction: Direction | str = FORWARD, *,
                   poll: PollFn | None = None) -> StopEvent:
        """Step once, then keep stepping while ``start <= pc < end`` (gdb's ``vCont;r``).

        Forward this is one run in the machine: temporary internal breakpoints sit on the
        range's control-flow instructions and on ``end``; the run stops there, the flow
        instruction is stepped and pc checked; straight-line code runs at full speed. It
        stops as usual at breakpoints (one inside the range too, before executing it),
        watchpoints, exit and interrupts; leaving the range is a ``"step"`` stop.
        Backward it un-executes instructions while pc stays in the range.
        """
        d = Direction.of(direction)
        start, last = _check_address(start), _check_address(max(start, end - 1))
        end = last + 1 if end > start else start
        with self.motion():
            if d is BACKWARD:
                return self._range_back(start, end, poll)
            exits = self._range_exits(start, end)
            handles = [self.add_breakpoint(a, Client.INTERNAL) for a in exits or ()]
            try:
                return self._range_forward(start, end, exits, poll)
            finally:
                for h in handles:
                    self.remove_breakpoint(h)

    def run(self, *, count: int | None = None, until: int | None = None,
            poll: PollFn | None = None) -> StopEvent:
        """Forward run with the machine's contract (``count``/``until``/breakpoints)."""
        with self.motion():
            target = None if count is None else self.machine.position + count
            ev, _ = self._advance(target, "stop", poll=poll, until=until)
            return self._forward_event(ev)

    def seek(self, position: int, *, poll: PollFn | None = None, jump: bool = True
             ) -> StopEvent:
        """Go to ``position`` (ignoring breakpoints and watchpoints).

        Before the origin: lands at the origin with :class:`HistoryBoundary`. Past the
        frontier: executes live. If the program ends first, its terminal event. Replaying a
        recording, ``jump=False`` re-executes every instruction on the way forward instead
        of loading a persisted checkpoint (recorders attached to the machine see them all).
        An interrupt (``poll``, :meth:`interrupt`) stops it where it is.
        """
        with self.motion():
            if position < self.origin:
                self._seek_to(self.origin, poll=poll)
                m = self.machine
                if m.position != self.origin:
                    return Stopped(m.pc, m.position, "interrupt")
                return HistoryBoundary(m.pc, m.position, "begin")
            ev = self._seek_to(position, poll=poll, jump=jump)
            if isinstance(ev, Stopped) and ev.why == "count":
                ev = Stopped(ev.pc, ev.position, "seek")
            return ev

    # -- last write ---------------------------------------------------------------------------
    def last_write(self, address: int, length: int = 1, *, poll: PollFn | None = None
                   ) -> LastWrite | None:
        """Go to the last instruction before now that wrote any of ``[address, +length)``.

        Lands with the state before the write (pc at the writing instruction). Writes made
        by the system call layer (a ``read(2)`` filling the buffer, ``mmap(MAP_FIXED)`` or
        ``munmap`` over it) are found too: it lands on the system call instruction, before
        it. None (and the position unchanged) if nothing since the origin wrote those bytes.
        Raises :class:`TimelineInterrupted` if interrupted first (the timeline stays where
        the interrupt found it).
        """
        if length <= 0:
            raise TimelineError("the length must be positive")
        address = _check_address(address)
        if address + length > _ADDRESS_LIMIT:
            raise TimelineError(f"{address:#x}+{length} runs past the 64-bit address space")
        with self.motion():
            handle = self.add_watchpoint(address, length, "write", Client.INTERNAL)
            start = self.machine.position

            def accept(ev: StopEvent) -> bool:
                return (isinstance(ev, WatchHit) and ev.access == "write"
                        and address <= ev.address < address + length)

            query = _Query((), ((address, address + length),))
            try:
                hit = self._scan_back(self.origin, accept, poll, query)
            finally:
                self.remove_watchpoint(handle)
            if hit is None:
                self._seek_to(start)
                return None
            if isinstance(hit, StopEvent):  # interrupted: landed where it was
                raise TimelineInterrupted(hit)
            self._seek_to(hit.at)
            m = self.machine
            w = hit.event
            assert isinstance(w, WatchHit)
            ev = WatchStop(m.pc, m.position, "watchpoint", w.kind, w.access, w.address, True,
                           hit.at, m.pc, "backward")
            return LastWrite(hit.at, m.pc, w.address, ev)

    # -- writes (in the past they discard the future) --------------------------------------
    def write_memory(self, address: int, data: bytes) -> FutureDiscarded | None:
        """Write guest memory now; in the past this discards the recorded future.

        The write becomes part of history: re-executing through this position applies it
        again, so going back before it and forward again keeps it.
        """
        if self.recorded is not None:
            self.modified()  # raises ReadOnlyHistory
        self.machine.mem.write(address, bytes(data))
        return self.modified(("mem", address, bytes(data)))

    def write_register(self, name: str, value: int) -> FutureDiscarded | None:
        """Write a register now (see :meth:`write_memory`)."""
        if self.recorded is not None:
            self.modified()  # raises ReadOnlyHistory
        self.machine.regs[name] = value
        return self.modified(("reg", name, value))

    def modified(self, patch: tuple[str, Any, Any] | None = None) -> FutureDiscarded | None:
        """Tell the timeline the guest state was changed from outside (a debugger write).

        ``patch`` (``("mem", address, data)`` or ``("reg", name, value)``) is the write, kept
        so re-execution through this position repeats it; without it, re-execution from an
        older checkpoint will not see the change.

        Behind the frontier the recorded future no longer follows from this state: it is
        discarded (events after now, named points after now) and execution continues live.
        In all cases the checkpoint at the current position is replaced so going back to it
        later restores the modified state. Returns what was discarded, if anything.
        """
        if self.recorded is not None:
            raise ReadOnlyHistory("this is a recording: its memory and registers are read-only "
                                  "(a write would change a future that is already recorded)")
        m = self.machine
        pos = m.position
        report = None
        if pos < self.frontier:
            dropped = self.eventlog.truncate()
            report = FutureDiscarded(pos, self.frontier, dropped)
            self.frontier = pos
            for name in [n for n, p in self._names.items() if p.position > pos]:
                del self._names[name]
            for q in [q for q in self._patches if q > pos]:
                del self._patches[q]
            self.last_discarded = report
        if patch is not None:
            self._patches.setdefault(pos, []).append(patch)
        self._replace_checkpoint_here()
        return report

    def _apply_patches(self, position: int) -> None:
        m = self.machine
        for kind, where, value in self._patches.get(position, ()):
            if kind == "mem":
                m.mem.write(where, value)
            else:
                m.regs[where] = value

    def truncate_future(self) -> FutureDiscarded | None:
        """Discard the recorded future without writing anything (gdb's ``record delete``)."""
        return self.modified() if self.machine.position < self.frontier else None

    # -- named points in time -------------------------------------------------------------
    def save(self, name: str, *, pin: bool = True) -> NamedPoint:
        """Name the current position; ``pin`` keeps its checkpoint out of thinning."""
        m = self.machine
        point = NamedPoint(name, m.position, m.pc)
        self._names[name] = point
        self._push(pinned=pin)
        return point

    def position_of(self, name: str) -> int:
        """The position of a named point still in history."""
        point = self._names.get(name)
        if point is None:
            raise TimelineError(f"no point in time named {name!r}")
        if point.position < self.origin:
            raise TimelineError(f"{name!r} (position {point.position}) is older than the "
                                f"oldest history kept (position {self.origin})")
        return point.position

    def restore(self, name: str) -> StopEvent:
        return self.seek(self.position_of(name))

    def forget(self, name: str) -> None:
        if self._names.pop(name, None) is None:
            raise TimelineError(f"no point in time named {name!r}")

    def names(self) -> list[NamedPoint]:
        return sorted(self._names.values(), key=lambda p: (p.position, p.name))

    # -- teardown -------------------------------------------------------------------------
    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._index is not None:
            self._index.close()
            self._index = None
        for obj in self._recordables:
            obj.detach_eventlog()
        self._recordables.clear()
        self.states.unregister(EVENTLOG_STATE)
        if self._snap.valid:
            self._snap.free()

    # =====================================================================================
    # internals
    # =====================================================================================
    def _pages(self) -> int:
        return int(self._snap.tracker.engine.stats()["pages"])

    def _held(self) -> int:
        return (int(self._snap.tracker.engine.stats()["bytes"]) + self.eventlog.nbytes
                + CHECKPOINT_OVERHEAD * len(self._meta))

    def _note_progress(self) -> None:
        pos = self.machine.position
        if pos > self.frontier:
            self.frontier = pos

    def _internal_only(self, address: int) -> bool:
        refs = self._bps.get(address, [])
        return bool(refs) and all(h.client is Client.INTERNAL for h in refs)

    def _forward_event(self, ev: StopEvent) -> StopEvent:
        """A forward stop as the front ends see it: a watch hit becomes a
        :class:`WatchStop` naming the accessing instruction.

        On a :attr:`~syxdbg.machine.Machine.watch_before` machine (aarch64: gdb expects the
        stop before the access and steps over it itself) a hit the machine could only report
        after the instruction (a system call's host-side write, which cannot be
        un-executed) is re-created before it: back to the system call instruction by
        re-execution, the stop held so the next run executes it once without hitting."""
        if isinstance(ev, WatchHit) and not isinstance(ev, WatchStop):
            m = self.machine
            if not ev.before and m.watch_before and ev.position - 1 >= self.origin:
                insn = ev.position - 1
                self._seek_to(insn)
                if m.position != insn:  # interrupted on the way back: where it is
                    return Stopped(m.pc, m.position, "interrupt")
                m.hold_watch_stop()
                return WatchStop(m.pc, insn, ev.why, ev.kind, ev.access, ev.address, True,
                                 insn, m.pc, "forward")
            insn = ev.position if ev.before else ev.position - 1
            return WatchStop(ev.pc, ev.position, ev.why, ev.kind, ev.access, ev.address,
                             ev.before, insn, ev.pc if ev.before else None, "forward")
        return ev

    # -- checkpoints ------------------------------------------------------------------------
    def _index_at_or_before(self, position: int) -> int:
        i = bisect.bisect_right([mt.position for mt in self._meta], position) - 1
        if i < 0:
            raise TimelineError(f"position {position} is older than the oldest history kept "
                                f"(position {self.origin})")
        return i

    def _push(self, *, pinned: bool = False, force: bool = False) -> None:
        """A checkpoint at the current position. With the journal full and no older history
        to forget, an ordinary push is skipped (checkpoints only save re-execution: going
        back still works, and frees memory); a forced one raises :class:`HistoryFull`."""
        m = self.machine
        pos = m.position
        last = self._meta[-1]
        if last.position == pos and not force:
            last.pinned = last.pinned or pinned
            return
        try:
            if not self._room():
                raise JournalFull("snapshot journal full")
            self._snap.increment_push()
        except JournalFull:
            if force or pinned:
                raise HistoryFull(self._full_text()) from None
            return
        total = self._pages()
        last.pages = max(0, total - self._pages_mark)
        self._pages_mark = total
        self._close_summaries(last)
        self._meta.append(_Meta(pos, m.pc, self.eventlog.cursor, pinned))
        self._enforce_budget()
        self._pages_mark = self._pages()  # merges may have freed pages of older intervals

    def _close_summaries(self, last: _Meta) -> None:
        """The interval of ``last`` (the newest checkpoint before a push) just closed."""
        index = self._index
        if index is None:
            return
        code = index.take()
        if self._jumped or not index.usable:
            self._jumped = False
            last.code = last.writes = None
            return
        last.code = _union(last.code, code)
        last.writes = _union(last.writes, self._written(len(self._meta) - 1))
        if len(self._meta) > 1:  # a loop runs the same code interval after interval
            prev = self._meta[-2]
            if last.code == prev.code:
                last.code = prev.code
            if last.writes == prev.writes:
                last.writes = prev.writes

    def _restore(self, index: int) -> None:
        self._snap.restore(index)
        del self._meta[index + 1:]
        self._pages_mark = self._pages()
        mt = self._meta[index]  # its interval starts again, empty
        mt.code = mt.writes = b""
        self._jumped = False
        if self._index is not None:
            self._index.reset()

    def _replace_checkpoint_here(self) -> None:
        """The state at the current position changed: its checkpoint must hold the new one."""
        pos = self.machine.position
        last = self._meta[-1]
        pinned = last.pinned and last.position == pos
        if last.position != pos:
            self._push(pinned=pinned)
            return
        if len(self._meta) == 1:
            # The root itself: push the new state, then make it the root.
            self._push(force=True, pinned=pinned)
            self._snap.forget_before(1)
            del self._meta[0]
            return
        self._merge(len(self._meta) - 1)
        self._push(force=True, pinned=pinned)

    # -- forward execution --------------------------------------------------------------------
    def _dense_points(self, start: int, target: int) -> list[int]:
        pts = []
        gap = DENSE_GAP
        while target - gap > start:
            pts.append(target - gap)
            gap *= DENSE_FACTOR
        pts.reverse()
        return pts

    def _advance(self, target: int | None, mode: str, *, poll: PollFn | None = None,
                 until: int | None = None, dense: bool = False, interruptible: bool = True,
                 accept: AcceptFn | None = None) -> tuple[StopEvent, list[StopEvent]]:
        """Run forward from the current position, in chunks, pushing checkpoints.

        ``mode``: "stop" returns the first breakpoint/watchpoint/until stop; "scan" collects
        them and goes on; "seek" ignores them. Stops at ``target`` (if any) with
        ``Stopped(why="count")``, at terminal events, and (if ``interruptible``) at
        interrupts. Returns ``(event, hits)``. ``accept`` filters breakpoint, watchpoint and
        until stops with the machine at the stop (refused ones are passed). A stop at an
        address only internal breakpoints hold is an ``"until"`` stop.
        """
        m = self.machine
        hits: list[StopEvent] = []
        dense_pts = (self._dense_points(m.position, target)
                     if dense and target is not None else [])
        stalled = 0
        rec = self.recorded
        start = m.position
        # The machine steps off a breakpoint (or ``until``) at the pc it starts from. That is
        # right at the start of a motion and after a breakpoint stop, but not after a stop
        # of ours in between (a chunk boundary, a watchpoint reported after the access):
        # the instruction there has not been stopped at, so its breakpoint counts now.
        resumed = False
        while True:
            pos = m.position
            if target is not None and pos >= target:
                return Stopped(m.pc, pos, "count"), hits
            if self.end is not None and pos >= self.end:
                return self._at_end(), hits
            if interruptible and self._interrupted(poll):
                return Stopped(m.pc, pos, "interrupt"), hits
            if resumed and mode != "seek":
                resumed = False
                pc = m.pc
                if pc in m.breakpoints or pc == until:
                    why = ("until" if pc == until or self._internal_only(pc)
                           else "breakpoint")
                    bev = Stopped(pc, pos, why)
                    if self._accepts(bev, accept):
                        if mode != "scan":
                            return bev, hits
                        hits.append(bev)
            if not self._room():
                if pos == start:  # nothing can run: say so (no stop, no motion)
                    raise HistoryFull(self._full_text())
                return OutOfMemory(m.pc, pos, "memory"), hits
            if pos - self._meta[-1].position >= self.interval:
                self._push()
            push_at = max(self._meta[-1].position + self.interval, pos + 1)
            while dense_pts and dense_pts[0] <= pos:
                dense_pts.pop(0)
            if dense_pts:
                push_at = min(push_at, dense_pts[0])
            limit = push_at if target is None else min(push_at, target)
            check_at = None
            if rec is not None:
                assert self.end is not None
                limit = min(limit, self.end)
                check_at = rec.next_check(pos)
                if check_at is not None:
                    limit = min(limit, check_at)
            if self._patches:
                later = [q for q in self._patches if q > pos]
                if later:
                    limit = min(limit, min(later))
            try:
                ev = m.run(count=limit - pos, until=until)
            except SyxdbgError:
                raise
            except Exception as exc:
                if rec is None:
                    raise
                # The recorded inputs do not fit this re-execution (a forged or damaged
                # recording, or another syxdbg): that is a divergence, not a crash.
                raise Divergence(f"replay diverged at position {m.position}: re-executing "
                                 f"the recording failed ({type(exc).__name__}: {exc})"
                                 ) from exc
            now = m.position
            if now != pos and now in self._patches:
                self._apply_patches(now)  # a debugger write made at this point
            if now > self.frontier:
                self.frontier = now
            if rec is not None and now == check_at:
                rec.check(check_at)  # raises Divergence
            if isinstance(ev, _TERMINAL):
                if rec is not None:
                    self._check_final(ev)
                    if isinstance(ev, Exited):
                        return self._at_end(), hits
                return ev, hits
            stalled = stalled + 1 if now == pos else 0
            if stalled > 3:
                raise TimelineError(f"the machine makes no progress at position {pos} "
                                    f"(pc {m.pc:#x}): last stop {ev!r}")
            if isinstance(ev, Stopped):
                if ev.why == "count":
                    if target is not None and now >= target:
                        return ev, hits  # (no second pc read: it costs as much as a step)
                    if now == push_at:
                        self._push()
                    resumed = True
                    continue
                if ev.why == "interrupt":
                    resumed = True
                    if self._snap.tracker.memory_full and not self._interrupt.is_set():
                        continue  # the journal filled up: make room (above), or stop
                    if interruptible:
                        return ev, hits
                    continue
                # "breakpoint", "watchpoint" or "until"
                if mode == "seek":
                    continue
                # (a watch hit reported before the access: a breakpoint there came first)
                resumed = isinstance(ev, WatchHit) and not ev.before
                if ev.why == "breakpoint" and self._internal_only(ev.pc):
                    ev = Stopped(ev.pc, ev.position, "until")
                if not self._accepts(ev, accept):
                    continue
                if mode == "scan":
                    hits.append(ev)
                    continue
                return ev, hits
            return ev, hits  # pragma: no cover - an unknown event kind

    def _at_end(self) -> StopEvent:
        """Forward motion at the end of a recording: a fatal signal the recorded run ended
        with is reported again, anything else is the end of history."""
        m = self.machine
        final = m.finished
        if isinstance(final, Fault | Killed) and final.position == m.position:
            return final
        recorded = self.recorded.final if self.recorded is not None else None
        if isinstance(recorded, Fault) and recorded.position == m.position:
            ev = m.run(count=1)  # the faulting instruction faults again, without retiring
            self._check_final(ev)
            return ev
        return HistoryBoundary(m.pc, m.position, "end")

    def _check_final(self, ev: StopEvent) -> None:
        """Replaying: a terminal event must be the recorded end, where and as recorded."""
        rec = self.recorded
        assert rec is not None
        want = rec.final
        same = (type(ev) is type(want) and ev.position == want.position
                and getattr(ev, "status", None) == getattr(want, "status", None)
                and getattr(ev, "signal", None) == getattr(want, "signal", None))
        if not same:
            raise Divergence(f"replay diverged from the recording at position {ev.position}: "
                             f"re-execution ended with {ev!r}, the recording with {want!r}")

    def _jump_towards(self, target: int) -> None:
        """Replaying a recording: load its latest persisted checkpoint at or before
        ``target`` when that saves re-executing at least :data:`JUMP_MIN` instructions."""
        rec = self.recorded
        if rec is None:
            return
        pos = self.machine.position
        seed = rec.seed(pos, target)
        if seed is None or seed - pos < JUMP_MIN:
            return
        self._push()  # the state we leave stays reachable
        try:
            rec.load_seed(seed)
        except BaseException:
            self._restore(len(self._meta) - 1)  # undo a half-loaded state
            raise
        self._jumped = True  # nothing ran from the last checkpoint to here: no summary
        self._push()

    def _seek_to(self, target: int, *, poll: PollFn | None = None, jump: bool = True
                 ) -> StopEvent:
        """Go to exactly ``target`` (restore + re-execute); bounded re-execution.

        An interrupt stops the re-execution where it is (``Stopped("interrupt")``); callers
        that must land exactly check the position."""
        m = self.machine
        pos = m.position
        if target == pos:
            return Stopped(m.pc, pos, "count")
        if target < pos:
            self._restore(self._index_at_or_before(target))
        if jump and not self._interrupted(poll):
            self._jump_towards(target)
        ev, _ = self._advance(target, "seek", poll=poll, dense=True)
        # No checkpoint at the target itself: the dense ones lie within DENSE_GAP of it, and
        # the motion's end pushes one only where the interval policy wants one (_settle).
        # (A reverse-stepi pushed one at every step: 154 -> 96 us per reverse-stepi.)
        return ev

    # -- backward execution -----------------------------------------------------------------
    def _step_back(self, poll: PollFn | None = None) -> StopEvent:
        m = self.machine
        here = m.position
        if here <= self.origin:
            return HistoryBoundary(m.pc, here, "begin")
        w = here - 1
        self._seek_to(w, poll=poll)
        if m.position != w:
            return Stopped(m.pc, m.position, "interrupt")
        if not m.watchpoints:
            return Stopped(m.pc, w, "step")
        # Did the instruction being un-executed access a watched location? Execute it once
        # more with the watchpoints armed and look.
        pc_w = m.pc
        self._push()
        probe = m.run(count=1)
        if not isinstance(probe, WatchHit):
            self._restore(self._index_at_or_before(w))
            return Stopped(m.pc, w, "step")
        if self.reverse_watch_after:
            if m.position == w:  # trap-before machine: let the instruction run
                m.run(count=1)
            self._apply_patches(m.position)
            self._note_progress()
            return WatchStop(m.pc, m.position, "watchpoint", probe.kind, probe.access,
                             probe.address, False, w, pc_w, "backward")
        if m.position != w:
            self._restore(self._index_at_or_before(w))
        return WatchStop(m.pc, m.position, "watchpoint", probe.kind, probe.access,
                         probe.address, True, w, pc_w, "backward")

    def _reverse(self, floor: int, boundary: bool, poll: PollFn | None,
                 accept: AcceptFn | None = None) -> StopEvent:
        """Reverse-continue down to ``floor``: land on the last hit, else at ``floor``."""
        m = self.machine
        if m.position <= floor:
            if boundary and m.position <= self.origin:
                return HistoryBoundary(m.pc, m.position, "begin")
            return Stopped(m.pc, m.position, "step")
        found = self._scan_back(floor, accept, poll)
        if isinstance(found, StopEvent):  # interrupted
            return found
        if found is None:
            floor = max(floor, self.origin)
            self._seek_to(floor, poll=poll)
            if m.position != floor:
                return Stopped(m.pc, m.position, "interrupt")
            if boundary and floor <= self.origin:
                return HistoryBoundary(m.pc, m.position, "begin")
            return Stopped(m.pc, m.position, "step")
        return self._land(found, poll)

    def _land(self, hit: _Hit, poll: PollFn | None = None) -> StopEvent:
        m = self.machine
        ev = hit.event
        want = hit.at + 1 if isinstance(ev, WatchHit) and self.reverse_watch_after else hit.at
        self._seek_to(want, poll=poll)
        if m.position != want:
            return Stopped(m.pc, m.position, "interrupt")
        if not isinstance(ev, WatchHit):
            return Stopped(m.pc, m.position, ev.why if isinstance(ev, Stopped) else "breakpoint")
        insn_pc = ev.pc if ev.before else None
        if self.reverse_watch_after:
            return WatchStop(m.pc, m.position, "watchpoint", ev.kind, ev.access, ev.address,
                             False, hit.at, insn_pc, "backward")
        return WatchStop(m.pc, m.position, "watchpoint", ev.kind, ev.access, ev.address, True,
                         hit.at, m.pc, "backward")

    def _accepts(self, ev: StopEvent, accept: AcceptFn | None) -> bool:
        """Whether a hit stops the motion: :attr:`hit_filter` (the Session's followed
        process) and the motion's own ``accept`` both take it."""
        return (self.hit_filter is None or self.hit_filter(ev)) and (
            accept is None or accept(ev))

    def _scan_back(self, floor: int, accept: AcceptFn | None, poll: PollFn | None,
                   query: _Query | None = None) -> _Hit | StopEvent | None:
        """Find the last hit in ``[floor, now)``, scanning checkpoint intervals newest to
        oldest. ``accept`` is asked with the machine at each hit. Returns the hit, None if
        there is none, or the interrupt stop: an interrupt lands where the scan is (going
        back to a known hit-free position would re-execute, and Ctrl-C must be quick).

        Indexed (:attr:`indexed`): an interval whose summaries exclude every breakpoint
        and written range of ``query`` (default: the machine's breakpoints and write
        watchpoints; None when a read or access watchpoint is armed) is skipped without
        re-executing it: it cannot hold a hit (``accept`` only ever refuses hits)."""
        m = self.machine
        here = m.position
        end = here
        if query is None and self.indexed:
            query = self._query()
        if not self.indexed or self._index is None or not self._index.usable:
            query = None
        stats = self.scan_stats = ScanStats(query is not None)
        while end > max(floor, self.origin):  # thinning may move the origin meanwhile
            if self._interrupted(poll):
                return Stopped(m.pc, m.position, "interrupt")
            k = self._index_at_or_before(end - 1)
            stats.intervals += 1
            if query is not None and not self._may_hit(query, k):
                stats.skipped += 1
                end = self._meta[k].position
                continue
            target, end = self._recorded_span(query, k, end, stats)
            if target is None:  # the recording's interval summaries exclude all of it
                end = self._meta[k].position
                continue
            stats.scanned += 1
            self._restore(k)
            if self._interrupted(poll):
                return Stopped(m.pc, m.position, "interrupt")
            self._jump_towards(target)
            start = m.position
            found: list[_Hit] = []
            if m.pc in m.breakpoints and start >= floor:
                why = "until" if self._internal_only(m.pc) else "breakpoint"
                bp = Stopped(m.pc, start, why)
                if self._accepts(bp, accept):
                    found.append(_Hit(start, bp))
            ev, hits = self._advance(end, "scan", poll=poll, accept=accept)
            stats.instructions += m.position - start
            if isinstance(ev, Stopped) and ev.why == "interrupt":
                return Stopped(m.pc, m.position, "interrupt")
            for h in hits:
                if isinstance(h, WatchHit):
                    at = h.position if h.before else h.position - 1
                else:
                    at = h.position
                if floor <= at < end:
                    found.append(_Hit(at, h))
            if found:
                stats.hits += 1
                return max(found, key=lambda x: x.at)  # stable: the later of equal positions
            end = start
        return None

    # -- interval summaries (indexed reverse search) ------------------------------------------
    def _query(self) -> _Query | None:
        """The machine's breakpoints and write watchpoints; None if a read or access
        watchpoint is armed (no summary knows what an interval read)."""
        m = self.machine
        writes = []
        for address, size, kind in m.watchpoints:
            if kind != "write":
                return None
            writes.append((address, address + size))
        return _Query(tuple(sorted(m.breakpoints)), tuple(writes))

    def _summary(self, k: int) -> tuple[bytes | None, bytes | None]:
        """The code and write summaries of the interval starting at checkpoint ``k`` (the
        newest: up to now)."""
        mt = self._meta[k]
        if k < len(self._meta) - 1:
            return mt.code, mt.writes
        assert self._index is not None
        if self._jumped:
            return None, None
        return _union(mt.code, self._index.peek()), _union(mt.writes, self._written(k))

    def _written(self, k: int) -> bytes | None:
        w = self._snap.written(k) if hasattr(self._snap, "written") else None
        if w is None:
            return None
        pages, reshaped = w
        return ranges_union(pages, ranges_pack(reshaped)) if reshaped else pages

    def _recorded_span(self, query: _Query | None, k: int, end: int, stats: ScanStats
                       ) -> tuple[int | None, int]:
        """Replaying a recording with interval summaries (``Recorded.narrow``, format 3):
        the part of [checkpoint ``k``, ``end``) where a hit of ``query`` can be, as (where
        to jump to, its end); (None, end) when they exclude all of it. Otherwise (end - 1,
        end): the whole interval, jumping as near its end as the recording allows."""
        narrow = getattr(self.recorded, "narrow", None)
        if query is None or narrow is None:
            return end - 1, end
        start, stop, asked, excluded = narrow(
            self._meta[k].position, end,
            lambda code, writes: self._summary_may_hit(query, code, writes))
        stats.intervals += asked - 1
        stats.skipped += excluded
        return start, stop

    def _may_hit(self, query: _Query, k: int) -> bool:
        """False if interval ``k`` cannot hold a hit of ``query``."""
        return self._summary_may_hit(query, *self._summary(k))

    @staticmethod
    def _summary_may_hit(query: _Query, code: bytes | None, writes: bytes | None) -> bool:
        """False if an interval with these summaries cannot hold a hit of ``query``."""
        if query.breakpoints:
            if code is None:
                return True
            for a in query.breakpoints:
                if ranges_overlap(code, a, a + 1):
                    return True
        if query.writes:
            if writes is None:
                return True
            for lo, hi in query.writes:
                if ranges_overlap(writes, lo, hi):
                    return True
        return False

    # -- range stepping -------------------------------------------------------------------
    def _range_exits(self, start: int, end: int) -> list[int] | None:
        """The addresses where control can leave ``[start, end)``: its control-flow
        instructions and ``end`` itself. None when the range cannot be decoded (too long,
        unmapped, data): the range step then single-steps."""
        key = (start, end)
        if key in self._exits:
            return self._exits[key]
        exits: list[int] | None = None
        if end - start <= RANGE_MAX:
            exits = self._decode_exits(start, end)
        if len(self._exits) > 4096:
            self._exits.clear()
        self._exits[key] = exits
        return exits

    def _decode_exits(self, start: int, end: int) -> list[int] | None:
        import capstone

        m = self.machine
        try:
            code = m.mem.read(start, end - start)
        except SyxdbgError:
            return None
        cs = self._cs
        if cs is None:
            cs = self._cs = capstone.Cs(m.arch.cs_arch, m.arch.cs_mode)
            cs.detail = True
        exits: list[int] = []
        addr = start
        for insn in cs.disasm(code, start):
            if insn.address != addr:
                return None
            if set(insn.groups) & _FLOW_GROUPS or insn.mnemonic in _TRAPS \
                    or insn.mnemonic.startswith("rep"):
                exits.append(insn.address)
            addr = insn.address + insn.size
        if addr != end:
            return None  # undecodable bytes inside the range
        exits.append(end)
        return exits

    def _range_forward(self, start: int, end: int, exits: list[int] | None,
                       poll: PollFn | None) -> StopEvent:
        m = self.machine
        flow = set(exits or ()) - {end}
        step = True  # gdb: "step once, and then keep stepping while in the range"
        while True:
            pos = m.position
            if step or exits is None or m.pc in flow:
                ev, _ = self._advance(pos + 1, "stop", poll=poll)
                stepped = True
            else:
                ev, _ = self._advance(None, "stop", poll=poll)
                stepped = False
            step = False
            if not (isinstance(ev, Stopped) and ev.why in ("count", "until")):
                return self._forward_event(ev)  # a breakpoint, watchpoint, exit, interrupt
            pc = m.pc
            if not start <= pc < end:
                return Stopped(pc, m.position, "step")
            if stepped and pc in self.breakpoints:
                # A breakpoint inside the range reached by a step: stop before executing it.
                return Stopped(pc, m.position, "breakpoint")
            if self._interrupted(poll):
                return Stopped(pc, m.position, "interrupt")

    def _range_back(self, start: int, end: int, poll: PollFn | None) -> StopEvent:
        m = self.machine
        while True:
            ev = self._step_back(poll)
            if not (isinstance(ev, Stopped) and ev.why == "step"):
                return ev
            if not start <= m.pc < end:
                return ev
            if m.pc in self.breakpoints:
                return Stopped(m.pc, m.position, "breakpoint")
            if self._interrupted(poll):
                return Stopped(m.pc, m.position, "interrupt")

    # -- memory budget ------------------------------------------------------------------------
    def _room(self) -> bool:
        """If the snapshot journal is full, forget the oldest history (half of the
        checkpoints at a time, down to the newest) until it is not. False if it stays full:
        only the history since the newest checkpoint holds its memory."""
        tracker = self._snap.tracker
        while tracker.memory_full and len(self._meta) > 1:
            self._forget_oldest(max(1, len(self._meta) // 2))
        return not tracker.memory_full

    def _full_text(self) -> str:
        return (f"history is out of memory at position {self.machine.position}: the snapshot "
                f"journal is full (timeline.budget {self.budget >> 20} MiB) and no older "
                f"history is left to forget; go back in time, or raise timeline.budget")

    def _enforce_budget(self) -> None:
        if self._held() <= self.budget:
            return
        for factor in (8, 4, 2, 1):
            self._thin(factor)
            if self._held() <= self.budget:
                return
        # Still over: forget the oldest history, half of the checkpoints at a time.
        while self._held() > self.budget and len(self._meta) > KEEP_RECENT + 1:
            self._forget_oldest(len(self._meta) // 2)

    def _thin(self, factor: int) -> int:
        """Merge checkpoints closer to their newer neighbour than (age / factor)."""
        now = self.machine.position
        n = len(self._meta)
        drop: list[int] = []
        last_kept = now
        for i in range(n - 1, 0, -1):
            mt = self._meta[i]
            if i >= n - KEEP_RECENT or mt.pinned:
                last_kept = mt.position
                continue
            if last_kept - mt.position < max(self.interval, (now - last_kept) // factor):
                drop.append(i)
            else:
                last_kept = mt.position
        for i in drop:  # descending: indexes stay valid
            self._merge(i)
        return len(drop)

    def _merge(self, index: int) -> None:
        mt = self._meta[index]
        self._snap.merge(index)
        del self._meta[index]
        prev = self._meta[index - 1]
        if index < len(self._meta):
            prev.pages += mt.pages
        # One interval now: both summaries (for the newest, the live index goes on).
        prev.code = _union(prev.code, mt.code)
        prev.writes = _union(prev.writes, mt.writes)

    def _forget_oldest(self, index: int) -> None:
        index = max(1, min(index, len(self._meta) - 1))
        self._snap.forget_before(index)
        del self._meta[:index]
        root = self._meta[0]
        self.origin = root.position
        self.eventlog.forget_before(root.cursor)
        for q in [q for q in self._patches if q < self.origin]:
            del self._patches[q]
        for name in [n for n, p in self._names.items() if p.position < self.origin]:
            del self._names[name]


__all__ = [
    "BACKWARD", "DEFAULT_BUDGET", "DEFAULT_INTERVAL", "FORWARD", "CheckpointInfo", "Direction",
    "FutureDiscarded", "HistoryBoundary", "HistoryFull", "LastWrite", "NamedPoint",
    "OutOfMemory", "ScanStats", "Timeline",
    "TimelineError", "TimelineInterrupted", "WatchStop", "When",
]
