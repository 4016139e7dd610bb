"""``syxdbg record``: run a program to its end and write a recording of it."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from .. import sigint
from ..errors import SyxdbgError
from ..machine.events import Stopped
from ..recording import DEFAULT_CHECKPOINT_INTERVAL
from . import args as types
from .report import STATUS_INTERRUPTED, STATUS_LIMIT, report_end, where
from .spec import ProgramSpec, add_program_options, open_session

if TYPE_CHECKING:
    import pluggy

    from ..session import Session


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "record", help="record a run to a file, to replay and debug it later",
        description="Run PROG to its end (or to --max-insns, or Ctrl-C) and write a "
        "recording: the program image, argv, environment, every nondeterministic input it "
        "took (stdin, files, clocks, random bytes, ids) and periodic checkpoints. "
        "'syxdbg replay FILE' then reproduces the run exactly, forwards and backwards, "
        "without the host or the binary. The exit status is the program's, as with run "
        "(124 when stopped by --max-insns, 130 when interrupted by Ctrl-C, SIGTERM or SIGHUP; "
        "the recording is complete up to there).",
    )
    p.add_argument("-o", "--output", metavar="FILE",
                   help="the recording to write (default: PROG's name + .syxrec in the "
                   "current directory, numbered if it exists)")
    p.add_argument("--max-insns", type=types.number, metavar="N",
                   help="stop recording after N instructions")
    p.add_argument("--checkpoint-interval", type=types.number, metavar="N",
                   default=DEFAULT_CHECKPOINT_INTERVAL,
                   help="instructions between persisted checkpoints (default "
                   f"{DEFAULT_CHECKPOINT_INTERVAL:,}, at least 1,000,000, rounded up to "
                   "a multiple of it; smaller: bigger file, faster jumps in replay)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress and no summary")
    # record keeps no in-memory history: no budget to set
    add_program_options(p, history=False)
    p.set_defaults(handler=_handle)


def default_output(program: str) -> str:
    """``PROG.syxrec`` in the current directory, numbered if it exists."""
    base = os.path.basename(program) or "program"
    path = f"{base}.syxrec"
    n = 0
    while os.path.exists(path):
        n += 1
        path = f"{base}-{n}.syxrec"
    return path


def _handle(ns: argparse.Namespace, pm: pluggy.PluginManager) -> int:
    if ns.max_insns is not None and ns.max_insns <= 0:
        raise SyxdbgError("--max-insns must be positive")
    spec = ProgramSpec.from_args(ns)
    with open_session(spec, pm) as session:
        return record(session, ns.output or default_output(spec.name),
                      checkpoint_interval=ns.checkpoint_interval, max_insns=ns.max_insns,
                      quiet=ns.quiet)


def record(session: Session, output: str, *,
           checkpoint_interval: int = DEFAULT_CHECKPOINT_INTERVAL,
           max_insns: int | None = None, quiet: bool = False) -> int:
    """Record ``session`` into ``output``; the exit status, as ``run``'s."""
    from ..recording import Recorder, describe_end_event, format_size, progress_printer

    recorder = Recorder(session, output, checkpoint_interval=checkpoint_interval,
                        progress=None if quiet else progress_printer())
    sigint.startup_done()
    # SIGTERM and SIGHUP end the recording as Ctrl-C does: the file stays usable.
    stops = {sig: signal.signal(sig, lambda *_: recorder.interrupt())
             for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        with sigint.sigint_calls(recorder.interrupt):
            summary = recorder.run(max_insns)
    finally:
        for sig, old in stops.items():
            signal.signal(sig, old)
    if sys.stdout is not None:
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
    end = summary.end
    if isinstance(end, Stopped):
        # As run: 130 when interrupted, 124 at the instruction limit.
        status = STATUS_INTERRUPTED if end.why == "interrupt" else STATUS_LIMIT
        why = ("interrupted" if end.why == "interrupt"
               else f"stopped at the --max-insns limit, pc {where(session, end.pc)}")
    else:
        status = report_end(session, end)
        why = describe_end_event(end)
    if not quiet and sys.stderr is not None:
        if sys.stderr.isatty():
            sys.stderr.write("\r\x1b[K")
        rate = summary.instructions / summary.seconds if summary.seconds else 0.0
        print(f"syxdbg: recorded {summary.instructions:,} instructions in "
              f"{summary.seconds:.2f} s ({rate / 1e6:.1f} M/s); {why}\n"
              f"syxdbg: {summary.syscalls:,} system calls, {summary.events:,} host "
              f"inputs, {summary.checkpoints} checkpoints; {output} is "
              f"{format_size(summary.size)}\n"
              f"syxdbg: replay it with: syxdbg replay {output}", file=sys.stderr)
    return status
