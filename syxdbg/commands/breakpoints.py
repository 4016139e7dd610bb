"""Breakpoints and watchpoints: break, tbreak, delete, watch, rwatch, awatch, info breakpoints.

They are numbered here and installed through the Session as references of the "shell"
client in the timeline's one breakpoint table (so they survive every restore, work in both
directions, and are independent of gdb's own breakpoints at the same addresses: under gdb
they are ``monitor break``/``monitor watch``).
"""

from __future__ import annotations

from .context import Context
from .registry import Arg, Args, CommandError, CommandRegistry

_LEN = Arg("len", "int", optional=True, help="bytes watched (default: the size of the "
           "symbol or DWARF variable/member, else 8)")


def _split_condition(text: str) -> tuple[str, str | None]:
    words = text.split()
    if "if" in words:
        i = words.index("if")
        cond = " ".join(words[i + 1:])
        if not cond:
            raise CommandError("break: 'if' needs a condition")
        return " ".join(words[:i]), cond
    return text, None


def _watch_length(ctx: Context, where: str, length: int | None) -> int:
    if length is not None:
        if length <= 0:
            raise CommandError("the length must be positive")
        return length
    image = ctx.session.image
    if where in image.symbols and image.symbol_sizes.get(where):
        return image.symbol_sizes[where]
    if image.kind == "elf":
        var = ctx.debuginfo.variable(where.strip())
        if var is not None and var[1]:
            return var[1]
    return 8


def register(r: CommandRegistry) -> None:
    def add_break(ctx: Context, args: Args, temporary: bool) -> str:
        text = args.location or ""
        if not text:
            text = hex(ctx.session.regs.pc)
        where, cond = _split_condition(text)
        out = []
        for address in ctx.resolve_location(where):
            bp = ctx.add_breakpoint("break", address, 1, where, cond, temporary)
            extra = f" if {cond}" if cond else ""
            kind = "Temporary breakpoint" if temporary else "Breakpoint"
            out.append(f"{kind} {bp.number} at {ctx.where(address)}{extra}")
        return "\n".join(out) + "\n"

    @r.command("break", "stop at ADDRESS, SYMBOL or FILE:LINE [if CONDITION]",
               category="breakpoints", aliases=("b", "br"),
               args=(Arg("location", "location", optional=True, many=True,
                         help="where (default: pc), then optionally 'if CONDITION'"),))
    def _break(ctx: Context, args: Args) -> str:
        """A machine breakpoint (a C hook bound to the address: nothing runs per
        instruction). CONDITION is an expression (``$rdi == 777``, ``u64(ledger+128) >
        1000``); when it is false the stop is passed silently in either direction by the
        shell's motions. Under gdb (``monitor break``) it is a reference of its own in the
        timeline's table: gdb's ``delete`` does not remove it, and gdb reports a stop there
        as a SIGTRAP (gdb does not know it; conditions apply to the shell's motions only)."""
        return add_break(ctx, args, False)

    @r.command("tbreak", "a breakpoint that is deleted at its first stop",
               category="breakpoints", shell_only=True,
               args=(Arg("location", "location", optional=True, many=True),))
    def _tbreak(ctx: Context, args: Args) -> str:
        """Like break; the shell deletes it when it stops there."""
        return add_break(ctx, args, True)

    @r.command("delete", "delete breakpoints/watchpoints by number (all without numbers)",
               category="breakpoints", aliases=("d",),
               args=(Arg("numbers", "int", optional=True, many=True),))
    def _delete(ctx: Context, args: Args) -> str:
        """``delete`` alone deletes every breakpoint and watchpoint."""
        nums = args.numbers or sorted(ctx.breakpoints)
        for n in nums:
            ctx.delete_breakpoint(n)
        return f"deleted {len(nums)} breakpoint(s)\n" if nums else "no breakpoints\n"

    def add_watch(kind: str, ctx: Context, args: Args) -> str:
        where = args.where
        address = ctx.evaluate(where)
        length = _watch_length(ctx, where, args.len)
        bp = ctx.add_breakpoint(kind, address, length, where)
        label = {"watch": "Watchpoint", "rwatch": "Read watchpoint",
                 "awatch": "Access watchpoint"}[kind]
        return f"{label} {bp.number}: {where} ({address:#x}, {length} bytes)\n"

    where_arg = Arg("where", "address", help="symbol or address expression")
    for kind, help_text in (("watch", "stop after writes to SYMBOL-OR-ADDRESS [LEN]"),
                            ("rwatch", "stop after reads of SYMBOL-OR-ADDRESS [LEN]"),
                            ("awatch", "stop after reads or writes of SYMBOL-OR-ADDRESS "
                                       "[LEN]")):
        def fn(ctx: Context, args: Args, kind: str = kind) -> str:
            return add_watch(kind, ctx, args)

        r.command(kind, help_text, category="breakpoints",
                  args=(where_arg, _LEN),
                  description="A data watchpoint of any length (C memory hooks, no page "
                  "protection tricks). Forward it stops after the accessing instruction "
                  "(x86) or before it (aarch64); reverse-continue stops on the last access "
                  "before now. LEN defaults to the symbol's size, else 8.")(fn)

    info = r.get("info")

    @info.subcommand("breakpoints", "list breakpoints and watchpoints", aliases=("b", "break",
                                                                                "watchpoints"))
    def _info_breakpoints(ctx: Context, args: Args) -> str:
        if not ctx.breakpoints:
            return "No breakpoints or watchpoints.\n"
        lines = ["Num  Type             Address             What"]
        for bp in sorted(ctx.breakpoints.values(), key=lambda b: b.number):
            kind = {"break": "breakpoint", "watch": "hw watchpoint",
                    "rwatch": "read watchpoint", "awatch": "acc watchpoint"}[bp.kind]
            if bp.temporary:
                kind = "tbreakpoint"
            what = ctx.where(bp.address) if bp.kind == "break" else \
                f"{bp.where} ({bp.length} bytes)"
            lines.append(f"{bp.number:<4} {kind:<16} {bp.address:#018x}  {what}")
            if bp.condition:
                lines.append(f"        stop only if {bp.condition}")
            if bp.hits:
                lines.append(f"        hit {bp.hits} time{'s' if bp.hits != 1 else ''}")
        return "\n".join(lines) + "\n"
