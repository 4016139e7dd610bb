"""``syxdbg timeline``: an HTML picture of a recording (system calls, function activity,
watched writes, checkpoints, the end), written by the ``timeline`` command of the session's
command registry (the first-party ``timeline`` plugin): the CLI opens the replay and runs
that command, exactly as ``timeline FILE ...`` in the shell or gdb's ``monitor`` does."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
from types import FrameType
from typing import Any

import pluggy

from .. import sigint
from ..errors import SyxdbgError
from . import args as types
from .spec import ProgramSpec, add_plugin_switch, open_session

#: Exit status when the report could not be made (the recording opened fine).
STATUS_FAILED = 1


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "timeline", help="write an HTML timeline of a recording",
        description="Replay a recording (re-executing it, without touching the host) and "
        "write one self-contained HTML page showing the run along its instruction "
        "positions: system calls with arguments and results, checkpoints, which functions "
        "ran when, the writes to --watch ranges with their values, and how the run ended. "
        "Zoom and pan; hovering shows the position and the instruction; every element shows "
        "the 'syxdbg replay ... monitor goto N' command that takes you there. The same "
        "report is the 'timeline FILE' command of the shell and of gdb's monitor. See "
        "docs/timeline.md.",
    )
    p.add_argument("-o", "--output", metavar="FILE",
                   help="the HTML file to write (default: the recording's name with .html)")
    p.add_argument("--watch", action="append", default=[], metavar="WHERE[:LEN]",
                   help="show every write to SYMBOL or ADDRESS (LEN bytes; default: the "
                   "symbol's size, else 8), e.g. ledger.balance (may be repeated)")
    p.add_argument("--from", dest="start", metavar="POSITION",
                   help="first position shown (default: the start of the recording)")
    p.add_argument("--to", dest="end", metavar="POSITION",
                   help="position where the report ends (default: the end of the recording)")
    p.add_argument("--buckets", type=int, metavar="N",
                   help="position buckets of function activity (default 500)")
    add_plugin_switch(p)
    p.add_argument("--snapshot-budget", type=types.size, metavar="SIZE",
                   help="memory for in-memory checkpoints (default 1G)")
    p.add_argument("recording", metavar="FILE.syxrec", help="a recording made by syxdbg record")
    p.set_defaults(_takes_program=True, handler=_handle)


def command_line(ns: argparse.Namespace, output: str) -> str:
    """The registry command the CLI options stand for."""
    words = ["timeline", output]
    for w in ns.watch:
        words += ["--watch", w]
    if ns.start is not None:
        words += ["--from", ns.start]
    if ns.end is not None:
        words += ["--to", ns.end]
    if ns.buckets is not None:
        words += ["--buckets", str(ns.buckets)]
    return shlex.join(words)


def _handle(ns: argparse.Namespace, pm: pluggy.PluginManager) -> int:
    from ..commands import CommandError, make_registry  # imported when used: fast --help

    output = ns.output or os.path.splitext(os.path.basename(ns.recording))[0] + ".html"
    spec = ProgramSpec.from_args(ns)
    with open_session(spec, pm) as session:
        registry = make_registry(session)
        if "timeline" not in registry:
            raise SyxdbgError("the timeline plugin is not loaded (-p no:timeline?)")
        ctx = registry.ctx

        def interrupt(signum: int, frame: FrameType | None) -> None:
            ctx.interrupt()

        if sys.stderr.isatty():
            ctx.progress = lambda text: print(f"\r\x1b[K{text}", end="", file=sys.stderr,
                                              flush=True)
        previous = signal.signal(signal.SIGINT, interrupt)
        sigint.startup_done()
        try:
            text = registry.run_text(command_line(ns, output))
        except CommandError as exc:
            print(f"syxdbg: {exc}", file=sys.stderr)
            return STATUS_FAILED
        finally:
            signal.signal(signal.SIGINT, previous)
            if ctx.progress is not None:
                print("\r\x1b[K", end="", file=sys.stderr, flush=True)
        print(f"syxdbg: {text.rstrip()}", file=sys.stderr)
    return 0
