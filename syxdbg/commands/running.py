"""Run control, forward and backward: run, continue, stepi, nexti, step, next, finish and
their reverse-* counterparts (the same code with a direction, as rr does it)."""

from __future__ import annotations

from typing import Any

from ..machine.events import StopEvent
from . import motion
from .context import Context
from .registry import Arg, Args, CommandRegistry

_COUNT = Arg("count", "int", optional=True, help="how many times (default 1)")


def _stop(ctx: Context, ev: StopEvent) -> str:
    return ctx.describe(ev) + "\n"


def register(r: CommandRegistry) -> None:
    fwd: dict[str, Any] = {"category": "running", "moves": True, "shell_only": True}
    rev: dict[str, Any] = {"category": "reverse", "moves": True, "shell_only": True}

    @r.command("run", "run the program from the beginning of history until it stops",
               aliases=("r",), **fwd,
               description="Go to the origin of history (position 0 for a fresh session) "
               "and continue from there. Breakpoints and watchpoints stop it; behind the "
               "frontier the recorded history is replayed.")
    def _run(ctx: Context, args: Args) -> str:
        s = ctx.session
        if s.position != s.when().origin:
            s.seek(s.when().origin)
        return _stop(ctx, motion.cont(ctx, "forward"))

    @r.command("continue", "continue until a breakpoint, watchpoint, exit or Ctrl-C",
               aliases=("c", "cont"), repeat=True, **fwd)
    def _continue(ctx: Context, args: Args) -> str:
        """Run forward. Breakpoints whose condition is false are passed silently. Behind
        the frontier the recording is replayed, then execution goes on live."""
        return _stop(ctx, motion.cont(ctx, "forward"))

    @r.command("stepi", "execute N instructions (default 1)", aliases=("si",),
               args=(_COUNT,), repeat=True, **fwd)
    def _stepi(ctx: Context, args: Args) -> str:
        """Exactly N instructions, stopping early at breakpoints, watchpoints and exit."""
        return _stop(ctx, motion.step(ctx, "forward", _count(args)))

    @r.command("nexti", "execute N instructions, stepping over calls", aliases=("ni",),
               args=(_COUNT,), repeat=True, **fwd)
    def _nexti(ctx: Context, args: Args) -> str:
        """Like stepi, but a call instruction runs until the call returns."""
        return _stop(ctx, motion.nexti(ctx, _count(args)))

    @r.command("step", "run to the next source line, entering calls", aliases=("s",),
               args=(_COUNT,), repeat=True, **fwd)
    def _step(ctx: Context, args: Args) -> str:
        """Source-line step (DWARF line table). A call into a function with line
        information stops after its prologue; functions without it are stepped over."""
        ev = None
        for _ in range(_count(args)):
            ev = motion.line_step(ctx, over=False)
            if not motion.is_plain_step(ev):
                break
        assert ev is not None
        return _stop(ctx, ev)

    @r.command("next", "run to the next source line, stepping over calls", aliases=("n",),
               args=(_COUNT,), repeat=True, **fwd)
    def _next(ctx: Context, args: Args) -> str:
        """Source-line step that runs called functions to their return."""
        ev = None
        for _ in range(_count(args)):
            ev = motion.line_step(ctx, over=True)
            if not motion.is_plain_step(ev):
                break
        assert ev is not None
        return _stop(ctx, ev)

    @r.command("finish", "run until the current function returns", aliases=("fin",),
               **fwd)
    def _finish(ctx: Context, args: Args) -> str:
        """The caller and return address come from the unwinder (CFI, else frame
        pointers); recursion is handled by comparing stack pointers."""
        pc = ctx.session.regs.pc
        ev = motion.finish_frame(ctx)
        head = f"Run till exit from {ctx.where(pc, line=False)}\n"
        return head + _stop(ctx, ev)

    @r.command("reverse-stepi", "un-execute N instructions (default 1)", aliases=("rsi",),
               args=(_COUNT,), repeat=True, **rev)
    def _rsi(ctx: Context, args: Args) -> str:
        """Restores the nearest checkpoint and re-executes to one instruction earlier.
        With N > 1 it stops at the last breakpoint/watchpoint hit on the way."""
        return _stop(ctx, motion.step(ctx, "backward", _count(args)))

    @r.command("reverse-nexti", "un-execute N instructions, stepping back over calls",
               aliases=("rni",), args=(_COUNT,), repeat=True, **rev)
    def _rni(ctx: Context, args: Args) -> str:
        """Stepping back onto a return lands on the matching call instruction instead."""
        return _stop(ctx, motion.reverse_nexti(ctx, _count(args)))

    @r.command("reverse-step", "go back to the beginning of the previous source line",
               aliases=("rs",), args=(_COUNT,), repeat=True, **rev)
    def _rs(ctx: Context, args: Args) -> str:
        """Enters called functions that have line information (at their last line)."""
        ev = None
        for _ in range(_count(args)):
            ev = motion.reverse_line_step(ctx, over=False)
            if not motion.is_plain_step(ev):
                break
        assert ev is not None
        return _stop(ctx, ev)

    @r.command("reverse-next", "go back to the beginning of the previous source line, "
               "over calls", aliases=("rn",), args=(_COUNT,), repeat=True,
               **rev)
    def _rn(ctx: Context, args: Args) -> str:
        """Calls made by the previous line are stepped back over as a whole."""
        ev = None
        for _ in range(_count(args)):
            ev = motion.reverse_line_step(ctx, over=True)
            if not motion.is_plain_step(ev):
                break
        assert ev is not None
        return _stop(ctx, ev)

    @r.command("reverse-finish", "go back to the call of the current function",
               aliases=("rf",), **rev)
    def _rf(ctx: Context, args: Args) -> str:
        """Lands on the call instruction in the caller, before the call executed."""
        return _stop(ctx, motion.reverse_finish_frame(ctx))

    @r.command("reverse-continue", "run backward to the previous breakpoint or watchpoint "
               "hit", aliases=("rc",), repeat=True, **rev)
    def _rc(ctx: Context, args: Args) -> str:
        """Scans checkpoint intervals newest to oldest and lands on the last hit strictly
        before now, or at the beginning of history. Shows progress; Ctrl-C stops it."""
        return _stop(ctx, motion.cont(ctx, "backward", label="reverse-continue"))


def _count(args: Args) -> int:
    n = 1 if args.count is None else int(args.count)
    if n < 1:
        from .registry import CommandError
        raise CommandError("the count must be at least 1")
    return n
