"""``syxdbg run``: run a program under emulation, with this process's stdin, stdout and
stderr; the exit status is the program's (see :mod:`syxdbg.cli.report`)."""

from __future__ import annotations

import argparse
import threading
from typing import TYPE_CHECKING, Any

from .. import sigint
from . import args as types
from .report import report_end
from .spec import ProgramSpec, add_program_options, open_session

if TYPE_CHECKING:
    import pluggy

    from ..session import Session


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run", help="run a program under emulation",
        description="Run PROG under emulation with this process's stdin, stdout and stderr. "
        "The exit status is the program's, or 128+N when it dies of signal N (a fault: "
        "SIGSEGV, SIGILL, ...); 130 after Ctrl-C.",
    )
    p.add_argument("--max-insns", type=types.number, metavar="N",
                   help="stop after N instructions (exit status 124 if the program is "
                   "still running)")
    p.add_argument("--strict", action="store_true",
                   help="stop the program at its first unsupported system call, with a "
                   "message naming it (exit status 159, SIGSYS), instead of warning once "
                   "and returning -ENOSYS")
    add_program_options(p)
    p.set_defaults(handler=_handle)


def _handle(ns: argparse.Namespace, pm: pluggy.PluginManager) -> int:
    with open_session(ProgramSpec.from_args(ns), pm) as session:
        return run(session, max_insns=ns.max_insns)


def run(session: Session, *, max_insns: int | None = None) -> int:
    """Run ``session`` to its end (or ``max_insns``, or Ctrl-C); the exit status."""
    # The flag, polled between chunks, keeps a Ctrl-C that lands just before the
    # emulator starts (when machine.interrupt() alone would be reset) from being lost.
    stop = threading.Event()

    def interrupt() -> None:
        stop.set()
        session.interrupt()

    sigint.startup_done()
    with sigint.sigint_calls(interrupt):
        event = session.run(count=max_insns, poll=stop.is_set)
    return report_end(session, event)
