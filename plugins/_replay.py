"""What the ``coverage`` and ``trace`` plugins share: reading a range of positions and
producing a recording of it by re-executing history.

Recorders cost nothing until asked for, because they never run during normal execution:
the command goes to FROM through the session's timeline, attaches a machine recorder, goes
to TO (re-execution replays the recorded host inputs; seeking ignores breakpoints), detaches
it and goes back to where the user was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from syxdbg.commands import CommandError

if TYPE_CHECKING:
    from syxdbg.commands import Context
    from syxdbg.machine import Machine
    from syxdbg.machine.events import StopEvent
    from syxdbg.session import Session

#: Words a POSITION may be besides a number, +N/-N and a snapshot name.
POSITION_WORDS = ("origin", "frontier", "here")  # = Session.POSITION_WORDS


class Recorder(Protocol):
    """What the machine's recorders have in common (:mod:`syxdbg.machine.probes`)."""

    #: Set when the machine's state was replaced (a checkpoint loaded) while attached.
    rewound_at: int | None

    def detach(self) -> None: ...


R = TypeVar("R", bound=Recorder)


def parse_position(session: Session, text: str) -> int:
    """POSITION, in the session's one grammar (:meth:`syxdbg.Session.position_of`)."""
    from syxdbg.errors import SyxdbgError

    try:
        return session.position_of(text)
    except SyxdbgError as exc:
        raise CommandError(str(exc)) from None


@dataclass(frozen=True)
class Replayed:
    """What re-executing ``[start, end)`` produced: where it got to and why it stopped."""

    start: int
    end: int
    reached: int
    event: StopEvent
    live_from: int | None  # the old frontier, when the range went past it (executed live)

    @property
    def complete(self) -> bool:
        return self.reached == self.end


def check_range(session: Session, start: int, end: int, *, allow_live: bool) -> None:
    """Refuse a range that is outside recorded history, reversed or empty. With
    ``allow_live`` TO may lie past the frontier (execution goes on live, as goto does)."""
    w = session.when()
    for name, pos in (("FROM", start), ("TO", end)):
        if pos < w.origin:
            raise CommandError(f"{name} ({pos}) is before the origin of history ({w.origin})")
        if pos > w.frontier and (name == "FROM" or not allow_live):
            raise CommandError(f"{name} ({pos}) is beyond the frontier ({w.frontier}): "
                               f"execution has not got there yet (goto {pos} runs there)")
    if start > end:
        raise CommandError(f"FROM ({start}) is after TO ({end})")
    if start == end:
        raise CommandError(f"empty range: FROM and TO are both {start}")
    final = session.machine.finished
    if start == w.frontier and session.position == w.frontier and final is not None:
        raise CommandError(f"nothing to record: the program {why(final)} at position "
                           f"{w.frontier}")


def replay(ctx: Context, start: int, end: int, attach: Callable[[Machine], R],
           label: str) -> tuple[R, Replayed]:
    """Re-execute ``[start, end)`` with the recorder ``attach(machine)`` returns attached;
    come back to the current position whatever happens. Past the frontier, execution is
    live (as ``goto`` does). Ctrl-C (or gdb's interrupt) stops early: see ``reached``."""
    s = ctx.session
    here = s.position
    frontier = s.when().frontier
    poll = ctx.poll(label)
    try:
        ev = s.seek(start, poll=poll)
        if s.position != start:
            raise CommandError(f"{label}: could not get to position {start}: {why(ev)}")
        recorder = attach(s.machine)
        try:
            # jump=False: replaying a recording, never load a persisted checkpoint over
            # the range (the recorder must see every instruction of it).
            ev = s.seek(end, poll=poll, jump=False)
        finally:
            recorder.detach()
        reached = s.position
        jumped = recorder.rewound_at
        if jumped is not None:
            # The timeline loaded a saved state instead of executing (a recording's seeds):
            # what was recorded has a hole.
            raise CommandError(f"{label}: the timeline jumped to position {jumped} instead of "
                               f"re-executing {start}..{end}: the recording would have a hole")
    finally:
        s.seek(here)
    return recorder, Replayed(start, end, reached, ev, frontier if end > frontier else None)


def why(event: StopEvent) -> str:
    """A stop in a few words."""
    from syxdbg.machine.events import Stopped

    if isinstance(event, Stopped) and event.why == "interrupt":
        return "interrupted"
    describe = getattr(event, "describe", None)
    return describe() if callable(describe) else repr(event)


def stopped_early(r: Replayed) -> str:
    """Why a replay ended before its TO (for the command's report)."""
    from syxdbg.machine.events import Stopped

    if isinstance(r.event, Stopped) and r.event.why == "interrupt":
        return f"interrupted at position {r.reached}, before {r.end}"
    return f"the program {why(r.event)} at position {r.reached}, before {r.end}"
