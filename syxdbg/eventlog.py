"""The EventLog: every nondeterministic value the guest took from the host, in order.

Execution is deterministic given the same inputs, so time travel only needs the inputs. A
syscall layer (the Linux plugin's ``HostIO``) asks the log at each host call:

* **at the frontier** (the cursor is at the end of the log) the call runs on the host and its
  outcome (result or ``OSError``) is *recorded*;
* **behind it** (the cursor is inside the log) the recorded outcome is *replayed* and the host
  is not touched: no second read of stdin, no second copy of the output on the terminal.

Each event is keyed by its sequence number (its index), the machine position of the syscall,
the call's name and a digest of its arguments; a replayed call that does not match its event
is a :class:`Divergence` (the re-execution is not the one that was recorded).

The cursor is snapshottable state (the log registers itself as ``"eventlog"``), so restoring a
checkpoint puts the cursor back where it was when the checkpoint was taken. Writing in the
past discards the future: :meth:`EventLog.truncate` drops the events after the cursor and the
next host call records again.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from .errors import SyxdbgError

#: The name the log registers under in the session's :class:`~syxdbg.state.StateRegistry`.
STATE_NAME = "eventlog"


class Divergence(SyxdbgError):
    """Re-execution made a host call that does not match the recorded one."""


@dataclass(frozen=True)
class Event:
    """One recorded host call: where it happened, what it was, what it returned."""

    seq: int
    position: int
    source: str
    call: str
    key: tuple[Any, ...]
    result: Any = None
    #: ``(errno, strerror)`` when the call raised OSError (then ``result`` is None).
    error: tuple[int, str] | None = None
    size: int = 0

    def outcome(self) -> Any:
        """The recorded result, or raise the recorded ``OSError``."""
        if self.error is not None:
            raise OSError(self.error[0], self.error[1])
        return self.result


def digest(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """A compact, comparable form of call arguments (bytes become ``(len, crc32)``)."""
    out: list[Any] = []
    for a in args:
        kind = type(a)  # exact types first: this runs once per host call
        if kind is int or kind is str or a is None or kind is bool or kind is float:
            out.append(a)
        elif isinstance(a, bytes | bytearray | memoryview):
            b = bytes(a)
            out.append(("bytes", len(b), zlib.crc32(b)))
        elif isinstance(a, int | str | float):
            out.append(a)
        else:
            out.append(repr(a))
    return tuple(out)


def _size_of(value: Any) -> int:
    """Approximate bytes held by a recorded key or result (64 per object, plus payloads)."""
    kind = type(value)
    if kind is bytes or kind is bytearray:
        return len(value) + 64
    if kind is tuple or kind is list:
        size = 64
        for item in value:
            size += _size_of(item)
        return size
    if isinstance(value, bytes | bytearray):
        return len(value) + 64
    if isinstance(value, tuple | list):
        return 64 + sum(_size_of(v) for v in value)
    return 64


@runtime_checkable
class Recordable(Protocol):
    """A state whose host access goes through an :class:`EventLog` once attached."""

    def attach_eventlog(self, log: EventLog) -> None:
        """Route nondeterministic host access (made while the guest runs) through ``log``."""

    def detach_eventlog(self) -> None:
        """Go back to direct host access."""


class EventLog:
    """Recorded host inputs and effects, with a replay cursor. See the module docstring."""

    def __init__(self, events: list[Event] | None = None, *, sealed: bool = False) -> None:
        """An empty log, or one holding ``events`` (a recording's, numbered from 0) with the
        cursor at its start: every host call is then served from it. A ``sealed`` log
        (a recording on disk) never records: a host call past its end is a
        :class:`Divergence`."""
        self.sealed = sealed
        self._events: list[Event] = list(events or [])
        for i, ev in enumerate(self._events):
            if ev.seq != i:
                raise SyxdbgError(f"event log is not contiguous: event #{i} has number {ev.seq}")
        #: Index (seq) of the first event still held; events before it were forgotten with
        #: the history they belong to.
        self._base = 0
        self._cursor = 0
        self._bytes = sum(e.size for e in self._events)
        #: Counters for stats(): live calls recorded and calls served from the log.
        self.recorded = 0
        self.replayed = 0

    # -- the cursor (snapshottable) ---------------------------------------------------------
    def save_state(self) -> int:
        return self._cursor

    def load_state(self, state: int) -> None:
        if not self._base <= state <= self._base + len(self._events):
            raise SyxdbgError(f"event log cursor {state} is outside the log")
        self._cursor = state

    @property
    def cursor(self) -> int:
        """Sequence number of the next host call."""
        return self._cursor

    @property
    def replaying(self) -> bool:
        """True while behind the frontier: the next host call is served from the log."""
        return self._cursor < self._base + len(self._events)

    def __len__(self) -> int:
        """Number of events ever recorded and still part of history (including forgotten)."""
        return self._base + len(self._events)

    @property
    def nbytes(self) -> int:
        """Approximate memory held by the recorded events."""
        return self._bytes

    def events(self, start: int = 0) -> list[Event]:
        """Events held, from sequence number ``start``."""
        return self._events[max(0, start - self._base):]

    # -- record / replay --------------------------------------------------------------------
    def replay(self, position: int, source: str, call: str, key: tuple[Any, ...]) -> Event:
        """The recorded event for this call; advance the cursor. Raise :class:`Divergence`
        if it is not the call that was recorded at this point."""
        ev = self._events[self._cursor - self._base]
        if ev.position != position or ev.call != call or ev.source != source or ev.key != key:
            raise Divergence(
                f"replay diverged at host call #{ev.seq}: recorded {ev.source}.{ev.call}"
                f"{ev.key} at position {ev.position}, re-execution made {source}.{call}{key} "
                f"at position {position}"
            )
        self._cursor += 1
        self.replayed += 1
        return ev

    def record(self, position: int, source: str, call: str, key: tuple[Any, ...],
               result: Any = None, error: OSError | None = None) -> Event:
        """Append the outcome of a live call (only at the frontier)."""
        if self._cursor < self._base + len(self._events):  # replaying
            raise SyxdbgError("cannot record behind the frontier (truncate the future first)")
        err = None if error is None else (error.errno or 0, error.strerror or str(error))
        # A digested key holds no payloads (bytes become (len, crc32)): 64 bytes an item.
        size = _size_of(result) + 64 * (1 + len(key))
        ev = Event(self._cursor, position, source, call, key, result, err, size)
        self._events.append(ev)
        self._cursor += 1
        self._bytes += size
        self.recorded += 1
        return ev

    def call(self, position: int, source: str, call: str, args: tuple[Any, ...],
             live: Callable[[], Any]) -> tuple[Any, bool]:
        """Record or replay one call: ``(result, replayed)``; raises the call's OSError.

        ``live()`` performs the call on the host (only at the frontier).
        """
        key = digest(args)
        if self._cursor < self._base + len(self._events):  # replaying
            return self.replay(position, source, call, key).outcome(), True
        if self.sealed:
            raise Divergence(f"replay diverged at host call #{self._cursor}: re-execution made "
                             f"{source}.{call}{key} at position {position}, the recording "
                             f"has no more host calls")
        try:
            result = live()
        except OSError as exc:
            self.record(position, source, call, key, error=exc)
            raise
        self.record(position, source, call, key, result)
        return result, False

    # -- history management -----------------------------------------------------------------
    def truncate(self) -> int:
        """Discard every event at or after the cursor (the future); return how many."""
        keep = self._cursor - self._base
        dropped = self._events[keep:]
        del self._events[keep:]
        self._bytes -= sum(e.size for e in dropped)
        return len(dropped)

    def forget_before(self, seq: int) -> int:
        """Free the events before ``seq`` (history older than the oldest checkpoint)."""
        n = max(0, min(seq, self._cursor) - self._base)
        if n:
            self._bytes -= sum(e.size for e in self._events[:n])
            del self._events[:n]
            self._base += n
        return n

    def at(self, seq: int) -> Event | None:
        i = seq - self._base
        return self._events[i] if 0 <= i < len(self._events) else None

    def stats(self) -> dict[str, int]:
        return {"events": len(self._events), "forgotten": self._base, "cursor": self._cursor,
                "bytes": self._bytes, "recorded": self.recorded, "replayed": self.replayed}


__all__ = ["STATE_NAME", "Divergence", "Event", "EventLog", "Recordable", "digest"]
