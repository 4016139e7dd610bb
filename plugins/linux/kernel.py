"""The emulated kernel of one guest process: its state, the interface handlers see, dispatch.

Three layers, top to bottom:

* :class:`LinuxKernel` is what the session sees: the machine's syscall handler (it reads
  the syscall number and arguments, calls the handler, writes the result back), the
  session's ``"linux"`` snapshottable state and the record/replay switch. The handler table
  is given to it (``dispatch=``), so this module never imports the handlers.
* :class:`Process` is the narrow interface a handler gets: guest memory, the registers a
  syscall may touch, the fd table, the memory map bookkeeping, paths, signals, the
  :class:`~.hostio.HostIO` (and through it the event log) and warnings. One ``Process`` per
  guest process; per-thread values (tid address, robust list, signal mask) are kept apart in
  its state so a later ``clone`` can give each thread its own.
* :class:`ProcessState` is THE declaration of everything the kernel remembers between
  syscalls. :class:`KernelState` is its frozen, picklable copy (``save_state``), derived
  field by field from that one declaration (:func:`_freeze` / :func:`_thaw`).

Recordings pickle :class:`KernelState`, :class:`FileState`, :class:`FdEntry` and
:class:`Mapping` by module and class name (``syxdbg_plugins.linux.kernel.*``): keep them here
under those names. A field added to :class:`ProcessState` needs a default; a state saved
before it existed loads with that default (tests/linux/test_linux_state_compat.py replays a
recording made before the split).

Host fds of closed descriptions are kept in a small pool so a restore can revive them even
when the file has been unlinked meanwhile. Pipes and the inherited stdio fds are not
repositioned by a restore (they cannot be); replaying their data is the EventLog's job.
All host access goes through :attr:`Process.host`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import io
import os
import signal
import struct
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field, replace
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from syxdbg.errors import MemoryAccessError, MemoryMapError
from syxdbg.machine.memory import PAGE, Perm, Region, clone_regions, page_round_up

from . import abi, preempt, sigframe
from .hostio import HostIO, RecordingHostIO
from .preempt import schedule_mix, slice_length
from .registry import Handler, SyscallError
from .tables import SYSCALL_TABLES

if TYPE_CHECKING:
    from syxdbg.eventlog import EventLog
    from syxdbg.loader import LoadedImage
    from syxdbg.machine import Fault, Machine
    from syxdbg.machine.memory import Memory
    from syxdbg.machine.registers import RegisterInfo

#: Host fds of closed descriptions kept open for restores (per kernel).
RETIRED_POOL = 32
STDIO = (0, 1, 2)
#: Registers a syscall may set or read on the calling thread (arch_prctl).
THREAD_REGISTERS = frozenset({"fs_base", "gs_base", "tpidruro"})  # (tpidruro: arm set_tls)
#: The thread pointer a new thread's CLONE_SETTLS sets, per architecture.
TLS_REGISTER = {"x86_64": "fs_base", "aarch64": "tpidr", "arm": "tpidruro", "riscv64": "tp"}
#: System calls after which threads waiting to read an empty pipe try again.
PIPE_WAKERS = frozenset({"write", "writev", "pwrite64", "pwritev", "pwritev2", "close",
                         "close_range", "dup2", "dup3", "copy_file_range", "sendfile",
                         "splice", "exit", "exit_group",
                         # ...and writers waiting for room in a full pipe.
                         "read", "readv", "pread64", "preadv", "preadv2"})
#: Wakes threads waiting on host descriptors (sockets) when the scheduler runs:
#: (process, the threads not running as (pid, Thread), whether one is runnable, the
#: caller's wish) -> whether it woke any. Set by syscalls/poll.py.
HOST_WAITS: Callable[[Process, list[tuple[int, Thread]], bool, tuple[str, int, int, int]],
                     bool] | None = None


# ----------------------------------------------------------------- saved values (pickled)
@dataclass(frozen=True)
class FileState:
    """An open file description as saved: offset instead of a live host position."""

    id: int
    kind: str
    path: bytes | None
    flags: int
    host_fd: int
    owned: bool
    offset: int | None
    dir_entries: tuple[tuple[bytes, int, int], ...] | None
    dir_pos: int
    #: Contents of an emulated file (``/proc/self/maps``...), None for host files.
    data: bytes | None = None


@dataclass(frozen=True)
class FdEntry:
    file: int  # OpenFile id
    cloexec: bool = False


@dataclass(frozen=True)
class Mapping:
    """A range created by mmap/mremap (or brk, named ``[heap]``)."""

    start: int
    end: int
    prot: int
    flags: int
    name: str
    #: Offset in the file of ``start`` (file mappings; 0 for anonymous ones).
    offset: int = 0
    #: A file mapping never writable since it was read: the id of the open file
    #: description it was read through, whose bytes it still holds; None otherwise. A
    #: later mmap of the same bytes through the same description over it (ld.so maps a
    #: library's span, then each segment over it) takes them from memory instead of
    #: reading (and recording) them again.
    clean: int | None = None

    def part(self, start: int, end: int) -> Mapping:
        """The piece ``[start, end)`` of this mapping (its file offset moves along)."""
        shift = start - self.start if self.flags & abi.MAP_ANONYMOUS == 0 else 0
        return replace(self, start=start, end=end, offset=self.offset + shift)


@dataclass(frozen=True)
class Thread:
    """A guest thread that is not running now (the running one is the machine's CPU and the
    per-thread fields at the end of :class:`ProcessState`). Pickled in recordings.

    ``regs`` is the CPU as register values by name, as the machine's register table lists
    them, saved inside a system call: on x86_64 ``rip`` is the system call instruction
    (the CPU moves past it when the system call returns), on aarch64 ``pc`` is after it.
    """

    tid: int
    regs: tuple[tuple[str, int], ...]
    sigmask: int = 0
    altstack: bytes = b""
    tid_address: int = 0
    robust_list: tuple[int, int] = (0, 0)
    #: What it waits for: "" (runnable), "futex" (FUTEX_WAIT on ``futex``), "pipe" (a read
    #: of guest fd ``fd``, an empty pipe: it makes the system call again when woken).
    wait: str = ""
    futex: int = 0
    fd: int = -1
    bitset: int = 0xFFFFFFFF
    #: A futex wait's timeout in ns (-1: none); timeouts expire in virtual time: when no
    #: thread can run, the shortest pending one (then the oldest) expires.
    timeout: int = -1
    #: Queue order: the run queue and every futex queue are FIFO by ``seq``.
    seq: int = 0
    #: Written to the system call result register when it runs again (None: nothing).
    result: int | None = None
    #: Waiting in rt_sigsuspend or pause: the signal mask while it waits (-1: not so);
    #: kept when a signal wakes it, whose handler then runs with that mask.
    suspend_mask: int = -1
    #: Woken from a wait whose system call runs again ("pipe", "child"): a signal that comes
    #: before it runs interrupts that call as it would the wait (EINTR without SA_RESTART).
    again: str = ""


@dataclass(frozen=True)
class Zombie:
    """A child process that exited and was not waited for yet (wait4 reaps it)."""

    pid: int
    ppid: int
    pgid: int
    #: Its wait status (``exit << 8``, or the signal that killed it).
    status: int


class ProcEntry:
    """A live process that is not running now: its state (the fields of
    :class:`ProcessState` that are its own; the shared ones are the running process's) and
    its memory map (regions of the host buffers that hold its memory)."""

    __slots__ = ("state", "layout")

    def __init__(self, state: ProcessState, layout: tuple[Region, ...]) -> None:
        self.state = state
        self.layout = layout


@dataclass(frozen=True)
class ProcessInfo:
    """One process as :meth:`LinuxKernel.processes` reports it."""

    pid: int
    ppid: int
    pgid: int
    #: "running" (its thread runs now), "runnable", "blocked" (every thread waits) or
    #: "zombie" (exited, not reaped yet: ``status`` is its wait status).
    state: str
    #: The program it runs (the host path of its last execve), "" if unknown.
    program: str
    threads: int
    status: int | None = None


@dataclass(frozen=True)
class ThreadInfo:
    """One thread as :meth:`LinuxKernel.threads` reports it."""

    tid: int
    state: str  # "running", "runnable", "blocked"
    pc: int
    #: What a blocked thread waits for (``"futex 0x..."``), else "".
    waiting: str = ""


@dataclass(frozen=True, init=False, eq=False, repr=False)
class KernelState:
    """Everything :class:`LinuxKernel` remembers, frozen: one attribute per field of
    :class:`ProcessState` (containers as tuples/frozensets, files as :class:`FileState`).

    Its attributes are exactly those of :class:`ProcessState` (that is the one declaration),
    so its pickle is ``{field name: frozen value}``, the same as before the split.
    """

    def __init__(self, **values: Any) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:  # for type checkers: fields are dynamic
        raise AttributeError(name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KernelState) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash(tuple(sorted(vars(self))))

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"KernelState({shown})"


# ----------------------------------------------------------------- live state
@dataclass
class OpenFile:
    """A live open file description (shared by dup'ed fds)."""

    id: int
    kind: str  # "std" (inherited host 0/1/2), "file", "dir", "pipe"; "proc", "procmem"
    path: bytes | None  # absolute host path of files and directories (guest path for proc)
    flags: int  # guest status flags (guest arch values): access mode, O_APPEND, O_NONBLOCK...
    host_fd: int  # -1 when lost (a pipe that could not be revived) or emulated (proc)
    owned: bool  # opened by us: closed when the last guest fd goes
    dir_entries: tuple[tuple[bytes, int, int], ...] | None = None
    dir_pos: int = 0  # also the file offset of emulated files (proc, procmem)
    data: bytes | None = None  # contents of an emulated "proc" file


def _rlimits_freeze(d: dict[int, tuple[int, int]]) -> tuple[tuple[int, int, int], ...]:
    return tuple((r, cur, mx) for r, (cur, mx) in sorted(d.items()))


def _rlimits_thaw(t: tuple[tuple[int, int, int], ...]) -> dict[int, tuple[int, int]]:
    return {r: (cur, mx) for r, cur, mx in t}


def _codec(freeze: Callable[[Any], Any], thaw: Callable[[Any], Any]) -> dict[str, Any]:
    return {"freeze": freeze, "thaw": thaw}


class SavedLayout:
    """The memory map of a process that is not running, in a saved state: the regions
    themselves (their host buffers hold its memory; the snapshot journal restores their
    pages). Two are equal when they map the same ranges the same way (the bytes are the
    memory's business, compared apart as the running process's are: a saved layout holds
    live buffers, not the bytes they had when it was saved)."""

    __slots__ = ("regions",)

    def __init__(self, regions: tuple[Region, ...]) -> None:
        self.regions = regions

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SavedLayout):
            return NotImplemented
        return [(r.start, r.size, r.perms, r.name) for r in self.regions] == \
            [(r.start, r.size, r.perms, r.name) for r in other.regions]

    def __hash__(self) -> int:
        return hash(tuple((r.start, r.size) for r in self.regions))

    def __reduce__(self) -> Any:
        raise TypeError("the memory of a process that is not running cannot be pickled "
                        "(a recording skips checkpoints while other processes live)")


def _procs_freeze(d: dict[int, ProcEntry]) -> tuple[Any, ...]:
    return tuple(sorted((pid, (_freeze_own(e.state), SavedLayout(e.layout)))
                        for pid, e in d.items()))


def _procs_thaw(t: tuple[Any, ...]) -> dict[int, ProcEntry]:
    return {pid: ProcEntry(_thaw_own(values), layout.regions) for pid, (values, layout) in t}


@dataclass
class ProcessState:
    """THE declaration of the kernel's snapshottable state (see the module doc).

    Containers are frozen and thawed by their type (dict -> sorted item tuple, list ->
    tuple, set -> frozenset); a field with another saved form says so in its metadata.
    ``files`` is saved by the kernel itself (host offsets are read at save time).
    """

    # -- process
    fds: dict[int, FdEntry] = field(default_factory=dict)
    files: dict[int, OpenFile] = field(default_factory=dict, metadata={"files": True})
    next_file_id: int = 1
    brk_start: int = 0
    brk: int = 0
    mappings: list[Mapping] = field(default_factory=list)
    cwd: bytes = b"/"
    umask: int = 0o022
    sigactions: dict[int, bytes] = field(default_factory=dict)
    sigpending: int = 0
    #: Where the aarch64 signal-return trampoline is mapped (0: not yet; see sigframe.py).
    sigtramp: int = 0
    #: si_code of each pending signal that has a guest handler (SI_USER, SI_TKILL).
    sigcodes: dict[int, int] = field(default_factory=dict)
    #: Who sent each pending signal that came from another process: (pid, uid, status; the
    #: status is SIGCHLD's si_status). Absent: the process itself (kill, raise).
    sigsenders: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    #: ITIMER_REAL (alarm, setitimer): (deadline on the host's CLOCK_MONOTONIC in ns, 0:
    #: disarmed; reload interval in ns). See Process.poll_itimer.
    itimer_real: tuple[int, int] = (0, 0)
    #: When the timer was last compared with the clock: (position, system calls since).
    itimer_checked: tuple[int, int] = (0, 0)
    #: POSIX timers (timer_create), by id: (clock id, signal, sigval, deadline on the host's
    #: CLOCK_MONOTONIC in ns (0: disarmed), interval in ns, overruns of the last expiry).
    #: Compared with the clock where ITIMER_REAL is (Process.poll_itimer).
    timers: dict[int, tuple[int, int, int, int, int, int]] = field(default_factory=dict)
    #: The mask rt_sigsuspend replaced, restored by the handler's return (-1: none).
    saved_mask: int = -1
    rlimits: dict[int, tuple[int, int]] = field(
        default_factory=dict, metadata=_codec(_rlimits_freeze, _rlimits_thaw))
    ids: tuple[int, int, int, int, int, int] = (1, 0, 0, 0, 0, 0)
    warned: set[int] = field(default_factory=set)
    #: The program's host path as the guest sees it (/proc/self/exe, comm).
    image_path: bytes = b""
    #: Where exec put argv strings, env strings and the auxv in guest memory:
    #: (arg_start, arg_end, env_start, env_end, auxv address, auxv bytes); 0s if unknown.
    exec_layout: tuple[int, int, int, int, int, int] = (0, 0, 0, 0, 0, 0)
    #: st_dev of the host's procfs when the program started (-1: unknown): a host file on
    #: it is the debugger's, never the guest's (see procfs.py).
    host_proc_dev: int = -1
    #: Most bytes of guest memory (all mappings: image, stack, heap, mmaps); beyond it
    #: mmap/mremap fail with ENOMEM and brk keeps the old break, as under a cgroup limit.
    #: 0: no limit (states saved before the limit existed).
    memory_limit: int = 0
    #: Where the guest's absolute paths are looked up first (``--sysroot``, as qemu-user's
    #: ``-L``): ``b""`` for the host's root (and states saved before sysroots existed).
    sysroot: bytes = b""
    #: Whether an mmap over a clean mapping of the same bytes takes them from memory
    #: (:meth:`Process.clean_copy`); False in states saved before, whose recordings read
    #: the file again at that point.
    reuse_clean_maps: bool = False
    # -- the running thread (the others keep theirs in ``threads``)
    sigmask: int = 0
    altstack: bytes = b""
    tid_address: int = 0
    robust_list: tuple[int, int] = (0, 0)
    #: Its thread id (0: the main thread, whose tid is the pid; states saved before threads).
    tid: int = 0
    # -- threads and the scheduler (docs/linux.md, Threads)
    #: Every thread but the running one, by tid.
    threads: dict[int, Thread] = field(default_factory=dict)
    #: The next thread id to give (0: pid + 1).
    next_tid: int = 0
    #: Queue order counter (see :attr:`Thread.seq`).
    seq: int = 0
    #: Position where the running thread's time slice began.
    slice_start: int = 0
    #: Instructions a thread runs before a system call may switch to another runnable one.
    #: (1M: still a finer interleaving than Linux's 0.75-6 ms slices, and switches cost
    #: under 10% of a CPU-bound thread's time; docs/performance.md, Threads.)
    time_slice: int = 1_000_000
    #: ``--schedule seed:N``: N perturbs each slice's length and the choice of the next
    #: thread, reproducibly (:func:`schedule_mix`); 0: none (FIFO round robin, full slices).
    schedule_seed: int = 0
    #: Why the process cannot go on (a deadlock), "" while it can.
    halted: str = ""
    #: Whether reads of the guest's own pipes first ask the host whether data is there
    #: (:meth:`Process.pipe_read`); False in states saved before, whose recordings hold
    #: no such question.
    pipe_checks: bool = False
    #: Small per-process facts kept by handlers (syscalls/process.py: nice, ioprio, which
    #: rlimits were taken from the host), by name; empty in states saved before.
    misc: dict[str, int] = field(default_factory=dict)
    # -- processes (docs/linux.md, Processes)
    #: Process group and session (0: the pid, as for the first process).
    pgid: int = 0
    sid: int = 0
    #: The signal its parent gets when it exits (clone's exit signal; SIGCHLD for fork).
    exit_signal: int = abi.SIGCHLD
    #: Which program image it runs (0: the session's; others: the position of the execve
    #: that loaded it, in :attr:`Process.images`).
    image_key: int = 0
    #: The parent waiting in vfork until this process execs or exits (0: none).
    vfork_parent: int = 0
    #: prctl(PR_SET_PDEATHSIG): the signal this process gets when its parent ends (0: none).
    pdeathsig: int = 0
    #: The signal that stopped it (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU; 0: it runs). None of
    #: its threads runs until SIGCONT (or a fatal signal) comes.
    stopped: int = 0
    #: A change its parent's wait has not reported yet: the stop signal (WUNTRACED), -1 for
    #: a continue (WCONTINUED), 0: none.
    job_event: int = 0
    #: Every other live process, by pid (shared: the running process holds the table).
    procs: dict[int, ProcEntry] = field(default_factory=dict,
                                        metadata=_codec(_procs_freeze, _procs_thaw))
    #: Children that exited and were not reaped yet, by pid.
    zombies: dict[int, Zombie] = field(default_factory=dict)
    #: The first process's pid (0: this one's): its exit ends the run.
    root_pid: int = 0


_FIELDS = tuple(f for f in dataclasses.fields(ProcessState) if not f.metadata.get("files"))
#: Fields every process shares: the open file descriptions, the scheduler, the process table.
#: The running process's :class:`ProcessState` holds them; a process switch hands them on.
SHARED = frozenset({"files", "next_file_id", "next_tid", "seq", "slice_start", "time_slice",
                    "schedule_seed", "halted", "pipe_checks", "procs", "zombies", "warned",
                    "memory_limit", "host_proc_dev", "reuse_clean_maps", "root_pid"})
#: The fields that are each process's own.
_OWN = tuple(f for f in _FIELDS if f.name not in SHARED)


def _freeze_own(st: ProcessState) -> tuple[tuple[str, Any], ...]:
    return tuple((f.name, _freeze_value(f, getattr(st, f.name))) for f in _OWN)


def _thaw_own(values: tuple[tuple[str, Any], ...]) -> ProcessState:
    saved = dict(values)
    return ProcessState(**{f.name: _thaw_value(f, saved[f.name]) if f.name in saved
                           else _field_default(f) for f in _OWN})
#: System calls whose timespec/timeval are 32-bit on 32-bit arm (their *_time64 twins are not).
TIME32_CALLS = frozenset({"nanosleep", "clock_gettime", "clock_settime", "clock_getres",
                          "clock_nanosleep", "futex", "ppoll", "pselect6", "utimensat",
                          "gettimeofday", "settimeofday", "rt_sigtimedwait",
                          "timer_settime", "timer_gettime"})
#: sigaction flag: the children of a process with it on SIGCHLD leave no zombies.
SA_NOCLDSTOP, SA_NOCLDWAIT = 1, 2
#: siginfo si_code of a POSIX timer's signal.
SI_TIMER = -2
#: Signals no mask can block.
UNBLOCKABLE = (1 << (abi.SIGKILL - 1)) | (1 << (abi.SIGSTOP - 1))


def _freeze_value(f: dataclasses.Field[Any], value: Any) -> Any:
    if "freeze" in f.metadata:
        return f.metadata["freeze"](value)
    if isinstance(value, dict):
        return tuple(sorted(value.items()))
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, set):
        return frozenset(value)
    return value


def _thaw_value(f: dataclasses.Field[Any], value: Any) -> Any:
    if "thaw" in f.metadata:
        return f.metadata["thaw"](value)
    factory = f.default_factory
    if factory is dict:
        return dict(value)
    if factory is list:
        return list(value)
    if factory is set:
        return set(value)
    return value


def _field_default(f: dataclasses.Field[Any]) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _default_rlimits(stack_size: int) -> dict[int, tuple[int, int]]:
    inf = abi.RLIM_INFINITY
    limits = {r: (inf, inf) for r in range(abi.RLIMIT_NLIMITS)}
    limits[abi.RLIMIT_STACK] = (stack_size, inf)
    limits[abi.RLIMIT_CORE] = (0, inf)
    limits[abi.RLIMIT_NOFILE] = (1024, 4096)
    limits[8] = (8 * 1024 * 1024, 8 * 1024 * 1024)  # RLIMIT_MEMLOCK
    limits[6] = (63_000, 63_000)  # RLIMIT_NPROC
    limits[11] = (63_000, 63_000)  # RLIMIT_SIGPENDING
    limits[12] = (819_200, 819_200)  # RLIMIT_MSGQUEUE
    limits[13] = (0, 0)  # RLIMIT_NICE
    limits[14] = (0, 0)  # RLIMIT_RTPRIO
    return limits


def default_memory_limit(host_total: int) -> int:
    """The limit when none is given: half the host's memory (0, none, if unknown). A guest
    costs more host memory than it maps (snapshots, translation caches)."""
    return (host_total // 2) & ~(PAGE - 1)


def _exec_layout(mem: Memory, sp: int) -> tuple[int, int, int, int, int, int]:
    """Where the initial stack at ``sp`` keeps argv/env strings and the auxv (as Linux's
    mm->arg_start... are set by exec). Zeros if the stack cannot be parsed."""
    try:
        argc = struct.unpack("<Q", mem.read(sp, 8))[0]
        if argc > 1 << 20:
            return (0, 0, 0, 0, 0, 0)
        pos = sp + 8
        argv = struct.unpack(f"<{argc}Q", mem.read(pos, 8 * argc)) if argc else ()
        pos += 8 * (argc + 1)
        envp: list[int] = []
        while (ptr := struct.unpack("<Q", mem.read(pos, 8))[0]) != 0:
            envp.append(ptr)
            pos += 8
        pos += 8
        auxv = pos
        while struct.unpack("<Q", mem.read(pos, 8))[0] != 0:  # AT_NULL ends it
            pos += 16
        auxv_len = pos + 16 - auxv

        def span(ptrs: tuple[int, ...] | list[int]) -> tuple[int, int]:
            if not ptrs:
                return (0, 0)
            last = ptrs[-1]
            return ptrs[0], last + len(mem.read_cstring(last)) + 1

        a0, a1 = span(argv)
        e0, e1 = span(envp)
        return (a0, a1, e0, e1, auxv, auxv_len)
    except (MemoryAccessError, struct.error):
        return (0, 0, 0, 0, 0, 0)


def _sigaction_of(st: ProcessState, sig: int) -> sigframe.SigAction:
    raw = st.sigactions.get(sig)
    return sigframe.SigAction.unpack(raw) if raw else sigframe.SigAction(abi.SIG_DFL, 0, 0, 0)


def _poke(layout: tuple[Region, ...], address: int, data: bytes) -> None:
    """Write ``data`` into the memory of a process that is not running (its ``layout``)."""
    for r in layout:
        if r.start <= address and address + len(data) <= r.end:
            r.view[address - r.start:address - r.start + len(data)] = data
            return
    raise MemoryAccessError(address, len(data))


# ----------------------------------------------------------------- the handlers' interface
def _prot(perms: str) -> int:
    """PROT_* bits of an ``"r-x"`` permission string."""
    return sum(bit for c, bit in (("r", abi.PROT_READ), ("w", abi.PROT_WRITE),
                                  ("x", abi.PROT_EXEC)) if c in perms)


class Process:
    """One guest process as a syscall handler sees it (the only object handlers get)."""

    def __init__(self, machine: Machine, host: HostIO, *,
                 warn_stream: IO[str] | None = None, memory_limit: int | None = None,
                 image: LoadedImage | None = None) -> None:
        self._machine = machine
        #: Guest memory (reads raise MemoryAccessError -> EFAULT).
        self.mem: Memory = machine.mem
        self.arch: str = machine.arch.name
        #: The current system call is one of 32-bit arm's time32 calls (clock_nanosleep,
        #: futex...): its timespec and timeval are two 32-bit fields (set per call).
        self.time32 = False
        #: The host boundary; swapped by the kernel to record or replay.
        self.host = host
        #: Where warnings go (None: the current sys.stderr).
        self.warn_stream = warn_stream
        self.mmap_base: int = machine.arch.mmap_base
        self._retired: OrderedDict[int, int] = OrderedDict()  # file id -> host fd
        #: What the calling thread asked of the scheduler in this system call:
        #: (kind, futex, bitset, timeout) with kind "futex", "yield" or "exit"; None: nothing.
        self._want: tuple[str, int, int, int] | None = None
        #: Ends the running thread's time slice between two instructions (preempt.py).
        self.preempt: Callable[[Machine], None] | None = None
        self.s = ProcessState()
        #: Program images by key (0: the session's ``LoadedImage``; execve adds one each).
        self.images: dict[int, LoadedImage | None] = {0: image}
        #: The registers a fresh program starts with (execve resets the CPU to them).
        self._pristine: tuple[tuple[str, int], ...] = ()
        #: Called after every successful execve with (pid, host path of the program); not
        #: state (the Session's ``run_to_exec`` watches with it).
        self.exec_observers: list[Callable[[int, bytes], None]] = []
        #: Process events for gdb (helper A, issue 14; not state): called with (kind, pid,
        #: tid, value): "fork"/"vfork" in the parent's system call (value: the child's
        #: pid), "vforkdone" when that child execs or exits (the parent's pid and thread),
        #: "exec" after a successful execve, "exit" when a process other than the first
        #: ends (value: its wait status).
        self.event_observers: list[Callable[[str, int, int, int], None]] = []
        #: gdb's signal stops (helper A, issue 14; not state): asked (pid, tid, signal)
        #: before a handler's frame is pushed or a fatal default action kills; False
        #: discards the signal (gdb's decision at that position, which the debugger keeps
        #: so that re-execution repeats it).
        self.signal_gate: Callable[[int, int, int], bool] | None = None
        s = self.s
        s.image_path = (self.host.realpath(os.fsencode(image.path))
                        if image is not None else b"")
        s.brk_start = s.brk = image.brk if image is not None else 0
        if image is not None and image.initial_sp:
            s.exec_layout = _exec_layout(self.mem, image.initial_sp)
        s.cwd = self.host.getcwd()
        s.reuse_clean_maps = True
        s.pipe_checks = True
        s.misc[preempt.MISC_KEY] = 1  # slices end at exact positions (preempt.py)
        if image is not None and image.sysroot not in ("", "/"):
            s.sysroot = os.fsencode(os.path.abspath(image.sysroot))
        if image is not None:
            self._map_image(image)
        s.host_proc_dev = self.host.proc_device()
        s.memory_limit = (memory_limit if memory_limit is not None
                          else default_memory_limit(self.host.memory_total()))
        s.ids = self.host.ids()
        s.rlimits = _default_rlimits(machine.arch.stack_size)
        for fd in STDIO:
            try:
                flags = abi.open_flags_from_host(self.arch, self.host.get_status_flags(fd))
            except OSError:
                continue  # not open on the host: not open in the guest either
            s.fds[fd] = FdEntry(self.new_file("std", None, flags, fd, owned=False).id)
        #: How far before the resume pc a syscall leaves x86's rip (see LinuxKernel).
        self._gap = 2 if self.arch == "x86_64" else 0
        self._pristine = self.cpu_values()

    @property
    def image(self) -> LoadedImage | None:
        """The program the running process runs (None for a bare machine)."""
        return self.images.get(self.s.image_key)

    @property
    def image_path(self) -> bytes:
        return self.s.image_path

    @property
    def pid(self) -> int:
        return self.s.ids[0]

    # -- the calling thread -----------------------------------------------------------------
    @property
    def timespec_size(self) -> int:
        return 8 if self.time32 else 16

    def read_timespec(self, ptr: int) -> tuple[int, int]:
        """A guest ``struct timespec`` as (seconds, nanoseconds): two 32-bit fields in arm's
        time32 calls, else the kernel's 64-bit one. On 32-bit arm the upper half of a 64-bit
        ``tv_nsec`` is padding the C library leaves as it is; Linux ignores it, and so does
        this."""
        if self.time32:
            sec, nsec = struct.unpack("<ii", self.mem.read(ptr, 8))
            return sec, nsec
        sec, nsec = struct.unpack("<qq", self.mem.read(ptr, 16))
        if self.arch == "arm":
            nsec = ((nsec & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000
        return sec, nsec

    def pack_timespec(self, ns: int) -> bytes:
        """``struct timespec`` for ``ns`` as the current system call takes it."""
        if self.time32:
            return struct.pack("<ii", ns // 1_000_000_000, ns % 1_000_000_000)
        return abi.pack_timespec(ns)

    def pack_timeval(self, ns: int) -> bytes:
        """``struct timeval`` for ``ns`` as the current system call takes it."""
        if self.time32:
            return struct.pack("<ii", ns // 1_000_000_000, ns % 1_000_000_000 // 1000)
        return abi.pack_timeval(ns)

    def stack_pointer(self) -> int:
        """The calling thread's stack pointer (sigaltstack asks whether it is on it)."""
        return int(self._machine.regs.sp)

    def thread_register(self, name: str) -> int:
        """A register a syscall may read on the calling thread (see THREAD_REGISTERS)."""
        if name not in THREAD_REGISTERS:
            raise KeyError(name)
        return int(self._machine.regs[name])

    def set_thread_register(self, name: str, value: int) -> None:
        if name not in THREAD_REGISTERS:
            raise KeyError(name)
        self._machine.regs[name] = value

    def exit(self, status: int) -> None:
        """The process exits with ``status`` (exit_group). The first process's exit ends the
        run; another's makes it a zombie for its parent (see :meth:`_end_process`)."""
        if self.is_root:
            self._machine.request_exit(status & 0xFF)
        else:
            self._end_process((status & 0xFF) << 8)

    def kill_self(self, sig: int) -> None:
        """The running process dies of ``sig`` (a default action, a bad signal frame)."""
        if self.is_root:
            self._machine.request_kill(sig)
        else:
            self._end_process(sig & 0x7F)

    # -- processes (docs/linux.md, Processes) --------------------------------------------------
    @property
    def is_root(self) -> bool:
        """Whether the running process is the first one (its end ends the run)."""
        return not self.s.root_pid or self.s.root_pid == self.pid

    def process_ids(self) -> list[int]:
        """Every live process, by pid."""
        return sorted([self.pid, *self.s.procs])

    def state_of(self, pid: int) -> ProcessState | None:
        """The state of live process ``pid`` (the running one's is :attr:`s`); None."""
        if pid == self.pid:
            return self.s
        entry = self.s.procs.get(pid)
        return None if entry is None else entry.state

    def all_states(self) -> list[ProcessState]:
        """Every live process's state, the running one's first."""
        return [self.s, *(e.state for e in self.s.procs.values())]

    def fork(self, flags: int, stack: int, tls: int | None, parent_tid: int, child_tid: int,
             exit_signal: int) -> int:
        """A new process (fork, vfork, clone without CLONE_THREAD): a copy of the caller's
        own state and memory (CLONE_VM: the same memory, as vfork's child borrows it) whose
        only thread is the caller's with 0 as the result. CLONE_VFORK: the caller waits
        until the child execs or exits. Returns the child's pid."""
        s = self.s
        for bit, ptr in ((abi.CLONE_PARENT_SETTID, parent_tid),
                         (abi.CLONE_CHILD_SETTID, child_tid)):
            if flags & bit:
                self.mem.read(ptr, 4)  # EFAULT before anything changes
        if len(s.procs) + 1 >= s.rlimits[abi.RLIMIT_NPROC][0]:
            raise SyscallError(errno.EAGAIN)
        if not s.root_pid:
            s.root_pid = s.ids[0]
        if not s.next_tid:
            s.next_tid = s.ids[0] + 1
        pid = s.next_tid
        s.next_tid += 1
        child = _thaw_own(_freeze_own(s))  # an independent copy of its own fields
        child.ids = (pid, s.ids[0], *s.ids[2:])
        child.pgid, child.sid = s.pgid or s.ids[0], s.sid or s.ids[0]
        child.tid, child.threads = 0, {}
        child.sigpending, child.sigcodes, child.saved_mask = 0, {}, -1
        child.sigsenders = {}
        child.itimer_real, child.itimer_checked = (0, 0), (0, 0)
        child.timers = {}
        child.robust_list = (0, 0)
        child.tid_address = child_tid if flags & abi.CLONE_CHILD_CLEARTID else 0
        child.exit_signal = exit_signal
        child.vfork_parent = s.ids[0] if flags & abi.CLONE_VFORK else 0
        child.pdeathsig = 0  # (not inherited, as on Linux)
        child.misc.pop("subreaper", None)
        s.seq += 1
        child.threads[pid] = Thread(pid, self._child_registers(stack, tls),
                                    sigmask=s.sigmask, altstack=s.altstack,
                                    tid_address=child.tid_address, seq=s.seq)
        regions = self.mem.regions()
        layout = tuple(regions) if flags & abi.CLONE_VM else tuple(clone_regions(regions))
        s.procs[pid] = ProcEntry(child, layout)
        tid_bytes = struct.pack("<i", pid)
        if flags & abi.CLONE_CHILD_SETTID:
            if flags & abi.CLONE_VM:
                self.mem.write(child_tid, tid_bytes)
            else:  # into the child's fresh copy (no snapshot keeps older bytes of it)
                _poke(layout, child_tid, tid_bytes)
        if flags & abi.CLONE_PARENT_SETTID:
            self.mem.write(parent_tid, tid_bytes)
        if flags & abi.CLONE_VFORK:
            self._want = ("vfork", pid, 0, -1)
        for observer in self.event_observers:  # (gdb's fork events)
            observer("vfork" if flags & abi.CLONE_VFORK else "fork", s.ids[0], self.tid, pid)
        return pid

    def _release_vfork(self) -> None:
        """The running process execs or exits: the parent waiting in vfork goes on."""
        parent = self.s.vfork_parent
        self.s.vfork_parent = 0
        st = self.state_of(parent) if parent else None
        if st is None:
            return
        for t in list(st.threads.values()):
            if t.wait == "vfork" and t.futex == self.pid:
                self.s.seq += 1
                st.threads[t.tid] = replace(t, wait="", futex=0, seq=self.s.seq)
                for observer in self.event_observers:  # (gdb's vforkdone)
                    observer("vforkdone", parent, t.tid, self.pid)

    def switch_to(self, pid: int, *, drop: bool = False) -> None:
        """Make process ``pid`` the running one: its memory map and its state (the caller
        queued the running thread; ``drop``: the running process ended, forget it)."""
        s = self.s
        entry = s.procs.pop(pid)
        new = entry.state
        if not drop:
            s.procs[self.pid] = ProcEntry(s, tuple(self.mem.regions()))
        for name in SHARED:
            setattr(new, name, getattr(s, name))
        self.s = new
        self.mem.restore_layout(list(entry.layout))
        self._machine.code_restored(everything=True)

    def _end_process(self, status: int) -> None:
        """The running process ends with wait status ``status``: its threads stop, its fds
        close, its parent is told; the scheduler then runs another process."""
        s = self.s
        for fd in sorted(s.fds):
            self.close_fd(fd)
        if s.tid_address:
            with contextlib.suppress(MemoryAccessError):
                self.mem.write(s.tid_address, bytes(4))
        self._release_vfork()
        self._bury(s, status)
        self._want = ("pexit", 0, 0, -1)

    def _end_other(self, pid: int, status: int) -> None:
        """Process ``pid``, not the running one, ends (killed by a signal)."""
        entry = self.s.procs.pop(pid)
        st = entry.state
        for fd in sorted(st.fds):
            fid = st.fds.pop(fd).file
            self._drop_file(fid)
        if st.vfork_parent:
            parent = self.state_of(st.vfork_parent)
            if parent is not None:
                for t in list(parent.threads.values()):
                    if t.wait == "vfork" and t.futex == pid:
                        self.s.seq += 1
                        parent.threads[t.tid] = replace(t, wait="", futex=0, seq=self.s.seq)
        self._bury(st, status)
        self.wake_pipe_readers()

    def _bury(self, st: ProcessState, status: int) -> None:
        """Process ``st`` has ended: its children become orphans (nobody reaps them), it
        becomes a zombie of its parent (unless the parent ignores SIGCHLD), whose waits
        wake and which gets its exit signal."""
        pid, ppid = st.ids[0], st.ids[1]
        for observer in self.event_observers:  # (gdb: an attached process's exit)
            observer("exit", pid, 0, status)
        s = self.s
        # Orphans go to the nearest ancestor that is a child subreaper, else to init (pid
        # 1, outside the tree: nobody reaps them); their zombies are moved along.
        reaper = 1
        up = self.state_of(ppid)
        while up is not None and up is not st:
            if up.misc.get("subreaper"):
                reaper = up.ids[0]
                break
            up = self.state_of(up.ids[1])
        for z in [z for z in s.zombies.values() if z.ppid == pid]:
            if reaper == 1:
                del s.zombies[z.pid]
            else:
                s.zombies[z.pid] = replace(z, ppid=reaper)
        orphans = []
        children = []
        for other in self.all_states():
            if other.ids[1] == pid and other is not st:
                other.ids = (other.ids[0], reaper, *other.ids[2:])
                children.append(other)
                if other.pdeathsig:
                    orphans.append((other.ids[0], other.pdeathsig))
        for orphan, sig in orphans:  # PR_SET_PDEATHSIG: told that the parent ended
            self.signal_process(orphan, sig, sender=(pid, st.ids[2], 0))
        self._hang_up_orphaned(st, children)
        parent = self.state_of(ppid)
        if parent is None or parent is st:
            return
        act = _sigaction_of(parent, abi.SIGCHLD)
        if not (act.handler == abi.SIG_IGN or act.flags & SA_NOCLDWAIT):
            s.zombies[pid] = Zombie(pid, ppid, st.pgid or pid, status)
        self._wake_child_waiters(parent)
        if st.exit_signal:
            code, value = ((abi.CLD_EXITED, status >> 8 & 0xFF) if not status & 0x7F
                           else (abi.CLD_KILLED, status & 0x7F))
            self.signal_process(ppid, st.exit_signal, code, sender=(pid, st.ids[2], value))

    def _wake_sigwaiters(self, st: ProcessState, sig: int) -> None:
        """Threads of ``st`` waiting in sigtimedwait for ``sig`` run again (their call
        takes it)."""
        bit = 1 << (sig - 1)
        for t in sorted(st.threads.values(), key=lambda t: t.seq):
            if t.wait == "sigwait" and t.bitset & bit:
                self.s.seq += 1
                st.threads[t.tid] = replace(t, wait="", timeout=-1, seq=self.s.seq,
                                            again="sigwait")
                return

    def signal_process(self, pid: int, sig: int, code: int = sigframe.SI_USER, *,
                       sender: tuple[int, int, int] | None = None) -> None:
        """Send ``sig`` to process ``pid`` (kill): the running one acts as :meth:`deliver`
        does; another is killed by a fatal default action, or the signal pends for it and
        wakes a thread of it that waits (its system call runs again after the handler)."""
        if pid == self.pid:
            if sender is not None and sig:
                self.s.sigsenders[sig] = sender
            self.deliver(sig, code)
            return
        st = self.state_of(pid)
        if st is None or not sig:
            return
        if sig == abi.SIGCONT:
            self._continue(st)
        elif sig in abi.STOP_SIGNALS:
            st.sigpending &= ~(1 << (abi.SIGCONT - 1))
        act = _sigaction_of(st, sig)
        bit = 1 << (sig - 1)
        waiter = next((t for t in st.threads.values()
                       if t.wait == "sigwait" and t.bitset & bit), None)
        if waiter is not None:  # sigtimedwait takes it (it blocks what it waits for)
            st.sigpending |= bit
            st.sigcodes[sig] = code
            st.sigsenders[sig] = sender or (self.pid, self.s.ids[2], 0)
            self._wake_sigwaiters(st, sig)
            return
        # Blocked by every thread: pending (never ignored: the action may change before a
        # thread unblocks it, as Linux's sig_ignored says).
        blocked = sig not in (abi.SIGKILL, abi.SIGSTOP) and bool(st.threads) and all(
            t.sigmask & bit for t in st.threads.values())
        if sig not in (abi.SIGKILL, abi.SIGSTOP) and not blocked and (
                act.handler == abi.SIG_IGN
                or (act.handler == abi.SIG_DFL and sig in abi.DEFAULT_IGNORED)):
            return
        if act.handler == abi.SIG_DFL or sig in (abi.SIGKILL, abi.SIGSTOP):
            if blocked or sig != abi.SIGKILL and st.stopped:
                # Acted on when a thread lets it through; after SIGCONT if the process is
                # stopped (only SIGKILL acts on a stopped process).
                st.sigpending |= bit
                st.sigcodes[sig] = code
                st.sigsenders[sig] = sender or (self.pid, self.s.ids[2], 0)
                return
            if sig in abi.STOP_SIGNALS:
                if self._stops(st, sig):
                    self._stop(st, sig)
                return
            if pid == (self.s.root_pid or self.pid):
                self._machine.request_kill(sig)  # the first process dies: the run ends
                return
            self._end_other(pid, sig)
            return
        st.sigpending |= bit
        st.sigcodes[sig] = code
        st.sigsenders[sig] = sender or (self.pid, self.s.ids[2], 0)
        for t in sorted(st.threads.values(), key=lambda t: t.seq):
            woken = self.woken_by(t, sig, act)
            if woken is not None:
                st.threads[t.tid] = woken
                break

    # -- stopped processes (docs/linux.md, Stopped processes) ----------------------------------
    def _stops(self, st: ProcessState, sig: int) -> bool:
        """Whether the default action of stop signal ``sig`` stops process ``st``: SIGSTOP
        always; SIGTSTP, SIGTTIN and SIGTTOU not in an orphaned process group, where Linux
        discards them (nobody in the session could continue the job)."""
        return sig == abi.SIGSTOP or not self.orphaned_group(st.pgid or st.ids[0])

    def orphaned_group(self, pgid: int, gone: ProcessState | None = None) -> bool:
        """Whether process group ``pgid`` is orphaned (POSIX): no member but ``gone`` has
        its parent in another group of the same session. The first process's parent is the
        program that started syxdbg (a shell's job: another group of the session); a
        process given to init (pid 1, outside the tree) has no such parent."""
        root = self.s.root_pid or self.pid
        for st in self.all_states():
            if st is gone or (st.pgid or st.ids[0]) != pgid:
                continue
            if st.ids[0] == root:
                return False
            parent = self.state_of(st.ids[1])
            if parent is not None and (parent.pgid or parent.ids[0]) != pgid \
                    and (parent.sid or parent.ids[0]) == (st.sid or st.ids[0]):
                return False
        return True

    def _stop(self, st: ProcessState, sig: int) -> None:
        """Process ``st`` stops (a stop signal's default action): none of its threads runs
        until SIGCONT or a fatal signal; its parent's wait (WUNTRACED) and SIGCHLD
        (CLD_STOPPED) learn it. The running process gives the CPU up at the end of the
        system call (LinuxKernel._schedule)."""
        st.sigpending &= ~(1 << (abi.SIGCONT - 1))
        if st.stopped:
            return
        st.stopped = st.job_event = sig
        self._tell_parent(st, abi.CLD_STOPPED, sig)

    def _continue(self, st: ProcessState) -> None:
        """SIGCONT reaches ``st`` (whatever its disposition or mask): its pending stop
        signals are dropped and, if it was stopped, its threads run again; its parent's
        wait (WCONTINUED) and SIGCHLD (CLD_CONTINUED) learn it."""
        st.sigpending &= ~abi.STOP_MASK
        if not st.stopped:
            return
        st.stopped, st.job_event = 0, -1
        self._tell_parent(st, abi.CLD_CONTINUED, abi.SIGCONT)

    def _tell_parent(self, st: ProcessState, code: int, sig: int) -> None:
        """A child stopped or continued: its parent's waits run again and it gets SIGCHLD,
        unless its SIGCHLD action has SA_NOCLDSTOP."""
        parent = self.state_of(st.ids[1])
        if parent is None or parent is st:
            return
        self._wake_child_waiters(parent)
        if not _sigaction_of(parent, abi.SIGCHLD).flags & SA_NOCLDSTOP:
            self.signal_process(parent.ids[0], abi.SIGCHLD, code,
                                sender=(st.ids[0], st.ids[2], sig))

    def _wake_child_waiters(self, parent: ProcessState) -> None:
        """The threads of ``parent`` waiting in wait4/waitid make their call again."""
        for t in list(parent.threads.values()):
            if t.wait == "child":
                self.s.seq += 1
                parent.threads[t.tid] = replace(t, wait="", seq=self.s.seq, again="child")

    def _hang_up_orphaned(self, st: ProcessState, children: list[ProcessState]) -> None:
        """Process ``st`` ends (its ``children`` given to a reaper already): a process group
        its end orphans that has a stopped member gets SIGHUP, then SIGCONT (POSIX; Linux's
        exit does it for the group of ``st`` and those of its children)."""
        gid, sid = st.pgid or st.ids[0], st.sid or st.ids[0]
        groups = set()
        parent = self.state_of(st.ids[1])
        if parent is not None and (parent.pgid or parent.ids[0]) != gid \
                and (parent.sid or parent.ids[0]) == sid:
            groups.add(gid)  # it was its group's link to the session
        for child in children:
            group = child.pgid or child.ids[0]
            if group != gid and (child.sid or child.ids[0]) == sid:
                groups.add(group)
        for group in sorted(groups):
            members = [o for o in self.all_states()
                       if o is not st and (o.pgid or o.ids[0]) == group]
            if any(o.stopped for o in members) and self.orphaned_group(group, gone=st):
                pids = [o.ids[0] for o in members]
                for sig in (abi.SIGHUP, abi.SIGCONT):
                    for member in pids:
                        self.signal_process(member, sig, sigframe.SI_KERNEL)

    def woken_by(self, t: Thread, sig: int, act: sigframe.SigAction) -> Thread | None:
        """Thread ``t`` (not running) as a signal ``sig`` with action ``act`` leaves it, or
        None if the signal does not wake it (it blocks it, or does not wait). A futex wait,
        pause or sigsuspend returns EINTR; a call that runs again when woken (a read, wait4,
        poll: "pipe", "child", or such a call already woken but not yet run) returns EINTR
        past its system call instruction, or with SA_RESTART runs again; the handler runs
        first (LinuxKernel._schedule)."""
        bit = 1 << (sig - 1)
        mask = t.suspend_mask if t.wait == "signal" else t.sigmask
        if mask & bit or not (t.wait in ("pipe", "child", "futex", "signal") or t.again):
            return None
        self.s.seq += 1
        woken = replace(t, wait="", futex=0, fd=-1, timeout=-1, seq=self.s.seq, again="",
                        result=-errno.EINTR if t.wait in ("futex", "signal") else t.result)
        if (t.wait in ("pipe", "child") or t.again) and not act.flags & sigframe.SA_RESTART:
            regs = dict(t.regs)
            pc = self._machine.arch.pc
            back = 2 if self.arch == "arm" and regs.get("cpsr", 0) & 0x20 else \
                4 - self._gap if self.arch != "arm" else 4
            woken = replace(woken, result=-errno.EINTR, regs=tuple(
                (n, v + back if n == pc else v) for n, v in t.regs))
        return woken

    def wait_child(self, which: int, options: int) -> tuple[int, int] | None:
        """wait4's and waitid's search among the children matching ``which`` (-1 any, >0
        that pid, 0 the caller's group, < -1 that group): the lowest pid with something
        ``options`` asks for, as (pid, wait status): an exit (WEXITED: the zombie, reaped
        unless WNOWAIT), a stop (WUNTRACED) or a continue (WCONTINUED) not reported yet
        (reported once, unless WNOWAIT); (0, 0) with WNOHANG when none has; None when the
        caller must wait (it makes the call again when a child ends, stops or continues).
        ECHILD when no child matches."""
        me = self.pid
        mygroup = self.s.pgid or me

        def matches(pid: int, pgid: int) -> bool:
            if which > 0:
                return pid == which
            if which == 0:
                return pgid == mygroup
            if which < -1:
                return pgid == -which
            return True

        zombies = [z for z in self.s.zombies.values() if z.ppid == me and matches(z.pid, z.pgid)]
        live = [e.state for e in self.s.procs.values()
                if e.state.ids[1] == me and matches(e.state.ids[0],
                                                    e.state.pgid or e.state.ids[0])]
        if not zombies and not live:
            raise SyscallError(errno.ECHILD)
        found = [(z.pid, z.status) for z in zombies] if options & abi.WEXITED else []
        for st in live:
            if st.job_event > 0 and st.stopped and options & abi.WUNTRACED:
                found.append((st.ids[0], st.job_event << 8 | abi.WSTOPPED_LOW))
            elif st.job_event < 0 and not st.stopped and options & abi.WCONTINUED:
                found.append((st.ids[0], abi.WAIT_CONTINUED))
        if found:
            pid, status = min(found)
            if not options & abi.WNOWAIT:
                if pid in self.s.zombies:
                    del self.s.zombies[pid]
                else:
                    child = self.state_of(pid)
                    assert child is not None
                    child.job_event = 0
            return pid, status
        if options & abi.WNOHANG:
            return 0, 0
        self._want = ("child", 0, 0, -1)
        return None

    def set_pgid(self, pid: int, pgid: int) -> None:
        """setpgid: ``pid`` (0: the caller; itself or a child) joins or makes group ``pgid``
        (0: its pid)."""
        target = pid or self.pid
        st = self.state_of(target)
        if st is None or (target != self.pid and st.ids[1] != self.pid):
            raise SyscallError(errno.ESRCH)
        if pgid < 0:
            raise SyscallError(errno.EINVAL)
        pgid = pgid or target
        if pgid != target and not any((o.pgid or o.ids[0]) == pgid
                                      for o in self.all_states()):
            raise SyscallError(errno.EPERM)
        st.pgid = pgid

    def group_members(self, pgid: int) -> list[int]:
        """The live processes of group ``pgid``."""
        return sorted(o.ids[0] for o in self.all_states() if (o.pgid or o.ids[0]) == pgid)

    def _exec_path(self, path: bytes) -> bytes:
        """The host file a guest path names for execve: /proc/self/exe (busybox runs its
        applets so) is the running program, never the host's own."""
        full = os.path.normpath(self.resolve(abi.AT_FDCWD, path))
        if full in (b"/proc/self/exe", b"/proc/thread-self/exe",
                    b"/proc/%d/exe" % self.pid):
            return self.s.image_path
        return self.in_sysroot(full)

    def execve(self, path: bytes, argv: list[bytes], envp: list[bytes]) -> None:
        """Replace the running process's program with the one at guest ``path`` (absolute
        or relative to the cwd): ``#!`` scripts run their interpreter. The bytes come
        through the host boundary (an event-log input). Errors leave the process as it was."""
        from syxdbg.errors import LoadError
        from syxdbg.loader import load_elf

        host_path = self._exec_path(path)
        data = self.host.read_program(host_path)
        for _ in range(4):  # nested interpreters, as Linux allows a few
            if not data.startswith(b"#!"):
                break
            line = data[2:].split(b"\n", 1)[0].strip()
            if not line:
                raise SyscallError(errno.ENOEXEC)
            interp, _, arg = line.replace(b"\t", b" ").partition(b" ")
            argv = [interp, *([arg.strip()] if arg.strip() else []), path, *argv[1:]]
            path = interp
            host_path = self._exec_path(interp)
            data = self.host.read_program(host_path)
        if not data.startswith(b"\x7fELF"):
            raise SyscallError(errno.ENOEXEC)
        programs = {host_path: data}

        def opener(name: str) -> BinaryIO:
            key = os.fsencode(name)
            if key not in programs:
                try:
                    programs[key] = self.host.read_program(key)
                except OSError:
                    raise LoadError(f"{name}: no such file") from None
            return io.BytesIO(programs[key])

        machine = self._machine
        s = self.s
        saved_layout = self.mem.regions()
        saved_cpu = self.cpu_values()
        self.mem.restore_layout([])
        regs = machine.regs
        for info, (_, value) in zip(machine.arch.registers, self._pristine, strict=True):
            regs.write_info(info, value)
        image_sysroot = os.fsdecode(s.sysroot) if s.sysroot else None
        try:
            image = load_elf(machine, os.fsdecode(host_path), [os.fsdecode(a) for a in argv],
                             [os.fsdecode(e) for e in envp], random_bytes=self.host.random(16),
                             sysroot=image_sysroot, opener=opener)
        except LoadError:
            self.mem.restore_layout(saved_layout)
            for info, (_, value) in zip(machine.arch.registers, saved_cpu, strict=True):
                regs.write_info(info, value)
            raise SyscallError(errno.ENOEXEC) from None
        machine.code_restored(everything=True)
        # The system call returns into the new program: on x86 the CPU steps past the
        # syscall instruction from rip, so rip goes that far before the entry.
        regs.pc = (int(regs.pc) - self._gap) & abi.MASK64
        # Keyed by the position of the exec: a re-execution of it (going back and forward
        # again) gives the same key, so states compare equal.
        key = self._machine.position
        self.images[key] = image
        s.image_key = key
        s.image_path = host_path
        s.threads = {}
        s.tid = 0
        s.brk_start = s.brk = image.brk
        s.exec_layout = _exec_layout(self.mem, image.initial_sp)
        s.mappings = []
        self._map_image(image)
        s.sigtramp = 0
        s.altstack = b""
        s.tid_address, s.robust_list = 0, (0, 0)
        for sig in list(s.sigactions):
            if self.sigaction(sig).handler != abi.SIG_IGN:
                del s.sigactions[sig]
        for fd, entry in sorted(s.fds.items()):
            if entry.cloexec:
                self.close_fd(fd)
        self._release_vfork()
        for observer in list(self.exec_observers):
            observer(self.pid, host_path)
        for event in self.event_observers:  # (gdb's exec events)
            event("exec", self.pid, self.tid, 0)

    # -- threads (the kernel switches after the system call: see LinuxKernel._schedule) --------
    @property
    def tid(self) -> int:
        """The calling thread's id (the main thread's is the pid)."""
        return self.s.tid or self.s.ids[0]

    def thread_ids(self) -> list[int]:
        return sorted([self.tid, *self.s.threads])

    def has_thread(self, tid: int) -> bool:
        return tid == self.tid or tid in self.s.threads

    def cpu_values(self) -> tuple[tuple[str, int], ...]:
        """The calling thread's registers, by name (see :attr:`Thread.regs`)."""
        return self._machine.regs.read_all()

    def _child_registers(self, stack: int, tls: int | None) -> tuple[tuple[str, int], ...]:
        """A new thread's or process's registers (clone, fork): the caller's, with 0 as the
        system call's result, ``stack`` as the stack pointer (0: the caller's) and ``tls``
        as the thread pointer (None: the caller's)."""
        arch = self._machine.arch
        values = dict(self.cpu_values())
        values[arch.syscall.ret] = 0
        if stack:
            values[arch.sp] = stack
        if tls is not None:
            values[TLS_REGISTER[arch.name]] = tls
        return tuple(values.items())

    def spawn_thread(self, stack: int, tls: int | None, clear_tid: int) -> int:
        """A new thread (clone with CLONE_THREAD): the caller's registers with 0 as the
        system call's result, ``stack`` as its stack pointer (0: the caller's) and ``tls``
        as its thread pointer; it waits in the run queue. Returns its tid."""
        s = self.s
        if not s.next_tid:
            s.next_tid = s.ids[0] + 1
        tid = s.next_tid
        s.next_tid += 1
        s.seq += 1
        s.threads[tid] = Thread(tid, self._child_registers(stack, tls), sigmask=s.sigmask,
                                tid_address=clear_tid, seq=s.seq)
        return tid

    def block(self, futex: int, bitset: int, timeout: int) -> None:
        """The calling thread waits on ``futex`` (woken by :meth:`futex_wake`)."""
        self._want = ("futex", futex, bitset, timeout)

    def yield_cpu(self) -> None:
        """Let another runnable thread run (sched_yield, sleeps)."""
        if self.s.threads and self._want is None:
            self._want = ("yield", 0, 0, -1)

    def pipe_read(self, f: OpenFile, fd: int) -> str:
        """Before a read of ``f`` (as guest ``fd``): ``"read"`` (read the host fd), ``"eof"``
        (an empty guest pipe whose write end the guest closed: the host's stays open in the
        retired pool, so the host read would block) or ``"wait"`` (an empty pipe still open
        for writing: the calling thread waits, the handler returns None; it is woken when a
        thread writes or closes a file (:data:`PIPE_WAKERS`) and makes the call again; if no
        other thread can run, that is a deadlock)."""
        if f.kind != "pipe" or f.path is not None or f.host_fd < 0 \
                or not self.s.pipe_checks or f.flags & abi.O_NONBLOCK \
                or self.host.readable(f.host_fd):
            return "read"
        if self.pipe_writer_closed(f):
            return "eof"
        self._want = ("pipe", fd, 0, -1)
        return "wait"

    def pipe_writer_closed(self, f: OpenFile) -> bool:
        """Whether ``f``, the read end of a pipe the guest made, has lost its write end in
        the guest (the host's is kept open in the retired pool for restores)."""
        if f.kind != "pipe" or f.path is not None or f.flags & 3 != 0:
            return False
        writer = self.s.files.get(f.id + 1)  # _pipe makes the write end right after
        return writer is None or writer.kind != "pipe" or writer.path is not None \
            or writer.flags & 3 != 1

    def is_guest_pipe_writer(self, f: OpenFile) -> bool:
        """Whether ``f`` is the write end of a pipe the guest made (see :meth:`pipe_write`)."""
        return f.kind == "pipe" and f.path is None and f.host_fd >= 0 \
            and self.s.pipe_checks and f.flags & 3 == 1

    def pipe_write(self, f: OpenFile, fd: int, data: bytes) -> int | None:
        """Write ``data`` to ``f``, the write end of a guest pipe (as guest ``fd``): the
        bytes written. No process has the read end any more: EPIPE and SIGPIPE (the host's
        read end stays open in the retired pool, so the host would take the bytes). No room:
        None, the calling thread waits and makes the call again after a read (EAGAIN with
        O_NONBLOCK); a write of at most PIPE_BUF bytes is whole or waits, a longer one
        writes what fits (stdio writes the rest). The host never blocks."""
        reader = self.s.files.get(f.id - 1)  # _pipe makes the read end right before
        if reader is None or reader.kind != "pipe" or reader.path is not None \
                or reader.flags & 3 != 0:
            self.deliver(abi.SIGPIPE)
            raise SyscallError(errno.EPIPE)
        n = self.host.write_nowait(f.host_fd, data)
        if n >= 0:
            return n
        if f.flags & abi.O_NONBLOCK:
            raise SyscallError(errno.EAGAIN)
        self._want = ("pipe", fd, 0, -1)
        return None

    def wait_io(self, fd: int, timeout: int = -1) -> None:
        """The calling thread waits as for an empty pipe (poll with nothing ready): it makes
        the system call again after a thread writes or closes a file; ``timeout`` (ns, -1:
        none) expires in virtual time as a futex wait's, and the call then returns 0."""
        self._want = ("pipe", fd, 0, timeout)

    def wake_pipe_readers(self) -> None:
        for st in self.all_states():
            for t in sorted(st.threads.values(), key=lambda t: t.seq):
                if t.wait == "pipe":
                    self.s.seq += 1
                    st.threads[t.tid] = replace(t, wait="", fd=-1, timeout=-1, seq=self.s.seq,
                                                again="pipe")

    def exit_thread(self, status: int) -> None:
        """The calling thread ends (``exit``); the last one ends the process."""
        if not self.s.threads:
            self.exit(status)
            return
        if self.s.tid_address:
            with contextlib.suppress(MemoryAccessError):
                self.mem.write(self.s.tid_address, bytes(4))
                self.futex_wake(self.s.tid_address, 1)
        self._robust_exit()
        self._want = ("exit", 0, 0, -1)

    def futex_waiters(self, futex: int, bitset: int = 0xFFFFFFFF) -> list[Thread]:
        """Threads waiting on ``futex`` (with a common bit in ``bitset``), oldest first."""
        return sorted((t for t in self.s.threads.values()
                       if t.wait == "futex" and t.futex == futex and t.bitset & bitset),
                      key=lambda t: t.seq)

    def futex_wake(self, futex: int, count: int, bitset: int = 0xFFFFFFFF) -> int:
        """Wake up to ``count`` waiters of ``futex`` (their wait returns 0)."""
        woken = 0
        for t in self.futex_waiters(futex, bitset)[:max(count, 0)]:
            self.s.seq += 1
            self.s.threads[t.tid] = replace(t, wait="", futex=0, timeout=-1, seq=self.s.seq,
                                            result=0)
            woken += 1
        return woken

    def futex_requeue(self, futex: int, to: int, count: int) -> int:
        """Move up to ``count`` waiters of ``futex`` to wait on ``to``."""
        moved = 0
        for t in self.futex_waiters(futex)[:max(count, 0)]:
            self.s.threads[t.tid] = replace(t, futex=to)
            moved += 1
        return moved

    def _robust_exit(self) -> None:
        """The exiting thread's robust mutexes (set_robust_list) get FUTEX_OWNER_DIED and
        one waiter each is woken, as Linux's exit_robust_list does."""
        head, _ = self.s.robust_list
        if not head:
            return
        tid = self.tid
        try:
            entry, offset, pending = struct.unpack("<QqQ", self.mem.read(head, 24))
        except MemoryAccessError:
            return

        def release(entry: int) -> None:
            addr = (entry & ~1) + offset
            try:
                val = struct.unpack("<I", self.mem.read(addr, 4))[0]
            except MemoryAccessError:
                return
            if val & abi.FUTEX_TID_MASK != tid:
                return
            self.mem.write(addr, struct.pack("<I", (val & abi.FUTEX_WAITERS)
                                             | abi.FUTEX_OWNER_DIED))
            if val & abi.FUTEX_WAITERS:
                self.futex_wake(addr, 1)

        seen = 0
        while entry & ~1 != head and entry and seen < abi.ROBUST_LIST_LIMIT:
            nxt = entry
            try:
                nxt = struct.unpack("<Q", self.mem.read(entry & ~1, 8))[0]
            except MemoryAccessError:
                break
            if entry != pending:
                release(entry)
            entry = nxt
            seen += 1
        if pending:
            release(pending)

    # -- warnings ---------------------------------------------------------------------------
    def warn(self, text: str) -> None:
        # Through the host boundary: a replayed syscall does not warn a second time.
        self.host.warn(text, self.warn_stream if self.warn_stream is not None else sys.stderr)

    def warn_once(self, key: int, text: str) -> None:
        """Warn unless warned under ``key`` before (the set is snapshotted)."""
        if key not in self.s.warned:
            self.s.warned.add(key)
            self.warn(text)

    # -- files ------------------------------------------------------------------------------
    def new_file(self, kind: str, path: bytes | None, flags: int, host_fd: int, *,
                 owned: bool = True, data: bytes | None = None) -> OpenFile:
        """A new open file description (not yet in the fd table: see :meth:`install_fd`)."""
        f = OpenFile(self.s.next_file_id, kind, path, flags, host_fd, owned, data=data)
        self.s.next_file_id += 1
        if owned and host_fd >= 0 and self._retired:
            # A replayed open returns the host fd the live open got, which a restore may
            # have parked in the retired pool: it is in use again, never close it from there.
            for fid in [fid for fid, h in self._retired.items() if h == host_fd]:
                del self._retired[fid]
        self.s.files[f.id] = f
        return f

    def lowest_free_fd(self, minimum: int = 0) -> int:
        fd = minimum
        while fd in self.s.fds:
            fd += 1
        limit = self.s.rlimits[abi.RLIMIT_NOFILE][0]
        if fd >= limit:
            raise SyscallError(errno.EMFILE)
        return fd

    def install_fd(self, f: OpenFile, *, cloexec: bool = False, fd: int | None = None) -> int:
        num = self.lowest_free_fd() if fd is None else fd
        self.s.fds[num] = FdEntry(f.id, cloexec)
        return num

    def set_cloexec(self, fd: int, cloexec: bool) -> None:
        self.s.fds[fd] = FdEntry(self.s.fds[fd].file, cloexec)

    def file(self, fd: int) -> OpenFile:
        """The open description behind guest ``fd`` (EBADF if none)."""
        entry = self.s.fds.get(fd)
        if entry is None:
            raise SyscallError(errno.EBADF)
        return self.s.files[entry.file]

    def host_fd(self, fd: int) -> int:
        f = self.file(fd)
        if f.host_fd < 0:
            raise SyscallError(errno.EBADF)
        return f.host_fd

    def close_fd(self, fd: int) -> None:
        entry = self.s.fds.pop(fd, None)
        if entry is None:
            raise SyscallError(errno.EBADF)
        self._drop_file(entry.file)

    def _drop_file(self, fid: int) -> None:
        """An fd of description ``fid`` was closed: the description goes when no fd of any
        process refers to it any more."""
        for st in self.all_states():
            if any(e.file == fid for e in st.fds.values()):
                return
        f = self.s.files.pop(fid)
        if f.kind == "socket" and f.host_fd >= 0:  # the peer sees the end now (net.py)
            with contextlib.suppress(OSError):
                self.host.shutdown(f.host_fd, 2)
        if f.owned and f.host_fd >= 0:
            self._retired[f.id] = f.host_fd
            self._trim_retired()

    def dup_fd(self, old: int, new: int | None, cloexec: bool, minimum: int = 0) -> int:
        entry = self.s.fds.get(old)
        if entry is None:
            raise SyscallError(errno.EBADF)
        if new is None:
            new = self.lowest_free_fd(minimum)
        elif new in self.s.fds:
            if new == old:
                return new
            self.close_fd(new)
        self.s.fds[new] = FdEntry(entry.file, cloexec)
        return new

    def _trim_retired(self) -> None:
        while len(self._retired) > RETIRED_POOL:
            _, hfd = self._retired.popitem(last=False)
            self._host_close(hfd)

    def _host_close(self, hfd: int) -> None:
        with contextlib.suppress(OSError):
            self.host.close(hfd)

    def close_all(self) -> None:
        """Close every host fd this process opened (session teardown)."""
        for f in self.s.files.values():
            if f.owned and f.host_fd >= 0:
                self._host_close(f.host_fd)
            f.host_fd = -1
        for hfd in self._retired.values():
            self._host_close(hfd)
        self._retired.clear()
        self.s.files.clear()
        self.s.fds.clear()

    # -- paths --------------------------------------------------------------------------------
    def read_path(self, ptr: int) -> bytes:
        if ptr == 0:
            raise SyscallError(errno.EFAULT)
        path = self.mem.read_cstring(ptr, 4097)
        if len(path) > 4095:
            raise SyscallError(errno.ENAMETOOLONG)
        return path

    def in_sysroot(self, path: bytes) -> bytes:
        """Absolute guest ``path`` as the host sees it: under the sysroot if it exists there,
        else the host's own (qemu-user's ``-L`` rule). No sysroot: ``path`` itself."""
        root = self.s.sysroot
        if not root or not path.startswith(b"/"):
            return path
        candidate = root.rstrip(b"/") + path
        try:
            self.host.stat(candidate)
        except OSError:
            return path
        return candidate

    def guest_path(self, host_path: bytes) -> bytes:
        """The guest's name of a host path (a path under the sysroot loses its prefix)."""
        root = self.s.sysroot.rstrip(b"/")
        if root and host_path.startswith(root + b"/"):
            return host_path[len(root):]
        return host_path

    def _map_image(self, image: Any) -> None:
        """Note the program's and its interpreter's segments as private file mappings (their
        file offsets show in /proc/self/maps)."""
        private = abi.MAP_PRIVATE
        name = os.path.basename(image.path)
        for seg in image.segments:
            start = seg.start & ~(PAGE - 1)
            self.add_mapping(start, page_round_up(seg.end), _prot(seg.perms), private, name,
                             offset=seg.file_offset & ~(PAGE - 1))
        for seg in getattr(image, "interp_segments", ()):
            start = seg.start & ~(PAGE - 1)
            self.add_mapping(start, page_round_up(seg.end), _prot(seg.perms), private,
                             image.interp, offset=seg.file_offset & ~(PAGE - 1))

    def resolve(self, dirfd: int, path: bytes) -> bytes:
        """The host path of guest ``path`` relative to ``dirfd`` (AT_FDCWD: the cwd)."""
        if not path:
            raise SyscallError(errno.ENOENT)
        if path.startswith(b"/"):
            return path
        if dirfd == abi.AT_FDCWD:
            base = self.s.cwd
        else:
            f = self.file(dirfd)
            if f.kind != "dir" or f.path is None:
                raise SyscallError(errno.ENOTDIR)
            base = f.path
        return os.path.join(base, path)

    # -- memory -------------------------------------------------------------------------------
    def writable_extent(self, addr: int, size: int) -> int:
        """How many bytes from ``addr`` (at most ``size``) are mapped (EFAULT if none)."""
        if size == 0:
            return 0
        n = 0
        pos = addr
        while n < size:
            r = self.mem.find(pos)
            if r is None:
                break
            step = min(size - n, r.end - pos)
            n += step
            pos += step
        if n == 0:
            raise SyscallError(errno.EFAULT)
        return n

    def mapped_files(self) -> list[tuple[str, bytes]]:
        """The files mapped executable now, each once in address order: (guest path, host
        path). Read-only (a recording stores them)."""
        out: dict[str, bytes] = {}
        for m in self.s.mappings:
            if m.prot & abi.PROT_EXEC and m.name.startswith("/") and m.name not in out:
                out[m.name] = self.in_sysroot(os.fsencode(m.name))
        return list(out.items())

    def add_mapping(self, start: int, end: int, prot: int, flags: int, name: str, *,
                    offset: int = 0, clean: int | None = None) -> None:
        self.remove_mappings(start, end)
        self.s.mappings.append(Mapping(start, end, prot, flags, name, offset, clean))
        self.s.mappings.sort(key=lambda m: m.start)

    def remove_mappings(self, start: int, end: int,
                        change: Callable[[Mapping], Mapping | None] | None = None) -> None:
        """Carve ``[start, end)`` out of the bookkeeping (or apply ``change`` to it)."""
        out: list[Mapping] = []
        for m in self.s.mappings:
            if m.end <= start or m.start >= end:
                out.append(m)
                continue
            if m.start < start:
                out.append(m.part(m.start, start))
            mid = m.part(max(m.start, start), min(m.end, end))
            if change is not None:
                changed = change(mid)
                if changed is not None:
                    out.append(changed)
            if m.end > end:
                out.append(m.part(end, m.end))
        out.sort(key=lambda m: m.start)
        self.s.mappings = out

    def clean_copy(self, addr: int, size: int, file: int, offset: int) -> bytes | None:
        """The bytes of open file ``file`` at ``offset`` for ``size`` bytes if one clean
        mapping of it (see :attr:`Mapping.clean`) holds all of them at ``addr``, else None
        (always None for states saved before this existed: their replays read again)."""
        if not self.s.reuse_clean_maps:
            return None
        for m in self.s.mappings:
            if m.start <= addr < m.end:
                if m.clean == file and addr + size <= m.end and \
                        m.offset + (addr - m.start) == offset:
                    return self.mem.read(addr, size)
                return None
        return None

    def soil(self, addr: int, size: int) -> None:
        """Memory in ``[addr, addr+size)`` may no longer be its file's bytes."""
        self.remove_mappings(addr, addr + size,
                             lambda m: replace(m, clean=None) if m.clean else m)

    def map_fresh(self, size: int, prot: int, name: str, hint: int = 0) -> int:
        """Map ``size`` bytes at ``hint`` if free, else top-down below mmap_base."""
        size = page_round_up(size)
        if hint and hint % PAGE == 0 and hint + size <= self.mmap_base and \
                not self.overlaps(hint, size):
            addr = hint
        else:
            addr = self.mem.find_free(size, below=self.mmap_base)
        self.mem.map(addr, size, Perm(prot & 7), name)
        return addr

    def mapped_bytes(self) -> int:
        """Bytes of guest memory mapped now (what the memory limit counts)."""
        return sum(r.size for r in self.mem.regions())

    def charge(self, grow: int) -> None:
        """ENOMEM if ``grow`` more bytes of guest memory would pass the memory limit."""
        limit = self.s.memory_limit
        if limit and grow > 0 and self.mapped_bytes() + grow > limit:
            raise SyscallError(errno.ENOMEM)

    def mapped_in(self, addr: int, size: int) -> int:
        """Bytes of ``[addr, addr+size)`` that are mapped."""
        end = addr + size
        return sum(max(0, min(r.end, end) - max(r.start, addr)) for r in self.mem.regions())

    def overlaps(self, addr: int, size: int) -> bool:
        return any(r.start < addr + size and addr < r.end for r in self.mem.regions())

    # -- signals ------------------------------------------------------------------------------
    def deliver(self, sig: int, code: int = sigframe.SI_USER) -> None:
        """A signal is raised at the process (``code``: how, for the handler's siginfo):
        pend it if blocked, else act on it. A thread waiting for it in sigtimedwait wakes."""
        self.s.sigcodes[sig] = code
        if sig == abi.SIGCONT:
            self._continue(self.s)
        elif sig in abi.STOP_SIGNALS:
            self.s.sigpending &= ~(1 << (abi.SIGCONT - 1))
        self._wake_sigwaiters(self.s, sig)
        if self.s.sigmask & (1 << (sig - 1)) and sig not in (abi.SIGKILL, abi.SIGSTOP):
            self.s.sigpending |= 1 << (sig - 1)
            return
        self._act(sig)

    def sigaction(self, sig: int) -> sigframe.SigAction:
        """The action for ``sig`` (SIG_DFL, no flags, when none was ever set)."""
        raw = self.s.sigactions.get(sig)
        return sigframe.SigAction.unpack(raw) if raw else sigframe.SigAction(abi.SIG_DFL, 0,
                                                                             0, 0)

    def _act(self, sig: int) -> None:
        handler = self.sigaction(sig).handler
        if handler == abi.SIG_IGN and sig not in (abi.SIGKILL, abi.SIGSTOP):
            return
        if handler == abi.SIG_DFL or sig in (abi.SIGKILL, abi.SIGSTOP):
            if sig in abi.STOP_SIGNALS:
                if self._stops(self.s, sig):
                    self._stop(self.s, sig)  # (it stops at the end of the system call)
            elif sig not in abi.DEFAULT_IGNORED and (
                    self.signal_gate is None or self.signal_gate(self.pid, self.tid, sig)):
                self.kill_self(sig)  # (unless gdb discards it: its signal stops)
            return
        # A guest handler: it runs when the current system call returns (run_handlers).
        self.s.sigpending |= 1 << (sig - 1)

    def deliver_pending(self) -> None:
        ready = self.s.sigpending & ~self.s.sigmask
        for sig in range(1, abi.NSIG + 1):
            if ready & (1 << (sig - 1)):
                self.s.sigpending &= ~(1 << (sig - 1))
                self._act(sig)

    def run_handlers(self, *, in_syscall: bool = True) -> None:
        """At the return of a system call (or between two instructions: ``in_syscall``
        False, the position timer): push a signal frame for every pending, unblocked signal
        that has a guest handler, lowest number first, each handler's mask applied before
        the next (nested frames, as Linux's exit to user mode delivers them)."""
        s = self.s
        while ready := s.sigpending & ~s.sigmask:
            sig = (ready & -ready).bit_length()
            bit = 1 << (sig - 1)
            s.sigpending &= ~bit
            act = self.sigaction(sig)
            if act.handler in (abi.SIG_DFL, abi.SIG_IGN):
                self._act(sig)  # the disposition changed while it was pending
                continue
            code = s.sigcodes.pop(sig, sigframe.SI_USER)
            pid, uid, status = s.sigsenders.pop(sig, (self.pid, s.ids[2], 0))
            if self.signal_gate is not None and not self.signal_gate(self.pid, self.tid, sig):
                continue  # (discarded by gdb: its signal stops)
            info = sigframe.pack_siginfo(sig, code, pid, uid, self.arch, status)
            # The first frame after rt_sigsuspend restores the mask it replaced.
            old_mask = s.saved_mask if s.saved_mask >= 0 else s.sigmask
            s.saved_mask = -1
            try:
                sigframe.setup(self._machine, sig, act, info, old_mask, s.altstack,
                               self._sigtramp(), in_syscall=in_syscall)
            except sigframe.BadFrame:
                self.kill_self(signal.SIGSEGV)  # Linux's force_sigsegv
                return
            self._handler_mask(sig, act)

    def fault_to_handler(self, sig: int, address: int, detail: str) -> bool:
        """A synchronous signal (a fault of the instruction at pc): run the guest's handler
        for it, with a frame that resumes at the faulting instruction. False (the fault is
        fatal, as Linux's force_sig_fault makes it) when there is no handler, the signal is
        blocked or ignored, or the stack cannot take the frame."""
        s = self.s
        bit = 1 << (sig - 1)
        act = self.sigaction(sig)
        if act.handler in (abi.SIG_DFL, abi.SIG_IGN) or s.sigmask & bit:
            return False
        code = {signal.SIGSEGV: sigframe.SEGV_MAPERR if "unmapped" in detail
                else sigframe.SEGV_ACCERR, signal.SIGBUS: sigframe.BUS_ADRALN,
                signal.SIGFPE: sigframe.FPE_INTDIV,
                signal.SIGILL: sigframe.ILL_ILLOPN if self.arch == "x86_64"
                else sigframe.ILL_ILLOPC,
                signal.SIGTRAP: sigframe.TRAP_BRKPT}.get(signal.Signals(sig), 0)
        if self.signal_gate is not None:
            # gdb's signal stops (a negative number: a fault). Always given to the handler:
            # a discard would make the same fault, at the same position, again and again.
            self.signal_gate(self.pid, self.tid, -sig)
        info = sigframe.pack_fault_siginfo(sig, code, address, self.arch)
        try:
            sigframe.setup(self._machine, sig, act, info, s.sigmask, s.altstack,
                           self._sigtramp(), in_syscall=False)
        except sigframe.BadFrame:
            return False
        self._handler_mask(sig, act)
        return True

    def _handler_mask(self, sig: int, act: sigframe.SigAction) -> None:
        """What entering ``act``'s handler does to the mask and the disposition."""
        s = self.s
        if not act.flags & sigframe.SA_NODEFER:
            s.sigmask |= 1 << (sig - 1)
        s.sigmask = (s.sigmask | act.mask) & ~UNBLOCKABLE & abi.MASK64
        if act.flags & sigframe.SA_RESETHAND:
            s.sigactions[sig] = bytes(abi.SIGACTION_SIZE)

    # -- timers and waiting for a signal -------------------------------------------------------
    #: The timer is compared with the host clock at system call returns, once this many
    #: instructions or system calls have passed since the last comparison (each comparison
    #: is one recorded clock read): a deadline is seen within about a millisecond.
    ITIMER_CHECK_INSNS = 200_000
    ITIMER_CHECK_CALLS = 64

    def monotonic(self) -> int:
        """The host's CLOCK_MONOTONIC in ns (a recorded host input)."""
        return int(self.host.clock(time.CLOCK_MONOTONIC))  # Linux's clock id 1

    def arm_itimer(self, value: int, interval: int) -> None:
        """Set ITIMER_REAL to expire in ``value`` ns (0: disarm), then every ``interval``."""
        deadline = self.monotonic() + value if value else 0
        self.s.itimer_real = (deadline, interval if value else 0)
        self.s.itimer_checked = (self._machine.position, 0)
        self.arm_timer()

    def arm_timer(self) -> None:
        """Set the machine's position timer to the next clock comparison of an armed
        ITIMER_REAL, so a program that makes no system call gets its SIGALRM too (after a
        restore: from the restored state)."""
        preempt.arm(self, self._machine)  # the first of it and the time slice's end

    def _on_timer(self, machine: Machine) -> None:
        """The position timer, between two instructions: compare ITIMER_REAL with the clock
        and run a SIGALRM handler from here (no system call is returning)."""
        self.host.enter_syscall(machine.position)  # its clock read is a recorded input
        try:
            self.poll_itimer(machine.position, force=True)
        finally:
            self.host.leave_syscall()
        if self.s.sigpending & ~self.s.sigmask:
            self.run_handlers(in_syscall=False)

    def poll_itimer(self, position: int, *, force: bool = False) -> None:
        """At a system call return: raise SIGALRM if ITIMER_REAL's deadline has passed,
        reading the clock only every ITIMER_CHECK_INSNS instructions or ITIMER_CHECK_CALLS
        calls (or when ``force``d: a wait). Positions decide when it is read, so a replay
        reads it at the same points and gets the recorded values."""
        s = self.s
        deadline, interval = s.itimer_real
        if not self.timers_armed():
            return
        at, calls = s.itimer_checked
        if not force and position - at < self.ITIMER_CHECK_INSNS and \
                calls + 1 < self.ITIMER_CHECK_CALLS:
            s.itimer_checked = (at, calls + 1)
            return
        now = self.monotonic()
        s.itimer_checked = (position, 0)
        self._expire_timers(now)
        if deadline and now >= deadline:
            if interval:
                missed = (now - deadline) // interval + 1  # Linux folds overruns into one
                s.itimer_real = (deadline + missed * interval, interval)
            else:
                s.itimer_real = (0, 0)
            self.deliver(signal.SIGALRM, sigframe.SI_KERNEL)
        self.arm_timer()

    def timers_armed(self) -> bool:
        """Whether ITIMER_REAL or a POSIX timer is armed (the clock is then compared at
        system call returns and by the position timer)."""
        s = self.s
        return bool(s.itimer_real[0]) or any(t[3] for t in s.timers.values())

    def next_expiry(self, signals: int) -> tuple[int, int]:
        """The first (deadline in host CLOCK_MONOTONIC ns, signal) of a timer whose signal
        is one of ``signals`` (a set); (0, 0) if none is armed."""
        s = self.s
        out = [(t[3], t[1]) for t in s.timers.values()
               if t[3] and t[1] and signals >> (t[1] - 1) & 1]
        if s.itimer_real[0] and signals >> (signal.SIGALRM - 1) & 1:
            out.append((s.itimer_real[0], signal.SIGALRM))
        return min(out) if out else (0, 0)

    def _expire_timers(self, now: int) -> None:
        """POSIX timers whose deadline passed raise their signal (si_code SI_TIMER, the
        timer id and its overruns in the siginfo); periodic ones re-arm, counting missed
        periods as overruns as Linux does."""
        s = self.s
        for tid, (clock, sig, value, deadline, interval, _) in sorted(s.timers.items()):
            if not deadline or now < deadline:
                continue
            missed = (now - deadline) // interval if interval else 0
            next_deadline = deadline + (missed + 1) * interval if interval else 0
            s.timers[tid] = (clock, sig, value, next_deadline, interval, missed)
            if sig:
                self.deliver(sig, SI_TIMER)
                # siginfo of a timer: si_tid, si_overrun, si_value (the sender fields).
                s.sigsenders[sig] = (tid, missed, value & 0xFFFFFFFF)

    def set_posix_timer(self, tid: int, value: int, interval: int, *,
                        absolute: bool) -> tuple[int, int]:
        """timer_settime: arm timer ``tid`` to expire in ``value`` ns (at it on its clock,
        ``absolute``), then every ``interval`` ns; 0 disarms. Returns the old (remaining,
        interval)."""
        s = self.s
        clock, sig, sival, deadline, old_interval, _ = s.timers[tid]
        now = self.monotonic()
        old = (max(deadline - now, 1) if deadline else 0, old_interval)
        armed = value != 0
        if armed and absolute:
            value = max(value - self.host.clock(clock), 0)
        new_deadline = now + max(value, 1) if armed else 0
        s.timers[tid] = (clock, sig, sival, new_deadline, interval if armed else 0, 0)
        s.itimer_checked = (self._machine.position, 0)
        if armed and new_deadline <= now + 1:
            self._expire_timers(now + 1)  # already passed: it fires at this call's return
        self.arm_timer()
        return old

    def wait_for_signal(self, mask: int) -> int:
        """pause / rt_sigsuspend: wait with ``mask`` until a signal's handler runs; -EINTR.

        A pending signal the mask lets through ends the wait at once; else ITIMER_REAL's
        expiry, slept on the host as nanosleep does. With no timer and no other thread,
        nothing can ever send the signal: the process is reported as deadlocked."""
        s = self.s
        s.saved_mask, s.sigmask = s.sigmask, mask
        expiry, sig = self.next_expiry(~mask & abi.MASK64)
        if not s.sigpending & ~mask and expiry:
            left = expiry - self.monotonic()
            if left > 0:
                self.host.sleep(left)
            fatal = self.sigaction(sig).handler == abi.SIG_DFL and \
                sig not in abi.DEFAULT_IGNORED
            self.poll_itimer(self._machine.position, force=True)
            if fatal:  # the signal's default action: the process dies now
                return -errno.EINTR
        if s.sigpending & ~mask:
            return -errno.EINTR
        # Nothing this thread does can wake it now (another process or thread may signal
        # it: signal_process wakes it, and its handler runs with ``mask``).
        s.sigmask, s.saved_mask = s.saved_mask, -1
        self._want = ("signal", 0, mask, -1)
        return -errno.EINTR

    def take_signal(self, wanted: int) -> tuple[int, bytes] | None:
        """sigtimedwait's dequeue: the lowest pending signal of ``wanted`` and its siginfo
        (None if none is pending)."""
        s = self.s
        ready = s.sigpending & wanted
        if not ready:
            return None
        sig = (ready & -ready).bit_length()
        s.sigpending &= ~(1 << (sig - 1))
        code = s.sigcodes.pop(sig, sigframe.SI_USER)
        pid, uid, status = s.sigsenders.pop(sig, (self.pid, s.ids[2], 0))
        return sig, sigframe.pack_siginfo(sig, code, pid, uid, self.arch, status)

    def wait_for_signal_in(self, wanted: int, timeout: int) -> tuple[int, bytes] | None:
        """rt_sigtimedwait: a pending signal of ``wanted`` (see :meth:`take_signal`), or
        wait for one (None: the call runs again when one comes; ``timeout`` ns of virtual
        time, -1 for none, then EAGAIN). ITIMER_REAL's SIGALRM is slept for on the host."""
        got = self.take_signal(wanted)
        if got is not None:
            return got
        if timeout == 0:
            raise SyscallError(errno.EAGAIN)
        s = self.s
        expiry, _ = self.next_expiry(wanted)
        if expiry and not (s.threads or s.procs):
            left = expiry - self.monotonic()
            if timeout >= 0 and 0 < timeout < left:
                self.host.sleep(timeout)
                raise SyscallError(errno.EAGAIN)
            if left > 0:
                self.host.sleep(left)
            self.poll_itimer(self._machine.position, force=True)
            got = self.take_signal(wanted)
            if got is not None:
                return got
        self._want = ("sigwait", 0, wanted, timeout)
        return None

    def return_from_handler(self, *, rt: bool = True) -> None:
        """rt_sigreturn (sigreturn: ``rt`` False, arm): the registers and the mask saved in
        the frame at the stack pointer come back (SIGSEGV for a frame that cannot be read,
        as on Linux)."""
        try:
            mask = sigframe.restore(self._machine, rt=rt)
        except sigframe.BadFrame:
            self.kill_self(signal.SIGSEGV)
            return
        self.s.sigmask = mask & ~UNBLOCKABLE & abi.MASK64

    def _sigtramp(self) -> int:
        """The return trampoline for handlers without a restorer (the vDSO's or sigpage's
        rt_sigreturn; sigframe.SIGTRAMPS), mapped on first use; 0 on x86_64 (none)."""
        if self.arch not in sigframe.SIGTRAMPS:
            return 0
        if not self.s.sigtramp:
            prot = abi.PROT_READ | abi.PROT_EXEC
            addr = self.map_fresh(PAGE, prot, "[vdso]")
            self.add_mapping(addr, addr + PAGE, prot, abi.MAP_PRIVATE | abi.MAP_ANONYMOUS,
                             "[vdso]")
            self._machine.mem.write(addr, sigframe.SIGTRAMPS[self.arch])
            self.s.sigtramp = addr
        return int(self.s.sigtramp)

    # -- state ------------------------------------------------------------------------------
    def save_state(self) -> KernelState:
        s = self.s
        values = {f.name: _freeze_value(f, getattr(s, f.name)) for f in _FIELDS}
        files = []
        for f in s.files.values():
            offset = None
            if f.kind == "file" and f.host_fd >= 0:
                try:
                    offset = self.host.lseek(f.host_fd, 0, os.SEEK_CUR)
                except OSError:
                    offset = None
            files.append(FileState(f.id, f.kind, f.path, f.flags, f.host_fd, f.owned, offset,
                                   f.dir_entries, f.dir_pos, f.data))
        values["files"] = tuple(files)
        return KernelState(**values)

    def load_state(self, state: KernelState) -> None:
        saved = vars(state)
        old_files = self.s.files
        files: dict[int, OpenFile] = {}
        for fs in saved["files"]:
            host_fd = self._revive(fs, old_files.get(fs.id))
            files[fs.id] = OpenFile(fs.id, fs.kind, fs.path, fs.flags, host_fd, fs.owned,
                                    fs.dir_entries, fs.dir_pos, fs.data)
        # Host fds no longer referenced go to the retired pool (a later restore may want them).
        for fid, f in old_files.items():
            if fid not in files and f.owned and f.host_fd >= 0:
                self._retired[fid] = f.host_fd
        for fid in files:
            self._retired.pop(fid, None)
        self._trim_retired()
        image_path = self.s.image_path
        live = ProcessState(**{
            f.name: _thaw_value(f, saved[f.name]) if f.name in saved else _field_default(f)
            for f in _FIELDS})
        live.files = files
        self._want = None
        if not live.image_path:  # a state saved before it was kept here
            live.image_path = image_path
        self.s = live
        self.arm_timer()

    def _revive(self, fs: FileState, live: OpenFile | None) -> int:
        """A host fd for saved description ``fs``, positioned at its saved offset."""
        if not fs.owned or self.host.detached:
            return fs.host_fd  # a replay's host fds are the recording's numbers
        if live is not None and live.host_fd >= 0:
            hfd = live.host_fd
        elif fs.id in self._retired:
            hfd = self._retired.pop(fs.id)
        elif fs.path is not None and fs.kind in ("file", "dir", "pipe"):
            flags = abi.open_flags_to_host(self.arch, fs.flags) & ~(
                os.O_CREAT | os.O_EXCL | os.O_TRUNC)
            try:
                hfd = self.host.open(fs.path, flags | os.O_CLOEXEC, 0)
            except OSError:
                return -1
        else:
            return -1
        if fs.offset is not None:
            with contextlib.suppress(OSError):
                self.host.lseek(hfd, fs.offset, os.SEEK_SET)
        return hfd


# ----------------------------------------------------------------- the session's object
class LinuxKernel:
    """Linux user-mode syscall emulation for one machine. Install with :meth:`install`.

    ``dispatch`` maps syscall numbers of the machine's architecture to handlers (the
    plugin passes :data:`syscalls.DISPATCH`); a number without a handler returns -ENOSYS
    and warns once.  ``memory_limit``: most bytes of guest memory (None: half the
    host's memory, 0: none); it is part of the state, so a replay keeps the recorded one.
    """

    def __init__(self, machine: Machine, host: HostIO | None = None, *,
                 dispatch: MappingABC[int, Handler],
                 warn_stream: IO[str] | None = None, memory_limit: int | None = None,
                 image: LoadedImage | None = None) -> None:
        self.machine = machine
        self.arch = machine.arch.name
        #: The process the handlers act on.
        self.process = Process(machine, host if host is not None else HostIO(),
                               warn_stream=warn_stream, memory_limit=memory_limit,
                               image=image)
        #: Set to a text stream to log every syscall (strace-like), for debugging.
        self.trace: IO[str] | None = None
        abi_ = machine.arch.syscall
        regs = machine.regs
        self._nr_reg: RegisterInfo = regs.info(abi_.number)
        self._arg_regs: tuple[RegisterInfo, ...] = tuple(regs.info(r) for r in abi_.args)
        self._ret_reg: RegisterInfo = regs.info(abi_.ret)
        self._dispatch = dispatch
        self._names = SYSCALL_TABLES[self.arch]
        #: 32-bit arm's time32 system calls (the *_time64 ones take 64-bit timespecs).
        self._time32 = frozenset(nr for nr, name in self._names.items()
                                 if name in TIME32_CALLS) if self.arch == "arm" else frozenset()
        #: Thread switches made by this kernel object (a measure, not state).
        self.switches = 0
        #: Bytes between a saved thread's pc and where it resumes: x86's syscall hook sees
        #: pc at the ``syscall`` instruction (2 bytes), aarch64's after the ``svc``.
        self._resume_gap = 2 if self.arch == "x86_64" else 0
        #: ``syxdbg run --strict``: the first unsupported system call stops the program
        #: (SIGSYS, after a message naming it) instead of warning once and returning -ENOSYS.
        self.strict = False
        self.process.preempt = lambda m: preempt.switch(self, m)

    # Shorthands used by tests and tools (the process holds the state).
    @property
    def s(self) -> ProcessState:
        return self.process.s

    @property
    def host(self) -> HostIO:
        return self.process.host

    @property
    def mem(self) -> Memory:
        return self.process.mem

    @property
    def image_path(self) -> bytes:
        return self.process.image_path

    def _svc_back(self, machine: Machine) -> int:
        """How far before the saved pc a waiting thread's system call instruction lies
        (x86: 2 bytes back from the hook's pc after the syscall; svc/ecall: 4; a Thumb
        svc: 2)."""
        return 4 - self._resume_gap if self.arch != "arm" else machine.syscall_insn_size()

    # -- installation ---------------------------------------------------------------------
    def install(self) -> None:
        self.machine.set_syscall_handler(self.handle_syscall)
        self.machine.set_fault_handler(self.handle_fault)

    def handle_fault(self, machine: Machine, fault: Fault) -> bool:
        """A guest fault goes to the guest's handler for its signal when it has one that
        is not blocked (True); otherwise it ends the run, as Linux's forced signal does."""
        return self.process.fault_to_handler(fault.signal, fault.address, fault.detail)

    # -- record / replay (syxdbg.eventlog.Recordable) --------------------------------------
    def attach_eventlog(self, log: EventLog) -> None:
        """Route host access made by syscalls through ``log`` (record/replay)."""
        self.detach_eventlog()
        self.process.host = RecordingHostIO(self.process.host, log)

    def detach_eventlog(self) -> None:
        host = self.process.host
        if isinstance(host, RecordingHostIO):
            self.process.host = host.inner

    def close(self) -> None:
        """Close every host fd this kernel opened (session teardown)."""
        self.process.close_all()

    # -- dispatch ---------------------------------------------------------------------------
    def handle_syscall(self, machine: Machine) -> None:
        host = self.process.host
        # Inside a syscall handler the position is exact: a syscall instruction always ends
        # its translation block, which the block hook counted on entry.
        host.enter_syscall(machine.position)
        try:
            self._handle_syscall(machine)
        finally:
            host.leave_syscall()

    def _handle_syscall(self, machine: Machine) -> None:
        regs = machine.regs
        nr = regs.read_info(self._nr_reg)
        handler = self._dispatch.get(nr)
        if handler is None:
            ret: int | None = self.unsupported(nr)
            args: list[int] = []
        else:
            args = [conv(regs.read_info(r)) for conv, r in zip(handler.converters,
                                                                self._arg_regs, strict=False)]
            self.process.time32 = nr in self._time32
            try:
                ret = handler.fn(self.process, *args)
            except SyscallError as exc:
                ret = -exc.errno
            except MemoryAccessError:
                ret = -errno.EFAULT
            except MemoryMapError:
                ret = -errno.ENOMEM
            except OSError as exc:
                ret = -(exc.errno or errno.EIO)
        if self.trace is not None:
            name = self._names.get(nr, f"syscall_{nr}")
            shown = ", ".join(hex(a) if a > 9 or a < -9 else str(a) for a in args)
            self.trace.write(f"[linux] {name}({shown}) = {ret}\n")
        if ret is not None:
            regs.write_info(self._ret_reg, ret & abi.MASK64)
        p = self.process
        if p.timers_armed():
            p.poll_itimer(machine.position)
        if p.s.sigpending & ~p.s.sigmask and not p.s.stopped:
            p.run_handlers()  # (a stopped process runs them when it is continued)
        if p.s.saved_mask >= 0:  # rt_sigsuspend's mask ends with the call
            p.s.sigmask, p.s.saved_mask = p.s.saved_mask, -1
        others = p.s.threads or p.s.procs
        if handler is not None and others and handler.name in PIPE_WAKERS:
            p.wake_pipe_readers()
        if p._want is not None or p.s.stopped or (
                others and machine.position - p.s.slice_start >= slice_length(p.s)):
            self._schedule(machine)
            preempt.deliver_pending(self.process, in_syscall=True)  # (its tgkill'ed signals)
            p.arm_timer()  # the new slice's end (preempt.py)

    # -- threads --------------------------------------------------------------------------------
    def _schedule(self, machine: Machine) -> None:
        """After a system call: switch threads if the caller blocks, exits or yields, or its
        time slice is used up. Only positions and guest state decide (determinism)."""
        p = self.process
        s = p.s
        want = p._want or ("yield", 0, 0, -1)
        p._want = None
        kind, futex, bitset, timeout = want
        pos = machine.position
        gone = kind in ("exit", "pexit")
        # Processes stopped by a signal: none of their threads runs (the running one's too).
        halted = {pid for pid, e in s.procs.items() if e.state.stopped}
        if s.stopped:
            halted.add(p.pid)

        def waiting() -> tuple[list[tuple[int, Thread]], list[tuple[int, Thread]]]:
            # Every thread that is not running, of every process, as (pid, thread), and
            # those of them that can run.
            others = [(p.pid, t) for t in s.threads.values()] + [
                (pid, t) for pid, e in s.procs.items() for t in e.state.threads.values()]
            return others, [(pid, t) for pid, t in others if not t.wait and pid not in halted]

        others, runnable = waiting()
        if HOST_WAITS is not None and HOST_WAITS(p, others, bool(runnable), want):
            others, runnable = waiting()
        if not runnable and kind == "yield" and not s.stopped:
            s.slice_start = pos
            return
        while not runnable:
            timed = [(pid, t) for pid, t in others if t.timeout >= 0]
            first = min(timed, key=lambda x: (x[1].timeout, x[1].seq)) if timed else None
            if kind in ("futex", "pipe", "sigwait") and timeout >= 0 and not s.stopped and (
                    first is None or timeout <= first[1].timeout):
                # The caller's own timeout is the first to expire: it never sleeps (a timed
                # I/O wait, poll/select, returns 0; sigtimedwait EAGAIN).
                expired = {"futex": -errno.ETIMEDOUT, "pipe": 0,
                           "sigwait": -errno.EAGAIN}[kind]
                machine.regs.write_info(self._ret_reg, expired & abi.MASK64)
                s.slice_start = pos
                return
            if first is None:
                p._want = want  # kept: threads() reports where the caller waits
                self._deadlock(machine)
                return
            fpid, ft = first
            s.seq += 1
            if ft.wait in ("pipe", "sigwait"):  # a timed wait that runs its call again:
                pc, back = machine.arch.pc, self._svc_back(machine)  # past it, returning
                ft = replace(ft, fd=-1, regs=tuple(  # 0 (poll) or EAGAIN (sigtimedwait)
                    (n, v + back if n == pc else v) for n, v in ft.regs),
                    result=0 if ft.wait == "pipe" else -errno.EAGAIN)
            ft = replace(ft, wait="", futex=0, timeout=-1, seq=s.seq,
                         result=ft.result if ft.wait in ("pipe", "sigwait")
                         else -errno.ETIMEDOUT)
            owner = p.state_of(fpid)
            assert owner is not None
            owner.threads[ft.tid] = ft
            # (a thread of a stopped process has its wait end, but runs when continued)
            others, runnable = waiting()
        if s.schedule_seed and len(runnable) > 1:  # a seeded choice among the runnable
            runnable.sort(key=lambda x: x[1].seq)
            npid, nxt = runnable[schedule_mix(s.schedule_seed, pos, 1) % len(runnable)]
        else:
            npid, nxt = min(runnable, key=lambda x: x[1].seq)
        cpu = p.cpu_values()
        if not gone:
            s.seq += 1
            me = Thread(p.tid, cpu, s.sigmask, s.altstack, s.tid_address,
                        s.robust_list, seq=s.seq)
            if kind == "futex":
                me = replace(me, wait="futex", futex=futex, bitset=bitset, timeout=timeout)
            elif kind in ("pipe", "child", "sigwait"):
                # Back to the system call instruction: it runs again when woken.
                pc = machine.arch.pc
                back = self._svc_back(machine)  # x86: syscall (2); svc: 4, Thumb's 2
                me = replace(me, wait=kind, fd=futex, timeout=timeout, regs=tuple(
                    (n, v - back if n == pc else v) for n, v in me.regs),
                             bitset=bitset if kind == "sigwait" else me.bitset)
            elif kind == "vfork":
                me = replace(me, wait="vfork", futex=futex)
            elif kind == "signal":
                me = replace(me, wait="signal", suspend_mask=bitset)
            s.threads[me.tid] = me
        if npid != p.pid:
            p.switch_to(npid, drop=kind == "pexit")
            s = p.s
        del s.threads[nxt.tid]
        regs = machine.regs
        for info, (_, value), (_, now) in zip(machine.arch.registers, nxt.regs, cpu,
                                              strict=True):
            if value != now:  # (the x87 and vector registers often agree)
                regs.write_info(info, value)
        if nxt.result is not None:
            regs.write_info(self._ret_reg, nxt.result & abi.MASK64)
        s.tid = 0 if nxt.tid == s.ids[0] else nxt.tid
        s.sigmask, s.altstack = nxt.sigmask, nxt.altstack
        s.tid_address, s.robust_list = nxt.tid_address, nxt.robust_list
        s.slice_start = pos
        self.switches += 1
        if s.sigpending:
            p.deliver_pending()
        if nxt.suspend_mask >= 0 and not nxt.wait:
            # Woken in rt_sigsuspend by a signal: its handler runs now, with the mask of
            # the wait; the frame keeps the thread's own mask for the handler's return.
            s.saved_mask, s.sigmask = s.sigmask, nxt.suspend_mask
            if s.sigpending & ~s.sigmask:
                p.run_handlers()
            if s.saved_mask >= 0:
                s.sigmask, s.saved_mask = s.saved_mask, -1
        elif s.sigpending & ~s.sigmask:
            # A signal another process sent while this one waited: its handler runs before
            # the thread goes on (its system call returns EINTR or runs again).
            p.run_handlers()
        if s.stopped:  # a stop signal it had blocked, let through by this thread's mask
            self._schedule(machine)

    def _deadlock(self, machine: Machine) -> None:
        """Every thread waits and nothing can wake one: the process is killed (SIGKILL) with
        a message naming each thread and where it waits (a native run would hang)."""
        p = self.process
        s = p.s
        lines = []
        for t in self.threads(machine.regs.pc + self._resume_gap):
            if t.state == "exited":
                continue
            image = p.image
            name = image.symbolize(t.pc) if image is not None else None
            where = f"{t.pc:#x} ({name})" if name else f"{t.pc:#x}"
            lines.append(f"  thread {t.tid} at {where}: {t.waiting or t.state}")
        what = "every thread is blocked" if len(lines) > 1 else "the only thread is blocked"
        stopped = sorted((st.ids[0], st.stopped) for st in p.all_states() if st.stopped)
        if stopped:  # a native run waits for a SIGCONT from outside (a shell's fg)
            what = "every process is stopped or blocked"
            lines += [f"  process {pid} stopped by {signal.Signals(sig).name}"
                      for pid, sig in stopped]
        s.halted = (f"syxdbg: deadlock: {what} and nothing can wake one; the process is "
                    "killed (SIGKILL)\n" + "\n".join(lines) + "\n")
        p.warn(s.halted)
        machine.request_kill(abi.SIGKILL)

    def threads(self, running_pc: int | None = None) -> list[ThreadInfo]:
        """Every thread of the process: tid, state (running, runnable, blocked) and pc (where
        it resumes), the running one first, then by tid."""
        p = self.process
        s = p.s
        pc_name = self.machine.arch.pc
        me_pc = self.machine.regs.pc if running_pc is None else running_pc
        want = p._want
        if want is not None and want[0] == "futex":
            mine = ThreadInfo(p.tid, "blocked", me_pc, f"futex wait on {want[1]:#x}")
        elif want is not None and want[0] == "pipe":  # it will make the system call again
            mine = ThreadInfo(p.tid, "blocked", me_pc - self._svc_back(self.machine),
                              f"read of an empty pipe (fd {want[1]})")
        elif want is not None and want[0] == "child":
            mine = ThreadInfo(p.tid, "blocked", me_pc - self._svc_back(self.machine),
                              "wait for a child")
        elif want is not None and want[0] == "signal":
            mine = ThreadInfo(p.tid, "blocked", me_pc, "waiting for a signal")
        elif want is not None and want[0] == "sigwait":
            mine = ThreadInfo(p.tid, "blocked", me_pc - self._svc_back(self.machine),
                              "sigtimedwait")
        elif want is not None and want[0] == "vfork":
            mine = ThreadInfo(p.tid, "blocked", me_pc, f"vfork (child {want[1]})")
        elif want is not None and want[0] in ("exit", "pexit"):
            mine = ThreadInfo(p.tid, "exited", me_pc)
        else:
            mine = ThreadInfo(p.tid, "running", me_pc)
        out = [mine]
        for tid in sorted(s.threads):
            t = s.threads[tid]
            pc = dict(t.regs)[pc_name] + self._resume_gap
            if t.wait == "futex":
                out.append(ThreadInfo(tid, "blocked", pc, f"futex wait on {t.futex:#x}"))
            elif t.wait == "pipe":
                out.append(ThreadInfo(tid, "blocked", pc, f"read of an empty pipe (fd {t.fd})"))
            elif t.wait == "child":
                out.append(ThreadInfo(tid, "blocked", pc, "wait for a child"))
            elif t.wait == "vfork":
                out.append(ThreadInfo(tid, "blocked", pc, f"vfork (child {t.futex})"))
            elif t.wait == "signal":
                out.append(ThreadInfo(tid, "blocked", pc, "waiting for a signal"))
            elif t.wait == "sigwait":
                out.append(ThreadInfo(tid, "blocked", pc, "sigtimedwait"))
            else:
                out.append(ThreadInfo(tid, "runnable", pc))
        return out

    def processes(self) -> list[ProcessInfo]:
        """Every process of the tree: the running one first, then the others and the
        zombies by pid."""
        p = self.process
        s = p.s

        def info(st: ProcessState, state: str) -> ProcessInfo:
            return ProcessInfo(st.ids[0], st.ids[1], st.pgid or st.ids[0], state,
                               os.fsdecode(st.image_path), len(st.threads) + (
                                   state == "running"))

        out = [info(s, "running")]
        for pid in sorted(s.procs):
            st = s.procs[pid].state
            blocked = all(t.wait for t in st.threads.values())
            out.append(info(st, "stopped" if st.stopped else
                            "blocked" if blocked else "runnable"))
        for pid in sorted(s.zombies):
            z = s.zombies[pid]
            out.append(ProcessInfo(z.pid, z.ppid, z.pgid, "zombie", "", 0, z.status))
        return out

    def thread_registers(self, tid: int) -> dict[str, int]:
        """The registers of thread ``tid``, which is not running, as it will resume: pc
        where it resumes (as :meth:`threads` reports it) and the result register holding
        what its system call returns when that is already known. KeyError if there is no
        such thread, or it is the running one (its registers are the machine's)."""
        t = self.s.threads[tid]
        regs = dict(t.regs)
        pc = self.machine.arch.pc
        regs[pc] = (regs[pc] + self._resume_gap) & abi.MASK64
        if t.result is not None:
            regs[self._ret_reg.name] = t.result & abi.MASK64
        return regs

    def unsupported(self, nr: int) -> int:
        name = self._names.get(nr, "unknown")
        if self.strict:
            self.process.warn(f"syxdbg: unsupported system call {name} ({nr}): the program is "
                              "stopped (--strict; without it the call returns -ENOSYS)\n")
            self.machine.request_kill(31)  # SIGSYS (the same number on every arch)
            return -errno.ENOSYS
        self.process.warn_once(
            nr, f"syxdbg: warning: unsupported syscall {name} ({nr}) returns -ENOSYS\n")
        return -errno.ENOSYS

    def syscall_name(self, nr: int) -> str | None:
        return self._names.get(nr)

    # -- state (syxdbg.state.Snapshottable) --------------------------------------------------
    @property
    def persistable(self) -> bool:
        """Whether a recording can hold the state now: not while other processes live
        (their memory is not the machine's; see StateRegistry.persistable)."""
        return not self.s.procs

    def save_state(self) -> KernelState:
        return self.process.save_state()

    def load_state(self, state: KernelState) -> None:
        self.process.load_state(state)
