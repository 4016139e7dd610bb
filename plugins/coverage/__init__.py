"""Basic-block coverage in drcov format, for Lighthouse (IDA Pro, Binary Ninja) and bncov.

* ``coverage FILE [FROM [TO]]`` (shell and gdb's ``monitor``): the blocks executed between
  positions FROM and TO (default: the whole recorded history, origin to frontier), by
  re-executing that stretch of history with a C block recorder attached
  (:meth:`syxdbg.machine.Machine.block_recorder`); the session ends where it was.
* ``--coverage FILE`` (``syxdbg run``, ``shell``, ``serve``...): record from the start and
  write everything the session executed when it ends.

Nothing runs while neither is used. Modules: the program image (its path, base and end, so
the disassembler matches it by file name) and, for code executed anywhere else (JIT
buffers, the stack), one module per memory region. See docs/plugins.md and ``drcov.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, BinaryIO

from syxdbg import hookimpl
from syxdbg.commands import Arg, CommandError
from syxdbg.machine import PAGE

from .. import _replay
from . import drcov
from .output import output_file

if TYPE_CHECKING:
    from syxdbg.commands import Args, CommandRegistry, Context
    from syxdbg.machine import BlockRecorder, Machine
    from syxdbg.session import Session

__all__ = ["CoverageRecorder", "coverage_modules", "write_coverage"]

OPTION = "coverage"


def coverage_modules(session: Session, blocks: list[tuple[int, int]]
                     ) -> tuple[list[drcov.Module], list[drcov.Block]]:
    """The drcov module table and entries for ``blocks`` ((start, size) pairs).

    Module 0 is the program image, ``[lowest segment page, highest segment end page)``; a
    block elsewhere goes to a module for its memory region (named after it, made unique),
    or, if that memory is gone, to an ``[unmapped]`` module for its 4 GiB window.
    """
    image = session.image
    base = min(seg.start for seg in image.segments) & ~(PAGE - 1)
    end = (max(seg.end for seg in image.segments) + PAGE - 1) & ~(PAGE - 1)
    modules = [drcov.Module(0, base, end, image.entry, os.path.abspath(image.path))]
    by_key: dict[tuple[int, int], drcov.Module] = {}
    names = {drcov.module_name(modules[0].path)}
    out: list[drcov.Block] = []
    for start, size in blocks:
        if base <= start < end:
            out.append(drcov.Block(start - base, size, 0))
            continue
        region = session.mem.find(start)
        if region is not None:
            key = (region.start, region.end)
            name = region.name or "[anon]"
        else:
            key = (start & ~0xFFFF_FFFF, (start & ~0xFFFF_FFFF) + (1 << 32))
            name = "[unmapped]"
        mod = by_key.get(key)
        if mod is None:
            if name in names:
                name = f"{name}@{key[0]:#x}"
            names.add(name)
            mod = drcov.Module(len(modules), key[0], key[1], 0, name)
            modules.append(mod)
            by_key[key] = mod
        out.append(drcov.Block(start - mod.base, size, mod.id))
    return modules, out


def write_coverage(session: Session, path: str | BinaryIO, blocks: list[tuple[int, int]]
                   ) -> tuple[int, list[drcov.Module]]:
    """Write ``blocks`` to ``path`` (a file name, or a file open for writing) as drcov;
    (entries written, modules)."""
    modules, entries = coverage_modules(session, blocks)
    name = path if isinstance(path, str) else getattr(path, "name", "the file")
    try:
        if isinstance(path, str):
            with open(path, "wb") as f:
                count = drcov.write(f, modules, entries)
        else:
            count = drcov.write(path, modules, entries)
    except OSError as exc:
        raise CommandError(f"cannot write {name}: {exc.strerror or exc}") from None
    return count, modules


def _summary(session: Session, path: str, count: int, modules: list[drcov.Module],
             blocks: list[tuple[int, int]]) -> str:
    in_image = sum(1 for start, _ in blocks if modules[0].base <= start < modules[0].end)
    others = f" and {len(modules) - 1} other module(s)" if len(modules) > 1 else ""
    return (f"{count} blocks ({in_image} in {drcov.module_name(modules[0].path)}{others}) "
            f"written to {path} (drcov; load it with Lighthouse or bncov)")


DESCRIPTION = (
    "Re-executes positions [FROM, TO) of history with a C block recorder attached, writes "
    "the blocks that ran and comes back to the current position; nothing records while no "
    "coverage is asked for. Positions: a number, +N/-N from here, origin, frontier, here, or "
    "a snapshot name. Module 0 of the file is the program (Lighthouse and bncov match it by "
    "file name); code run elsewhere gets a module per memory region. Ctrl-C stops early "
    "(the file then covers what was re-executed). For a whole run, syxdbg run --coverage "
    "FILE records as the program runs."
)


def coverage_command(ctx: Context, args: Args) -> str:
    """The ``coverage`` command (see DESCRIPTION)."""
    s = ctx.session
    w = s.when()
    start = w.origin if args["from"] is None else _replay.parse_position(s, args["from"])
    end = w.frontier if args.to is None else _replay.parse_position(s, args.to)
    if args["from"] is None and w.frontier == w.origin:
        raise CommandError("nothing has executed yet: run or step first")
    _replay.check_range(s, start, end, allow_live=False)
    path = args.file
    # Opened before any work: a file that may not or cannot be written fails at once.
    with output_file(ctx, path) as f:
        recorder, r = _replay.replay(ctx, start, end, lambda m: m.block_recorder(),
                                     "coverage")
        blocks = recorder.blocks()
        count, modules = write_coverage(s, f, blocks)
    head = f"coverage of positions {start}..{r.reached} ({r.reached - start} instructions): "
    text = head + _summary(s, path, count, modules, blocks)
    if not r.complete:
        text += f"\n  incomplete: {_replay.stopped_early(r)}"
    return text + "\n"


class CoverageRecorder:
    """``--coverage FILE``: one session's whole-run recorder (registered only when asked)."""

    def __init__(self, session: Session, path: str) -> None:
        self.session = session
        self.path = path
        self.recorder: BlockRecorder | None = None

    @hookimpl
    def syxdbg_machine_created(self, session: Session, machine: Machine) -> None:
        if session is self.session:
            self.recorder = machine.block_recorder()

    @hookimpl
    def syxdbg_unconfigure(self, session: Session) -> None:
        if session is not self.session:
            return
        if self.recorder is not None:
            blocks = self.recorder.blocks()
            self.recorder.detach()
            self.recorder = None
            try:
                count, modules = write_coverage(session, self.path, blocks)
                print(f"syxdbg: coverage: {_summary(session, self.path, count, modules, blocks)}",
                      file=sys.stderr)
            except CommandError as exc:
                print(f"syxdbg: coverage: {exc}", file=sys.stderr)
        if session.plugins.is_registered(self):
            session.plugins.unregister(self)


@hookimpl
def syxdbg_addoption(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--coverage", metavar="FILE", dest=OPTION,
                        help="record the basic blocks the program executes and write them to "
                        "FILE (drcov, for Lighthouse or bncov) when the session ends")


@hookimpl
def syxdbg_configure(session: Session) -> None:
    path = session.options.get(OPTION)
    if path:
        session.plugins.register(CoverageRecorder(session, os.fspath(path)),
                                 f"coverage-session-{id(session):x}")


@hookimpl
def syxdbg_register_commands(registry: CommandRegistry) -> None:
    registry.command(
        "coverage", "write the basic blocks executed between FROM and TO (default: all of "
        "history) to FILE, in drcov format (Lighthouse, bncov)", category="history",
        description=DESCRIPTION,
        args=(Arg("file", "text", help="output file (drcov; from gdb: a name under the "
                  "server's output directory)"),
              Arg("from", "position", optional=True, help="first position (default: origin)"),
              Arg("to", "position", optional=True,
                  help="position after the last instruction (default: frontier)")),
    )(coverage_command)
