"""The adapter between a syxdbg :class:`~syxdbg.session.Session` and the ``gdbstub`` server.

:class:`SessionTarget` implements the gdbstub Target protocols (registers, memory, the target
description, run control, Z0-Z4, ``monitor``, interrupt and kill) over one session's machine.
gdbstub knows nothing of syxdbg; this module knows nothing of packets. The one place where
machine stop events become gdb stop reasons is :meth:`SessionTarget._stop_reason`.

Run control. ``resume`` only records the action. ``run_chunk`` then runs it:

* a step is ``machine.run(count=1)``;
* a continue is ``machine.run()`` with a watchdog thread that calls the thread-safe
  ``machine.interrupt()`` at the chunk deadline. The machine stops at the next block
  boundary with an exact position and no per-instruction cost, and the stub gets control
  back to poll the connection for Ctrl-C.

Breakpoints and watchpoints. GDB removes and re-inserts every breakpoint and watchpoint
around every stop. The adapter only records gdb's requests and applies the difference to the
machine when a run starts, so an unchanged set costs nothing (no hook churn, no translation
cache flush).

Stop semantics (``/work/shared/reference/gdb-rsp.md`` §1.4-1.6):

* Z0/Z1 hits are reported with pc at the breakpoint, before the instruction executes, as
  ``swbreak``/``hwbreak``.
* Watchpoints follow the architecture: on x86-64 the stop comes after the accessing
  instruction (pc at the next one, the new value in memory); on aarch64 it comes before
  (pc at the accessing instruction, old value in memory), and gdb single-steps it itself.
  See :meth:`syxdbg.machine.Machine.add_watchpoint`.
* A fault is first reported as the signal (``T0b`` for SIGSEGV) with pc at the faulting
  instruction. Continuing with the signal reports ``X0b`` (terminated), as a program without
  a handler dies natively; continuing without it re-executes the instruction, which faults
  again.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence

from gdbstub import (
    ArchInfo,
    DoneStep,
    Exited,
    HwBreak,
    ResumeAction,
    ResumeKind,
    Signal,
    StopReason,
    SwBreak,
    TargetError,
    Terminated,
    Watch,
    WatchKind,
)

from .errors import MemoryAccessError, RegisterError, SyxdbgError
from .machine import events as ev
from .machine.arch import RegisterInfo
from .session import Session

log = logging.getLogger("syxdbg.gdb")

#: GDB's own signal numbers (gdb/signals.def), by Linux signal name.
_GDB_SIGNALS = {
    "SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGILL": 4, "SIGTRAP": 5, "SIGABRT": 6,
    "SIGFPE": 8, "SIGKILL": 9, "SIGBUS": 10, "SIGSEGV": 11, "SIGSYS": 12, "SIGPIPE": 13,
    "SIGALRM": 14, "SIGTERM": 15, "SIGURG": 16, "SIGSTOP": 17, "SIGTSTP": 18, "SIGCONT": 19,
    "SIGCHLD": 20, "SIGTTIN": 21, "SIGTTOU": 22, "SIGIO": 23, "SIGXCPU": 24, "SIGXFSZ": 25,
    "SIGVTALRM": 26, "SIGPROF": 27, "SIGWINCH": 28, "SIGUSR1": 30, "SIGUSR2": 31,
    "SIGPWR": 32,
}
GDB_SIGTRAP = 5
GDB_SIGINT = 2

_WATCH_KIND_NAMES = {WatchKind.WRITE: "write", WatchKind.READ: "read",
                     WatchKind.ACCESS: "access"}
_WATCH_KINDS = {v: k for k, v in _WATCH_KIND_NAMES.items()}

E_FAULT = 0x0E
E_INVALID = 0x16


def gdb_signal(linux_signal: int) -> int:
    """GDB's number for a Linux (host) signal number; unknown ones map to SIGTRAP's 5."""
    try:
        name = signal.Signals(linux_signal).name
    except ValueError:
        return GDB_SIGTRAP
    return _GDB_SIGNALS.get(name, GDB_SIGTRAP)


class _Watchdog:
    """Calls ``fire`` once when an armed deadline passes; arm/disarm from the run thread.

    After :meth:`disarm` returns, ``fire`` is not running and will not run for that arming.
    """

    def __init__(self, fire: Callable[[], None]) -> None:
        self._fire = fire
        self._cv = threading.Condition()
        self._deadline: float | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="syxdbg-gdb-watchdog",
                                        daemon=True)
        self._thread.start()

    def arm(self, deadline: float) -> None:
        with self._cv:
            self._deadline = deadline
            self._cv.notify()

    def disarm(self) -> None:
        with self._cv:
            self._deadline = None

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join()

    def _loop(self) -> None:
        with self._cv:
            while not self._closed:
                if self._deadline is None:
                    self._cv.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._cv.wait(left)
                    continue
                self._deadline = None
                self._fire()


class SessionTarget:
    """A gdbstub target over a syxdbg Session (see the module docstring).

    Implements ``BaseTarget``, ``ResumeTarget``, ``SwBreakpoints``, ``HwBreakpoints``,
    ``Watchpoints``, ``MonitorCmd``, ``Interruptible`` and ``Killable``.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.machine = session.machine
        arch = self.machine.arch
        self._regs: tuple[RegisterInfo, ...] = arch.registers
        self._by_num = {r.regnum: r for r in self._regs}

        def regnum(name: str) -> int:
            info = arch.register(name)
            assert info is not None, name
            return info.regnum

        self._arch_info = ArchInfo(regnum(arch.pc), regnum(arch.sp), regnum(arch.fp))
        self._action: ResumeAction | None = None
        self._timed_out = False
        # What gdb asked for, and what is installed in the machine (applied lazily).
        self._sw: set[int] = set()
        self._hw: set[int] = set()
        self._watches: set[tuple[int, int, WatchKind]] = set()
        self._installed_bps: set[int] = set()
        self._installed_watches: set[tuple[int, int, WatchKind]] = set()
        self._signal_reported = False  # a terminal fault/kill was reported as a signal
        self.killed = False
        self.last_event: ev.StopEvent | None = None
        self.last_error: str | None = None
        self._watchdog = _Watchdog(self._deadline_passed)

    def close(self) -> None:
        self._watchdog.close()

    # -- BaseTarget -------------------------------------------------------------------------
    def arch(self) -> ArchInfo:
        return self._arch_info

    def read_registers(self) -> Sequence[bytes]:
        regs = self.machine.regs
        return [regs.read_info(r).to_bytes(r.size, "little") for r in self._regs]

    def write_registers(self, data: bytes) -> None:
        regs = self.machine.regs
        pos = 0
        for r in self._regs:
            chunk = data[pos:pos + r.size]
            if len(chunk) < r.size:
                break  # a short G packet leaves the remaining registers alone
            regs.write_info(r, int.from_bytes(chunk, "little"))
            pos += r.size

    def read_register(self, regnum: int) -> bytes | None:
        reg = self._by_num.get(regnum)
        if reg is None:
            return None
        return self.machine.regs.read_info(reg).to_bytes(reg.size, "little")

    def write_register(self, regnum: int, value: bytes) -> None:
        try:
            self.machine.regs.write_bytes(regnum, value)
        except RegisterError as exc:
            raise TargetError(E_INVALID, str(exc)) from None

    def read_memory(self, addr: int, length: int) -> bytes:
        if addr < 0 or addr >= 1 << 64:
            return b""
        return self.machine.mem.read_partial(addr, min(length, (1 << 64) - addr))

    def write_memory(self, addr: int, data: bytes) -> None:
        try:
            self.machine.mem.write(addr, data)
        except MemoryAccessError as exc:
            raise TargetError(E_FAULT, str(exc)) from None

    def description_xml(self, annex: str) -> str | None:
        return self.machine.arch.tdesc_xml if annex == "target.xml" else None

    # -- breakpoints and watchpoints --------------------------------------------------------
    def add_sw_breakpoint(self, addr: int, kind: int) -> bool:
        self._sw.add(addr)
        return True

    def remove_sw_breakpoint(self, addr: int, kind: int) -> bool:
        self._sw.discard(addr)
        return True

    def add_hw_breakpoint(self, addr: int, kind: int) -> bool:
        self._hw.add(addr)
        return True

    def remove_hw_breakpoint(self, addr: int, kind: int) -> bool:
        self._hw.discard(addr)
        return True

    def add_watchpoint(self, addr: int, length: int, kind: WatchKind) -> bool:
        if length <= 0:
            return False
        self._watches.add((addr, length, kind))
        return True

    def remove_watchpoint(self, addr: int, length: int, kind: WatchKind) -> bool:
        self._watches.discard((addr, length, kind))
        return True

    def _sync(self) -> None:
        """Apply gdb's breakpoint and watchpoint sets to the machine (only the changes)."""
        m = self.machine
        want = self._sw | self._hw
        for addr in self._installed_bps - want:
            m.remove_breakpoint(addr)
        for addr in want - self._installed_bps:
            m.add_breakpoint(addr)
        self._installed_bps = set(want)
        for addr, size, kind in self._installed_watches - self._watches:
            m.remove_watchpoint(addr, size, _WATCH_KIND_NAMES[kind])
        for addr, size, kind in self._watches - self._installed_watches:
            m.add_watchpoint(addr, size, _WATCH_KIND_NAMES[kind])
        self._installed_watches = set(self._watches)

    # -- run control ------------------------------------------------------------------------
    def resume(self, action: ResumeAction) -> None:
        self._action = action

    def _deadline_passed(self) -> None:
        self._timed_out = True
        self.machine.interrupt()

    def run_chunk(self, deadline: float) -> StopReason | None:
        action = self._action
        if action is None:
            return Signal(GDB_SIGTRAP)
        m = self.machine
        final = m.finished
        if final is not None:
            self._action = None
            return self._after_end(final, action)
        self._sync()
        self._timed_out = False
        try:
            if action.kind is ResumeKind.STEP:
                event = m.run(count=1)
            else:
                self._watchdog.arm(deadline)
                try:
                    event = m.run()
                finally:
                    self._watchdog.disarm()
        except (SyxdbgError, RuntimeError, OSError, NotImplementedError) as exc:
            # The guest did something the emulation cannot continue from (no syscall layer
            # in a raw blob, an unimplemented syscall...): say why, stop with SIGTRAP.
            self._action = None
            self.last_error = str(exc)
            print(f"syxdbg: error: {exc}", file=sys.stderr, flush=True)
            return Signal(GDB_SIGTRAP)
        if (isinstance(event, ev.Stopped) and event.why == "interrupt" and self._timed_out
                and action.kind is ResumeKind.CONTINUE):
            return None  # the chunk's time is up: the stub polls for Ctrl-C, then goes on
        self._action = None
        return self._report(event, action)

    def _report(self, event: ev.StopEvent, action: ResumeAction) -> StopReason:
        self.last_event = event
        self.session.hook.syxdbg_stop(session=self.session, event=event)
        return self._stop_reason(event, action)

    def _stop_reason(self, event: ev.StopEvent, action: ResumeAction) -> StopReason:
        """The one translation from machine stop events to gdb stop reasons."""
        if isinstance(event, ev.WatchHit):
            return Watch(_WATCH_KINDS[event.kind], event.address)
        if isinstance(event, ev.Stopped):
            if event.why == "breakpoint":
                if event.pc in self._sw:
                    return SwBreak()
                if event.pc in self._hw:
                    return HwBreak()
                return Signal(GDB_SIGTRAP)
            if event.why == "interrupt":
                return Signal(GDB_SIGINT)
            return DoneStep()  # "count" (a step) or "until"
        if isinstance(event, ev.Exited):
            return Exited(event.status)
        if isinstance(event, ev.Fault | ev.Killed):
            # First the signal, at the faulting instruction (or where the kill happened).
            self._signal_reported = True
            return Signal(gdb_signal(event.signal))
        raise AssertionError(f"unexpected stop event {event!r}")

    def _after_end(self, final: ev.StopEvent, action: ResumeAction) -> StopReason:
        """Resuming a machine that can run no more."""
        if isinstance(final, ev.Exited):
            return Exited(final.status)
        assert isinstance(final, ev.Fault | ev.Killed)
        sig = gdb_signal(final.signal)
        if not self._signal_reported:
            self._signal_reported = True
            return Signal(sig)
        if isinstance(final, ev.Fault) and not action.signal:
            return Signal(sig)  # the signal was suppressed: the instruction faults again
        return Terminated(sig)

    # -- Interruptible, Killable, MonitorCmd -------------------------------------------------
    def interrupt(self) -> None:
        """Ctrl-C or a disconnect while running: drop the pending action (the stub reports)."""
        self._action = None
        self.machine.interrupt()

    def kill(self) -> None:
        self._action = None
        self.killed = True

    def monitor_command(self, command: str, output: Callable[[str], None]) -> None:
        from .commands import run_command

        try:
            text = run_command(self.session, command)
        except SyxdbgError as exc:
            text = f"error: {exc}\n"
        if text and not text.endswith("\n"):
            text += "\n"
        output(text)
