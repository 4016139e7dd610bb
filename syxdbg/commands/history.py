"""Time travel commands: goto, when, last-write, snapshot save|restore|list|diff, info
checkpoints, position. They use the Session's timeline API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import SyxdbgError
from .context import Context
from .registry import Arg, Args, CommandError, CommandRegistry

PAGE = 4096


def _position_of(ctx: Context, text: str) -> int:
    """POSITION: the session's one grammar (:meth:`~syxdbg.session.Session.position_of`)."""
    try:
        return ctx.session.position_of(text)
    except SyxdbgError as exc:
        raise CommandError(str(exc)) from None


@dataclass
class _State:
    position: int
    regs: dict[str, int]
    mem: dict[int, bytes]  # region start -> contents
    names: dict[int, str]  # region start -> name


def _capture(ctx: Context) -> _State:
    s = ctx.session
    regs = {r.name: int(s.regs[r.name]) for r in s.machine.arch.registers}
    mem = {}
    names = {}
    for reg in s.mem.regions():
        mem[reg.start] = s.mem.read(reg.start, reg.end - reg.start)
        names[reg.start] = reg.name
    return _State(s.position, regs, mem, names)


def _diff(ctx: Context, a: _State, b: _State, label_a: str, label_b: str) -> str:
    lines = [f"diff {label_a} (position {a.position}) -> {label_b} (position {b.position})"]
    changed = [(n, a.regs[n], b.regs.get(n)) for n in a.regs if a.regs[n] != b.regs.get(n)]
    lines.append(f"registers: {len(changed)} differ")
    for name, old, new in changed:
        lines.append(f"  {name:<8} {old:#x} -> {new:#x}" if new is not None
                     else f"  {name:<8} {old:#x} -> (none)")
    only_a = sorted(set(a.mem) - set(b.mem))
    only_b = sorted(set(b.mem) - set(a.mem))
    for start in only_a:
        lines.append(f"region {start:#x} {a.names[start]} is mapped only at {label_a}")
    for start in only_b:
        lines.append(f"region {start:#x} {b.names[start]} is mapped only at {label_b}")
    pages: list[tuple[int, int, int]] = []  # (page address, bytes differing, first)
    for start in sorted(set(a.mem) & set(b.mem)):
        ma, mb = a.mem[start], b.mem[start]
        n = min(len(ma), len(mb))
        for off in range(0, n, PAGE):
            pa, pb = ma[off:off + PAGE], mb[off:off + PAGE]
            if pa != pb:
                diffs = [i for i in range(len(pa)) if pa[i] != pb[i]]
                pages.append((start + off, len(diffs), start + off + diffs[0]))
    total = sum(p[1] for p in pages)
    lines.append(f"memory: {len(pages)} page(s), {total} byte(s) differ")
    for page, count, first in pages[:64]:
        sym = ctx.symbolize(first)
        lines.append(f"  page {page:#x}: {count} byte(s), first at {first:#x}"
                     + (f" <{sym}>" if sym else ""))
    if len(pages) > 64:
        lines.append(f"  ... and {len(pages) - 64} more pages")
    # The first few differing bytes, for a quick look.
    shown = 0
    for start in sorted(set(a.mem) & set(b.mem)):
        ma, mb = a.mem[start], b.mem[start]
        if ma == mb:
            continue
        for i in range(min(len(ma), len(mb))):
            if ma[i] != mb[i]:
                lines.append(f"  byte {start + i:#x}: {ma[i]:#04x} -> {mb[i]:#04x}")
                shown += 1
                if shown >= 16:
                    break
        if shown >= 16:
            break
    return "\n".join(lines) + "\n"


def register(r: CommandRegistry) -> None:
    @r.command("goto", "go to POSITION (instruction count, +N/-N, origin, frontier, here, "
               "or a snapshot name)",
               category="history", moves=True,
               args=(Arg("position", "position", help="where to go"),))
    def _goto(ctx: Context, args: Args) -> str:
        """Restores the nearest checkpoint and re-executes to exactly that instruction
        count. Past the frontier it executes live. Under gdb (``monitor goto``), gdb does
        not know the registers changed: ``flushregs`` makes it reread them."""
        target = _position_of(ctx, args.position)
        ev = ctx.session.seek(target, poll=ctx.poll("goto"))
        return ctx.describe(ev) + "\n"

    @r.command("when", "the current position, the frontier and the origin of history",
               category="history")
    def _when(ctx: Context, args: Args) -> str:
        """``position`` counts the instructions retired; the frontier is the furthest point
        ever executed (behind it, execution is replayed); the origin is the oldest point
        kept."""
        w = ctx.session.when()
        state = w.mode
        return (f"position {w.position} (frontier {w.frontier}, origin {w.origin}; "
                f"{state})\n")

    @r.command("recording", "what the replayed recording holds (syxdbg replay)",
               category="history")
    def _recording(ctx: Context, args: Args) -> str:
        """The file, the program and its arguments, how the recorded run ended, and what
        the file holds: events, persisted checkpoints and digests."""
        rec = ctx.session.recording
        if rec is None:
            return "not replaying a recording (syxdbg record PROG, then syxdbg replay FILE)\n"
        meta = rec.meta
        pos = rec.checkpoint_positions
        return "\n".join([
            f"recording: {rec.path}",
            f"program:   {meta['path']} ({meta['arch']}, {meta['program_size']} bytes, "
            f"{rec.program_digest[:31]}...)",
            f"argv:      {' '.join(meta['argv'])}",
            f"recorded:  {meta['created']} on {meta['host']} with syxdbg {meta['syxdbg']}",
            f"end:       position {rec.end_position}: {rec.describe_end()}",
            f"contents:  {len(rec.events)} host inputs, {len(pos)} checkpoints "
            f"(at {', '.join(str(p) for p in pos[:6])}{', ...' if len(pos) > 6 else ''}), "
            f"{len(rec.checks)} register digests",
        ]) + "\n"

    @r.command("position", "instructions retired so far", category="history")
    def _position(ctx: Context, args: Args) -> str:
        return f"{ctx.session.position}\n"

    @r.command("last-write", "go back to the last instruction that wrote ADDRESS-OR-SYMBOL "
               "[LEN]", category="history", aliases=("lw",), moves=True,
               args=(Arg("where", "address", help="symbol or address expression"),
                     Arg("len", "int", optional=True, help="bytes (default: the symbol's "
                         "size, else 8)")))
    def _last_write(ctx: Context, args: Args) -> str:
        """Scans history backward with a temporary write watchpoint and lands before the
        guilty store, pc at the writing instruction. Bytes written by a system call (a
        read(2) or recv(2) filling a buffer) land on its system call instruction: the call
        is named with its arguments."""
        from .breakpoints import _watch_length

        s = ctx.session
        address = ctx.evaluate(args.where)
        length = _watch_length(ctx, args.where, args.len)
        from ..timeline import TimelineInterrupted

        try:
            found = s.last_write(address, length, poll=ctx.poll("last-write"))
        except TimelineInterrupted as exc:
            return f"interrupted at position {exc.event.position}\n"
        if found is None:
            return (f"no instruction wrote {address:#x}..{address + length:#x} since the "
                    f"origin of history (position {s.when().origin})\n")
        insn = s.machine.disassemble(found.pc, 1)
        text = f"{insn[0][1]} {insn[0][2]}".strip() if insn else "?"
        threads = s.threads
        by = f" by thread {threads[0].tid}" if len(threads) > 1 else ""
        out = (f"last write to {ctx.where(found.address, line=False)} "
               f"({length} bytes at {address:#x}): position {found.position}{by}\n"
               f"  {ctx.where(found.pc)}: {text}\n")
        call = _syscall_here(s)
        if call is not None:
            name, values = call
            shown = ", ".join(hex(v) if v > 9 or v < -9 else str(v) for v in values)
            out += (f"  written by the system call {name}({shown}) at position "
                    f"{found.position} (the kernel filled the buffer)\n")
        return out

    def _syscall_here(s: Any) -> tuple[str, tuple[int, ...]] | None:
        """The system call at the stopped pc, asked of any plugin that can tell
        (``syscall_at_pc``: the Linux plugin), or None."""
        for plugin in s.plugins.get_plugins():
            ask = getattr(plugin, "syscall_at_pc", None)
            if callable(ask):
                call = ask()
                if call is not None:
                    return (str(call[0]), tuple(int(v) for v in call[1]))
        return None

    snap = r.group("snapshot", "named points in time: snapshot save|restore|list|diff",
                   category="history", aliases=("snap",))

    @snap.subcommand("save", "name the current point in time",
                     args=(Arg("name", "snapshot"),))
    def _save(ctx: Context, args: Args) -> str:
        p = ctx.session.snapshot_save(args.name)
        return f"snapshot {p.name!r} at position {p.position} ({ctx.where(p.pc)})\n"

    @snap.subcommand("restore", "go to a named point in time", moves=True,
                     args=(Arg("name", "snapshot"),))
    def _restore(ctx: Context, args: Args) -> str:
        ev = ctx.session.snapshot_restore(args.name)
        return ctx.describe(ev) + "\n"

    @snap.subcommand("list", "the named points in time")
    def _list(ctx: Context, args: Args) -> str:
        points = ctx.session.snapshots() if ctx.session.has_timeline else []
        if not points:
            return "no snapshots (snapshot save NAME)\n"
        here = ctx.session.position
        lines = []
        for p in points:
            mark = "*" if p.position == here else " "
            lines.append(f"{mark} {p.name:<16} position {p.position:<12} {ctx.where(p.pc)}")
        return "\n".join(lines) + "\n"

    @snap.subcommand("diff", "pages, bytes and registers that differ between NAME and NAME2 "
                     "(default: now)",
                     args=(Arg("name", "snapshot"), Arg("name2", "snapshot", optional=True)))
    def _sdiff(ctx: Context, args: Args) -> str:
        """Each side may also be a position. The comparison visits both points in time and
        comes back; the current position does not change."""
        s = ctx.session
        here = s.position
        pa = _position_of(ctx, args.name)
        pb = here if args.name2 is None else _position_of(ctx, args.name2)
        poll = ctx.poll("snapshot diff")
        try:  # (separate motions: the way back must not see the interrupt)
            s.seek(pa, poll=poll)
            ctx.check_interrupt()
            a = _capture(ctx)
            s.seek(pb, poll=poll)
            ctx.check_interrupt()
            b = _capture(ctx)
        finally:
            s.seek(here)
        return _diff(ctx, a, b, args.name, args.name2 or "now")

    info = r.get("info")

    @info.subcommand("checkpoints", "the timeline's checkpoints and named snapshots",
                     aliases=("c", "checkpoint"))
    def _checkpoints(ctx: Context, args: Args) -> str:
        s = ctx.session
        w = s.when()
        lines = [f"position {w.position}, frontier {w.frontier}, origin {w.origin}"]
        for c in s.checkpoints():
            pin = " pinned" if c.pinned else ""
            lines.append(f"  #{c.index:<4} position {c.position:<12} {c.pages:>6} pages{pin}  "
                         f"{ctx.where(c.pc, line=False)}")
        for p in s.snapshots():
            lines.append(f"  snapshot {p.name!r} at position {p.position}")
        return "\n".join(lines) + "\n"

    r.command("checkpoints", "the timeline's checkpoints and named snapshots",
              category="history")(_checkpoints)
