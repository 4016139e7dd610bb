"""Run control shared by the forward and reverse commands, in both directions.

Everything goes through the Session's time-travel API (``step``, ``cont``, ``seek``) so the
timeline records (or replays) history. Source-line stepping uses the DWARF line table; frames
are told apart by their CFA (the caller's stack pointer), from the CFI unwinder.
"""

from __future__ import annotations

from ..machine.events import Exited, Fault, Killed, StopEvent, Stopped
from .context import Context
from .debuginfo import DWARF_REGS, Frame
from .registry import CommandError

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


def _user_stop(ctx: Context, ev: StopEvent) -> bool:
    """A breakpoint/watchpoint stop that counts (its condition holds); counts the hit."""
    bp = ctx.breakpoint_for(ev)
    if bp is None:
        return True
    if not ctx.condition_holds(bp):
        return False
    bp.hits += 1
    return True


def cont(ctx: Context, direction: str, *, until: int | None = None,
         label: str = "continue") -> StopEvent:
    """Continue in ``direction``, skipping breakpoints whose condition is false."""
    s = ctx.session
    while True:
        ev = s.cont(direction, poll=ctx.poll(label), until=until)
        if isinstance(ev, Stopped) and ev.why in ("breakpoint", "watchpoint") \
                and not _user_stop(ctx, ev):
            if ctx.interrupted.is_set():
                return ev
            continue
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


def step(ctx: Context, direction: str, count: int = 1) -> StopEvent:
    ev = ctx.session.step(direction, count, poll=ctx.poll("step"))
    if isinstance(ev, Stopped) and ev.why in ("breakpoint", "watchpoint"):
        _user_stop(ctx, ev)
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


def finish_frame(ctx: Context) -> StopEvent:
    """Run until the current function returns to its caller (``finish``)."""
    fs = frames(ctx, 2)
    if len(fs) < 2 or fs[0].cfa is None:
        raise CommandError("cannot find the caller's frame (no CFI and no frame pointer "
                           "here)")
    ret, cfa = fs[1].pc, fs[0].cfa
    while True:
        ev = cont(ctx, "forward", until=ret, label="finish")
        if isinstance(ev, Stopped) and ev.why == "until" and sp(ctx) < cfa:
            if ctx.interrupted.is_set():
                return ev
            continue  # a deeper (recursive) activation returned there
        return ev


def reverse_finish_frame(ctx: Context) -> StopEvent:
    """Go back to the call instruction that called the current function."""
    s = ctx.session
    fs = frames(ctx, 2)
    if len(fs) < 2 or fs[0].cfa is None:
        raise CommandError("cannot find the caller's frame (no CFI and no frame pointer "
                           "here)")
    cfa = fs[0].cfa
    entry_sp = cfa - (8 if s.machine.arch.name == "x86_64" else 0)
    sym = ctx.debuginfo.symbol_at(s.regs.pc)
    got = ctx.debuginfo.cfi_row(s.regs.pc)
    entry = None
    if got is not None:
        entry = _fde_start(ctx, s.regs.pc)
    if entry is None and sym is not None:
        entry = sym[1]
    if entry is None:
        raise CommandError("cannot find the start of the current function")
    if s.regs.pc == entry and sp(ctx) == entry_sp:
        return step(ctx, "backward")
    temp = entry not in s.machine.breakpoints
    if temp:
        s.add_breakpoint(entry)
    try:
        while True:
            ev = s.cont("backward", poll=ctx.poll("reverse-finish"))
            if isinstance(ev, Stopped) and ev.why == "breakpoint" and ev.pc == entry:
                if sp(ctx) == entry_sp:
                    break
                if ctx.breakpoint_for(ev) is not None and _user_stop(ctx, ev):
                    return ev
                if ctx.interrupted.is_set():
                    return ev
                continue
            if isinstance(ev, Stopped) and ev.why in ("breakpoint", "watchpoint") \
                    and not _user_stop(ctx, ev) and not ctx.interrupted.is_set():
                continue
            return ev
    finally:
        if temp:
            s.remove_breakpoint(entry)
    return step(ctx, "backward")


def _fde_start(ctx: Context, pc: int) -> int | None:
    di = ctx.debuginfo
    di._load_cfi()
    import bisect
    i = bisect.bisect_right(di._fde_starts, pc) - 1
    if i >= 0 and di._fdes is not None and di._fdes[i][0] <= pc < di._fdes[i][1]:
        return di._fdes[i][0]
    return None


def nexti(ctx: Context, count: int) -> StopEvent:
    ev: StopEvent = Stopped(ctx.session.regs.pc, ctx.session.position, "step")
    for _ in range(count):
        ret = is_call(ctx, ctx.session.regs.pc)
        ev = step(ctx, "forward") if ret is None else finish_call(ctx, ret)
        if not is_plain_step(ev) or ctx.interrupted.is_set():
            return ev
    return ev


def finish_call(ctx: Context, ret: int) -> StopEvent:
    """Execute the call at pc and stop when it returns to ``ret`` (same stack depth)."""
    here_sp = sp(ctx)
    ev = step(ctx, "forward")
    if not is_plain_step(ev):
        return ev
    while True:
        ev = cont(ctx, "forward", until=ret, label="next")
        if isinstance(ev, Stopped) and ev.why == "until" and sp(ctx) < here_sp:
            if ctx.interrupted.is_set():
                return ev
            continue
        if isinstance(ev, Stopped) and ev.why == "until":
            return Stopped(ev.pc, ev.position, "step")
        return ev


def reverse_nexti(ctx: Context, count: int) -> StopEvent:
    ev: StopEvent = Stopped(ctx.session.regs.pc, ctx.session.position, "step")
    for _ in range(count):
        cfa0 = current_cfa(ctx)
        ev = step(ctx, "backward")
        if not is_plain_step(ev):
            return ev
        cfa = current_cfa(ctx)
        if cfa0 is not None and cfa is not None and cfa < cfa0:
            ev = reverse_finish_frame(ctx)
            if not is_plain_step(ev):
                return ev
        if ctx.interrupted.is_set():
            return ev
    return ev


def _line_key(ctx: Context, pc: int) -> tuple[str, int] | None:
    row = ctx.debuginfo.line_at(pc)
    return None if row is None else (row.file, row.line)


def _require_lines(ctx: Context, what: str) -> None:
    if ctx.session.image.kind != "elf" or not ctx.debuginfo.has_lines:
        raise CommandError(f"{what}: the program has no line information (build with -g); "
                           f"use {what[0]}i / {'n' if 'next' in what else 's'}i")


def line_step(ctx: Context, over: bool) -> StopEvent:
    """``step`` (into calls with line info) or ``next`` (over calls), by source line."""
    s = ctx.session
    _require_lines(ctx, "next" if over else "step")
    start = _line_key(ctx, s.regs.pc)
    if start is None:  # in code without line information: go back to the caller
        return finish_frame(ctx)
    cfa0 = current_cfa(ctx)
    for _ in range(MAX_LINE_STEPS):
        ev = step(ctx, "forward")
        if not is_plain_step(ev) or ctx.interrupted.is_set():
            return ev
        pc = s.regs.pc
        cfa = current_cfa(ctx)
        if cfa0 is not None and cfa is not None and cfa < cfa0:  # entered a call
            if over or _line_key(ctx, pc) is None:
                ev = finish_frame(ctx)
                if not is_plain_step(ev):
                    return ev
                continue
            return _skip_prologue(ctx)
        if cfa0 is not None and cfa is not None and cfa > cfa0:  # returned to the caller
            if _line_key(ctx, pc) is None:
                return finish_frame(ctx) if frames(ctx, 2)[1:] else ev
            return Stopped(pc, s.position, "step")
        key = _line_key(ctx, pc)
        if key is not None and key != start and ctx.debuginfo.is_stmt_start(pc):
            return Stopped(pc, s.position, "step")
    raise CommandError(f"the line did not end after {MAX_LINE_STEPS} instructions")


def _skip_prologue(ctx: Context) -> StopEvent:
    """Just entered a function: stop at its second line-table statement, as gdb does."""
    s = ctx.session
    entry = s.regs.pc
    first = _line_key(ctx, entry)
    for _ in range(64):
        pc = s.regs.pc
        if pc != entry and ctx.debuginfo.is_stmt_start(pc) and _line_key(ctx, pc) != first:
            break
        row_range = ctx.debuginfo.line_range(entry)
        if row_range is None or not (row_range[0] <= pc < row_range[1] or pc == entry):
            break
        ev = step(ctx, "forward")
        if not is_plain_step(ev):
            return ev
    return Stopped(s.regs.pc, s.position, "step")


def reverse_line_step(ctx: Context, over: bool) -> StopEvent:
    """``reverse-step``/``reverse-next``: back to the beginning of the previous line."""
    s = ctx.session
    _require_lines(ctx, "reverse-next" if over else "reverse-step")
    start = _line_key(ctx, s.regs.pc)
    cfa0 = current_cfa(ctx)
    target: tuple[str, int] | None = None
    cfa1 = cfa0
    # Phase 1: go back until the line (or the frame) changes.
    for _ in range(MAX_LINE_STEPS):
        ev = step(ctx, "backward")
        if not is_plain_step(ev) or ctx.interrupted.is_set():
            return ev
        pc = s.regs.pc
        cfa = current_cfa(ctx)
        if cfa0 is not None and cfa is not None and cfa < cfa0:  # back into a callee
            if over or _line_key(ctx, pc) is None:
                ev = reverse_finish_frame(ctx)
                if not is_plain_step(ev):
                    return ev
                pc = s.regs.pc
                cfa = current_cfa(ctx)
            else:
                target, cfa1 = _line_key(ctx, pc), cfa
                break
        if cfa0 is not None and cfa is not None and cfa > cfa0:  # back out to the caller
            target, cfa1 = _line_key(ctx, pc), cfa
            if target is None:
                return Stopped(pc, s.position, "step")
            break
        key = _line_key(ctx, pc)
        if key is not None and key != start:
            target, cfa1 = key, cfa
            break
    else:
        raise CommandError(f"no line change in {MAX_LINE_STEPS} instructions")
    # Phase 2: walk back to the first instruction of that line's execution.
    good = s.position
    for _ in range(MAX_LINE_STEPS):
        ev = step(ctx, "backward")
        if not is_plain_step(ev):
            break
        cfa = current_cfa(ctx)
        if cfa1 is not None and cfa is not None and cfa < cfa1:
            ev = reverse_finish_frame(ctx)
            if not is_plain_step(ev):
                return ev
            cfa = current_cfa(ctx)
        if _line_key(ctx, s.regs.pc) != target or cfa != cfa1 or ctx.interrupted.is_set():
            s.seek(good)
            break
        good = s.position
    return Stopped(s.regs.pc, s.position, "step")
