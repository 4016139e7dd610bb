"""The Target side of the stub: capability Protocols, the probed Capabilities, stop reasons.

A target implements :class:`BaseTarget` plus any of the small capability Protocols below.
:meth:`Capabilities.probe` inspects the target once; the resulting frozen value decides which
packets are parsed, what ``qSupported`` advertises and which stop reasons may be sent.
Targets never see packets; the stub never sees the emulator (same split as the Rust
``gdbstub`` crate's ``target::ext`` traits).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

SIGINT = 2
SIGTRAP = 5


class TargetError(Exception):
    """An expected, non-fatal failure; the stub replies ``E<errno>`` (two hex digits)."""

    def __init__(self, errno: int, message: str = "") -> None:
        super().__init__(message or f"target error {errno:#x}")
        self.errno = errno & 0xFF


# --- arch info ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArchInfo:
    """What the stub needs to know about the register file.

    Register numbers are GDB regnums (the order of ``<reg>`` elements in the target XML).
    ``pc``/``sp``/``fp`` are expedited in every ``T`` stop reply; ``pc`` is also written
    for ``c ADDR``/``s ADDR``. ``byteorder`` is the target byte order.
    """

    pc_regnum: int
    sp_regnum: int | None = None
    fp_regnum: int | None = None
    byteorder: Literal["little", "big"] = "little"

    def expedited(self) -> tuple[int, ...]:
        regs = (self.pc_regnum, self.sp_regnum, self.fp_regnum)
        return tuple(dict.fromkeys(r for r in regs if r is not None))


# --- stop reasons (what a target reports; translated to packets in replies.py) -----------


class WatchKind(enum.Enum):
    """Data watchpoint kinds; the value is the Z packet type."""

    WRITE = 2
    READ = 3
    ACCESS = 4


@dataclass(frozen=True, slots=True)
class DoneStep:
    """A single step (forward or backward) completed."""


@dataclass(frozen=True, slots=True)
class SwBreak:
    """Stopped at a Z0 breakpoint; the PC must equal the breakpoint address."""


@dataclass(frozen=True, slots=True)
class HwBreak:
    """Stopped at a Z1 breakpoint."""


@dataclass(frozen=True, slots=True)
class Watch:
    """A data watchpoint fired on ``addr`` (see gdb-rsp.md §1.5 for the PC rules)."""

    kind: WatchKind
    addr: int


@dataclass(frozen=True, slots=True)
class Signal:
    """Stopped with a GDB signal number (e.g. :data:`SIGINT` for an interrupt)."""

    signal: int


@dataclass(frozen=True, slots=True)
class Exited:
    """The program exited with ``status`` (``pid``: which process, for a
    :class:`Processes` target; None: the current one)."""

    status: int
    pid: int | None = None


@dataclass(frozen=True, slots=True)
class Terminated:
    """The program was killed by ``signal`` (``pid`` as for :class:`Exited`)."""

    signal: int
    pid: int | None = None


@dataclass(frozen=True, slots=True)
class Forked:
    """The current thread called fork (``vfork``: vfork) and made process ``child`` whose
    one thread is ``thread`` (``fork:``/``vfork:`` stop reasons; only sent when gdb accepts
    fork or vfork events, see :class:`Processes`)."""

    child: int
    thread: int
    vfork: bool = False


@dataclass(frozen=True, slots=True)
class VforkDone:
    """The child of the current thread's vfork exec'd or exited: the parent goes on and
    the two no longer share memory (``vforkdone:``)."""


@dataclass(frozen=True, slots=True)
class Execd:
    """The current process exec'd the program at absolute path ``path`` (``exec:``)."""

    path: str


@dataclass(frozen=True, slots=True)
class ReplayLogBegin:
    """Reverse execution reached the start of history."""


@dataclass(frozen=True, slots=True)
class ReplayLogEnd:
    """Forward execution reached the end of a recording."""


StopReason = (
    DoneStep
    | SwBreak
    | HwBreak
    | Watch
    | Signal
    | Exited
    | Terminated
    | ReplayLogBegin
    | ReplayLogEnd
    | Forked
    | VforkDone
    | Execd
)


# --- resume actions ----------------------------------------------------------------------


class ResumeKind(enum.Enum):
    CONTINUE = "continue"
    STEP = "step"


@dataclass(frozen=True, slots=True)
class ResumeAction:
    """A forward resume: continue or single-step, optionally delivering a signal.

    ``thread`` is the thread a step is for (``vCont;s:TID``, or ``s`` after ``Hc TID``),
    ``None`` for "any": the thread of the last stop. Continues resume every thread (all-stop
    mode); a single-threaded target ignores it.
    """

    kind: ResumeKind
    signal: int | None = None
    thread: int | None = None
    #: The processes gdb resumed (``vCont;c:pPID.-1``), None: every one (multiprocess).
    processes: frozenset[int] | None = None


# --- capability protocols ----------------------------------------------------------------


@runtime_checkable
class BaseTarget(Protocol):
    """Required: registers, memory, target description (``g G p P m M X ? qXfer``).

    Methods may raise :class:`TargetError` for an ``E`` reply; any other exception is logged
    and also answered with an ``E`` reply.
    """

    def arch(self) -> ArchInfo: ...

    def read_registers(self) -> Sequence[bytes]:
        """All registers in regnum order, each in target byte order (``g``)."""
        ...

    def write_registers(self, data: bytes) -> None:
        """The concatenation of registers as in :meth:`read_registers` (``G``)."""
        ...

    def read_register(self, regnum: int) -> bytes | None:
        """One register, or ``None`` for an unknown regnum (``p``)."""
        ...

    def write_register(self, regnum: int, value: bytes) -> None:
        """``P``; raise ``TargetError`` for an unknown regnum or bad size."""
        ...

    def read_memory(self, addr: int, length: int) -> bytes:
        """Up to ``length`` bytes; fewer (a prefix) on a partial read, empty if unreadable."""
        ...

    def write_memory(self, addr: int, data: bytes) -> None:
        """``M``/``X``; raise ``TargetError`` if the write fails."""
        ...

    def description_xml(self, annex: str) -> str | None:
        """Target description ``annex`` (``target.xml`` and any xi:include), or ``None``."""
        ...


@runtime_checkable
class ResumeTarget(Protocol):
    """Forward run control (``c C s S vCont``) and the run loop shared by every resume.

    ``resume``/``reverse_*`` only record what to do. The stub then calls :meth:`run_chunk`
    repeatedly, polling the connection for Ctrl-C in between, until it returns a stop.
    """

    def resume(self, action: ResumeAction) -> None: ...

    def run_chunk(self, deadline: float) -> StopReason | None:
        """Run the recorded action until it stops or ``time.monotonic() >= deadline``.

        Return the stop reason, or ``None`` if still running (the stub calls again). A step
        must return :class:`DoneStep` (or another stop) from one call.
        """
        ...


@runtime_checkable
class RangeStepping(Protocol):
    """``vCont;rSTART,END``: step while ``START <= pc < END``, as one move.

    Like :meth:`ResumeTarget.resume`, :meth:`range_step` only records the move;
    :meth:`ResumeTarget.run_chunk` performs it: it executes while ``start <= pc < end``,
    stops as usual at breakpoints and watchpoints (a breakpoint inside the range stops before
    its instruction executes, as a real trap would), and returns :class:`DoneStep` once pc has
    left the range. It is chunked like a continue, so Ctrl-C can cut it short. The first
    instruction is executed even if pc is not in the range (gdb's semantics). GDB never
    range-steps in reverse. Without this capability ``vCont?`` does not offer ``r`` and
    gdb steps one instruction at a time itself.
    """

    def range_step(self, start: int, end: int) -> None: ...


@runtime_checkable
class SwBreakpoints(Protocol):
    """``Z0``/``z0``. Must be idempotent; GDB re-inserts breakpoints around every stop."""

    def add_sw_breakpoint(self, addr: int, kind: int) -> bool: ...

    def remove_sw_breakpoint(self, addr: int, kind: int) -> bool: ...


@runtime_checkable
class HwBreakpoints(Protocol):
    """``Z1``/``z1``."""

    def add_hw_breakpoint(self, addr: int, kind: int) -> bool: ...

    def remove_hw_breakpoint(self, addr: int, kind: int) -> bool: ...


@runtime_checkable
class Watchpoints(Protocol):
    """``Z2``-``Z4``/``z2``-``z4``: write, read and access watchpoints."""

    def add_watchpoint(self, addr: int, length: int, kind: WatchKind) -> bool: ...

    def remove_watchpoint(self, addr: int, length: int, kind: WatchKind) -> bool: ...


@runtime_checkable
class ReverseStep(Protocol):
    """``bs``: record a backward single step; :meth:`ResumeTarget.run_chunk` performs it."""

    def reverse_step(self) -> None: ...


@runtime_checkable
class ReverseContinue(Protocol):
    """``bc``: record a backward continue; :meth:`ResumeTarget.run_chunk` performs it."""

    def reverse_continue(self) -> None: ...


@runtime_checkable
class MonitorCmd(Protocol):
    """``qRcmd`` (GDB's ``monitor``). ``output`` sends an ``O`` packet immediately."""

    def monitor_command(self, command: str, output: Callable[[str], None]) -> None: ...


@runtime_checkable
class ConsoleOutput(Protocol):
    """A target with something to tell the user outside ``monitor``.

    While a resume runs (before each ``run_chunk`` and before the stop reply), the stub calls
    :meth:`take_console_output` and sends any text as ``O`` packets, which GDB prints on its
    console while it waits for a stop. Return ``""`` when there is nothing to say.
    """

    def take_console_output(self) -> str: ...


@runtime_checkable
class Interruptible(Protocol):
    """Told when a run is cut short (Ctrl-C, or the connection dropped while running)."""

    def interrupt(self) -> None: ...


@runtime_checkable
class Killable(Protocol):
    """``k``: end the debugged program."""

    def kill(self) -> None: ...


@runtime_checkable
class Auxv(Protocol):
    """``qXfer:auxv:read``: the program's auxiliary vector (as ``/proc/PID/auxv`` holds it:
    pairs of target-sized words, ending with ``AT_NULL``). GDB reads ``AT_ENTRY`` (the
    position-independent program's displacement), ``AT_BASE`` (the dynamic loader) and
    ``AT_PHDR`` from it."""

    def read_auxv(self) -> bytes: ...


@runtime_checkable
class ExecFile(Protocol):
    """``qXfer:exec-file:read``: the absolute file name of the program of process ``pid``
    (``None``: the current one), or ``None`` when there is no file (the stub replies
    ``E00``)."""

    def exec_file(self, pid: int | None) -> str | None: ...


@dataclass(frozen=True, slots=True)
class SharedLibrary:
    """One entry of the dynamic loader's link map (``struct link_map``).

    ``name`` is ``l_name`` (the file name as the program sees it), ``lm`` the address of the
    ``link_map`` itself, ``l_addr`` the library's load displacement and ``l_ld`` the address
    of its ``PT_DYNAMIC`` segment, ``lmid`` its linker namespace (gdb 13 requires the
    attribute; gdbserver sends the address of the namespace's ``r_debug``).
    """

    name: str
    lm: int
    l_addr: int
    l_ld: int
    lmid: int = 0


@dataclass(frozen=True, slots=True)
class LinkMap:
    """The loaded libraries, for ``qXfer:libraries-svr4:read``: ``main_lm`` is the address
    of the program's own ``link_map`` (``None``: unknown, e.g. before the dynamic loader
    ran), ``libraries`` the other entries in link-map order."""

    main_lm: int | None
    libraries: tuple[SharedLibrary, ...] = ()


@runtime_checkable
class LibrariesSvr4(Protocol):
    """``qXfer:libraries-svr4:read``: the SVR4 link map, so GDB follows shared libraries
    without reading ``r_debug`` itself.

    ``start`` and ``prev`` come from GDB's annex (``start=ADDR;prev=ADDR``): list from the
    ``link_map`` at ``start`` (whose ``l_prev`` is ``prev``), or from the head of the list
    when ``start`` is ``None``. GDB still breaks on the loader's ``_dl_debug_state``/probes
    itself (ordinary ``Z0`` breakpoints) to learn when the list changes.
    """

    def libraries_svr4(self, start: int | None, prev: int | None) -> LinkMap: ...


@dataclass(frozen=True, slots=True)
class ThreadInfo:
    """One thread for ``qXfer:threads:read``: ``name`` (the ``name`` attribute gdb shows
    in quotes, e.g. the ``PR_SET_NAME`` name; ``""``: none) and ``extra`` (free text, the
    element's content and ``qThreadExtraInfo``'s answer)."""

    tid: int
    name: str = ""
    extra: str = ""


@runtime_checkable
class Threads(Protocol):
    """Several threads in all-stop mode: ``qfThreadInfo``/``qsThreadInfo``, ``qC``,
    ``T TID``, ``Hg``, ``qThreadExtraInfo``, ``qXfer:threads:read`` and ``thread:TID`` in
    stop replies. Without it the stub serves one thread, id 1.

    Thread ids are positive integers (the stub does not advertise multiprocess ids).
    ``current_thread()`` is the thread a stop is reported for (called when the stop reply
    is made). ``select_thread(tid)`` is ``Hg``: register reads and writes that follow are
    that thread's (``None``: any thread, the current one); raise :class:`TargetError` for
    a thread that does not exist. The thread a step is for comes with the resume
    (:attr:`ResumeAction.thread`).
    """

    def thread_ids(self) -> Sequence[int]:
        """Every live thread, in the order gdb should list them."""
        ...

    def current_thread(self) -> int: ...

    def select_thread(self, tid: int | None) -> None: ...

    def thread_info(self, tid: int) -> ThreadInfo:
        """Name and extra text of thread ``tid`` (``TargetError`` if it does not exist)."""
        ...


@runtime_checkable
class Processes(Protocol):
    """Several processes (gdb's multiprocess extensions: ``pPID.TID`` thread ids,
    ``D;PID``, ``vKill;PID``, ``W..;process:PID``, several inferiors) and their fork, vfork
    and exec events. Needs :class:`Threads`: thread ids stay unique across processes; the
    stub asks :meth:`process_of` for the pid of each.

    The stub calls :meth:`set_process_events` when gdb connects (``qSupported``) with the
    events gdb accepts; the target reports only those (:class:`Forked`,
    :class:`VforkDone`, :class:`Execd`) and treats the processes gdb debugs as attached:
    :meth:`Threads.thread_ids` lists their threads. :meth:`detach_process` (``D;PID``)
    returns whether any process stays attached (False ends the session, as ``D`` does);
    :meth:`kill_process` (``vKill;PID``) likewise (False ends the session as ``k`` does).
    :meth:`attach_process` is ``vAttach;PID``.
    """

    def process_of(self, tid: int) -> int: ...

    def set_process_events(self, fork: bool, vfork: bool, exec_: bool) -> None: ...

    def detach_process(self, pid: int) -> bool: ...

    def kill_process(self, pid: int) -> bool: ...

    def attach_process(self, pid: int) -> StopReason:
        """``vAttach;PID`` (``attach PID`` in ``target extended-remote``): debug process
        PID too; the stop reply is for a thread of it, which the target makes current
        (``qC`` follows). Raise :class:`TargetError` for a process it cannot attach."""
        ...


@runtime_checkable
class SignalPassing(Protocol):
    """``QPassSignals``: the signals (gdb numbers) gdb lets through without a stop
    (``handle SIG nostop noprint pass``); the target delivers them without reporting a
    ``T`` stop. Each packet replaces the whole set."""

    def pass_signals(self, signals: frozenset[int]) -> None: ...


# --- the one source of truth -------------------------------------------------------------


class Cap(enum.Flag):
    """Capability bits; see :class:`Capabilities`."""

    NONE = 0
    RESUME = enum.auto()
    RANGE_STEP = enum.auto()
    SW_BREAK = enum.auto()
    HW_BREAK = enum.auto()
    WATCH = enum.auto()
    REVERSE_STEP = enum.auto()
    REVERSE_CONTINUE = enum.auto()
    MONITOR = enum.auto()
    INTERRUPT = enum.auto()
    KILL = enum.auto()
    CONSOLE = enum.auto()
    AUXV = enum.auto()
    EXEC_FILE = enum.auto()
    LIBRARIES_SVR4 = enum.auto()
    THREADS = enum.auto()
    PROCESSES = enum.auto()
    PASS_SIGNALS = enum.auto()


_PROBES: tuple[tuple[type, Cap], ...] = (
    (ResumeTarget, Cap.RESUME),
    (RangeStepping, Cap.RANGE_STEP),
    (SwBreakpoints, Cap.SW_BREAK),
    (HwBreakpoints, Cap.HW_BREAK),
    (Watchpoints, Cap.WATCH),
    (ReverseStep, Cap.REVERSE_STEP),
    (ReverseContinue, Cap.REVERSE_CONTINUE),
    (MonitorCmd, Cap.MONITOR),
    (Interruptible, Cap.INTERRUPT),
    (Killable, Cap.KILL),
    (ConsoleOutput, Cap.CONSOLE),
    (Auxv, Cap.AUXV),
    (ExecFile, Cap.EXEC_FILE),
    (LibrariesSvr4, Cap.LIBRARIES_SVR4),
    (Threads, Cap.THREADS),
    (Processes, Cap.PROCESSES),
    (SignalPassing, Cap.PASS_SIGNALS),
)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a target supports, probed once. Drives parsing, ``qSupported`` and stop replies."""

    caps: Cap
    arch: ArchInfo

    @classmethod
    def probe(cls, target: BaseTarget) -> Capabilities:
        if not isinstance(target, BaseTarget):
            raise TypeError(f"{type(target).__name__} does not implement gdbstub.BaseTarget")
        caps = Cap.NONE
        for protocol, bits in _PROBES:
            if isinstance(target, protocol):
                caps |= bits
        if Cap.THREADS not in caps:
            caps &= ~Cap.PROCESSES  # (thread ids name the processes' threads)
        if Cap.RESUME not in caps:
            # Reverse and range moves are driven by run_chunk, which ResumeTarget provides.
            caps &= ~(Cap.REVERSE_STEP | Cap.REVERSE_CONTINUE | Cap.RANGE_STEP)
        return cls(caps, target.arch())

    def has(self, cap: Cap) -> bool:
        return cap in self.caps

    @property
    def reverse(self) -> bool:
        return bool(self.caps & (Cap.REVERSE_STEP | Cap.REVERSE_CONTINUE))
