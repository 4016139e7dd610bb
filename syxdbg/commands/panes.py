"""The context display: a list of panes, each a pure function ``(ctx, width) -> lines``.

A pane reads the session through the command :class:`~syxdbg.commands.context.Context`
(registers, memory, debug info, the registers at the previous stop) and returns lines of
prompt_toolkit style-and-text fragments; it changes nothing and prints nothing. The
``context.panes`` setting picks and orders them; plugins add panes with
``syxdbg_register_panes(registry)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prompt_toolkit.formatted_text import StyleAndTextTuples

from ..errors import SyxdbgError
from .context import general_registers
from .theme import address_role

if TYPE_CHECKING:
    from .context import Context

Line = StyleAndTextTuples
PaneFn = Callable[["Context", int], list[Line]]


@dataclass(frozen=True)
class Pane:
    name: str
    fn: PaneFn
    help: str


class PaneRegistry:
    """The panes a context display can show, by name (one per session registry)."""

    def __init__(self) -> None:
        self._panes: dict[str, Pane] = {}

    def add(self, name: str, fn: PaneFn, help: str) -> None:
        """Register pane ``name``: ``fn(ctx, width) -> list of lines``."""
        if name in self._panes:
            raise ValueError(f"pane {name!r} is already registered")
        self._panes[name] = Pane(name, fn, help)

    def pane(self, name: str, help: str) -> Callable[[PaneFn], PaneFn]:
        """Decorator form of :meth:`add`."""

        def add(fn: PaneFn) -> PaneFn:
            self.add(name, fn, help)
            return fn

        return add

    def get(self, name: str) -> Pane:
        pane = self._panes.get(name)
        if pane is None:
            raise SyxdbgError(f"no pane {name!r} (panes: {', '.join(self.names())})")
        return pane

    def names(self) -> list[str]:
        return list(self._panes)

    def __iter__(self) -> Iterator[Pane]:
        return iter(self._panes.values())


def title(name: str, width: int) -> Line:
    head = f"── {name} "
    return [("class:pane.rule", "──"), ("class:pane.title", f" {name} "),
            ("class:pane.rule", "─" * max(0, width - len(head) - 1))]


def render_context(ctx: Context, registry: PaneRegistry, *, panes: list[str] | None = None,
                   width: int = 100) -> Line:
    """The whole context display as one fragment list (a title line per pane): ``panes``
    (default: the ``context.panes`` setting) taken from ``registry``."""
    names = panes or list(ctx.settings["context.panes"])
    out: Line = []
    for name in names:
        try:
            pane = registry.get(name)
            lines = pane.fn(ctx, width)
        except SyxdbgError as exc:
            lines = [[("class:error", f"({exc})")]]
        if not lines:
            continue
        out += title(name, width) + [("", "\n")]
        for line in lines:
            out += line + [("", "\n")]
    if out:
        out += [("class:pane.rule", "─" * max(0, width - 1)), ("", "\n")]
    return out


# -- the built-in panes ---------------------------------------------------------------------
def regs_pane(ctx: Context, width: int) -> list[Line]:
    """General registers; those changed by the last command are highlighted."""
    regs = ctx.session.regs
    cells: list[Line] = []
    for name in general_registers(ctx):
        value = int(regs[name])
        changed = name in ctx.prev_regs and ctx.prev_regs[name] != value
        role = address_role(ctx.session, value)
        cells.append([("class:reg.name", f"{name:>6} "),
                      ("class:reg.changed" if changed else (role or "class:reg.value"),
                       f"{value:#018x}")])
    cell_width = 26
    per_line = max(1, width // cell_width)
    lines = []
    for i in range(0, len(cells), per_line):
        line: Line = []
        for c in cells[i:i + per_line]:
            line += c + [("", " ")]
        lines.append(line)
    return lines


def code_pane(ctx: Context, width: int) -> list[Line]:
    """Disassembly around pc (capstone), pc marked."""
    s = ctx.session
    pc = int(s.regs.pc)
    n = int(ctx.settings["context.code-lines"])
    before = max(0, n // 3)
    start = pc
    sym = ctx.debuginfo.symbol_at(pc)
    if s.machine.arch.name == "aarch64":
        start = max(pc - 4 * before, sym[1] if sym else 0)
    elif sym is not None and 0 < pc - sym[1] <= 4096:
        insns = s.machine.disassemble(sym[1], (pc - sym[1]) + 1)
        addrs = [a for a, *_ in insns if a <= pc]
        if pc in addrs:
            i = addrs.index(pc)
            start = addrs[max(0, i - before)]
    lines: list[Line] = []
    try:
        insns = s.machine.disassemble(start, n + before)
    except Exception:
        insns = []
    if not insns:
        return [[("class:error", f"(cannot disassemble at {pc:#x})")]]
    for a, mnem, ops, _ in insns[:n]:
        label = ctx.symbolize(a) or ""
        text = f"{a:#x} <{label}>  {mnem} {ops}".rstrip() if label else f"{a:#x}  {mnem} {ops}"
        if a == pc:
            lines.append([("class:pc", " → "), ("class:code.current", text[:width - 4])])
        else:
            lines.append([("", "   " + text[:width - 4])])
    return lines


def source_pane(ctx: Context, width: int) -> list[Line]:
    """The source line at pc with a few around it (DWARF line table), when known."""
    s = ctx.session
    if s.image.kind != "elf":
        return []
    row = ctx.debuginfo.line_at(int(s.regs.pc))
    if row is None:
        return []
    text = ctx.debuginfo.source_lines(row.file)
    head: Line = [("class:source.lineno", f"{row.file}:{row.line}")]
    if text is None:
        return [head]
    n = int(ctx.settings["context.source-lines"])
    first = max(1, row.line - n // 2)
    lines: list[Line] = [head]
    for ln in range(first, min(len(text), first + n - 1) + 1):
        body = text[ln - 1].expandtabs(4)[:width - 8]
        if ln == row.line:
            lines.append([("class:pc", " → "), ("class:source.current", f"{ln:<5}{body}")])
        else:
            lines.append([("class:source.lineno", f"   {ln:<5}"), ("", body)])
    return lines


def stack_pane(ctx: Context, width: int) -> list[Line]:
    """Words from the stack pointer up, colored by what they point to, with symbols."""
    s = ctx.session
    sp = int(s.regs.sp)
    n = int(ctx.settings["context.stack-lines"])
    lines: list[Line] = []
    for i in range(n):
        a = sp + 8 * i
        try:
            value = int.from_bytes(s.mem.read(a, 8), "little")
        except SyxdbgError:
            break
        sym = ctx.symbolize(value) if s.mem.is_mapped(value) else None
        tag = "sp" if i == 0 else ""
        lines.append([("class:addr.stack", f"{a:#x}"), ("", f" {tag:<3}"),
                      (address_role(s, value), f"{value:#018x}"),
                      ("", f"  <{sym}>" if sym else "")])
    return lines


def timeline_pane(ctx: Context, width: int) -> list[Line]:
    """Position and frontier, recording or replaying, the nearest checkpoints and names."""
    s = ctx.session
    if not s.has_timeline:
        return [[("", f"position {s.position} (no history recorded yet)")]]
    w = s.when()
    state = (f"class:timeline.{w.mode}", w.mode)
    line: Line = [("", f"position {w.position} / frontier {w.frontier}  "), state]
    if w.position <= w.origin:
        line += [("", "  "), ("class:timeline.edge", "|< at the beginning of history")]
    elif w.position >= w.frontier:
        edge = ">| at the end of the recording" if w.recorded else ">| at the frontier"
        line += [("", "  "), ("class:timeline.edge", edge)]
    lines = [line]
    cps = s.checkpoints()
    older = [c for c in cps if c.position <= w.position]
    newer = [c for c in cps if c.position > w.position]
    parts = []
    if older:
        c = older[-1]
        parts.append(f"← checkpoint #{c.index} at {c.position} "
                     f"({w.position - c.position} back)")
    if newer:
        c = newer[0]
        parts.append(f"→ checkpoint #{c.index} at {c.position}")
    parts.append(f"{len(cps)} checkpoints, origin {w.origin}")
    lines.append([("class:timeline.checkpoint", "   ".join(parts))])
    names = s.snapshots()
    if names:
        near = sorted(names, key=lambda p: abs(p.position - w.position))[:4]
        lines.append([("class:timeline.checkpoint",
                       "snapshots: " + ", ".join(f"{p.name}@{p.position}" for p in near))])
    return lines


def register_builtin_panes(registry: PaneRegistry) -> None:
    registry.add("regs", regs_pane, "general registers, changed ones highlighted")
    registry.add("code", code_pane, "disassembly around pc")
    registry.add("source", source_pane, "the source line at pc, when the program has DWARF "
                 "line information")
    registry.add("stack", stack_pane, "words from the stack pointer, with symbols")
    registry.add("timeline", timeline_pane, "position, frontier, recording/replaying, "
                 "nearest checkpoints and snapshots")
