"""Traces of threaded programs: which thread ran each traced instruction, and one Tenet
trace per thread.

One machine runs every guest thread (the Linux plugin's scheduler switches between them at
system calls and at the end of time slices), so a trace of positions [FROM, TO) is the
whole program's instructions in the order they ran, several threads interleaved: at a
switch the registers jump to the next thread's. Tenet has no notion of threads (a line
with a name it does not know is rejected), so ``trace`` keeps the interleaved file as it is
and, when more than one thread ran in the range, also writes one trace per thread,
``FILE.TID``: that thread's instructions only, a Tenet trace of its own.

* :class:`SwitchSpy` watches the kernel's switches while the range is re-executed (it wraps
  the system call handler and the preemption callback for that time only) and records
  ``(position, tid)``: from that position on, thread ``tid`` runs.
* :func:`split` turns the interleaved trace into per-thread ones. Lines are deltas (the
  registers that changed since the line before, all of them on the first line), so each
  thread's file gets, at the first line of each of its stretches, every register that
  differs from its own previous line (every register on its first line). A line's memory
  accesses (``mr``/``mw``) are those of the instruction before it: at a stretch's first line
  they belong to another thread and are dropped; those of a stretch's last instruction are
  on the other thread's first line, and move to this thread's next line (where they
  describe, for this file too, the instruction before).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from syxdbg.machine import Machine
    from syxdbg.session import Session

__all__ = ["SwitchSpy", "split"]


class SwitchSpy:
    """Records the thread switches of a re-execution: ``switches`` is ``[(position, tid)]``,
    the first entry the thread running at the start. Without the Linux plugin (a raw blob)
    there is one thread and nothing to watch."""

    def __init__(self, session: Session) -> None:
        self.switches: list[tuple[int, int]] = [(session.position, session.current_thread)]
        self._undo: list[Callable[[], None]] = []
        try:
            from syxdbg_plugins.linux import get_kernel
        except ImportError:  # (the linux plugin is not installed)
            return
        kernel = get_kernel(session)
        if kernel is None:
            return
        machine = session.machine
        process = kernel.process

        def note(m: Machine, before: int) -> None:
            if kernel.switches != before:
                self.switches.append((m.position, process.tid))

        inner = machine.syscall_handler
        if inner is not None:
            def on_syscall(m: Machine) -> None:
                before = kernel.switches
                inner(m)
                note(m, before)

            machine.set_syscall_handler(on_syscall)
            self._undo.append(lambda: machine.set_syscall_handler(inner))
        preempt = process.preempt
        if preempt is not None:
            def on_preempt(m: Machine) -> None:
                before = kernel.switches
                preempt(m)
                note(m, before)

            process.preempt = on_preempt

            def restore() -> None:
                process.preempt = preempt

            self._undo.append(restore)

    def detach(self) -> None:
        while self._undo:
            self._undo.pop()()

    def stretches(self, start: int, end: int) -> list[tuple[int, int, int]]:
        """``(first, last + 1, tid)`` of every stretch of [start, end) one thread ran."""
        out: list[tuple[int, int, int]] = []
        points = [(p, t) for p, t in self.switches if p < end]
        for i, (pos, tid) in enumerate(points):
            stop = points[i + 1][0] if i + 1 < len(points) else end
            first = max(pos, start)
            if stop <= first:
                continue
            if out and out[-1][2] == tid:
                out[-1] = (out[-1][0], stop, tid)
            else:
                out.append((first, stop, tid))
        return out


def _fields(line: str) -> tuple[dict[str, str], list[str]]:
    regs: dict[str, str] = {}
    mem: list[str] = []
    for item in line.rstrip("\n").split(","):
        if not item:
            continue
        name, _, value = item.partition("=")
        if name in ("mr", "mw", "mrw"):
            mem.append(item)
        else:
            regs[name] = value
    return regs, mem


def split(source: IO[str], start: int, stretches: list[tuple[int, int, int]],
          open_out: Callable[[int], IO[str]]) -> dict[int, int]:
    """Write each thread's lines of the interleaved trace ``source`` (line k: position
    start + k) to ``open_out(tid)``; returns the lines written per thread."""
    outs: dict[int, IO[str]] = {}
    last: dict[int, dict[str, str]] = {}  # each file's registers as its last line left them
    carried: dict[int, list[str]] = {}  # memory accesses of a stretch's last instruction
    counts: dict[int, int] = {}
    state: dict[str, str] = {}  # the interleaved trace's registers
    bounds = iter(stretches)
    current = next(bounds, None)
    previous_tid: int | None = None
    for k, line in enumerate(source):
        pos = start + k
        regs, mem = _fields(line)
        state.update(regs)
        while current is not None and pos >= current[1]:
            current = next(bounds, None)
        if current is None:
            break
        tid = current[2]
        if previous_tid is not None and previous_tid != tid and mem:
            carried[previous_tid] = mem  # the other thread's last instruction's accesses
        out = outs.get(tid)
        if out is None:
            out = outs[tid] = open_out(tid)
        mine = last.setdefault(tid, {})
        if previous_tid != tid:  # a stretch begins: whatever differs from its own last line
            changed = {n: v for n, v in state.items() if mine.get(n) != v}
            mem = carried.pop(tid, [])
        else:
            changed = regs
        mine.update(changed)
        out.write(",".join([*(f"{n}={v}" for n, v in changed.items()), *mem]) + "\n")
        counts[tid] = counts.get(tid, 0) + 1
        previous_tid = tid
    for out in outs.values():
        out.close()
    return counts
