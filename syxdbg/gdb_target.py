"""The adapter between a syxdbg :class:`~syxdbg.session.Session` and the ``gdbstub`` server.

:class:`SessionTarget` implements the gdbstub Target protocols (registers, memory, the target
description, run control in both directions, Z0-Z4, ``monitor``, interrupt and kill) over one
session.
gdbstub knows nothing of syxdbg; this module knows nothing of packets. The one place where
machine stop events become gdb stop reasons is :meth:`SessionTarget._stop_reason`.

Run control goes through the Session's motion methods (never the timeline or the machine
directly), so every forward run is recorded and gdb's reverse commands can go back through
it. ``resume``, ``range_step``, ``reverse_step`` and ``reverse_continue`` only record the
move (a kind and a :class:`~syxdbg.timeline.Direction`: ``bs``/``bc`` are ``s``/``c``
backward); ``run_chunk`` then performs it:

* a step (``s``/``bs``) is ``session.step(direction)``: bounded, done in one call;
* a continue (``c``/``bc``) is ``session.cont(direction)`` and a range step (``vCont;r``)
  ``session.range_step(start, end)``, each one operation on a worker thread. ``run_chunk``
  waits for it until the chunk deadline and returns None while it runs, so the stub polls
  the connection for Ctrl-C; :meth:`SessionTarget.interrupt` stops it through
  ``session.interrupt()`` (and the motion's ``poll``) and waits for it to land. One
  operation per gdb command means a reverse continue is never restarted by a chunk boundary.
  ``interrupt`` also stops the motions of a running ``monitor`` command.

The program's exit is first reported as the end of history (``replaylog:end``, a stop gdb
can reverse from); resuming forward from there reports the exit (``W``).

Forward behind the frontier replays the recorded history and goes on live past it.

Writes (``M``, ``X``, ``G``, ``P``) go through ``session.write_memory``/``write_register``.
A write in the past discards the recorded future; the adapter says so once, as console
output (``O`` packet) sent while the next resume runs (gdbstub's ``ConsoleOutput``), because
gdb only prints ``O`` packets while it waits for a stop.

Breakpoints and watchpoints. GDB removes and re-inserts every breakpoint and watchpoint
around every stop. The adapter only records gdb's requests and applies the difference to
gdb's handles (client "gdb") in the timeline's one reference-counted table when a move
starts, so an unchanged set costs nothing (no hook churn, no translation cache flush) and
gdb's ``delete`` never removes another client's breakpoint at the same address.

Stop semantics (``/work/shared/reference/gdb-rsp.md`` §1.4-1.6):

* Z0/Z1 hits are reported with pc at the breakpoint, before the instruction executes, as
  ``swbreak``/``hwbreak``.
* Watchpoints follow the architecture: on x86-64 the stop comes after the accessing
  instruction (pc at the next one, the new value in memory); on aarch64 it comes before
  (pc at the accessing instruction, old value in memory), and gdb single-steps it itself.
  See :meth:`syxdbg.machine.Machine.add_watchpoint`. Backwards it is the mirror image
  (§1.5): x86-64 stops before the write with pc at the writing instruction; aarch64 stops
  after it (pc at the next instruction), then gdb removes the watchpoint and sends ``bs``.
  The timeline's ``reverse_watch_after`` picks the side per architecture.
* Reverse moves stop at the last breakpoint or watchpoint hit strictly before the start (a
  breakpoint at the current pc is not a hit). At the beginning of history they report
  ``replaylog:begin`` (gdb: "No more reverse-execution history.").
* A fault is first reported as the signal (``T0b`` for SIGSEGV) with pc at the faulting
  instruction. Continuing with the signal reports ``X0b`` (terminated), as a program without
  a handler dies natively; continuing without it re-executes the instruction, which faults
  again.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gdbstub import (
    ArchInfo,
    DoneStep,
    Execd,
    Exited,
    Forked,
    HwBreak,
    LinkMap,
    ReplayLogBegin,
    ReplayLogEnd,
    ResumeAction,
    ResumeKind,
    SharedLibrary,
    Signal,
    StopReason,
    SwBreak,
    TargetError,
    Terminated,
    ThreadInfo,
    VforkDone,
    Watch,
    WatchKind,
)

from .commands import solibs
from .commands import threads as thread_names
from .errors import MemoryAccessError, RegisterError, SyxdbgError
from .machine import events as ev
from .machine.arch import RegisterInfo
from .machine.registers import Registers
from .session import Session
from .timeline import (
    BACKWARD,
    FORWARD,
    Breakpoint,
    Direction,
    FutureDiscarded,
    HistoryBoundary,
    HistoryFull,
    OutOfMemory,
    ReadOnlyHistory,
    Watchpoint,
)

if TYPE_CHECKING:
    from .commands import CommandRegistry

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


def _checked(addr: int) -> int:
    """A breakpoint address gdb may insert (the machine cannot hook beyond 64 bits)."""
    if not 0 <= addr < _ADDRESS_LIMIT:
        raise TargetError(E_INVALID, f"address {addr:#x} is outside the address space")
    return addr


def linux_signal(gdb_sig: int) -> int | None:
    """The Linux number of gdb's signal ``gdb_sig`` (None: none)."""
    for name, number in _GDB_SIGNALS.items():
        if number == gdb_sig:
            return int(signal.Signals[name])
    return None


def gdb_signal(linux_signal: int) -> int:
    """GDB's number for a Linux (host) signal number; unknown ones map to SIGTRAP's 5."""
    try:
        name = signal.Signals(linux_signal).name
    except ValueError:
        return GDB_SIGTRAP
    return _GDB_SIGNALS.get(name, GDB_SIGTRAP)


@dataclass(frozen=True)
class _Move:
    """What gdb asked for, recorded until ``run_chunk`` performs it: a step, a continue or
    a range step (``range_``), in a :class:`~syxdbg.timeline.Direction` (``bs``/``bc`` are
    ``s``/``c`` backward)."""

    kind: str  # "step", "continue", "range" or "entered" (nothing to run)
    direction: Direction = FORWARD
    range_: tuple[int, int] | None = None
    #: The thread a forward step is for (None: the current one).
    thread: int | None = None
    #: The processes gdb resumed (None: every process it debugs).
    processes: frozenset[int] | None = None


_ADDRESS_LIMIT = 1 << 64
#: Errors from a guest the emulation cannot continue (no syscall layer in a raw blob...).
_RUN_ERRORS = (SyxdbgError, RuntimeError, OSError)


class _Job:
    """One timeline operation (a continue, either direction) running on a worker thread."""

    def __init__(self, fn: Callable[[], ev.StopEvent]) -> None:
        self._fn = fn
        self.done = threading.Event()
        self.event: ev.StopEvent | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="syxdbg-gdb-run", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.event = self._fn()
        except BaseException as exc:  # handed to the stub's thread by result()
            self.error = exc
        finally:
            self.done.set()

    def wait(self, timeout: float | None) -> bool:
        """True once the operation has finished (the thread is then joined)."""
        if not self.done.wait(timeout):
            return False
        self._thread.join()
        return True

    def result(self) -> ev.StopEvent:
        if self.error is not None:
            raise self.error
        assert self.event is not None
        return self.event


class SessionTarget:
    """A gdbstub target over a syxdbg Session (see the module docstring).

    Implements ``BaseTarget``, ``ResumeTarget``, ``RangeStepping``, ``ReverseStep``,
    ``ReverseContinue``,
    ``SwBreakpoints``, ``HwBreakpoints``, ``Watchpoints``, ``MonitorCmd``, ``Interruptible``,
    ``Killable`` and ``ConsoleOutput``.
    """

    def __new__(cls, session: Session) -> SessionTarget:
        if cls is SessionTarget and session.has_processes:
            cls = ProcessSessionTarget
        return super().__new__(cls)

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
        # History starts here (normally position 0); every move goes through the session.
        session.timeline  # noqa: B018 - create it now
        self._action: ResumeAction | None = None  # the forward resume (signal, for C/S)
        self._move: _Move | None = None
        self._job: _Job | None = None
        self._cancel = threading.Event()  # the timeline's poll: Ctrl-C while a job runs
        self._console: list[str] = []  # O packets to send while the next resume runs
        #: The thread gdb's ``Hg`` selected (None: the current one); every stop reply
        #: selects the thread that stopped again (gdb assumes so).
        self._general: int | None = None
        self._commands: CommandRegistry | None = None  # monitor commands, made on first use
        # What gdb asked for, and gdb's handles in the timeline's table (applied lazily).
        self._sw: set[int] = set()
        self._hw: set[int] = set()
        #: gdb's breakpoints by (Z type, the process it inserted them in: None without
        #: multiprocess ids); _sw and _hw are those of the processes it debugs. (gdb removes
        #: a fork child's copies before it detaches it: the parent's must stay.)
        self._bps: dict[tuple[int, int | None], set[int]] = {}
        self._watches: set[tuple[int, int, WatchKind]] = set()
        self._bp_handles: dict[int, Breakpoint] = {}
        self._watch_handles: dict[tuple[int, int, WatchKind], Watchpoint] = {}
        self._table_dirty = False  # gdb's sets changed since the last _sync
        self._signal_reported = False  # a terminal fault/kill was reported as a signal
        self._end_reported = False  # the exit was reported as the end of history
        self._monitor_running = False  # a monitor command runs (interrupt() stops it)
        self.killed = False
        self.last_event: ev.StopEvent | None = None
        self.last_error: str | None = None
        #: Futures discarded by gdb's writes in the past (reported once each).
        self.discarded: list[FutureDiscarded] = []
        # -- processes (gdbstub's Processes; docs/gdb.md, Processes) --
        #: Whether gdb uses multiprocess ids and which process events it accepts
        #: (set_process_events, at every connection).
        self._multiprocess = False
        self._accepts: dict[str, bool] = {"fork": False, "vfork": False, "exec": False}
        #: The processes gdb debugs (its inferiors): their threads are gdb's thread list.
        self._attached: set[int] = set()
        #: What the adapter last made the session follow (a change means the user said
        #: ``monitor follow``: gdb's processes follow it).
        self._follow_set: int | None | bool = False
        #: Process events seen during the running forward move (kind, pid, tid, value).
        self._events: list[tuple[str, int, int, int]] = []
        #: Stops not reported yet (two events at one position): reported at the next resume.
        self._queued: list[tuple[StopReason, int | None]] = []
        #: The processes whose hits and events stop the running move (gdb resumed them).
        self._observing: frozenset[int] = frozenset()
        #: Events of processes gdb debugs but did not resume (``detach-on-fork off`` holds
        #: the other one): reported when gdb resumes that process, by pid.
        self._held: dict[int, list[tuple[StopReason, int | None]]] = {}
        #: The thread a stop is reported for when it is not the running one (a vfork
        #: parent, a process gdb debugs while another runs); None: the running thread.
        self._event_thread: int | None = None
        # -- signals (gdbstub's SignalPassing; docs/gdb.md, Signals) --
        #: gdb's QPassSignals: signals (gdb numbers) delivered without a stop.
        self._pass_signals: frozenset[int] = frozenset()
        #: gdb's decisions at the signal stops it was given, by (position of the delivery,
        #: pid, Linux signal): deliver it (True) or discard it (``signal 0``). The kernel's
        #: signal gate asks them at every delivery, re-executions included: history keeps
        #: them.
        self._sig_decisions: dict[tuple[int, int, int], bool] = {}
        #: A delivery the running forward move stopped for: (position, pid, tid, signal).
        self._sig_seen: tuple[int, int, int, int, bool] | None = None
        #: The signal stop gdb was given and has not decided on yet (and where it is).
        self._sig_reported: tuple[tuple[int, int, int, int], int] | None = None
        self._watching_signals = False
        #: The delivery gdb just decided on: the move it resumes does not stop there again.
        self._sig_resumed: tuple[int, int, int] | None = None
        #: Where each fork child gdb was told of came to be (right after its parent's fork):
        #: the start of its history when gdb follows it alone.
        self._born: dict[int, int] = {}
        #: tid -> pid of the threads of the processes gdb debugs, at a machine generation.
        self._pids: tuple[tuple[int, frozenset[int]], dict[int, int]] | None = None
        self._live_cache: tuple[int, set[int]] | None = None
        self._current_cache: tuple[int, int] | None = None

    def close(self) -> None:
        self._stop_job()
        if self._multiprocess:  # (it asked the kernel about signals: it stops asking)
            self.session.gate_signals(None)

    # -- BaseTarget -------------------------------------------------------------------------
    def arch(self) -> ArchInfo:
        return self._arch_info

    def _thread_regs(self) -> Registers:
        """The registers of the thread gdb selected (``Hg``): the machine's when that is
        the running thread."""
        tid = self._selected()
        if tid is None or tid == self.session.current_thread:
            return self.machine.regs
        try:
            pid = self.process_of(tid) if self._multiprocess else self._current_pid()
            if pid != self._current_pid():
                return self.session.process_registers(pid, tid)
            return self.session.thread_registers(tid)
        except SyxdbgError as exc:  # it exited meanwhile
            raise TargetError(E_INVALID, str(exc)) from None

    def _selected(self) -> int | None:
        """The thread whose registers and memory gdb reads: ``Hg``'s, else the thread the
        last stop was reported for; None: the running thread."""
        if self._general is not None:
            return self._general
        return self.current_thread() if self._multiprocess else None

    def _selected_process(self) -> int | None:
        """The process of :meth:`_selected` when it is not the running one (its memory is
        not the machine's), else None."""
        tid = self._selected()
        if tid is None or not self._multiprocess or tid == self.session.current_thread:
            return None
        pid = self.process_of(tid)
        return None if pid == self._current_pid() else pid

    def _writable(self) -> None:
        if self._selected_process() is not None:
            raise TargetError(E_INVALID, "that process is not running: its memory and "
                                         "registers are read-only")
        if self._general is not None and self._general != self.session.current_thread:
            raise TargetError(E_INVALID, f"thread {self._general} is not running: its "
                                         "registers are read-only")

    def read_registers(self) -> Sequence[bytes]:
        regs = self._thread_regs()
        return [regs.read_info(r).to_bytes(r.size, "little") for r in self._regs]

    def write_registers(self, data: bytes) -> None:
        self._writable()
        regs = self.machine.regs
        pos = 0
        for r in self._regs:
            chunk = data[pos:pos + r.size]
            if len(chunk) < r.size:
                break  # a short G packet leaves the remaining registers alone
            pos += r.size
            value = int.from_bytes(chunk, "little")
            if value != regs.read_info(r):  # G repeats every register: only real changes
                try:
                    self._wrote(self.session.write_register(r.name, value))
                except RegisterError as exc:  # a value the CPU refuses (fs/gs selectors)
                    raise TargetError(E_INVALID, str(exc)) from None
                except ReadOnlyHistory as exc:
                    self._refused(exc)
                    raise TargetError(E_INVALID, str(exc)) from None

    def read_register(self, regnum: int) -> bytes | None:
        reg = self._by_num.get(regnum)
        if reg is None:
            return None
        return self._thread_regs().read_info(reg).to_bytes(reg.size, "little")

    def write_register(self, regnum: int, value: bytes) -> None:
        reg = self._by_num.get(regnum)
        if reg is None:
            raise TargetError(E_INVALID, f"no register number {regnum}")
        if len(value) != reg.size:
            raise TargetError(E_INVALID, f"register {reg.name} takes {reg.size} bytes, "
                                         f"got {len(value)}")
        self._writable()
        try:
            self._wrote(self.session.write_register(reg.name, int.from_bytes(value, "little")))
        except RegisterError as exc:
            raise TargetError(E_INVALID, str(exc)) from None
        except ReadOnlyHistory as exc:
            self._refused(exc)
            raise TargetError(E_INVALID, str(exc)) from None

    def read_memory(self, addr: int, length: int) -> bytes:
        if addr < 0 or addr >= 1 << 64:
            return b""
        length = min(length, (1 << 64) - addr)
        pid = self._selected_process()
        if pid is not None:  # a process gdb debugs that does not run now
            return self.session.read_process_memory(pid, addr, length)
        return self.machine.mem.read_partial(addr, length)

    def write_memory(self, addr: int, data: bytes) -> None:
        if not data:
            return
        if self._selected_process() is not None:
            raise TargetError(E_FAULT, "that process is not running: its memory is read-only")
        try:
            self._wrote(self.session.write_memory(addr, data))
        except MemoryAccessError as exc:
            raise TargetError(E_FAULT, str(exc)) from None
        except ReadOnlyHistory as exc:
            self._refused(exc)
            raise TargetError(E_FAULT, str(exc)) from None

    def _refused(self, exc: ReadOnlyHistory) -> None:
        """gdb only says "Cannot access memory": say why at the next resume (once)."""
        text = f"syxdbg: {exc}\n"
        if text not in self._console:
            self._console.append(text)

    def _wrote(self, discarded: FutureDiscarded | None) -> None:
        """A write in the past discarded the recorded future: tell the user (once)."""
        if discarded is None:
            return
        self._forget_decisions_after(discarded.position)
        self.discarded.append(discarded)
        self._console.append(f"syxdbg: {discarded.describe()}\n")

    def _forget_decisions_after(self, position: int) -> None:
        """The recorded future after ``position`` was dropped: so are gdb's signal decisions
        there (they were made in that future; a new one is asked for again)."""
        self._sig_decisions = {k: v for k, v in self._sig_decisions.items()
                               if k[0] <= position}

    # -- ConsoleOutput ----------------------------------------------------------------------
    def take_console_output(self) -> str:
        text = "".join(self._console)
        self._console.clear()
        return text

    def description_xml(self, annex: str) -> str | None:
        return self.machine.arch.tdesc_xml if annex == "target.xml" else None

    # -- Auxv, ExecFile, LibrariesSvr4: the program's files ----------------------------------
    def read_auxv(self) -> bytes:
        """The auxiliary vector the loader gave the program (empty for raw blobs)."""
        pairs = [(k, v) for k, v in self.session.image.auxv.items() if k != 0]
        if not pairs:
            return b""
        pairs.append((0, 0))  # AT_NULL
        return b"".join(k.to_bytes(8, "little") + (v % (1 << 64)).to_bytes(8, "little")
                        for k, v in pairs)

    def exec_file(self, pid: int | None) -> str | None:
        image = self.session.image
        return os.path.abspath(image.path) if image.kind == "elf" else None

    def libraries_svr4(self, start: int | None, prev: int | None) -> LinkMap:
        """The link map read from guest memory now (:mod:`syxdbg.commands.solibs`)."""
        entries = solibs.link_map(self.session, start)
        lmid = solibs.r_debug(self.session) or 0
        main = None
        libs = []
        for e in entries:
            if start is None and e.prev == 0 and main is None:
                main = e.lm  # the head: the program itself
            elif e.name:
                libs.append(SharedLibrary(e.name, e.lm, e.l_addr, e.l_ld, lmid))
        return LinkMap(main, tuple(libs))

    # -- Threads ----------------------------------------------------------------------------
    def thread_ids(self) -> Sequence[int]:
        """Every live thread by id (the guest's tids; the main thread's is the pid); with
        multiprocess ids, the threads of every process gdb debugs."""
        if not self._multiprocess:
            return sorted(t.tid for t in self.session.threads)
        return sorted(self._thread_pids())

    def current_thread(self) -> int:
        if self._event_thread is not None:
            return self._event_thread
        s = self.session
        if self._multiprocess and self._current_pid() not in self._attached:
            threads = self._thread_pids()
            if threads and self._current_pid() not in threads.values():
                # The machine stopped in a process gdb does not debug (an interrupt, the
                # start of history, --pid): a thread of one it does (they wait meanwhile).
                first = min(threads.values())
                return first if first in threads else min(threads)
        return s.current_thread

    def select_thread(self, tid: int | None) -> None:
        if tid is not None and tid not in self.thread_ids():
            raise TargetError(E_INVALID, f"no thread {tid}")
        self._general = tid

    def thread_info(self, tid: int) -> ThreadInfo:
        for t in self.session.threads:
            if t.tid == tid:
                return ThreadInfo(tid, t.name, thread_names.describe(self.session, t))
        if self._multiprocess and tid in self._thread_pids():
            return ThreadInfo(tid, "", f"process {self._thread_pids()[tid]}, not running")
        raise TargetError(E_INVALID, f"no thread {tid}")

    # -- Processes (gdb's multiprocess extensions, fork/vfork/exec events) -------------------
    def _followed_processes(self) -> set[int]:
        s = self.session
        try:
            followed = s.followed
        except SyxdbgError:
            followed = None
        if followed is not None:
            return {followed}
        return {p.pid for p in s.processes if p.state != "zombie"}

    def _current_pid(self) -> int:
        """The running process (cached per machine state generation: asked several times
        per stop, a stepi included)."""
        gen = self.machine.generation
        if self._current_cache is None or self._current_cache[0] != gen:
            self._current_cache = (gen, self.session.current_process)
        return self._current_cache[1]

    def _live(self) -> set[int]:
        """The live processes (cached per machine state generation: gdb asks at every
        stop, a stepi included)."""
        gen = self.machine.generation
        if self._live_cache is None or self._live_cache[0] != gen:
            live = {p.pid for p in self.session.processes if p.state != "zombie"}
            self._live_cache = (gen, live)
        return self._live_cache[1]

    def _thread_pids(self) -> dict[int, int]:
        """tid -> pid for every thread of the live processes gdb debugs (the running
        process's threads when none of them is alive: a stop there names its thread).

        Kept until the machine's next switch point (threads and processes begin and end
        only at system calls, the timer, faults given to the guest and restores:
        ``Machine.switch_points``): a stepi's stop reply names its process without building
        the thread list (it was 8% of the stub's time in ``stepi 5000``)."""
        key = (self.machine.switch_points, frozenset(self._attached))
        if self._pids is not None and self._pids[0] == key:
            return self._pids[1]
        s = self.session
        current = self._current_pid()
        if self._attached == {current}:  # (the usual case: no process table to read)
            pids = [current]
        else:
            pids = sorted(self._attached & self._live()) or [current]
        out = {tid: pid for pid in pids for tid in s.process_thread_ids(pid)}
        self._pids = (key, out)
        return out

    def process_of(self, tid: int) -> int:
        pid = self._thread_pids().get(tid)
        if pid is not None:
            return pid
        s = self.session
        if any(t.tid == tid for t in s.threads):
            return self._current_pid()
        for p in s.processes:  # (a thread of a process gdb does not debug)
            if tid in s.process_thread_ids(p.pid):
                return p.pid
        return tid  # (thread ids of a process start at its pid)

    def _observed(self, move: _Move) -> frozenset[int]:
        """The processes whose hits stop this move (None: every process): the ones gdb
        resumed among those it debugs. Follows ``monitor follow`` if the user changed it."""
        s = self.session
        if self._follow_set is not False and s.followed != self._follow_set:
            self._attached = self._followed_processes()  # (monitor follow: gdb's too)
            self._breakpoints_changed()
            self._pids = None
        pids = set(self._attached)
        if move.processes is not None and move.processes & pids:
            pids &= move.processes
        return frozenset(pids)

    def _on_process_event(self, kind: str, pid: int, tid: int, value: int) -> None:
        """A process event during a forward move (on the move's thread): stop there if gdb
        wants to hear of it (the session's interrupt lands right after the system call)."""
        self._events.append((kind, pid, tid, value))
        if pid in self._observing and self._reportable(kind, pid):
            self.session.interrupt()

    def _reportable(self, kind: str, pid: int) -> bool:
        if pid not in self._attached:
            return False
        if kind == "vforkdone":
            return self._accepts["vfork"]
        if kind == "exit":
            return True
        return self._accepts.get(kind, False)

    def _process_stops(self) -> list[tuple[StopReason, int | None]]:
        """The stops the move's process events make, in order: (reason, thread)."""
        out: list[tuple[StopReason, int | None]] = []
        for kind, pid, tid, value in self._events:
            if not self._reportable(kind, pid):
                continue
            if kind in ("fork", "vfork"):
                # As gdbserver: gdb debugs the child until it detaches it.
                self._born[value] = self.machine.position
                self._attached.add(value)
                self._breakpoints_changed()
                self._pids = None
                out.append((Forked(value, value, kind == "vfork"), tid))
            elif kind == "vforkdone":
                out.append((VforkDone(), tid))
            elif kind == "exec":
                program = next((p.program for p in self.session.processes if p.pid == pid),
                               "")
                out.append((Execd(os.path.abspath(program)), tid))
            else:  # an exit of a process gdb debugs (not the first: its end ends the run)
                self._attached.discard(pid)
                self._breakpoints_changed()
                self._pids = None
                stop: StopReason = (Exited(value >> 8 & 0xFF, pid) if not value & 0x7F
                                    else Terminated(gdb_signal(value & 0x7F), pid))
                out.append((stop, None))
            if pid not in self._observing:  # (held: reported when gdb resumes it)
                self._held.setdefault(pid, []).append(out.pop())
        self._events.clear()
        return out

    # -- breakpoints and watchpoints --------------------------------------------------------
    def add_sw_breakpoint(self, addr: int, kind: int) -> bool:
        self._bps.setdefault((0, self._bp_process()), set()).add(_checked(addr))
        self._breakpoints_changed()
        return True

    def remove_sw_breakpoint(self, addr: int, kind: int) -> bool:
        self._bps.get((0, self._bp_process()), set()).discard(addr)
        self._breakpoints_changed()
        return True

    def add_hw_breakpoint(self, addr: int, kind: int) -> bool:
        self._bps.setdefault((1, self._bp_process()), set()).add(_checked(addr))
        self._breakpoints_changed()
        return True

    def remove_hw_breakpoint(self, addr: int, kind: int) -> bool:
        self._bps.get((1, self._bp_process()), set()).discard(addr)
        self._breakpoints_changed()
        return True

    def _bp_process(self) -> int | None:
        """The process a Z0/Z1 is for: the one gdb selected (``Hg``), with multiprocess."""
        if not self._multiprocess:
            return None
        tid = self._selected()
        return self._current_pid() if tid is None else self.process_of(tid)


    def _breakpoints_changed(self) -> None:
        """Recompute gdb's effective breakpoints: those of the processes it debugs."""
        keep = None if not self._multiprocess else self._attached
        sets: list[set[int]] = [set(), set()]
        for (kind, pid), addrs in self._bps.items():
            if keep is None or pid is None or pid in keep:
                sets[kind] |= addrs
        self._sw, self._hw = sets
        self._table_dirty = True

    def add_watchpoint(self, addr: int, length: int, kind: WatchKind) -> bool:
        if length <= 0 or _checked(addr) + length > _ADDRESS_LIMIT:
            raise TargetError(E_INVALID, f"cannot watch {length} bytes at {addr:#x}")
        self._watches.add((addr, length, kind))
        self._table_dirty = True
        return True

    def remove_watchpoint(self, addr: int, length: int, kind: WatchKind) -> bool:
        self._watches.discard((addr, length, kind))
        self._table_dirty = True
        return True

    def _sync(self) -> None:
        """Apply gdb's breakpoint and watchpoint sets to gdb's references in the timeline's
        table (only the changes: gdb re-inserts everything around every stop). Other
        clients' references at the same addresses are not touched."""
        if not self._table_dirty:
            return  # (a stepi with no breakpoint change costs nothing here)
        s = self.session
        want = self._sw | self._hw
        for addr in set(self._bp_handles) - want:
            s.remove_breakpoint(self._bp_handles.pop(addr))
        for addr in want - set(self._bp_handles):
            self._bp_handles[addr] = s.add_breakpoint(addr, client="gdb")
        for key in set(self._watch_handles) - self._watches:
            s.remove_watchpoint(self._watch_handles.pop(key))
        for key in self._watches - set(self._watch_handles):
            addr, size, kind = key
            self._watch_handles[key] = s.add_watchpoint(addr, size, _WATCH_KIND_NAMES[kind],
                                                        client="gdb")
        self._table_dirty = False

    # -- run control (ResumeTarget, RangeStepping, ReverseStep, ReverseContinue) ------------
    def resume(self, action: ResumeAction) -> None:
        injected = False
        if action.signal and self._sig_reported is None and self.machine.finished is None \
                and self._multiprocess:
            injected = self._inject(action.signal)
        self._decide_signal(action.signal)
        self._action = action
        if injected and action.kind is ResumeKind.STEP:
            # A step with a signal stops at its handler's first instruction.
            self._move = _Move("entered", FORWARD)
            return
        if action.kind is ResumeKind.STEP:
            self._move = _Move("step", FORWARD, thread=action.thread,
                               processes=action.processes)
        else:
            self._move = _Move("continue", FORWARD, processes=action.processes)

    def range_step(self, start: int, end: int) -> None:
        self._decide_signal(None, keep=True)  # (gdb passes a signal with S, not r)
        self._action = ResumeAction(ResumeKind.STEP)
        self._move = _Move("range", FORWARD, (start, end))

    def reverse_step(self) -> None:
        self._sig_reported = None
        self._action = None
        self._move = _Move("step", BACKWARD)

    def reverse_continue(self) -> None:
        self._sig_reported = None
        self._action = None
        self._move = _Move("continue", BACKWARD)

    def _poll(self) -> bool:
        return self._cancel.is_set()

    def _start(self, move: _Move) -> ev.StopEvent | None:
        """Perform a move through the session: a step at once, a continue or a range step
        on a worker thread (returns None; the stub polls for Ctrl-C meanwhile)."""
        s = self.session
        self._cancel.clear()
        if move.kind == "entered":  # (a step with an injected signal: at its handler now)
            return ev.Stopped(self.machine.pc, self.machine.position, "step")
        accept = self._follow(move)
        if move.kind == "step":
            if move.direction is BACKWARD:  # the whole program's previous instruction
                return s.step(move.direction, 1, poll=self._poll)
            # The thread gdb steps (the current one unless it said another): one of its
            # instructions; the others run only while it cannot (see docs/gdb.md).
            thread = move.thread if move.thread is not None else self.current_thread()
            pid = self.process_of(thread) if self._multiprocess else self._current_pid()
            if pid != self._current_pid():
                return self._run_to_process_thread(pid, thread)
            return s.step(move.direction, 1, poll=self._poll, thread=thread)
        if move.kind == "range":
            assert move.range_ is not None
            start, end = move.range_
            self._job = _Job(lambda: s.range_step(start, end, move.direction, poll=self._poll))
        else:
            self._job = _Job(lambda: s.cont(move.direction, poll=self._poll, accept=accept))
        return None

    def _follow(self, move: _Move) -> Callable[[ev.StopEvent], bool] | None:
        """Make the session follow the processes whose hits stop ``move`` (one: the
        session follows it; several: every process, and ``accept`` keeps theirs), and
        watch process events during a forward move (gdb's fork, vfork and exec events)."""
        if not self._multiprocess:
            return None
        s = self.session
        pids = self._observing = self._observed(move)
        single = next(iter(pids)) if len(pids) == 1 else None
        if s.followed != single:
            s.follow(single)
        self._follow_set = single
        if move.direction is FORWARD:
            self._events.clear()
            s.watch_processes(self._on_process_event)
            self._sig_seen = None
            self._watching_signals = True
        if single is not None or not pids:
            return None
        return lambda event: s.current_process in pids

    def _run_to_process_thread(self, pid: int, tid: int) -> ev.StopEvent:
        """A step of a thread of a process that does not run (a fork child gdb follows):
        the others run until the scheduler gives it the CPU, as a thread's step does."""
        s = self.session
        pc = s.process_registers(pid, tid).pc

        def arrived(event: ev.StopEvent) -> bool:
            if isinstance(event, ev.Stopped) and event.why == "until":
                return s.current_thread == tid
            return True

        event = s.cont(FORWARD, until=pc, accept=arrived, poll=self._poll)
        if isinstance(event, ev.Stopped) and event.why in ("until", "breakpoint") \
                and event.pc == pc and s.current_thread == tid:
            return ev.Stopped(event.pc, event.position, "step")
        return event

    def run_chunk(self, deadline: float) -> StopReason | None:
        move = self._move
        if self._held and move is not None and move.direction is FORWARD and \
                self._multiprocess and self._job is None:
            # A process gdb held (did not resume) had an event meanwhile: it is reported
            # when gdb resumes that process, before anything runs.
            for pid in sorted(self._observed(move)):
                if self._held.get(pid):
                    self._queued.append(self._held[pid].pop(0))
                    break
        if self._queued and move is not None and move.direction is FORWARD:
            # A second event of the last stop's position (gdbserver's pending events).
            self._move = self._action = None
            queued, self._event_thread = self._queued.pop(0)
            self._general = None
            return queued
        reason = self._run_chunk(deadline)
        if reason is not None:
            self._general = None  # gdb takes the stopped thread as its general thread
            self._event_thread = None
            if self._multiprocess:
                reason = self._process_reason(reason)
        return reason

    def _process_reason(self, reason: StopReason) -> StopReason:
        """With multiprocess ids: a process event of the move comes first (the move was
        interrupted there), and a stop names a thread of a process gdb debugs."""
        s = self.session
        s.watch_processes(None)
        self._watching_signals = False
        seen, self._sig_seen = self._sig_seen, None
        if seen is not None and not self._cancel.is_set():
            # (a process event or an exit at or after the delivery happens again when the
            # move that gdb's decision starts re-executes it)
            self._events.clear()
            return self._signal_stop(seen)
        stops = self._process_stops()
        if stops and (isinstance(reason, Signal) and reason.signal == GDB_SIGINT
                      or isinstance(reason, DoneStep)) and not self._cancel.is_set():
            (reason, self._event_thread), self._queued = stops[0], stops[1:]
        if self._event_thread is None and not isinstance(reason, Exited | Terminated) \
                and self._current_pid() not in self._attached \
                and not self._attached & self._live():
            self._attached.add(self._current_pid())  # (gdb learns of it: a new inferior)
            self._breakpoints_changed()
            self._pids = None
        return reason

    def _run_chunk(self, deadline: float) -> StopReason | None:
        move = self._move
        if move is None:
            return Signal(GDB_SIGTRAP)
        action = self._action or ResumeAction(ResumeKind.CONTINUE)
        try:
            event: ev.StopEvent | None = None
            if self._job is None:
                if move.direction is FORWARD and self.session.timeline.end is None:
                    # (a replay's timeline reports its own end: replaylog:end)
                    final = self.machine.finished
                    if final is not None and final.position == self.machine.position \
                            and (self._end_reported or not isinstance(final, ev.Exited)):
                        self._move = self._action = None
                        return self._after_end(final, action)
                self._sync()
                event = self._start(move)
            if self._job is not None:
                if not self._job.wait(max(0.0, deadline - time.monotonic())):
                    return None  # still running: the stub polls for Ctrl-C, then calls again
                job, self._job = self._job, None
                event = job.result()
        except _RUN_ERRORS as exc:
            # The guest did something the emulation cannot continue from (a system call in a
            # raw blob, which has no syscall layer; a host I/O error): say why, stop with
            # SIGTRAP. Unknown syscalls are not errors: the linux plugin returns -ENOSYS.
            self._move = self._action = None
            self.last_error = str(exc)
            print(f"syxdbg: error: {exc}", file=sys.stderr, flush=True)
            if isinstance(exc, HistoryFull):  # the user must know why nothing ran
                self._console.append(f"syxdbg: {exc}\n")
            return Signal(GDB_SIGTRAP)
        self._move = self._action = None
        assert event is not None
        if move.direction is BACKWARD and self._multiprocess:
            event = self._before_birth(event)
        return self._report(event, action)

    # -- signals shown to gdb ----------------------------------------------------------------
    def pass_signals(self, signals: frozenset[int]) -> None:
        """``QPassSignals``: these signals (gdb numbers) are delivered without a stop."""
        self._pass_signals = signals

    def _signal_gate(self, pid: int, tid: int, sig: int) -> bool:
        """The kernel asks before it gives ``sig`` to a handler of thread ``tid``: gdb's
        decision if it made one at this position; else, in a forward move of gdb's for a
        process it resumed and a signal it did not pass, stop there (the move is
        interrupted; :meth:`_signal_stop` goes back to before the delivery). A negative
        ``sig`` comes from a fault of the instruction at pc (nothing of it retired) that
        a guest handler is about to take (docs/gdb.md, Signals)."""
        fault = sig < 0
        sig = abs(sig)
        pos = self.machine.position
        key = (pos, pid, sig)
        decided = self._sig_decisions.get(key, True)
        if self._watching_signals and self._sig_seen is None and pid in self._observing \
                and gdb_signal(sig) not in self._pass_signals and key != self._sig_resumed:
            # (forward again through history: the same stop, gdb decides again)
            self._sig_seen = (pos, pid, tid, sig, fault)
            self.session.interrupt()
        return decided

    def _signal_stop(self, seen: tuple[int, int, int, int, bool]) -> StopReason:
        """Report a signal about to be delivered: the machine goes back to the position
        before the delivery (the system call or instruction that delivers it has not run,
        no frame is pushed) and gdb is told the signal, in the thread that gets it. A
        fault's is its own position (the faulting instruction never retired), reached
        again from the one before it: pc at the faulting instruction, as natively."""
        pos, pid, tid, sig, fault = seen
        origin = self.session.when().origin
        before = pos if fault else max(pos - 1, origin)
        s = self.session
        if fault and self.machine.position >= pos > origin:
            s.seek(pos - 1, poll=self._poll)  # (a seek to here would not move)
        landed = s.seek(before, poll=self._poll)
        if landed.position != before:
            return Signal(GDB_SIGINT)  # (interrupted on the way)
        self._sig_reported = ((pos, pid, tid, sig), before)
        self._event_thread = tid if tid != self.session.current_thread else None
        return Signal(gdb_signal(sig))

    def _inject(self, gdb_sig: int) -> bool:
        """``signal SIG`` (``C``/``S`` with a signal the program did not just receive):
        give it to the running thread's handler now, as a debugger write at this position
        (Session.inject_signal: re-execution repeats it; in the past the recorded future
        is discarded). Says on gdb's console when it cannot be."""
        sig = linux_signal(gdb_sig)
        try:
            if sig is None:
                raise SyxdbgError(f"gdb signal {gdb_sig} has no Linux number")
            self._wrote(self.session.inject_signal(sig))
        except (SyxdbgError, ReadOnlyHistory) as exc:
            self._console.append(f"syxdbg: {exc}; continuing without it\n")
            return False
        return True

    def _decide_signal(self, signal_: int | None, *, keep: bool = False) -> None:
        """gdb resumes forward from a signal stop: with the signal (``C``: pass it) or
        without (``c`` after ``signal 0``: discard it). The decision becomes part of
        history (kept per position, asked again by every re-execution); a discard in the
        past drops the recorded future, as a write does."""
        reported, self._sig_reported = self._sig_reported, None
        self._sig_resumed = None
        if reported is None:
            return
        (pos, pid, tid, sig), at = reported
        if self.machine.position != at:
            return
        deliver = keep or bool(signal_)
        if signal_ and signal_ != gdb_signal(sig):
            self._console.append(f"syxdbg: signal {signal_} cannot replace the pending "
                                 f"{signal.Signals(sig).name}: that one is delivered\n")
        key = (pos, pid, sig)
        before = self._sig_decisions.get(key, True)
        self._sig_decisions[key] = deliver
        self._sig_resumed = key
        if deliver != before:  # (the recorded future followed the other decision)
            try:
                self.session.timeline.truncate_future()
            except ReadOnlyHistory:
                self._sig_decisions[key] = before
            else:
                self._forget_decisions_after(pos)
                self._console.append("syxdbg: this is a recording: the signal is delivered "
                                     "as recorded\n")

    def _before_birth(self, event: ev.StopEvent) -> ev.StopEvent:
        """A backward move that went past the fork that made the one process gdb follows
        (a fork child it followed) stops there instead: the start of that process's
        history, as the start of the program's is (``replaylog:begin``)."""
        born = [self._born[p] for p in self._observing if p in self._born]
        if len(self._observing) != 1 or not born or event.position >= born[0]:
            return event
        landed = self.session.seek(born[0], poll=self._poll)
        if landed.position != born[0]:
            return landed  # (interrupted)
        return HistoryBoundary(self.machine.pc, landed.position, "begin")

    def _report(self, event: ev.StopEvent, action: ResumeAction) -> StopReason:
        self.last_event = event
        return self._stop_reason(event, action)

    def _stop_reason(self, event: ev.StopEvent, action: ResumeAction) -> StopReason:
        """The one translation from machine stop events to gdb stop reasons."""
        if not isinstance(event, ev.Exited):
            self._end_reported = False
        if isinstance(event, ev.WatchHit):
            return Watch(_WATCH_KINDS[event.kind], event.address)
        if isinstance(event, HistoryBoundary):
            return ReplayLogBegin() if event.edge == "begin" else ReplayLogEnd()
        if isinstance(event, OutOfMemory):  # a clean stop; gdb shows the console line
            self._console.append(f"syxdbg: {event.describe()}\n")
            return Signal(GDB_SIGTRAP)
        if isinstance(event, ev.Stopped):
            if event.why == "breakpoint":
                if event.pc in self._sw:
                    return SwBreak()
                if event.pc in self._hw:
                    return HwBreak()
                return Signal(GDB_SIGTRAP)
            if event.why == "interrupt":
                return Signal(GDB_SIGINT)
            return DoneStep()  # "step", "count", "seek" or "until"
        if isinstance(event, ev.Exited):
            # The end of history is a stop gdb can reverse from (rr does the same); resuming
            # forward from there reports the exit.
            self._end_reported = True
            return ReplayLogEnd()
        if isinstance(event, ev.Killed) and self._sig_resumed is not None \
                and self._sig_resumed[2] == event.signal:
            # gdb was shown this signal before it killed (a signal stop) and passed it:
            # terminated, as natively (that stop is the one to reverse from).
            self._signal_reported = True
            return Terminated(gdb_signal(event.signal))
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
        """Ctrl-C or a disconnect while running, or during a ``monitor`` command: stop the
        move (or the command's motions) and wait until it has landed (the stub then reports
        SIGINT and gdb reads the state)."""
        self._move = self._action = None
        self._general = None  # the stub reports the stop (T02) for the current thread
        self._event_thread = None
        if self._monitor_running and self._commands is not None:
            self._commands.ctx.interrupt()  # the command's motions poll this
        self._stop_job()

    def _stop_job(self) -> None:
        job = self._job
        if job is None:
            return
        self._cancel.set()
        self.session.interrupt()
        job.wait(None)
        self._job = None
        if job.event is not None:
            self.last_event = job.event
        elif job.error is not None:
            self.last_error = str(job.error)

    def kill(self) -> None:
        self._move = self._action = None
        self._stop_job()
        self.killed = True

    def monitor_command(self, command: str, output: Callable[[str], None]) -> None:
        from .commands import make_registry

        try:
            if self._commands is None:  # the same registry the shell uses, gdb's view of it
                self._commands = make_registry(self.session, frontend="gdb")
            self._monitor_running = True
            try:
                text = self._commands.run_text(command)
            finally:
                self._monitor_running = False
        except SyxdbgError as exc:
            text = f"error: {exc}\n"
        if text and not text.endswith("\n"):
            text += "\n"
        output(text)


class ProcessSessionTarget(SessionTarget):
    """A :class:`SessionTarget` of a program that can have several processes (the Linux
    kernel plugin runs it): it also implements gdbstub's ``Processes`` (multiprocess
    thread ids ``pPID.TID``, ``D;PID``, ``vKill;PID``, fork, vfork and exec events).
    ``SessionTarget(session)`` makes one when the session has processes; raw blobs and
    firmware keep plain thread ids."""

    def set_process_events(self, fork: bool, vfork: bool, exec_: bool) -> None:
        """gdb connected: multiprocess ids (every event needs them) and the events it
        accepts. It debugs the followed process (every live one with ``follow any``)."""
        self._accepts = {"fork": fork, "vfork": vfork, "exec": exec_}
        self._multiprocess = True
        self._queued.clear()
        self._held.clear()
        self._event_thread = None
        self._attached = self._followed_processes()
        self._breakpoints_changed()
        self._follow_set = False
        self._pids = None
        self._pass_signals = frozenset()
        self._sig_reported = None
        self.session.gate_signals(self._signal_gate)

    def detach_process(self, pid: int) -> bool:
        """``D;PID``: gdb stops debugging process PID. It runs on in the emulation,
        unobserved: its breakpoint and watchpoint hits no longer stop (history is not
        changed by a detach). True while gdb still debugs a live process."""
        self._attached.discard(pid)
        self._breakpoints_changed()
        self._pids = None
        if self._event_thread is not None and self.process_of(self._event_thread) == pid:
            self._event_thread = None
        return bool(self._attached & self._live())

    def attach_process(self, pid: int) -> StopReason:
        """``vAttach;PID`` (``attach PID`` with ``target extended-remote``): gdb debugs
        live process PID again (or for the first time); nothing moves. The stop is
        reported for its first thread (SIGSTOP, as gdbserver's attach: gdb says nothing)."""
        if pid not in self._live():
            raise TargetError(E_INVALID, f"no live process {pid}")
        self._attached.add(pid)
        self._breakpoints_changed()
        self._pids = None
        threads = self.session.process_thread_ids(pid)
        if not threads:
            raise TargetError(E_INVALID, f"process {pid} has no thread")
        self._event_thread = pid if pid in threads else threads[0]
        self._general = None
        return Signal(_GDB_SIGNALS["SIGSTOP"])

    def kill_process(self, pid: int) -> bool:
        """``vKill;PID``: killing the last process gdb debugs ends the session as ``k``
        does (False); another is detached: history cannot change, it runs on."""
        return self.detach_process(pid)
