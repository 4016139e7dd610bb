"""Threads: ``threads`` (``info threads``), ``thread [N]``, the ``threads`` pane, and
:func:`describe`, the text gdb's ``qThreadExtraInfo`` and DAP's thread names use.

A thread is named by the function it started in (the outermost frame of its backtrace that
is not the thread library's start-up code: ``worker`` for a pthread, ``main`` for the main
thread), plus the name the program gave it (``prctl(PR_SET_NAME)``) when the kernel knows
one. Threads come from :attr:`Session.threads` (the kernel plugin's scheduler); selecting
one (:meth:`Session.select_thread`) makes ``regs``, ``bt``, ``x/i $pc``... show it and
``stepi`` step it, until the next stop selects the thread that stopped.
"""

from __future__ import annotations

import bisect
import struct
from typing import TYPE_CHECKING, Any

from ..errors import SyxdbgError
from .base import CommandError
from .context import Context
from .debuginfo import DebugInfo
from .registry import Arg, Args, CommandRegistry

if TYPE_CHECKING:
    from ..session import GuestThread, Session
    from .panes import Line

#: Start-up code around a thread's own function: glibc (``clone3``/``__clone3``,
#: ``start_thread``), musl (``__clone``, ``start``, ``start_c11``) and the main thread's
#: (``_start``, ``__libc_start_main``, ``__libc_start_call_main``).
TRAMPOLINES = frozenset({
    "clone", "__clone", "clone3", "__clone3", "__clone_internal", "start_thread",
    "thread_start", "start", "start_c11", "_start", "_start_c", "__libc_start_main",
    "__libc_start_call_main", "__libc_start_main_impl", "libc_start_main_stage2",
    "__thread_start",
})


#: Most bytes of a thread's stack scanned for return addresses (from sp up).
STACK_SCAN = 256 * 1024
#: The program's symbols by address, per image (id -> (image, rows, starts)).
_TABLES: dict[int, tuple[Any, list[tuple[int, int, str]], list[int]]] = {}


def _is_return_address(session: Session, address: int) -> bool:
    """Whether ``address`` follows a call instruction (x86_64 ``call rel32``/``call
    r/m``, aarch64 ``bl``/``blr``)."""
    try:
        if session.machine.arch.name == "aarch64":
            word = int.from_bytes(session.mem.read(address - 4, 4), "little")
            return word & 0xFC000000 == 0x94000000 or word & 0xFFFFFC1F == 0xD63F0000
        code = session.mem.read(address - 7, 7)
    except SyxdbgError:
        return False
    if code[2] == 0xE8:
        return True
    return any(code[7 - n] == 0xFF and (code[8 - n] >> 3) & 7 == 2 for n in (2, 3, 6, 7))


def start_function(session: Session, thread: GuestThread, di: DebugInfo | None = None
                   ) -> str | None:
    """The function ``thread`` started in, from its stack (None when it does not tell).

    The process's first thread started in ``main``. For the others, the candidates are
    its pc's function, then (aarch64) the link register's, then those
    the return addresses on its stack return into, innermost first; only the program's own
    code counts. The last candidate before the thread library's start-up code (or the
    last one) is the answer. Cheap (one read of the live stack and the program's symbol
    table, no unwinding): gdb asks at every stop."""
    image = session.image
    if image.kind != "elf":
        return None
    cached = _TABLES.get(id(image))
    if cached is None or cached[0] is not image:
        rows = sorted((addr, max(image.symbol_sizes.get(name, 0), 1), name)
                      for name, addr in image.symbols.items() if name)
        cached = _TABLES[id(image)] = (image, rows, [row[0] for row in rows])
        while len(_TABLES) > 8:
            del _TABLES[next(iter(_TABLES))]
    _, table, starts = cached

    def function(address: int) -> str | None:
        i = bisect.bisect_right(starts, address) - 1
        if i < 0:
            return None
        addr, size, name = table[i]
        return name if address < addr + size else None

    try:
        regs = session.thread_registers(thread.tid)
        pc, sp = int(regs.pc), int(regs.sp)
        region = next((r for r in session.mem.regions() if r.start <= sp < r.end), None)
        if region is None:
            return None
        stack = session.mem.read(sp, min(region.end - sp, STACK_SCAN) & ~7)
    except SyxdbgError:
        return None
    if thread.leader and "main" in image.symbols:
        return "main"  # (above main's frame, start-up code leaves stale return addresses)
    names = [function(pc)]
    if names[0] in TRAMPOLINES:
        return None  # not started yet (a new thread in clone)
    lr = "x30" if session.machine.arch.name == "aarch64" else None
    if lr is not None and _is_return_address(session, int(regs[lr])):
        names.append(function(int(regs[lr]) - 1))  # a leaf's caller: not saved yet
    found = None
    for name in names:
        if name is not None and name not in TRAMPOLINES:
            found = name
    for (word,) in struct.iter_unpack("<Q", stack):
        name = function(word - 1) if starts and starts[0] < word else None
        if name is None or not _is_return_address(session, word):
            continue
        if name not in TRAMPOLINES:
            found = name
        elif found is not None:
            break  # the start-up code that called it: found is where the thread began
    return found


def describe(session: Session, thread: GuestThread, di: DebugInfo | None = None) -> str:
    """``worker, blocked: futex wait on 0x...`` (what gdb shows in parentheses)."""
    name = start_function(session, thread, di)
    state = thread.state + (f": {thread.waiting}" if thread.waiting else "")
    parts = [p for p in (thread.name, name, state) if p]
    return ", ".join(dict.fromkeys(parts))


def _find(session: Session, number: int) -> GuestThread:
    """A thread by tid, or by its number in the ``threads`` list (1, 2...)."""
    threads = sorted(session.threads, key=lambda t: t.tid)
    for t in threads:
        if t.tid == number:
            return t
    if 1 <= number <= len(threads):
        return threads[number - 1]
    known = ", ".join(str(t.tid) for t in threads)
    raise CommandError(f"no thread {number} (thread ids: {known}; or 1-{len(threads)})")


def _listing(ctx: Context) -> str:
    s = ctx.session
    selected = s.thread.tid
    lines = [f"  {'Id':<3} {'Tid':<8} {'State':<9} {'Started in':<18} Where"]
    for i, t in enumerate(sorted(s.threads, key=lambda t: t.tid), 1):
        mark = "*" if t.tid == selected else " "
        start = start_function(s, t, ctx.debuginfo) or "??"
        if t.name:  # the name the program gave it (prctl, pthread_setname_np)
            start = f'"{t.name}" {start}'
        state = t.state + (" (current)" if t.current and t.tid != selected else "")
        where = ctx.where(t.pc)
        wait = f"  [{t.waiting}]" if t.waiting else ""
        lines.append(f"{mark} {i:<3} {t.tid:<8} {state:<9} {start:<18} {where}{wait}")
    return "\n".join(lines) + "\n"


def threads_pane(ctx: Context, width: int) -> list[Line]:
    """The selected thread and the others, one line each (nothing for one thread)."""
    s = ctx.session
    threads = sorted(s.threads, key=lambda t: t.tid)
    if len(threads) < 2:
        return []
    selected = s.thread.tid
    out: list[Line] = []
    for i, t in enumerate(threads, 1):
        mark = "*" if t.tid == selected else " "
        style = "class:reg.changed" if t.tid == selected else ""
        start = start_function(s, t, ctx.debuginfo) or "??"
        text = f"{mark} {i} tid {t.tid} {t.state:<8} {start:<16} {ctx.where(t.pc)}"
        out.append([(style, text[:max(20, width - 1)])])
    return out


def register(r: CommandRegistry) -> None:
    info = r.get("info")

    @r.command("threads", "the program's threads: id, tid, state, start function, pc",
               category="info")
    def _threads(ctx: Context, args: Args) -> str:
        """Every thread of the program (the kernel's scheduler runs one at a time): its
        number, thread id, state (running, runnable, blocked and on what), the function
        it started in and where it resumes. ``*`` marks the selected thread."""
        return _listing(ctx)

    @info.subcommand("threads", "the program's threads (same as threads)")
    def _info_threads(ctx: Context, args: Args) -> str:
        return _listing(ctx)

    @r.command("thread", "select thread N (a tid or a number of the threads list)",
               category="stack", moves=True, shell_only=True,
               args=(Arg("number", "int", optional=True, help="tid or list number"),))
    def _thread(ctx: Context, args: Args) -> str:
        """Without N, say which thread is selected. With N, select it: registers, ``bt``,
        ``x`` and the context display show that thread and ``stepi`` steps it (the other
        threads run only while it cannot). The next stop selects the thread that
        stopped."""
        s = ctx.session
        if args.number is not None:
            t = _find(s, args.number)
            s.select_thread(t.tid)
        t = s.thread
        start = start_function(s, t, ctx.debuginfo) or "??"
        return (f"[Current thread is {t.tid} ({start}, {t.state}) at "
                f"{ctx.where(t.pc)}]\n")

    r.panes.add("threads", threads_pane, "the threads (the selected one marked), when "
                "there are several")
