"""Typed stop events returned by :meth:`Machine.run`.

Every run ends with exactly one of these. Positions are retired-instruction counts: at a stop
the instruction at ``pc`` has not executed yet.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass


@dataclass(frozen=True)
class StopEvent:
    pc: int
    position: int

    @property
    def reason(self) -> str:
        return type(self).__name__.lower()


@dataclass(frozen=True)
class Exited(StopEvent):
    """The guest called exit/exit_group."""

    status: int

    def describe(self) -> str:
        return f"exited with status {self.status}"


@dataclass(frozen=True)
class Fault(StopEvent):
    """A fatal fault, with the signal Linux would send: SIGSEGV for bad memory accesses,
    SIGILL for bad opcodes, SIGTRAP for breakpoint instructions (x86 ``int3``: pc after it;
    aarch64 ``brk``: pc at it), SIGFPE for an x86 divide error, SIGBUS for misalignment.

    ``address`` is the faulting data address (SIGSEGV, SIGBUS) or the instruction address.
    """

    signal: int
    address: int
    detail: str = ""

    def describe(self) -> str:
        name = signal.Signals(self.signal).name
        what = f" ({self.detail})" if self.detail else ""
        return f"{name} at pc {self.pc:#x}, address {self.address:#x}{what}"


@dataclass(frozen=True)
class Stopped(StopEvent):
    """The run stopped as asked: ``why`` is "count", "until", "breakpoint" or "interrupt"."""

    why: str

    def describe(self) -> str:
        return f"stopped ({self.why}) at pc {self.pc:#x}"


@dataclass(frozen=True)
class Killed(StopEvent):
    """The guest was terminated by a signal it did not handle (e.g. kill(getpid(), SIGABRT))."""

    signal: int

    def describe(self) -> str:
        return f"killed by {signal.Signals(self.signal).name}"


@dataclass(frozen=True)
class WatchHit(Stopped):
    """A data watchpoint fired (``why`` is "watchpoint").

    ``kind`` is the watchpoint's kind ("write", "read" or "access"), ``access`` what the
    instruction did ("read" or "write"), ``address`` the first watched byte it touched.
    ``before`` tells where the machine stopped: False (x86 hardware semantics) after the
    accessing instruction, pc at the next one; True (aarch64 semantics) before it, pc at the
    accessing instruction with memory and registers as they were before it ran.
    """

    kind: str = "write"
    access: str = "write"
    address: int = 0
    before: bool = False

    def describe(self) -> str:
        when = "before" if self.before else "after"
        return (f"{self.kind} watchpoint: {self.access} of {self.address:#x}, stopped {when} "
                f"the access at pc {self.pc:#x}")
