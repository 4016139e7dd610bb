"""How a command ends: one line on stderr for an abnormal end, and the shell-style status.

The exit status is the program's, 128+N when it dies of signal N, 130 when interrupted by
Ctrl-C and 124 when stopped by ``--max-insns``.
"""

from __future__ import annotations

import signal
import sys
from typing import TYPE_CHECKING

from ..errors import SyxdbgError
from ..machine.events import Exited, Fault, Killed, StopEvent, Stopped

if TYPE_CHECKING:
    from ..session import Session

#: Exit status of a run stopped by ``--max-insns`` (as timeout(1)).
STATUS_LIMIT = 124
#: Exit status after Ctrl-C (as a shell reports a process killed by SIGINT).
STATUS_INTERRUPTED = 128 + signal.SIGINT


def where(session: Session, pc: int) -> str:
    """``0x401000 (main+0x10)``: an address and the symbol it lies in, if any."""
    try:
        name = session.image.symbolize(pc)
    except SyxdbgError:
        name = None
    return f"{pc:#x}" + (f" ({name})" if name else "")


def report_end(session: Session, event: StopEvent) -> int:
    """Print one line for abnormal ends and return the shell-style exit status."""
    if isinstance(event, Exited):
        return event.status
    if isinstance(event, Fault):
        name = signal.Signals(event.signal).name
        detail = f": {event.detail} at {event.address:#x}" if event.signal != signal.SIGILL \
            else f": {event.detail}"
        print(f"syxdbg: program received {name} at pc {where(session, event.pc)}{detail}",
              file=sys.stderr)
        return 128 + event.signal
    if isinstance(event, Killed):
        name = signal.Signals(event.signal).name
        print(f"syxdbg: program killed by {name} at pc {where(session, event.pc)}",
              file=sys.stderr)
        return 128 + event.signal
    assert isinstance(event, Stopped)
    if event.why == "interrupt":
        print(f"syxdbg: interrupted at pc {where(session, event.pc)} after "
              f"{event.position} instructions", file=sys.stderr)
        return STATUS_INTERRUPTED
    print(f"syxdbg: stopped after {event.position} instructions at pc "
          f"{where(session, event.pc)}", file=sys.stderr)
    return STATUS_LIMIT
