"""Processes: ``processes`` (``info processes``) and ``process N``.

A program that forks (a shell, a server, anything using ``posix_spawn``) is a tree of
processes that run one at a time on the machine (docs/linux.md, Processes). The processes
come from :attr:`Session.processes` (the kernel plugin's process table). Memory and
registers are always the running process's: ``process N`` describes another one (its
program, parent, group, threads and where they resume) without switching to it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .base import CommandError
from .context import Context
from .registry import Arg, Args, CommandRegistry

if TYPE_CHECKING:
    from ..session import GuestProcess


def _state(p: GuestProcess) -> str:
    if p.state != "zombie" or p.status is None:
        return p.state
    if p.status & 0x7F:
        return f"zombie (killed by signal {p.status & 0x7F})"
    return f"zombie (exited {p.status >> 8 & 0xFF})"


def _listing(ctx: Context) -> str:
    procs = ctx.session.processes
    lines = [f"  {'pid':<8} {'ppid':<8} {'pgid':<8} {'threads':<7} {'state':<26} program"]
    for p in procs:
        mark = "*" if p.current else " "
        program = os.path.basename(p.program) if p.program else "-"
        threads = str(p.threads) if p.state != "zombie" else "-"
        lines.append(f"{mark} {p.pid:<8} {p.ppid:<8} {p.pgid:<8} {threads:<7} "
                     f"{_state(p):<26} {program}")
    return "\n".join(lines) + "\n"


def register(r: CommandRegistry) -> None:
    info = r.get("info")

    @r.command("processes", "the program's processes: pid, parent, group, state, program",
               category="info")
    def _processes(ctx: Context, args: Args) -> str:
        """Every process of the program's tree: pid, parent pid, process group, how many
        threads, state (running: the one whose memory and registers you see; runnable;
        blocked; zombie with its exit status until its parent waits) and program. ``*``
        marks the running process."""
        return _listing(ctx)

    @info.subcommand("processes", "the program's processes (same as processes)")
    def _info_processes(ctx: Context, args: Args) -> str:
        return _listing(ctx)

    @r.command("follow", "the process whose hits stop: PID, any or first",
               category="running", args=(Arg("which", "text", optional=True,
                                             help="a pid, any or first"),))
    def _follow(ctx: Context, args: Args) -> str:
        """Say or set which process of a forking program stops ``continue``, ``finish``,
        reverse motions and ``last-write`` at its breakpoint, watchpoint and until hits:
        ``first`` (the default: the program's first process, as gdb follows a fork's
        parent), a pid, or ``any``. Hits in the other processes are passed over. (``syxdbg
        gdb --follow exec:NAME`` starts in the first process that execs NAME.)"""
        s = ctx.session
        which = (args.which or "").strip()
        if which == "any":
            s.follow(None)
        elif which == "first":
            s.follow(s._root_process())
        elif which:
            try:
                pid = int(which, 0)
            except ValueError:
                raise CommandError(f"follow: not a pid, any or first: {which!r}") from None
            if pid <= 0:
                raise CommandError(f"follow: not a process id: {pid}")
            s.follow(pid)
        followed = s.followed
        return ("Following every process.\n" if followed is None
                else f"Following process {followed}.\n")

    @r.command("process", "describe process N (default: the running one)", category="info",
               args=(Arg("pid", "int", optional=True, help="process id"),))
    def _process(ctx: Context, args: Args) -> str:
        """Describe a process: its program, parent, group and state; for the running one
        also its threads (``threads`` lists them). Memory, registers and ``bt`` are always
        the running process's: go to a position where process N runs (``continue`` to a
        breakpoint it reaches, ``goto``) to look inside it."""
        s = ctx.session
        procs = s.processes
        want = args.pid
        chosen = next((p for p in procs if (p.current if want is None else p.pid == want)),
                      None)
        if chosen is None:
            known = ", ".join(str(p.pid) for p in procs)
            raise CommandError(f"no process {want} (processes: {known})")
        program = chosen.program or "?"
        out = [f"process {chosen.pid}: {program}",
               f"  parent {chosen.ppid}, group {chosen.pgid}, {_state(chosen)}"]
        if chosen.current:
            tids = ", ".join(str(t.tid) for t in s.threads)
            out.append(f"  threads: {tids}")
        elif chosen.state != "zombie":
            out.append(f"  {chosen.threads} thread(s); not running now (its memory is not "
                       "the machine's)")
        return "\n".join(out) + "\n"
