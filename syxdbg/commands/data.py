"""Looking at and changing state: regs, set reg, x/FMT, disas, bt, info registers/mappings/
symbols."""

from __future__ import annotations

import re
import string

from prompt_toolkit.formatted_text import StyleAndTextTuples

from ..errors import SyxdbgError
from . import motion
from .context import Context, general_registers
from .registry import Arg, Args, CommandError, CommandRegistry, Output

_X_SIZES = {"b": 1, "h": 2, "w": 4, "g": 8}


def format_registers(ctx: Context, names: list[str] | tuple[str, ...]) -> StyleAndTextTuples:
    regs = ctx.session.regs
    prev = ctx.prev_regs
    out: StyleAndTextTuples = []
    for name in names:
        value = int(regs[name])
        changed = name in prev and prev[name] != value
        style = "class:reg.changed" if changed else "class:reg.value"
        out.append(("class:reg.name", f"{name:<8}"))
        out.append((style, f"{value:#018x}"))
        sym = ctx.symbolize(value) if ctx.session.mem.is_mapped(value) else None
        tail = f"  {value}" if value < 1 << 32 else ""
        if sym:
            tail = f"  <{sym}>"
        out.append(("", tail + "\n"))
    return out


def _parse_x_format(fmt: str | None, last: str | None) -> tuple[int, str, int]:
    """gdb's /FMT: [COUNT][FORMAT][SIZE] -> (count, format letter, unit size)."""
    count, letter, size = 1, "x", 4
    if last:
        _, letter, size = _parse_x_format(last, None)
    if fmt:
        m = re.fullmatch(r"(\d*)([xduotacsibhwg]*)", fmt)
        if not m:
            raise CommandError(f"x: bad format /{fmt} (COUNT, then letters from xduotacsi "
                               "and sizes bhwg)")
        if m.group(1):
            count = int(m.group(1))
        for ch in m.group(2):
            if ch in "hwg":
                size = _X_SIZES[ch]
            elif ch == "b":
                size = 1
            else:
                letter = ch
    if letter == "a":
        size = 8
    if letter == "c":
        size = 1
    return max(count, 1), letter, size


def _x(ctx: Context, address: int, count: int, letter: str, size: int) -> tuple[str, int]:
    mem = ctx.session.mem
    lines: list[str] = []

    def label(a: int) -> str:
        sym = ctx.symbolize(a)
        return f"{a:#x}" + (f" <{sym}>" if sym else "")

    if letter == "s":
        for _ in range(count):
            try:
                raw = mem.read_cstring(address, 4096)
            except SyxdbgError:
                raise CommandError(f"cannot access memory at {address:#x}") from None
            text = raw.decode("utf-8", errors="backslashreplace")
            text = text.encode("unicode_escape").decode().replace('"', '\\"')
            lines.append(f'{label(address)}:\t"{text}"')
            address += len(raw) + 1
        return "\n".join(lines) + "\n", address
    if letter == "i":
        insns = ctx.session.machine.disassemble(address, count)
        if not insns:
            raise CommandError(f"cannot disassemble at {address:#x}")
        pc = ctx.session.regs.pc
        for a, mnem, ops, data in insns:
            mark = "=> " if a == pc else "   "
            lines.append(f"{mark}{label(a)}:\t{mnem} {ops}".rstrip())
            address = a + len(data)
        return "\n".join(lines) + "\n", address
    try:
        data = mem.read_debug(address, count * size)
    except SyxdbgError:
        raise CommandError(f"cannot access memory at {address:#x}") from None
    per_line = {1: 8, 2: 8, 4: 4, 8: 2}[size]
    if letter == "c":
        per_line = 8
    for i in range(0, count, per_line):
        a = address + i * size
        cells = []
        for j in range(i, min(count, i + per_line)):
            chunk = data[j * size:(j + 1) * size]
            u = int.from_bytes(chunk, "little")
            signed = int.from_bytes(chunk, "little", signed=True)
            if letter == "x":
                cells.append(f"0x{u:0{size * 2}x}")
            elif letter == "d":
                cells.append(str(signed))
            elif letter == "u":
                cells.append(str(u))
            elif letter == "o":
                cells.append(f"0{u:o}")
            elif letter == "t":
                cells.append(f"{u:0{size * 8}b}")
            elif letter == "a":
                sym = ctx.symbolize(u)
                cells.append(f"{u:#x}" + (f" <{sym}>" if sym else ""))
            elif letter == "c":
                ch = chr(u)
                shown = ch if ch in string.printable and ch not in "\t\n\r\x0b\x0c" \
                    else f"\\{u:o}"
                cells.append(f"{signed} '{shown}'")
            else:
                raise CommandError(f"x: unsupported format {letter!r}")
        lines.append(f"{label(a)}:\t" + "\t".join(cells))
    return "\n".join(lines) + "\n", address + count * size


def disassembly(ctx: Context, start: int, count: int) -> list[tuple[int, str]]:
    """``(address, text)`` for ``count`` instructions from ``start``."""
    out = []
    for a, mnem, ops, _ in ctx.session.machine.disassemble(start, count):
        sym = ctx.symbolize(a)
        out.append((a, f"{a:#x}" + (f" <{sym}>" if sym else "") + f":\t{mnem} {ops}".rstrip()))
    return out


def register(r: CommandRegistry) -> None:
    @r.command("regs", "show the general registers (or the named ones)", category="data",
               aliases=("registers",),
               args=(Arg("names", "register", optional=True, many=True),))
    def _regs(ctx: Context, args: Args) -> Output:
        """Values in hex, with symbols for addresses; registers changed since the previous
        stop are highlighted."""
        names = list(args.names or general_registers(ctx))
        arch = ctx.session.machine.arch
        for n in names:
            if arch.register(n) is None:
                raise CommandError(f"no register {n!r}")
        return format_registers(ctx, names)

    info = r.get("info")
    info.subcommand("registers", "show the general registers (or the named ones)",
                    args=(Arg("names", "register", optional=True, many=True),),
                    aliases=("r", "reg", "all-registers"))(_regs)

    @r.command("x", "examine memory: x/FMT ADDRESS (FMT: count, format xduotacsi, size "
               "bhwg)", category="data", slash=True, repeat=True,
               args=(Arg("address", "address", optional=True, many=True),))
    def _xcmd(ctx: Context, args: Args) -> str:
        """Like gdb's x: ``x/8xb $rsp``, ``x/4gx &ledger`` (write ``ledger``), ``x/s
        PTR``, ``x/5i $pc`` (capstone). The format is remembered; repeating the command
        (empty Enter) continues after the last unit shown."""
        last_fmt = ctx.last_x[0] if ctx.last_x else None
        count, letter, size = _parse_x_format(args.fmt, last_fmt)
        if args.address:
            address = ctx.evaluate(args.address.lstrip("&"))
        elif ctx.last_x is not None:
            address = ctx.last_x[1]
        else:
            raise CommandError("x: which address?")
        text, nxt = _x(ctx, address, count, letter, size)
        ctx.last_x = (f"{letter}{'bhwg'[[1, 2, 4, 8].index(size)]}", nxt)
        return text

    @r.command("print", "the value of an expression (hex and decimal)", category="data",
               aliases=("p",), args=(Arg("expr", "address", many=True),))
    def _print(ctx: Context, args: Args) -> str:
        """Expressions as in ``break ... if``: numbers, symbols, ``$reg``, DWARF members
        (``ledger.balance`` is its address: ``print u64(ledger.balance)`` its value),
        arithmetic, comparisons, ``u8..u64``/``i8..i64`` memory reads."""
        v = ctx.evaluate(args.expr)
        sym = ctx.symbolize(v) if v >= 0 and ctx.session.mem.is_mapped(v) else None
        return f"{v:#x} ({v})" + (f" <{sym}>" if sym else "") + "\n"

    @r.command("disas", "disassemble a function, or N instructions at an address",
               category="data", aliases=("disassemble", "u"),
               args=(Arg("where", "address", optional=True),
                     Arg("count", "int", optional=True)))
    def _disas(ctx: Context, args: Args) -> str:
        """Without arguments: the function around pc (from its symbol), else 16
        instructions at pc. With a symbol: the whole function (at most 400 instructions)."""
        pc = ctx.session.regs.pc
        count = args.count
        if args.where is None:
            hit = ctx.debuginfo.symbol_at(pc)
            if hit and hit[2] and count is None:
                start, end = hit[1], hit[1] + hit[2]
            else:
                start, end = pc, None
        else:
            start = ctx.evaluate(args.where)
            hit = ctx.debuginfo.symbol_at(start)
            end = hit[1] + hit[2] if hit and hit[2] and hit[1] == start and count is None \
                else None
        n = count or (400 if end is not None else 16)
        lines = []
        for a, text in disassembly(ctx, start, n):
            if end is not None and a >= end:
                break
            lines.append(("=> " if a == pc else "   ") + text)
        if not lines:
            raise CommandError(f"cannot disassemble at {start:#x}")
        return "\n".join(lines) + "\n"

    @r.command("bt", "backtrace: the call stack, innermost first", category="stack",
               aliases=("backtrace", "where"), args=(Arg("limit", "int", optional=True),))
    def _bt(ctx: Context, args: Args) -> str:
        """Unwound with the DWARF call-frame information (.eh_frame/.debug_frame) where the
        program has it, else with frame pointers (x86_64 rbp chain, aarch64 x29)."""
        fs = motion.frames(ctx, args.limit or 64)
        lines = []
        for f in fs:
            pc = f.pc
            lookup = pc if f.level == 0 else pc - 1
            sym = ctx.debuginfo.symbol_at(lookup)
            name = sym[0] if sym else "??"
            row = ctx.debuginfo.line_at(lookup) if ctx.session.image.kind == "elf" else None
            at = f" at {row.file.rsplit('/', 1)[-1]}:{row.line}" if row else ""
            lines.append(f"#{f.level:<2} {pc:#018x} in {name} (){at}")
        return "\n".join(lines) + "\n"

    @info.subcommand("mappings", "the guest memory map: start-end perms name",
                     aliases=("regions", "proc"))
    def _mappings(ctx: Context, args: Args) -> str:
        return "".join(f"{reg}\n" for reg in ctx.session.mem.regions())

    @r.command("regions", "the guest memory map: start-end perms name", category="info",
               aliases=("mappings",))
    def _regions(ctx: Context, args: Args) -> str:
        """Same as ``info mappings``."""
        return _mappings(ctx, args)

    @info.subcommand("symbols", "symbols (matching REGEX), by address",
                     args=(Arg("regex", "symbol", optional=True),))
    def _symbols(ctx: Context, args: Args) -> str:
        try:
            pat = re.compile(args.regex) if args.regex else None
        except re.error as exc:
            raise CommandError(f"bad regex: {exc}") from None
        rows = [(a, s, n) for a, s, n in ctx.debuginfo.symbols()
                if pat is None or pat.search(n)]
        limit = 200
        lines = [f"{a:#018x} {s:>7}  {n}" for a, s, n in rows[:limit]]
        if len(rows) > limit:
            lines.append(f"... and {len(rows) - limit} more (narrow it with a regex)")
        if not rows:
            lines.append("no matching symbols")
        return "\n".join(lines) + "\n"

    @info.subcommand("line", "the source line at pc (or at ADDRESS)",
                     args=(Arg("where", "address", optional=True),))
    def _info_line(ctx: Context, args: Args) -> str:
        address = ctx.evaluate(args.where) if args.where else ctx.session.regs.pc
        row = ctx.debuginfo.line_at(address) if ctx.session.image.kind == "elf" else None
        if row is None:
            return f"no line information for {ctx.where(address, line=False)}\n"
        return f"{ctx.where(address, line=False)} is at {row.file}:{row.line}\n"
