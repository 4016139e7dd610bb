"""Run control shared by the forward and reverse commands, in both directions.

Everything goes through the Session's time-travel API (``step``, ``cont``, ``seek``) so the
timeline records (or replays) history. Source-line stepping uses the DWARF line table; frames
are told apart by their CFA (the caller's stack pointer), from the CFI unwinder.
"""

from __future__ import annotations

from ..machine.events import Exited, Fault, Killed, StopEvent, Stopped
from ..timeline import BACKWARD, FORWARD, AcceptFn, Direction
from .base import CommandError
from .context import Context
from .debuginfo import DWARF_REGS, Frame

#: Give up a source-line step after this many instructions (a line that never ends).
MAX_LINE_STEPS = 2_000_000

_TERMINAL = (Exited, Fault, Killed)


def frame_regs(ctx: Context) -> dict[str, int]:
    regs = ctx.session.regs
    arch = ctx.session.machine.arch
    names = set(DWARF_REGS.get(arch.name, {}).values()) | {arch.pc, arch.sp, "pc", "sp"}
    out = {}
    for n in names:
        if arch.register(n) is not None:
            out[n] = int(regs[n])
    return out


def read_word(ctx: Context, address: int) -> int:
    return int.from_bytes(ctx.session.mem.read(address, 8), "little")


def frames(ctx: Context, limit: int = 64) -> list[Frame]:
    return ctx.debuginfo.unwind(frame_regs(ctx), lambda a: read_word(ctx, a), max_frames=limit)


def current_cfa(ctx: Context) -> int | None:
    return frames(ctx, 1)[0].cfa


def sp(ctx: Context) -> int:
    return int(ctx.session.regs.sp)


def is_plain_step(ev: StopEvent) -> bool:
    return isinstance(ev, Stopped) and ev.why in ("step", "count", "seek", "until")


def _condition(ctx: Context, ev: StopEvent) -> bool:
    """Does a breakpoint/watchpoint stop count? (Asked by the timeline with the machine at
    the hit, so a false condition is passed inside one motion, in either direction.)"""
    bp = ctx.breakpoint_for(ev)
    return bp is None or ctx.condition_holds(bp)


def _count_hit(ctx: Context, ev: StopEvent) -> None:
    bp = ctx.breakpoint_for(ev)
    if bp is not None and isinstance(ev, Stopped) and ev.why in ("breakpoint", "watchpoint"):
        bp.hits += 1


def cont(ctx: Context, direction: Direction | str, *, until: int | None = None,
         label: str = "continue", accept: AcceptFn | None = None) -> StopEvent:
    """Continue in ``direction`` (to ``until`` if given), passing breakpoints whose
    condition is false and ``until`` stops ``accept`` refuses: one motion."""

    def ok(ev: StopEvent) -> bool:
        if isinstance(ev, Stopped) and ev.why == "until":
            return accept is None or accept(ev)
        return _condition(ctx, ev)

    ev = ctx.session.cont(direction, poll=ctx.poll(label), until=until, accept=ok)
    _count_hit(ctx, ev)
    return _before_access(ctx, ev)


def _before_access(ctx: Context, ev: StopEvent) -> StopEvent:
    """Backward watch stops land *before* the accessing instruction in the shell, on every
    architecture (the timeline follows gdb's per-architecture convention: after it on
    aarch64, where gdb then steps back itself). Otherwise the next reverse-continue would
    find the same access again."""
    from dataclasses import replace

    from ..timeline import WatchStop

    if isinstance(ev, WatchStop) and ev.direction == "backward" and not ev.before \
            and ctx.session.position == ev.insn_position + 1:
        back = ctx.session.seek(ev.insn_position)  # (a reverse-step would report it again)
        return replace(ev, pc=back.pc, position=back.position, before=True,
                       insn_pc=back.pc)
    return ev


def step(ctx: Context, direction: Direction | str, count: int = 1) -> StopEvent:
    ev = ctx.session.step(direction, count, poll=ctx.poll("step"))
    _count_hit(ctx, ev)
    return ev


def is_call(ctx: Context, pc: int) -> int | None:
    """The address after the instruction at ``pc`` if it is a call, else None."""
    try:
        insn = ctx.session.machine.disassemble(pc, 1)
    except Exception:
        return None
    if not insn:
        return None
    address, mnemonic, _, data = insn[0]
    if mnemonic.startswith("call") or mnemonic in ("bl", "blr"):
        return address + len(data)
    return None


def finish(ctx: Context, direction: Direction | str = FORWARD) -> StopEvent:
    """``finish`` / ``reverse-finish``: run until the current function returns to its
    caller, or go back to the call instruction that called it. One motion to an internal
    breakpoint (the return address, or the function's entry backwards) whose stops only
    count in this activation (stack pointer check, so recursion is handled)."""
    s = ctx.session
    d = Direction.of(direction)
    fs = frames(ctx, 2)
    if len(fs) < 2 or fs[0].cfa is None:
        raise CommandError("cannot find the caller's frame (no CFI and no frame pointer "
                           "here)")
    cfa = fs[0].cfa
    if d is FORWARD:
        ret = fs[1].pc
        return cont(ctx, d, until=ret, label="finish", accept=lambda ev: sp(ctx) >= cfa)
    entry_sp = cfa - (8 if s.machine.arch.name == "x86_64" else 0)
    pc = s.regs.pc
    entry = _fde_start(ctx, pc) if ctx.debuginfo.cfi_row(pc) is not None else None
    if entry is None:
        sym = ctx.debuginfo.symbol_at(pc)
        entry = sym[1] if sym is not None else None
    if entry is None:
        raise CommandError("cannot find the start of the current function")
    with s.motion():
        if not (pc == entry and sp(ctx) == entry_sp):
            ev = cont(ctx, d, until=entry, label="reverse-finish",
                      accept=lambda ev: sp(ctx) == entry_sp)
            if not (isinstance(ev, Stopped) and ev.why == "until"):
                return ev
        return step(ctx, d)


def finish_frame(ctx: Context) -> StopEvent:
    """``finish`` (see :func:`finish`)."""
    return finish(ctx, FORWARD)


def reverse_finish_frame(ctx: Context) -> StopEvent:
    """``reverse-finish`` (see :func:`finish`)."""
    return finish(ctx, BACKWARD)


def _fde_start(ctx: Context, pc: int) -> int | None:
    di = ctx.debuginfo
    di._load_cfi()
    import bisect
    i = bisect.bisect_right(di._fde_starts, pc) - 1
    if i >= 0 and di._fdes is not None and di._fdes[i][0] <= pc < di._fdes[i][1]:
        return di._fdes[i][0]
    return None


def nexti(ctx: Context, count: int, direction: Direction | str = FORWARD) -> StopEvent:
    """``nexti``/``reverse-nexti``: instructions, calls as a whole. Forward a call runs to
    its return address in the same frame; backward, stepping back onto a return lands on
    the matching call instruction instead."""
    s = ctx.session
    d = Direction.of(direction)
    ev: StopEvent = Stopped(s.regs.pc, s.position, "step")
    with s.motion():
        for _ in range(count):
            if d is FORWARD:
                ret = is_call(ctx, s.regs.pc)
                if ret is None:
                    ev = step(ctx, d)
                else:
                    ev = cont(ctx, d, until=ret, label="next",
                              accept=_not_deeper(ctx, sp(ctx)))
                    if isinstance(ev, Stopped) and ev.why == "until":
                        ev = Stopped(ev.pc, ev.position, "step")
            else:
                cfa0 = current_cfa(ctx)
                ev = step(ctx, d)
                if is_plain_step(ev):
                    cfa = current_cfa(ctx)
                    if cfa0 is not None and cfa is not None and cfa < cfa0:
                        ev = finish(ctx, d)
            if not is_plain_step(ev) or ctx.interrupted.is_set():
                return ev
    return ev


def _not_deeper(ctx: Context, floor: int) -> AcceptFn:
    """Accept a stop only in the frame whose stack pointer was ``floor`` or an outer one."""
    return lambda ev: sp(ctx) >= floor


def reverse_nexti(ctx: Context, count: int) -> StopEvent:
    return nexti(ctx, count, BACKWARD)


def _line_key(ctx: Context, pc: int) -> tuple[str, int] | None:
    row = ctx.debuginfo.line_at(pc)
    return None if row is None else (row.file, row.line)


def _require_lines(ctx: Context, what: str) -> None:
    if ctx.session.image.kind != "elf" or not ctx.debuginfo.has_lines:
        raise CommandError(f"{what}: the program has no line information (build with -g); "
                           f"use {what[0]}i / {'n' if 'next' in what else 's'}i")


def _line_span(ctx: Context, pc: int, key: tuple[str, int]) -> tuple[int, int] | None:
    """The address range around ``pc`` that belongs to line ``key`` (consecutive rows)."""
    di = ctx.debuginfo
    rng = di.line_range(pc)
    if rng is None:
        return None
    lo, hi = rng
    for _ in range(64):
        nxt = di.line_range(hi)
        if nxt is None or nxt[0] != hi or _line_key(ctx, hi) != key \
                or di.is_stmt_start(hi):
            break
        hi = nxt[1]
    return lo, hi


def line_step(ctx: Context, over: bool, direction: Direction | str = FORWARD) -> StopEvent:
    """``step``/``next`` and ``reverse-step``/``reverse-next``, by source line: one motion.

    Forward the current line runs as range steps (one timeline motion each, no checkpoint
    per instruction); backward it un-executes instruction by instruction. Both directions
    share the frame logic: a call (a deeper frame) is finished as a whole when stepping
    over it or when it has no line information, else entered (after the prologue forward,
    at its last line backward); stepping out into the caller in the middle of its line
    finishes that line first, as gdb does.
    """
    s = ctx.session
    d = Direction.of(direction)
    name = ("next" if over else "step") if d is FORWARD else \
        ("reverse-next" if over else "reverse-step")
    _require_lines(ctx, name)
    with s.motion():
        return _line_step(ctx, over, d)


def _line_step(ctx: Context, over: bool, d: Direction) -> StopEvent:
    s = ctx.session
    start = _line_key(ctx, s.regs.pc)
    if start is None and d is FORWARD:  # in code without line information: to the caller
        return finish(ctx, d)
    cfa0 = current_cfa(ctx)
    target: tuple[str, int] | None = None
    cfa1 = cfa0
    # Phase 1: move until the line (or the frame) changes.
    for _ in range(MAX_LINE_STEPS):
        span = _line_span(ctx, s.regs.pc, start) if d is FORWARD and start else None
        if span is not None and span[0] <= s.regs.pc < span[1]:
            ev = s.range_step(span[0], span[1], d, poll=ctx.poll(name_of(d, over)))
            _count_hit(ctx, ev)
        else:
            ev = step(ctx, d)
        if not is_plain_step(ev) or ctx.interrupted.is_set():
            return ev
        pc = s.regs.pc
        cfa = current_cfa(ctx)
        if cfa0 is not None and cfa is not None and cfa < cfa0:  # into a callee
            if over or _line_key(ctx, pc) is None:
                ev = finish(ctx, d)
                if not is_plain_step(ev):
                    return ev
                pc = s.regs.pc  # back in this frame: where the call returned may be a
                cfa = current_cfa(ctx)  # new line (a loop's increment), checked below
            elif d is FORWARD:
                return _skip_prologue(ctx)
            else:
                target, cfa1 = _line_key(ctx, pc), cfa
                break
        if cfa0 is not None and cfa is not None and cfa > cfa0:  # out to the caller
            key = _line_key(ctx, pc)
            if d is BACKWARD:
                target, cfa1 = key, cfa
                if target is None:
                    return Stopped(pc, s.position, "step")
                break
            if key is None:
                return finish(ctx, d) if frames(ctx, 2)[1:] else ev
            if ctx.debuginfo.is_stmt_start(pc):
                return Stopped(pc, s.position, "step")
            start, cfa0 = key, cfa  # mid-line in the caller: finish that line (gdb)
            continue
        key = _line_key(ctx, pc)
        if key is not None and key != start:
            if d is FORWARD:
                if ctx.debuginfo.is_stmt_start(pc):
                    return Stopped(pc, s.position, "step")
                continue
            target, cfa1 = key, cfa
            break
    else:
        raise CommandError(f"the line did not end after {MAX_LINE_STEPS} instructions")
    # Backward, phase 2: walk back to the first instruction of that line's execution.
    good = s.position
    for _ in range(MAX_LINE_STEPS):
        ev = step(ctx, d)
        if not is_plain_step(ev):
            break
        cfa = current_cfa(ctx)
        if cfa1 is not None and cfa is not None and cfa < cfa1:
            ev = finish(ctx, d)
            if not is_plain_step(ev):
                return ev
            cfa = current_cfa(ctx)
        if _line_key(ctx, s.regs.pc) != target or cfa != cfa1 or ctx.interrupted.is_set():
            s.seek(good)
            break
        good = s.position
    return Stopped(s.regs.pc, s.position, "step")


def name_of(d: Direction, over: bool) -> str:
    base = "next" if over else "step"
    return base if d is FORWARD else f"reverse-{base}"


def _skip_prologue(ctx: Context) -> StopEvent:
    """Just entered a function: stop past its prologue, where gdb's ``step`` does
    (:meth:`~syxdbg.commands.debuginfo.DebugInfo.step_in_target`)."""
    s = ctx.session
    entry = s.regs.pc
    target = ctx.debuginfo.step_in_target(entry)
    for _ in range(64):
        pc = s.regs.pc
        if pc == target:
            break
        row_range = ctx.debuginfo.line_range(entry)
        if row_range is None or not (row_range[0] <= pc < row_range[1] or pc == entry):
            break
        ev = step(ctx, FORWARD)
        if not is_plain_step(ev):
            return ev
    return Stopped(s.regs.pc, s.position, "step")


def reverse_line_step(ctx: Context, over: bool) -> StopEvent:
    """``reverse-step``/``reverse-next`` (:func:`line_step` backward)."""
    return line_step(ctx, over, BACKWARD)
