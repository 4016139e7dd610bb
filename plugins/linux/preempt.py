"""Preemption: a thread's time slice ends at an exact instruction position, even in code
that makes no system call (a spin on a flag another thread sets, a long computation).

The machine has one position timer (``Machine.set_timer``), shared with ITIMER_REAL's
clock comparisons (``Process.arm_timer``). :func:`arm` sets it to the first of the two: the
itimer's next comparison and the end of the running thread's slice (``slice_start`` plus
:func:`~.kernel.slice_length`, the seeded length with ``--schedule seed:N``). When it fires
(:func:`on_timer`, between two instructions) the itimer is compared if its turn came, and
the slice's end switches threads through the scheduler (``LinuxKernel._schedule``, as a
``sched_yield`` would: the next runnable thread runs, the preempted one goes to the back
of the run queue; with none runnable the slice starts again).

Determinism: where a slice ends is a function of ``slice_start``, the slice length and
the seed, all of them kernel state, so a restore re-arms the same timer (``load_state``
calls ``arm_timer``), reverse execution re-executes the same switches and a recording
replays them with no log. A switch at a system call moves ``slice_start`` and re-arms.

Registers: a thread switched out inside a system call is saved with x86_64's ``rip`` at
the ``syscall`` instruction (the CPU steps past it when the hook returns; Thread.regs).
A preempted thread is not in a system call: it resumes at the instruction it had not yet
executed. Both use one convention: the preempted thread is saved with its pc moved back by
the resume gap (2 bytes on x86_64, 0 elsewhere) and, since no system call instruction
completes after a switch made here, the pc the scheduler wrote moves forward by the gap.

States saved before preemption existed (their recordings) have no ``misc["preempt"]``:
their slices end only at system calls, as when they were made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from . import abi
from .sigframe import SI_TKILL

if TYPE_CHECKING:
    from syxdbg.machine import Machine


# What this module needs of the kernel (kernel.py imports this module: typing it with the
# kernel's own classes would be an import circle, tests/test_quality.py).
class ProcessState(Protocol):
    """The fields of kernel.ProcessState read and written here."""

    misc: dict[str, int]
    procs: dict[int, Any]
    threads: dict[int, Any]
    schedule_seed: int
    sigcodes: dict[int, int]
    sigmask: int
    sigpending: int
    slice_start: int
    time_slice: int
    itimer_real: tuple[int, int]
    itimer_checked: tuple[int, int]


class Process(Protocol):
    """The part of kernel.Process used here."""

    ITIMER_CHECK_INSNS: int
    preempt: Callable[[Machine], None] | None

    @property
    def s(self) -> ProcessState: ...

    @property
    def tid(self) -> int: ...

    def _on_timer(self, machine: Machine) -> None: ...

    def timers_armed(self) -> bool: ...

    def run_handlers(self, *, in_syscall: bool = True) -> None: ...


class LinuxKernel(Protocol):
    """The part of kernel.LinuxKernel used here."""

    _resume_gap: int

    @property
    def process(self) -> Process: ...

    def _schedule(self, machine: Machine) -> None: ...

#: ``ProcessState.misc`` key: set (1) in processes that preempt threads at slice ends.
MISC_KEY = "preempt"
#: ``ProcessState.misc`` key prefix (+ tid): signals sent to a thread that was not running
#: (syscalls/threads.py, signal_thread), delivered when it next runs.
PENDING_KEY = "sigpend:"


def schedule_mix(seed: int, position: int, salt: int = 0) -> int:
    """A 64-bit value that depends only on its arguments (splitmix64 of them): the seeded
    scheduler's choices are functions of the seed and instruction positions, so a run, its
    reverse execution and its recording's replay make the same ones."""
    x = (seed * 0x9E3779B97F4A7C15 + position * 0xBF58476D1CE4E5B9 + salt) & abi.MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & abi.MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & abi.MASK64
    return x ^ (x >> 31)


def slice_length(s: ProcessState) -> int:
    """Instructions the running thread's slice lasts: ``time_slice``, or with a schedule
    seed anything from 1 to twice that, drawn when the slice began."""
    if not s.schedule_seed:
        return s.time_slice
    return 1 + schedule_mix(s.schedule_seed, s.slice_start) % (2 * s.time_slice)



def enabled(p: Process) -> bool:
    return bool(p.s.misc.get(MISC_KEY))


def slice_end(p: Process) -> int | None:
    """The position where the running thread's slice ends (None: nothing to preempt: one
    thread in one process, or a process that does not preempt)."""
    s = p.s
    if not (s.threads or s.procs) or p.preempt is None or not s.misc.get(MISC_KEY):
        return None
    return s.slice_start + slice_length(s)


def itimer_due(p: Process) -> int | None:
    """Where the next clock comparison of ITIMER_REAL or a POSIX timer is (None: none is
    armed)."""
    if not p.timers_armed():
        return None
    return p.s.itimer_checked[0] + p.ITIMER_CHECK_INSNS


def arm(p: Process, machine: Machine) -> None:
    """Set the machine's timer to the first of the itimer's next comparison and the end of
    the running thread's slice (never behind the current position), or clear it."""
    due = [at for at in (itimer_due(p), slice_end(p)) if at is not None]
    if not due:
        machine.set_timer(None)
        return
    machine.set_timer(max(min(due), machine.position + 1), lambda m: on_timer(p, m))


def on_timer(p: Process, machine: Machine) -> None:
    """The timer fired: compare the itimer with the clock if its turn came (that may run
    a SIGALRM handler), end the slice if it is over, then set the next timer."""
    pos = machine.position
    at = itimer_due(p)
    if at is not None and pos >= at:
        p._on_timer(machine)
    end = slice_end(p)
    if end is not None and pos >= end and p.preempt is not None:
        p.preempt(machine)
    arm(p, machine)


def deliver_pending(p: Process, *, in_syscall: bool) -> None:
    """After a switch: the signals sent to the thread that now runs while it was not
    running (syscalls/threads.py, signal_thread) that its mask lets through run their
    handlers now, in it (``in_syscall``: from the system call hook, whose return moves an
    x86_64 pc past the system call instruction; else between two instructions)."""
    s = p.s
    key = f"{PENDING_KEY}{p.tid}"
    mine = s.misc.get(key, 0)
    ready = mine & ~s.sigmask
    if not ready:
        return
    if mine & ~ready:
        s.misc[key] = mine & ~ready
    else:
        del s.misc[key]
    s.sigpending |= ready
    for sig in range(1, 65):
        if ready >> (sig - 1) & 1:  # sent by tkill/tgkill (glibc's SIGCANCEL checks it)
            s.sigcodes[sig] = SI_TKILL
    p.run_handlers(in_syscall=in_syscall)


def switch(kernel: LinuxKernel, machine: Machine) -> None:
    """End the running thread's slice between two instructions: the scheduler switches
    to the next runnable thread (or restarts the slice when there is none)."""
    gap = kernel._resume_gap
    regs = machine.regs
    pc = machine.arch.pc
    if gap:  # saved as if inside a system call (see the module doc)
        regs[pc] = (regs[pc] - gap) & 0xFFFF_FFFF_FFFF_FFFF
    kernel._schedule(machine)
    if gap:
        regs[pc] = (regs[pc] + gap) & 0xFFFF_FFFF_FFFF_FFFF
    deliver_pending(kernel.process, in_syscall=False)
