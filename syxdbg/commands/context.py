"""The state commands share within one session: numbered breakpoints, settings, debug info,
the registers at the previous stop (for highlighting), interrupt and progress plumbing.

It lives on the :class:`~syxdbg.commands.registry.CommandRegistry` (``registry.ctx``), so two
sessions never share any of it. It knows the registry's settings and front end, not the
registry itself (the registry is built on it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import SyxdbgError
from ..machine.events import Exited, Fault, Killed, StopEvent, Stopped, WatchHit
from .base import CommandError, Settings
from .debuginfo import DebugInfo
from .expr import evaluate

if TYPE_CHECKING:
    from ..session import Session
    from ..timeline import Breakpoint as TimelineBreakpoint
    from ..timeline import Watchpoint


#: General registers shown by ``regs`` and the registers pane, per architecture.
GENERAL = {
    "x86_64": ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10",
               "r11", "r12", "r13", "r14", "r15", "rip", "eflags"),
    "aarch64": tuple(f"x{i}" for i in range(31)) + ("sp", "pc", "cpsr"),
}


def general_registers(ctx: Context) -> tuple[str, ...]:
    arch = ctx.session.machine.arch
    return GENERAL.get(arch.name, tuple(r.name for r in arch.registers[:32]))


@dataclass
class Breakpoint:
    """A numbered breakpoint (``kind`` "break") or watchpoint ("watch", "rwatch", "awatch")."""

    number: int
    kind: str
    address: int
    length: int = 1
    where: str = ""  # what the user typed
    condition: str | None = None
    hits: int = 0
    temporary: bool = False
    #: This breakpoint's reference in the timeline's table (client "shell").
    handle: TimelineBreakpoint | Watchpoint | None = None

    @property
    def machine_kind(self) -> str:
        return {"watch": "write", "rwatch": "read", "awatch": "access"}.get(self.kind, "")


@dataclass
class Context:
    """Per-session command state (see the module docstring)."""

    session: Session
    #: The registry's ``set``/``show`` settings.
    settings: Settings
    #: "shell" or "gdb" (``monitor``), the front end the commands serve.
    frontend: str = "shell"
    breakpoints: dict[int, Breakpoint] = field(default_factory=dict)
    next_number: int = 1
    #: Registers at the previous context display (changed ones are highlighted).
    prev_regs: dict[str, int] = field(default_factory=dict)
    regs_at_position: int | None = None
    interrupted: threading.Event = field(default_factory=threading.Event)
    #: Set by the shell: shows a progress line during long searches.
    progress: Callable[[str], None] | None = None
    quit_requested: bool = False
    last_x: tuple[str, int] | None = None  # (fmt, next address) for a repeated x
    last_event: StopEvent | None = None
    #: Columns available to the context display (the shell sets its terminal width).
    width: int = 100
    _debuginfo: DebugInfo | None = None
    _last_progress: float = 0.0

    @property
    def debuginfo(self) -> DebugInfo:
        if self._debuginfo is None:
            self._debuginfo = DebugInfo(self.session)
        return self._debuginfo

    def register_values(self) -> dict[str, int]:
        """The general registers now (what the registers pane shows)."""
        regs = self.session.regs
        return {n: int(regs[n]) for n in general_registers(self)}

    # -- evaluation ---------------------------------------------------------------------------
    def evaluate(self, text: str) -> int:
        di = self.debuginfo if self.session.image.kind == "elf" else None
        return evaluate(self.session, text, di.variable if di is not None else None)

    def symbolize(self, address: int) -> str | None:
        try:
            return self.debuginfo.symbolize(address)
        except SyxdbgError:
            return None

    def where(self, address: int, *, line: bool = True) -> str:
        """``0x401136 <main+4> at corrupt.c:12``."""
        text = f"{address:#x}"
        sym = self.symbolize(address)
        if sym:
            text += f" <{sym}>"
        if line:
            row = self.debuginfo.line_at(address) if self.session.image.kind == "elf" else None
            if row is not None:
                text += f" at {row.file.rsplit('/', 1)[-1]}:{row.line}"
        return text

    def resolve_location(self, text: str) -> list[int]:
        """ADDRESS (gdb's ``*ADDRESS`` too), SYMBOL or FILE:LINE to breakpoint addresses."""
        star = text.strip().startswith("*")
        text = text.strip().removeprefix("*")
        file, colon, line = text.rpartition(":")
        if colon and file and line.isdigit():
            return self.debuginfo.addresses_of(file, int(line))
        if text not in self.session.symbols and self.session.image.kind == "elf":
            lib = self.debuginfo.library_symbol(text)  # malloc, libc.so.6:malloc
            if lib is not None:
                return [lib]
        address = self.evaluate(text)
        if not star and text in self.session.symbols and self.session.image.kind == "elf":
            return [self.debuginfo.after_prologue(address)]  # gdb: break FUNCTION
        return [address]

    # -- interrupt and progress ---------------------------------------------------------------
    def interrupt(self) -> None:
        """Ctrl-C: stop what is running (safe from any thread)."""
        self.interrupted.set()
        self.session.interrupt()

    def poll(self, label: str) -> Callable[[], bool]:
        """A ``poll`` for the timeline: reports progress, returns True once interrupted."""

        def poll() -> bool:
            if self.progress is not None:
                now = time.monotonic()
                if now - self._last_progress > 0.2:
                    self._last_progress = now
                    self.progress(f"{label}: position {self.session.machine.position}")
            return self.interrupted.is_set()

        return poll

    def check_interrupt(self) -> None:
        if self.interrupted.is_set():
            raise CommandError("interrupted")

    # -- breakpoints ----------------------------------------------------------------------------
    def add_breakpoint(self, kind: str, address: int, length: int = 1, where: str = "",
                       condition: str | None = None, temporary: bool = False) -> Breakpoint:
        bp = Breakpoint(self.next_number, kind, address, length, where, condition, 0, temporary)
        if kind == "break":
            bp.handle = self.session.add_breakpoint(address, client="shell")
        else:
            bp.handle = self.session.add_watchpoint(address, length, bp.machine_kind,
                                                    client="shell")
        self.next_number += 1
        self.breakpoints[bp.number] = bp
        return bp

    def delete_breakpoint(self, number: int) -> Breakpoint:
        from ..timeline import Breakpoint as TimelineBreakpoint

        bp = self.breakpoints.pop(number, None)
        if bp is None:
            raise CommandError(f"no breakpoint number {number}")
        if isinstance(bp.handle, TimelineBreakpoint):
            self.session.remove_breakpoint(bp.handle)
        elif bp.handle is not None:
            self.session.remove_watchpoint(bp.handle)
        return bp

    def breakpoint_for(self, event: StopEvent) -> Breakpoint | None:
        """The numbered breakpoint or watchpoint a stop is about, if any."""
        if isinstance(event, WatchHit):
            for bp in self.breakpoints.values():
                if (bp.machine_kind == event.kind
                        and bp.address <= event.address < bp.address + bp.length):
                    return bp
            return None
        if isinstance(event, Stopped) and event.why == "breakpoint":
            for bp in sorted(self.breakpoints.values(), key=lambda b: b.number):
                if bp.kind == "break" and bp.address == event.pc:
                    return bp
        return None

    def condition_holds(self, bp: Breakpoint) -> bool:
        if not bp.condition:
            return True
        try:
            return bool(self.evaluate(bp.condition))
        except SyxdbgError:
            return True  # gdb stops when the condition cannot be evaluated

    # -- describing stops -------------------------------------------------------------------------
    def describe(self, event: StopEvent) -> str:
        """One or two lines about a stop, gdb-like."""
        from ..timeline import HistoryBoundary, WatchStop

        self.last_event = event
        where = self.where(event.pc)
        if isinstance(event, Exited):
            return f"[program exited with status {event.status} at position {event.position}]"
        if isinstance(event, (Fault, Killed)):
            return f"program received {event.describe()} ({where})"
        if isinstance(event, HistoryBoundary):
            what = "beginning" if event.edge == "begin" else "end"
            return f"No more reverse-execution history: at the {what} of history.\n{where}"
        if isinstance(event, WatchHit):
            bp = self.breakpoint_for(event)
            name = f"{_WATCH_NAMES.get(event.kind, 'Watchpoint')} {bp.number}" if bp \
                else "Watchpoint"
            label = f"{bp.where}" if bp and bp.where else f"{event.address:#x}"
            insn = ""
            if isinstance(event, WatchStop) and event.insn_pc is not None:
                insn = f" by the instruction at {self.where(event.insn_pc, line=False)}"
            side = "before" if event.before else "after"
            value = ""
            if bp is not None and bp.length <= 8:
                try:
                    v = int.from_bytes(self.session.mem.read(bp.address, bp.length), "little",
                                       signed=True)
                    value = f"; value {'before' if event.before else 'after'} it: {v}"
                except SyxdbgError:
                    pass
            return (f"{name}: {label}: {event.access} of {event.address:#x}{insn}, "
                    f"{event.direction if isinstance(event, WatchStop) else 'forward'}; "
                    f"stopped {side} it{value}\n{where}")
        if isinstance(event, Stopped):
            if event.why == "breakpoint":
                bp = self.breakpoint_for(event)
                label = f"Breakpoint {bp.number}" if bp else "Breakpoint"
                if bp is not None and bp.temporary:
                    label = f"Temporary breakpoint {bp.number}"
                    self.delete_breakpoint(bp.number)
                return f"{label}, {where}"
            if event.why == "interrupt":
                return f"interrupted at position {event.position}: {where}"
            if event.why == "memory":  # timeline.OutOfMemory
                return f"{event.describe()}\n{where}"
            return where
        return f"{event!r}"


_WATCH_NAMES = {"write": "Watchpoint", "read": "Read watchpoint", "access": "Access watchpoint"}
