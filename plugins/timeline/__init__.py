"""A picture of the run: ``timeline FILE`` writes one self-contained HTML page showing a
stretch of history along its instruction positions.

* ``timeline FILE [--watch WHERE[:LEN]]... [--from P] [--to P] [--buckets N]`` (shell and
  gdb's ``monitor``; ``syxdbg timeline REC -o FILE`` for a recording): system calls with
  arguments and results, checkpoints, function activity per position bucket, the writes to
  watched ranges with their values, the end of the run (exit, fault), in lanes per process.
  Zoom and pan; hovering shows the position and the instruction; every element shows the
  command that goes there (``monitor goto N``, ``syxdbg replay --ex 'monitor goto N' REC``).

It is made by re-executing history through the session (:mod:`.collect`), aggregated into
buckets (:mod:`.buckets`) and drawn by the page itself (:mod:`.html`); nothing runs until a
report is asked for. Under gdb's ``monitor`` FILE is confined to the server's output
directory, as for ``coverage`` and ``trace`` (``plugins/coverage/output.py``).
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from syxdbg import hookimpl
from syxdbg.commands import Arg, CommandError
from syxdbg.errors import SyxdbgError

from .. import _replay
from ..coverage.output import output_file
from .buckets import Buckets, FunctionActivity, bin_positions, function_activity
from .collect import Report, Watch, collect
from .html import render

if TYPE_CHECKING:
    from syxdbg.commands import Args, CommandRegistry, Context

__all__ = ["Buckets", "DEFAULT_BUCKETS", "FunctionActivity", "Report", "bin_positions",
           "function_activity", "parse_options", "render", "timeline_command"]

#: Position buckets of function activity (the page draws one rectangle per active one).
DEFAULT_BUCKETS = 500
MAX_BUCKETS = 20_000

USAGE = "timeline FILE [--watch WHERE[:LEN]]... [--from POSITION] [--to POSITION] [--buckets N]"

DESCRIPTION = (
    "Re-executes history (default: origin to frontier) and writes one self-contained HTML "
    "page (no network when viewed): system calls with arguments and results, checkpoints, "
    "which functions ran in each position bucket (a C block recorder, as coverage uses), "
    "the writes to each --watch SYMBOL|ADDRESS[:LEN] range with old and new values, and "
    "the end of the run (exit or fault). Zoom with the wheel, drag to pan; hovering shows "
    "the position and the instruction, and each element the goto command that takes you "
    "there. Comes back to the current position; Ctrl-C stops early (the page then shows "
    "what was re-executed). From the timeline plugin: see docs/timeline.md."
)


def _symbol_size(ctx: Context, where: str) -> int:
    """The size of the symbol or DWARF variable ``where`` names (``ledger.balance``: 8),
    else 8, as ``watch`` does."""
    image = ctx.session.image
    if image.symbol_sizes.get(where):
        return int(image.symbol_sizes[where])
    if image.kind == "elf":
        var = ctx.debuginfo.variable(where)
        if var is not None and var[1]:
            return int(var[1])
    return 8


def parse_options(ctx: Context, words: list[str]) -> tuple[list[Watch], int | None,
                                                            int | None, int]:
    """``--watch W[:LEN]`` (repeatable), ``--from P``, ``--to P``, ``--buckets N``."""
    watches: list[Watch] = []
    start: int | None = None
    end: int | None = None
    count = DEFAULT_BUCKETS
    i = 0
    while i < len(words):
        word = words[i]
        name, eq, inline = word.partition("=")
        if name not in ("--watch", "--from", "--to", "--buckets"):
            raise CommandError(f"timeline: unknown option {word!r} (usage: {USAGE})")
        if eq:
            value = inline
        elif i + 1 < len(words):
            i += 1
            value = words[i]
        else:
            raise CommandError(f"timeline: {name} needs a value")
        i += 1
        if name == "--watch":
            where, colon, length = value.rpartition(":")
            if not colon or not length.strip().isdigit():
                where, length = value, ""
            try:
                address = ctx.evaluate(where)
                size = int(length) if length else _symbol_size(ctx, where.strip())
            except SyxdbgError as exc:
                raise CommandError(f"timeline: --watch {value}: {exc}") from None
            if size <= 0:
                raise CommandError(f"timeline: --watch {value}: the length must be positive")
            watches.append(Watch(value, address, size))
        elif name == "--buckets":
            try:
                count = int(value, 0)
            except ValueError:
                raise CommandError(f"timeline: --buckets {value!r} is not a number") from None
            if not 1 <= count <= MAX_BUCKETS:
                raise CommandError(f"timeline: --buckets must be between 1 and {MAX_BUCKETS}")
        elif name == "--from":
            start = _replay.parse_position(ctx.session, value)
        else:
            end = _replay.parse_position(ctx.session, value)
    return watches, start, end, count


def timeline_command(ctx: Context, args: Args) -> str:
    """The ``timeline`` command (see DESCRIPTION)."""
    s = ctx.session
    words = shlex.split(args.options or "")
    watches, start, end, count = parse_options(ctx, words)
    w = s.when()
    if start is None and end is None and w.frontier == w.origin:
        raise CommandError("nothing has executed yet: run or step first")
    start = w.origin if start is None else start
    end = w.frontier if end is None else end
    _replay.check_range(s, start, end, allow_live=False)
    path = args.file
    with output_file(ctx, path) as f:
        report = collect(ctx, start, end, count=count, watches=watches)
        page = render(report).encode("utf-8")
        try:
            f.write(page)
        except OSError as exc:
            raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from None
    writes = "".join(f", {len(x.writes)} writes to {x.text}" for x in report.watches)
    if report.process_events:
        kinds = [e.kind for e in report.process_events]
        writes += (f", {len({lane['process'] for lane in report.lanes})} processes ("
                   f"{kinds.count('fork')} forks, {kinds.count('exec')} execs, "
                   f"{kinds.count('exit')} ends)")
    if report.faults:
        writes += f", {len(report.faults)} faults that did not end the run"
    text = (f"timeline of positions {start}..{end}: {len(report.syscalls)} system calls, "
            f"{len(report.functions)} functions in {len(report.buckets)} buckets{writes}; "
            f"{report.end_text}; written to {path} ({len(page):,} bytes, "
            f"{report.seconds:.2f} s)\n")
    for note in report.notes:
        text += f"  note: {note}\n"
    return text


@hookimpl
def syxdbg_register_commands(registry: CommandRegistry) -> None:
    registry.command(
        "timeline", "write an HTML picture of the run (system calls, functions, watched "
        "writes, checkpoints, the end) to FILE", category="history", description=DESCRIPTION,
        args=(Arg("file", "text", help="output file (.html; from gdb: a name under the "
                  "server's output directory)"),
              Arg("options", "text", optional=True, many=True,
                  help="--watch WHERE[:LEN] (repeatable), --from POSITION, --to POSITION, "
                  "--buckets N")),
    )(timeline_command)
