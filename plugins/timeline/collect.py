"""What the timeline report shows, collected by re-executing history through the session.

Two passes over ``[start, end)``, both through the session's timeline (every motion is a
:class:`~syxdbg.session.Session` call; re-execution replays the recorded host inputs):

1. **Activity**: bucket by bucket (:class:`~.buckets.Buckets`), a C block recorder
   (:meth:`Machine.block_recorder`, as the ``coverage`` plugin uses it) is attached for the
   bucket's stretch (``seek(..., jump=False)``: a replay never loads a persisted checkpoint
   over it) and its blocks are attributed to functions. Meanwhile the machine's syscall
   handler is wrapped: each system call's position, number, arguments and result are noted
   (the Linux plugin's kernel handles it as always; the wrapper only reads registers).
2. **Watched writes** (only with ``--watch``): a plugin write watchpoint on the range, and
   forward runs (``Session.run(count=...)``) that stop at each write; at each one the
   writing instruction's position and pc, and the old and new values are read, going one
   instruction back or forward with ``seek``.

The session ends where it was. Nothing of this runs until a report is asked for.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from syxdbg.commands import CommandError

from .. import _replay
from .buckets import Buckets, FunctionActivity, bin_positions, function_activity

if TYPE_CHECKING:
    from syxdbg.commands import Context
    from syxdbg.machine import Machine, StopEvent
    from syxdbg.session import Session

__all__ = ["MAX_SYSCALLS", "MAX_WRITES", "FaultMark", "ProcessEvent", "Report", "Syscall",
           "Watch", "Write", "collect"]

#: System calls kept one by one (beyond: counted per bucket only).
MAX_SYSCALLS = 200_000
#: Watched writes kept (beyond: the watch pass stops and the report says so).
MAX_WRITES = 10_000

#: Which argument of a system call is a path (read from guest memory before the call).
PATH_ARGS: dict[str, int] = {
    "open": 0, "openat": 1, "openat2": 1, "creat": 0, "stat": 0, "lstat": 0,
    "newfstatat": 1, "fstatat64": 1, "statx": 1, "access": 0, "faccessat": 1,
    "faccessat2": 1, "execve": 0, "execveat": 1, "unlink": 0, "unlinkat": 1, "readlink": 0,
    "readlinkat": 1, "mkdir": 0, "mkdirat": 1, "rmdir": 0, "chdir": 0, "rename": 0,
    "renameat": 1, "renameat2": 1, "symlink": 0, "symlinkat": 0, "link": 0, "linkat": 1,
    "chmod": 0, "fchmodat": 1, "truncate": 0, "utimensat": 1,
}
#: System calls whose buffer (argument 1, length argument 2) is shown: written before the
#: call, read after it (up to the result).
BUFFER_IN = frozenset({"write", "pwrite64"})
BUFFER_OUT = frozenset({"read", "pread64"})
PREVIEW = 48
NO_RETURN = frozenset({"exit", "exit_group"})


@dataclass(frozen=True)
class Syscall:
    position: int
    pc: int
    number: int
    name: str
    args: tuple[str, ...]
    result: int | None  # None: the call did not return (exit)
    lane: int = 0  # the thread lane (Report.lanes)


@dataclass(frozen=True)
class ProcessEvent:
    """A process forked, exec'd or ended, at the system call that did it (the parent's
    clone/fork/vfork, the execve, the exit or the kill)."""

    position: int
    pc: int
    kind: str  # "fork", "exec", "exit"
    pid: int
    text: str
    lane: int  # the lane of the process's main thread
    #: A fork's: the lane of the thread that forked (the mark is drawn there too).
    by_lane: int | None = None


@dataclass(frozen=True)
class FaultMark:
    """A fault in the middle of the run: given to the guest's signal handler (``handled``)
    or ending a process that is not the first (the run's own end is the end mark)."""

    position: int  # of the faulting instruction (it did not retire)
    pc: int
    signal: int
    address: int
    detail: str
    handled: bool
    lane: int


@dataclass(frozen=True)
class Write:
    position: int  # of the writing instruction (instructions retired before it)
    pc: int
    address: int  # first watched byte written
    old: bytes
    new: bytes
    lane: int = 0


@dataclass
class Watch:
    """A watched range and the writes to it."""

    text: str  # as the user wrote it
    address: int
    length: int
    writes: list[Write] = field(default_factory=list)
    truncated: bool = False


@dataclass
class Report:
    """Everything the page shows (see :mod:`.html`)."""

    program: str
    arch: str
    start: int
    end: int
    buckets: Buckets
    #: pc at every bucket edge (the position where each bucket starts), then at ``end``.
    edge_pcs: list[int]
    functions: list[FunctionActivity]
    syscalls: list[Syscall]
    syscalls_dropped: int
    syscall_counts: list[int]  # system calls per bucket (all of them, listed or not)
    checkpoints: list[tuple[int, str]]  # (position, kind)
    end_text: str
    end_kind: str  # "exit", "fault", "killed", "end" (history goes on), "interrupted"
    end_pc: int | None
    watches: list[Watch]
    recording: str | None  # the recording's file, when replaying one
    lanes: list[dict[str, Any]]
    #: Forks, execs and ends of processes, in position order.
    process_events: list[ProcessEvent] = field(default_factory=list)
    #: Faults that did not end the run (a handler took them, or a child process ended).
    faults: list[FaultMark] = field(default_factory=list)
    #: With several lanes: each lane's system calls per bucket, sparse (lane -> (bucket
    #: indexes, counts)).
    lane_syscall_counts: dict[int, tuple[list[int], list[int]]] = field(default_factory=dict)
    disasm: dict[int, str] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def _kernel(session: Session) -> Any:
    try:
        from syxdbg_plugins.linux import get_kernel
    except ImportError:  # pragma: no cover - the linux plugin ships with syxdbg
        return None
    return get_kernel(session)


def _handlers(machine: Machine) -> Any:
    try:
        from syxdbg_plugins.linux.syscalls import DISPATCH
    except ImportError:  # pragma: no cover
        return {}
    return DISPATCH.get(machine.arch.name, {})


def _text(data: bytes) -> str:
    out = data.decode("utf-8", "backslashreplace")
    return repr(out)


class _SyscallLog:
    """Wraps the machine's syscall handler while the activity pass runs."""

    def __init__(self, session: Session) -> None:
        m = session.machine
        self.machine = m
        abi = m.arch.syscall
        self.nr_reg, self.arg_regs, self.ret_reg = abi.number, abi.args, abi.ret
        kernel = _kernel(session)
        self.name_of: Callable[[int], str | None] = (
            kernel.syscall_name if kernel is not None else (lambda nr: None))
        self.handlers = _handlers(m)
        self.calls: list[Syscall] = []
        self.dropped = 0
        #: The position of every system call, listed or not (for the per-bucket counts),
        #: and its lane.
        self.positions: list[int] = []
        self.position_lanes: list[int] = []
        self.inner = m.syscall_handler
        self.installed = False
        self.kernel = kernel
        #: (pid, tid) -> lane number, in order of first appearance (the first: the thread
        #: running when the pass began).
        self.lanes: dict[tuple[int, int], int] = {}
        #: Processes: the live ones (pid -> the key of the program image it runs), each
        #: one's program (as last seen), and their forks, execs and ends.
        self.live: dict[int, int] = {}
        self.programs: dict[int, str] = {}
        self.events: list[ProcessEvent] = []
        #: The kernel's fault handler (faults to the guest's signal handlers), wrapped too.
        self.fault_inner: Callable[[Machine, Any], bool] | None = getattr(
            kernel, "handle_fault", None)
        self.faults: list[FaultMark] = []

    def key(self) -> tuple[int, int]:
        """The running (pid, tid) ((0, 0) without a kernel: one lane)."""
        process = getattr(self.kernel, "process", None)
        if process is None:
            return (0, 0)
        return (int(getattr(process, "pid", 0) or 0), int(getattr(process, "tid", 0) or 0))

    def lane(self, key: tuple[int, int]) -> int:
        return self.lanes.setdefault(key, len(self.lanes))

    def _processes(self) -> dict[int, int]:
        """Every live process: pid -> its program image's key (an exec changes it)."""
        p = getattr(self.kernel, "process", None)
        s = getattr(p, "s", None)
        if p is None or s is None or not hasattr(s, "procs"):
            return {}
        live = {int(p.pid): int(s.image_key)}
        for pid, entry in s.procs.items():
            live[int(pid)] = int(entry.state.image_key)
        return live

    def _program(self, pid: int) -> str:
        p = self.kernel.process
        st = p.state_of(pid)
        path = os.fsdecode(st.image_path) if st is not None else ""
        if path:
            self.programs[pid] = os.path.basename(path)
        return self.programs.get(pid, "?")

    def _status(self, pid: int) -> str:
        zombie = self.kernel.process.s.zombies.get(pid)
        status = getattr(zombie, "status", None)
        if status is None:
            return "ended"
        if status & 0x7F == 0:
            return f"exited {status >> 8 & 0xFF}"
        import signal

        try:
            return f"killed by {signal.Signals(status & 0x7F).name}"
        except ValueError:
            return f"killed by signal {status & 0x7F}"

    def _note_processes(self, position: int, pc: int, forker: tuple[int, int]) -> None:
        """After a system call of thread ``forker`` (pid, tid): the processes that
        appeared (it forked them), exec'd or went."""
        caller = forker[0]
        live = self._processes()
        if live == self.live:
            return
        before = self.live
        self.live = live
        for pid in sorted(set(live) - set(before)):
            self.programs.setdefault(pid, self.programs.get(caller, "?"))
            self.events.append(ProcessEvent(position, pc, "fork", pid,
                                            f"process {pid} ({self._program(pid)}) forked "
                                            f"by {caller}", self.lane((pid, pid)),
                                            self.lane(forker)))
        for pid in sorted(set(before) - set(live)):
            self.events.append(ProcessEvent(position, pc, "exit", pid,
                                            f"process {pid} ({self.programs.get(pid, '?')}) "
                                            f"{self._status(pid)}", self.lane((pid, pid))))
        for pid in sorted(set(live) & set(before)):
            if live[pid] != before[pid]:
                self.events.append(ProcessEvent(position, pc, "exec", pid,
                                                f"process {pid} execs {self._program(pid)}",
                                                self.lane((pid, pid))))

    def install(self) -> None:
        self.live = self._processes()
        for pid in self.live:
            self._program(pid)
        if self.inner is not None:
            self.machine.set_syscall_handler(self.handle)
            if self.fault_inner is not None:
                self.machine.set_fault_handler(self.fault)
            self.installed = True

    def remove(self) -> None:
        if self.installed:
            self.machine.set_syscall_handler(self.inner)
            if self.fault_inner is not None:
                self.machine.set_fault_handler(self.fault_inner)
            self.installed = False

    def fault(self, m: Machine, fault: Any) -> bool:
        """The kernel's fault handler, noting each fault that does not end the run."""
        assert self.fault_inner is not None
        key = self.key()
        taken = self.fault_inner(m, fault)
        if taken:
            self.faults.append(FaultMark(fault.position, fault.pc, fault.signal,
                                         fault.address, fault.detail,
                                         self.key() == key, self.lane(key)))
            if self.live:
                self._note_processes(fault.position, fault.pc, key)
        return bool(taken)

    def _read(self, address: int, size: int) -> bytes | None:
        try:
            return bytes(self.machine.mem.read(address, size))
        except Exception:  # unmapped: show the pointer only
            return None

    def _cstring(self, address: int) -> str | None:
        data = self._read(address, 256)
        if data is None:
            # The string may end before an unmapped page: read up to it.
            room = 4096 - (address & 4095)
            data = self._read(address, min(room, 256))
            if data is None:
                return None
        return _text(data.split(b"\0", 1)[0])

    def handle(self, m: Machine) -> None:
        assert self.inner is not None
        regs = m.regs
        # The position of the system call instruction itself (the instructions retired
        # before it: the machine has counted it already), where goto lands with pc on it.
        # x86's pc is still at the syscall instruction; aarch64's is past the svc (A64
        # instructions are 4 bytes).
        position = m.position - 1
        pc = m.pc
        if m.insn_position(pc) != position:
            pc -= 4
        nr = int(regs[self.nr_reg])
        raw = [int(regs[r]) for r in self.arg_regs]
        name = self.name_of(nr) or f"syscall_{nr}"
        handler = self.handlers.get(nr)
        argc = len(handler.converters) if handler is not None else len(raw)
        args = [conv(v) if handler is not None else v
                for conv, v in zip(handler.converters if handler is not None
                                   else [int] * argc, raw[:argc], strict=False)]
        shown = [hex(a) if a > 9 or a < -9 else str(a) for a in args]
        keep = len(self.calls) < MAX_SYSCALLS
        self.positions.append(position)
        key = self.key()
        self.position_lanes.append(self.lane(key))
        if keep:
            where = PATH_ARGS.get(name)
            if where is not None and where < len(shown):
                text = self._cstring(raw[where])
                if text is not None:
                    shown[where] = text
            if name in BUFFER_IN and len(raw) >= 3:
                data = self._read(raw[1], min(raw[2], PREVIEW))
                if data is not None:
                    shown[1] = _text(data) + ("..." if raw[2] > PREVIEW else "")
        finished = m.finished
        self.inner(m)
        if self.live:
            self._note_processes(position, pc, key)
        result: int | None
        if name in NO_RETURN or (m.finished is not finished and m.finished is not None) or \
                self.key() != key:  # it blocked: another thread runs, its result comes later
            result = None
        else:
            value = int(regs[self.ret_reg])
            result = value - (1 << 64) if value >= 1 << 63 else value
        if not keep:
            self.dropped += 1
            return
        if name in BUFFER_OUT and result is not None and result > 0 and len(raw) >= 3:
            data = self._read(raw[1], min(result, PREVIEW))
            if data is not None:
                shown[1] = _text(data) + ("..." if result > PREVIEW else "")
        self.calls.append(Syscall(position, pc, nr, name, tuple(shown), result,
                                  self.lane(key)))


def _end_of(session: Session, end: int, reached: int, final: StopEvent | None
            ) -> tuple[str, str, int | None]:
    """How the run described ends: (text, kind, pc); ``final`` is the machine's terminal
    event at ``reached``, if any."""
    from syxdbg.machine import Exited, Fault, Killed

    rec = session.recording
    if reached < end:
        return (f"interrupted at position {reached}: the page shows positions up to there",
                "interrupted", None)
    if final is None and rec is not None and end == rec.end_position:
        final = rec.end_event
    if final is not None and final.position == end:
        kind = ("exit" if isinstance(final, Exited) else "fault" if isinstance(final, Fault)
                else "killed" if isinstance(final, Killed) else "end")
        text = rec.describe_end() if rec is not None and end == rec.end_position else \
            _replay.why(final)
        return f"{text} (position {end})", kind, final.pc
    w = session.when()
    if end == w.frontier:
        return f"the program has run up to position {end} (it goes on live)", "end", None
    return f"the report ends at position {end}", "end", None


def _checkpoints(session: Session, start: int, end: int) -> list[tuple[int, str]]:
    out: dict[int, str] = {}
    for cp in session.checkpoints():
        out.setdefault(cp.position, "checkpoint")
    rec = session.recording
    if rec is not None:
        for p in rec.checkpoint_positions:
            out[p] = "persisted"
    for named in session.snapshots():
        out[named.position] = f"snapshot {named.name}"
    return sorted((p, k) for p, k in out.items() if start <= p <= end)


def collect(ctx: Context, start: int, end: int, *, count: int,
            watches: list[Watch], progress: Callable[[str], None] | None = None) -> Report:
    """Re-execute ``[start, end)`` and gather the report (see the module docstring); the
    session comes back to its position."""
    s = ctx.session
    began = time.monotonic()
    buckets = Buckets.cover(start, end, count)
    poll = ctx.poll("timeline")
    here = s.position
    per_bucket: list[list[tuple[int, int]]] = []
    final: StopEvent | None = None
    edge_pcs: list[int] = []
    log = _SyscallLog(s)
    reached = start
    notes: list[str] = []
    m = s.machine
    try:
        # One motion (one stop for the hooks); the way back is another, so that an
        # interrupt of the passes does not stop it.
        with s.motion():
            s.seek(start, poll=poll)
            if s.position != start:
                raise CommandError(f"timeline: could not get to position {start}")
            log.install()
            edge_pcs.append(m.pc)
            for i in range(len(buckets)):
                _first, last = buckets.bounds(i)
                recorder = m.block_recorder()
                try:
                    s.seek(last, poll=poll, jump=False)
                finally:
                    recorder.detach()
                if recorder.rewound_at is not None:
                    raise CommandError(f"timeline: the timeline jumped to position "
                                       f"{recorder.rewound_at} instead of re-executing")
                per_bucket.append(recorder.blocks())
                reached = s.position
                edge_pcs.append(m.pc)
                if reached < last:
                    break
            final = m.finished  # how the run ends, if it ends here
            log.remove()
            if watches:
                # Every process's writes (each in its lane), not only the followed one's.
                followed = s.followed
                s.follow(None)
                try:
                    for w in watches:
                        _watch_pass(s, w, start, reached, poll, log)
                finally:
                    s.follow(followed)
    finally:
        log.remove()
        s.seek(here)
    di = ctx.debuginfo if s.image.kind == "elf" else None

    def symbol_at(pc: int) -> tuple[str, int] | None:
        hit = di.symbol_at(pc) if di is not None else None
        if hit is not None:
            return hit[0], hit[1]
        region = s.mem.find(pc)
        if region is not None:
            return (region.name or f"[anon@{region.start:#x}]"), region.start
        return None

    functions = function_activity(per_bucket, symbol_at)
    if di is not None:
        # The program's own functions (those with source lines) first, then the rest (the
        # C library's, usually without debug information), each in the order they ran.
        functions.sort(key=lambda f: f.start == 0 or di.line_at(f.start) is None)
    text, kind, end_pc = _end_of(s, end, reached, final)
    if log.dropped:
        notes.append(f"{log.dropped} system calls after the first {MAX_SYSCALLS} are not "
                     f"listed one by one")
    for w in watches:
        if w.truncated:
            notes.append(f"only the first {MAX_WRITES} writes to {w.text} are shown")
    lanes = _lanes(log)
    report = Report(
        program=s.image.path, arch=m.arch.name, start=start, end=end, buckets=buckets,
        edge_pcs=edge_pcs, functions=functions, syscalls=log.calls,
        syscalls_dropped=log.dropped,
        syscall_counts=bin_positions(sorted(log.positions), buckets),
        checkpoints=_checkpoints(s, start, end),
        end_text=text, end_kind=kind, end_pc=end_pc, watches=watches,
        recording=_recording_path(s), lanes=lanes, process_events=log.events, notes=notes,
        faults=log.faults,
        lane_syscall_counts=_lane_counts(log, buckets) if len(lanes) > 1 else {})
    pcs = set(edge_pcs) | {c.pc for c in log.calls} | {e.pc for e in log.events} | {
        f.pc for f in log.faults}
    for w in watches:
        pcs.update(wr.pc for wr in w.writes)
    if end_pc is not None:
        pcs.add(end_pc)
    report.disasm = _disassemble(m, pcs, ctx)
    report.seconds = time.monotonic() - began
    return report


def _lane_counts(log: _SyscallLog, buckets: Buckets
                 ) -> dict[int, tuple[list[int], list[int]]]:
    """Each lane's system calls per bucket (only the buckets it has calls in)."""
    per: dict[int, dict[int, int]] = {}
    for position, lane in zip(log.positions, log.position_lanes, strict=True):
        if buckets.start <= position < buckets.end:
            counts = per.setdefault(lane, {})
            b = buckets.index(position)
            counts[b] = counts.get(b, 0) + 1
    return {lane: (sorted(c), [c[b] for b in sorted(c)]) for lane, c in per.items()}


def _lanes(log: _SyscallLog) -> list[dict[str, Any]]:
    """The lanes, a process's threads together (processes and their threads in the order
    they first appeared): ``process P`` alone, ``thread T`` in a threaded program, ``process
    P (program)`` and ``process P thread T`` in a tree of processes."""
    if log.kernel is None or getattr(log.kernel, "process", None) is None:
        return [{"id": 0, "process": None, "thread": None, "label": "the machine"}]
    log.lane(log.key())  # at least the thread that ran first
    pids = list(dict.fromkeys(pid for pid, _ in log.lanes))
    many = len(pids) > 1 or bool(log.events)
    out = []
    for pid in pids:
        for (p, tid), lane in log.lanes.items():
            if p != pid:
                continue
            if many:
                label = (f"process {pid} ({log.programs.get(pid, '?')})" if tid == pid
                         else f"process {pid} thread {tid}")
            elif len(log.lanes) == 1:
                label = f"process {pid}"
            else:
                label = f"thread {tid}" + (" (main)" if tid == pid else "")
            out.append({"id": lane, "process": pid, "thread": tid, "label": label})
    return out


def _recording_path(s: Session) -> str | None:
    path = getattr(s.recording, "path", None)
    return os.path.abspath(path) if isinstance(path, str) and not path.startswith("<") \
        else path


def _disassemble(m: Machine, pcs: set[int], ctx: Context) -> dict[int, str]:
    out: dict[int, str] = {}
    for pc in sorted(pcs):
        try:
            insns = m.disassemble(pc, 1)
        except Exception:
            insns = []
        sym = ctx.symbolize(pc)
        where = f" <{sym}>" if sym else ""
        if insns:
            _addr, mnemonic, ops, _raw = insns[0]
            out[pc] = f"{pc:#x}{where}: {mnemonic} {ops}".rstrip()
        else:
            out[pc] = f"{pc:#x}{where}: (not readable now)"
    return out


#: Watched ranges up to this size are copied at every write (so each write's old value is
#: known without going back); beyond it old values are read by going back one instruction.
COPY_MAX = 64 * 1024
#: Bytes of a write's value shown (from the first watched byte it wrote).
VALUE_MAX = 8


def _watch_pass(s: Session, w: Watch, start: int, end: int, poll: Callable[[], bool],
                log: _SyscallLog) -> None:
    """Every write to ``w``'s range in ``[start, end)``: forward runs that stop at them.

    x86 stops after the store: the new value is in memory, the old one is the copy of the
    range taken at the previous stop, and the writer's pc is learnt by going back one
    instruction once per distinct next pc (a store that is not a branch is the instruction
    ending where pc now is). aarch64 stops before the store: pc is the writer, the new value
    is read one instruction later.
    """
    from syxdbg.timeline import WatchStop

    m = s.machine
    writer_of: dict[int, int] = {}  # pc after a store -> the store's pc (straight-line)
    handle = s.add_watchpoint(w.address, w.length, "write", client="plugin")

    def snapshot() -> bytes | None:
        return bytes(s.mem.read(w.address, w.length)) if w.length <= COPY_MAX else None

    try:
        s.seek(start, poll=poll)
        # The range's bytes at the last stop, per process (each has its own memory).
        currents = {log.key()[0]: snapshot()}
        stalled = 0
        while s.position < end:
            before = s.position
            ev = s.run(count=end - s.position, poll=poll)
            if isinstance(ev, WatchStop) and ev.access == "write" and \
                    w.address <= ev.address < w.address + w.length:
                if len(w.writes) >= MAX_WRITES:
                    w.truncated = True
                    break
                insn = ev.insn_position
                writer = log.key()  # the writer runs at its stop
                lane = log.lane(writer)
                current = currents.get(writer[0])
                lo = ev.address - w.address
                size = min(VALUE_MAX, w.length - lo)
                if ev.before:  # aarch64: stopped before the store
                    pc = ev.pc
                    old = bytes(s.mem.read(ev.address, size))
                    s.seek(insn + 1, poll=poll)
                    new = bytes(s.mem.read(ev.address, size))
                    currents[writer[0]] = snapshot()
                else:  # x86: after it
                    new = bytes(s.mem.read(ev.address, size))
                    known = writer_of.get(ev.pc)
                    if current is not None and known is not None:
                        pc, old = known, current[lo:lo + size]
                    else:
                        here = s.position
                        s.seek(insn, poll=poll)
                        pc = m.pc
                        old = bytes(s.mem.read(ev.address, size))
                        s.seek(here, poll=poll)
                        insns = m.disassemble(pc, 1)
                        if insns and pc + len(insns[0][3]) == ev.pc:
                            writer_of[ev.pc] = pc
                    currents[writer[0]] = snapshot()
                w.writes.append(Write(insn, pc, ev.address, old, new, lane))
                if s.position != insn + 1:
                    break  # interrupted
                continue
            if getattr(ev, "why", None) == "interrupt" or m.finished is not None:
                break
            stalled = stalled + 1 if s.position == before else 0
            if stalled > 3:
                break
    finally:
        s.remove_watchpoint(handle)
