"""Linux user-mode syscall emulation for x86_64 and aarch64 programs (glibc, musl), static or
dynamically linked (docs/dynamic.md).

The plugin gives every ELF session a :class:`~.kernel.LinuxKernel`: the machine's syscall
handler, and the session's ``"linux"`` snapshottable state.

Layout
------
* ``tables.py``   syscall number -> name per architecture (data, from the kernel headers).
* ``abi.py``      guest ABI constants, open(2) flag translation, struct layouts (stat, statx,
  utsname, dirent64...), pure functions.
* ``registry.py`` how a handler is declared (``@syscall``, argument kinds, SyscallError).
* ``syscalls/``   the handlers, one module per area (files, fs, memory, time, process,
  signals), and ``DISPATCH`` (number -> handler per architecture), built once at import.
* ``kernel.py``   :class:`Process` (the interface handlers get: memory, fd table, mappings,
  signals, host, warnings), :class:`ProcessState` (the one declaration of the snapshottable
  fields) and :class:`LinuxKernel` (syscall entry, ``save_state``/``load_state``).
* ``hostio.py``   :class:`HostIO`: the host boundary.

Imports go one way: ``registry`` <- ``kernel`` <- ``syscalls.*`` <- this module, which
hands ``DISPATCH`` to the kernel it creates.

The host boundary (for record/replay)
-------------------------------------
Every nondeterministic value the guest can observe (bytes read from files and stdin, file
metadata, directory listings, clocks, random bytes, uname, pid/uid, the initial cwd, tty
ioctls) and every host side effect (writes to host fds, creating/unlinking/renaming files,
sleeping) goes through the kernel's :class:`HostIO` object (``kernel.host``), and nowhere
else. A recording HostIO logs results at the frontier; a replaying one serves them behind
it and suppresses side effects. Guest memory and registers are only touched by the kernel.

Semantics worth knowing
-----------------------
* Guest fds 0/1/2 are the syxdbg process's stdin/stdout/stderr. Files the guest opens are
  host files (relative paths resolved against the emulated cwd, initially the host's); with
  a sysroot (``Process.in_sysroot``), absolute paths are looked up under it first.
* ``nanosleep``/``clock_nanosleep`` really sleep (via ``HostIO.sleep``).
* ``ioctl(TCGETS/TIOCGWINSZ)`` answers from the host fd: a tty gives its real values, a pipe
  or file gives ``-ENOTTY`` (so stdio buffering matches a native run).
* Signals: dispositions, mask and pending set are tracked; a signal the process sends
  itself (``abort``, ``raise``) with the default fatal action ends the run as "killed by
  SIG..."; handlers are recorded but never invoked (signal frames are not emulated).
* Threads (clone with CLONE_THREAD) run one at a time under a deterministic scheduler in the
  kernel state (docs/linux.md, Threads); ``rseq`` returns ``-ENOSYS`` as in qemu-user.
* File-backed mmaps are copies of the file (MAP_SHARED writes are not written back).
* An unsupported syscall returns ``-ENOSYS`` and prints one warning per syscall number.
* ``/proc/self`` (and ``/proc/<guest pid>``, ``/proc/thread-self``, ``/dev/fd``) is the
  guest's, emulated from guest state (``procfs.py``); other processes' entries do not exist.
* Guest memory is limited (``--memory-limit``, default half the host's memory): mmap and
  mremap fail with ENOMEM, brk keeps the old break. The limit is part of the kernel state.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from syxdbg import hookimpl

from .hostio import DetachedHostIO, HostIO
from .kernel import KernelState, LinuxKernel, Process
from .syscalls import DISPATCH

if TYPE_CHECKING:
    from syxdbg.machine import Machine
    from syxdbg.session import GuestProcess, GuestThread, Session
    from syxdbg.state import StateRegistry

__all__ = ["HostIO", "KernelState", "LinuxKernel", "LinuxPlugin", "Process", "get_kernel",
           "parse_schedule", "parse_size"]

STATE_NAME = "linux"
#: ``session.options`` key of ``--memory-limit`` (bytes; 0: none; absent: the default).
MEMORY_LIMIT_OPTION = "memory_limit"
#: ``session.options`` key of ``--thread-slice`` (instructions).
THREAD_SLICE_OPTION = "thread_slice"
#: ``session.options`` key of ``--schedule seed:N`` (the seed; 0: the plain round robin).
SCHEDULE_OPTION = "schedule"
#: ``session.options`` key of ``--follow``: ("pid", N), ("exec", NAME), ("any", None) or
#: ("first", None) (see :func:`parse_follow`).
FOLLOW_OPTION = "follow"
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """``512M``, ``2G``, ``65536``, ``1.5g`` -> bytes (binary units); ``0``/``none``: no
    limit. Raises argparse.ArgumentTypeError (one clear line) for anything else."""
    t = text.strip().lower()
    if t in ("none", "unlimited"):
        return 0
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", t)
    if m is None:
        raise argparse.ArgumentTypeError(
            f"invalid size {text!r} (expected a number of bytes with an optional K, M, G or "
            "T suffix, e.g. 512M or 2G, or 'none')")
    value = int(float(m.group(1)) * _UNITS[m.group(2)])
    if value and value < 1 << 20:
        raise argparse.ArgumentTypeError(f"memory limit {text!r} is below 1M: a program "
                                         "could not even start")
    if value >= 1 << 48:
        raise argparse.ArgumentTypeError(f"memory limit {text!r} is beyond the guest's "
                                         "address space (256T)")
    return value


class LinuxPlugin:
    """The per-session part of the plugin (registered by :func:`syxdbg_configure`)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.kernel: LinuxKernel | None = None

    @hookimpl
    def syxdbg_machine_created(self, session: Session, machine: Machine) -> None:
        if session is not self.session or session.image.kind != "elf":
            return
        if self.kernel is not None:
            self.kernel.close()
        host = DetachedHostIO() if session.options.get("replay") else None
        limit = session.options.get(MEMORY_LIMIT_OPTION)
        self.kernel = LinuxKernel(machine, host, dispatch=DISPATCH[machine.arch.name],
                                  memory_limit=int(limit) if limit is not None else None,
                                  image=session.image)
        time_slice = session.options.get(THREAD_SLICE_OPTION)
        if time_slice is not None:
            self.kernel.s.time_slice = int(time_slice)
        self.kernel.strict = bool(session.options.get("strict"))  # syxdbg run --strict
        seed = session.options.get(SCHEDULE_OPTION)
        if seed is not None:
            self.kernel.s.schedule_seed = int(seed)
        follow = session.options.get(FOLLOW_OPTION)
        if follow is not None and follow[0] == "pid":
            session.follow(int(follow[1]))
        elif follow is not None and follow[0] == "any":
            session.follow(None)
        self.kernel.install()

    @hookimpl
    def syxdbg_register_state(self, session: Session, registry: StateRegistry) -> None:
        if session is self.session and self.kernel is not None and STATE_NAME not in registry:
            registry.register(STATE_NAME, self.kernel)

    def syscall_at_pc(self) -> tuple[str, tuple[int, ...]] | None:
        """The system call the stopped machine is about to make (name, arguments), None
        if its pc is not at a system call instruction (for ``last-write``)."""
        if self.kernel is None:
            return None
        from .syscalls.describe import syscall_at
        m = self.session.machine
        return syscall_at(m, DISPATCH[m.arch.name], self.kernel.syscall_name)

    # -- the session's thread source (syxdbg.session.ThreadSource) -------------------------
    @hookimpl
    def syxdbg_thread_source(self, session: Session) -> LinuxPlugin | None:
        return self if session is self.session and self.kernel is not None else None

    def guest_threads(self) -> list[GuestThread]:
        from syxdbg.session import GuestThread

        assert self.kernel is not None
        from .syscalls.threads import given_name

        p = self.kernel.process
        return [GuestThread(t.tid, t.pc, t.state, t.waiting, current=i == 0,
                            leader=t.tid == p.pid,
                            name=(given_name(p, t.tid) or b"").decode(errors="replace"))
                for i, t in enumerate(self.kernel.threads())]

    def thread_registers(self, tid: int) -> dict[str, int]:
        assert self.kernel is not None
        return self.kernel.thread_registers(tid)

    def watch_exec(self, observer: Callable[[int, bytes], None] | None) -> None:
        """Call ``observer(pid, program)`` after each successful execve (None: stop)."""
        assert self.kernel is not None
        self.kernel.process.exec_observers[:] = [] if observer is None else [observer]

    def current_process(self) -> int:
        assert self.kernel is not None
        return self.kernel.process.pid

    def root_process(self) -> int:
        assert self.kernel is not None
        s = self.kernel.s
        return s.root_pid or s.ids[0]

    def process_threads(self, pid: int) -> list[GuestThread]:
        """The threads of live process ``pid``: the running process's as
        :meth:`guest_threads`; another's all queued (pc where each resumes); [] if none."""
        from syxdbg.session import GuestThread

        from .syscalls.threads import NAME_KEY

        assert self.kernel is not None
        p = self.kernel.process
        if pid == p.pid:
            return self.guest_threads()
        st = p.state_of(pid)
        if st is None:
            return []
        pc = self.kernel.machine.arch.pc
        out = []
        for tid in sorted(st.threads):
            t = st.threads[tid]
            named = st.misc.get(f"{NAME_KEY}{tid}")
            name = named.to_bytes((named.bit_length() + 7) // 8, "little").decode(
                errors="replace") if named else ""
            waiting = {"futex": f"futex wait on {t.futex:#x}",  # as LinuxKernel.threads
                       "pipe": f"read of an empty pipe (fd {t.fd})",
                       "child": "wait for a child", "vfork": f"vfork (child {t.futex})",
                       "signal": "waiting for a signal", "sigwait": "sigtimedwait"
                       }.get(t.wait, t.wait)
            out.append(GuestThread(tid, (dict(t.regs)[pc] + self.kernel._resume_gap)
                                   & (1 << 64) - 1, "blocked" if t.wait else "runnable",
                                   waiting, name=name, leader=tid == pid))
        return out

    # -- gdb's view of the processes that do not run (helper A, issue 14) -----------------
    def watch_processes(self, observer: Callable[[str, int, int, int], None] | None
                        ) -> None:
        """Call ``observer(kind, pid, tid, value)`` at fork, vfork, vforkdone, exec and
        exit events (``Process.event_observers``; None: stop)."""
        assert self.kernel is not None
        self.kernel.process.event_observers[:] = [] if observer is None else [observer]

    def gate_signals(self, gate: Callable[[int, int, int], bool] | None) -> None:
        """Ask ``gate(pid, tid, signal)`` before each handler's frame is pushed; False
        discards the signal (``Process.signal_gate``; None: deliver every signal)."""
        assert self.kernel is not None
        self.kernel.process.signal_gate = gate

    def push_signal_frame(self, sig: int) -> str:
        """Give ``sig`` to the running thread's handler now, between two instructions
        (gdb's ``signal SIG``): push its frame (the current mask as the one its return
        restores) and point the CPU at the handler; the kernel's own state (mask,
        disposition) is left as it is, so the debugger can keep the change as memory and
        register writes. Returns "" when done, else why not."""
        from . import abi, sigframe

        assert self.kernel is not None
        p = self.kernel.process
        act = p.sigaction(sig)
        if act.handler in (abi.SIG_DFL, abi.SIG_IGN):
            return "it has no handler (only a handled signal can be injected)"
        if p.arch in sigframe.SIGTRAMPS and not act.restorer and not p.s.sigtramp:
            return "its return trampoline is not mapped yet"
        info = sigframe.pack_siginfo(sig, sigframe.SI_USER, p.pid, p.s.ids[2], p.arch)
        try:
            sigframe.setup(self.kernel.machine, sig, act, info, p.s.sigmask, p.s.altstack,
                           p._sigtramp(), in_syscall=False)
        except sigframe.BadFrame:
            return "the stack cannot take its frame"
        return ""

    def queued_registers(self, pid: int) -> dict[int, dict[str, int]]:
        """The threads of process ``pid`` that do not run, by tid: their registers as
        each resumes (as ``LinuxKernel.thread_registers``); {} for no such process."""
        assert self.kernel is not None
        k = self.kernel
        st = k.process.state_of(pid)
        if st is None:
            return {}
        pc, ret = k.machine.arch.pc, k.machine.arch.syscall.ret
        out = {}
        for tid, t in st.threads.items():
            regs = dict(t.regs)
            regs[pc] = (regs[pc] + k._resume_gap) & (1 << 64) - 1
            if t.result is not None:
                regs[ret] = t.result & (1 << 64) - 1
            out[tid] = regs
        return out

    def read_process_memory(self, pid: int, address: int, size: int) -> bytes:
        """Up to ``size`` mapped bytes at ``address`` in process ``pid``, which does not
        run (its memory map's host buffers); b"" if unmapped or no such process."""
        assert self.kernel is not None
        entry = self.kernel.s.procs.get(pid)
        out = bytearray()
        for r in sorted(entry.layout if entry is not None else (), key=lambda r: r.start):
            if len(out) == size or r.start > address + len(out):
                break
            at = address + len(out)
            if r.start <= at < r.start + r.size:
                n = min(size - len(out), r.start + r.size - at)
                out += r.view[at - r.start:at - r.start + n]
        return bytes(out)

    def guest_processes(self) -> list[GuestProcess]:
        from syxdbg.session import GuestProcess

        assert self.kernel is not None
        return [GuestProcess(p.pid, p.ppid, p.pgid, p.state, p.program, p.threads,
                             current=i == 0, status=p.status)
                for i, p in enumerate(self.kernel.processes())]

    @hookimpl
    def syxdbg_unconfigure(self, session: Session) -> None:
        if session is not self.session:
            return
        if self.kernel is not None:
            self.kernel.close()
        session.states.unregister(STATE_NAME)
        if session.plugins.is_registered(self):
            session.plugins.unregister(self)


def _plugin_name(session: Session) -> str:
    return f"linux-session-{id(session):x}"


@hookimpl
def syxdbg_addoption(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--memory-limit", metavar="SIZE", dest=MEMORY_LIMIT_OPTION, type=parse_size,
        help="most guest memory (all its mappings), e.g. 512M or 2G; beyond it mmap fails "
        "with ENOMEM and brk does not move, as under a cgroup limit (default: half the "
        "host's memory; 'none': no limit). A recording keeps its limit: replay uses it")


    parser.add_argument(
        "--thread-slice", metavar="N", dest=THREAD_SLICE_OPTION, type=_positive_int,
        help="instructions a guest thread runs before a system call may switch to another "
        "runnable thread (default 1000000). Part of the recorded state: a replay keeps the "
        "recorded slice")
    parser.add_argument(
        "--follow", metavar="WHICH", dest=FOLLOW_OPTION, type=parse_follow,
        help="the process of a forking program whose breakpoint and watchpoint hits stop "
        "gdb, the shell and last-write: first (default, the program's first process, as gdb "
        "follows a fork's parent), pid:N, exec:NAME (run forward to the first exec of a "
        "program named NAME and follow that process; gdb, serve, shell and replay start "
        "there) or any")
    parser.add_argument(
        "--schedule", metavar="seed:N", dest=SCHEDULE_OPTION, type=parse_schedule,
        help="perturb the thread schedule reproducibly from seed N: each time slice lasts "
        "1 to 2x --thread-slice instructions and the next thread is any runnable one, both "
        "drawn from N and the position (race hunting: another N, another interleaving; the "
        "same N, the same run). Part of the recorded state: a replay keeps it. 'fifo' (the "
        "default): full slices, oldest runnable thread first")


def parse_follow(text: str) -> tuple[str, int | str | None]:
    """``--follow``: ``pid:N`` (process N: a replay's pids are the recording's), ``exec:NAME``
    (the first process that execs a program named NAME: the session runs forward to that
    exec first), ``any`` (every process's hits stop) or ``first`` (the default: the first
    process, as gdb follows a fork's parent)."""
    kind, _, value = text.partition(":")
    if kind == "pid" and value.isdigit() and int(value) > 0:
        return ("pid", int(value))
    if kind == "exec" and value and "/" not in value:
        return ("exec", value)
    if kind in ("any", "first") and not value:
        return (kind, None)
    raise argparse.ArgumentTypeError(f"invalid --follow {text!r} (pid:N, exec:NAME, any or "
                                     "first)")


def parse_schedule(text: str) -> int:
    """``seed:N`` -> N (a positive integer), ``fifo`` -> 0 (the plain round robin)."""
    t = text.strip().lower()
    if t in ("fifo", "default", "seed:0"):
        return 0
    kind, colon, value = t.partition(":")
    seed = 0
    if kind == "seed" and colon:
        try:
            seed = int(value.replace("_", ""), 0)
        except ValueError:
            seed = 0
    if seed <= 0 or seed >= 1 << 63:
        raise argparse.ArgumentTypeError(f"invalid schedule {text!r} (seed:N with N a "
                                         "positive integer, or fifo)")
    return seed


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", ""), 0)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid thread slice {text!r} (a positive number "
                                         "of instructions)")
    return value


@hookimpl
def syxdbg_configure(session: Session) -> None:
    session.plugins.register(LinuxPlugin(session), _plugin_name(session))


def get_kernel(session: Session) -> LinuxKernel | None:
    """The Linux kernel of ``session`` (None for raw blobs or when the plugin is disabled)."""
    plugin = session.plugins.get_plugin(_plugin_name(session))
    return plugin.kernel if isinstance(plugin, LinuxPlugin) else None
