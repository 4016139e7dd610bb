"""Words and numbers for people: how a recorded run ended, sizes, the progress line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO

from ..machine.events import Exited, Fault, Killed, StopEvent, Stopped


def describe_end_event(ev: StopEvent) -> str:
    """How a run ended, in words (for summaries)."""
    if isinstance(ev, Exited):
        return f"the program exited with status {ev.status}"
    if isinstance(ev, Killed):
        return f"the program was killed by signal {ev.signal}"
    if isinstance(ev, Fault):
        return f"the program received signal {ev.signal} ({ev.detail})"
    if isinstance(ev, Stopped) and ev.why == "interrupt":
        return "the recording was interrupted"
    return "the recording stopped at its instruction limit"



def format_size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"  # pragma: no cover


def progress_printer(stream: IO[str] = sys.stderr) -> Callable[[int, float], None]:
    """A progress callback printing instructions and speed (in place on a terminal)."""
    tty = stream.isatty()

    def show(position: int, elapsed: float) -> None:
        rate = position / elapsed if elapsed > 0 else 0.0
        text = (f"syxdbg: recording: {position:,} instructions, {rate / 1e6:.1f} M "
                f"instructions/s, {elapsed:.0f} s")
        stream.write(f"\r{text}\x1b[K" if tty else text + "\n")
        stream.flush()

    return show

