"""``syxdbg replay``: debug a recording in gdb (the default), over a port, in the shell, or
check it end to end."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

from . import args as types
from . import gdb as gdb_command
from . import serve as serve_command
from . import shell as shell_command
from .spec import (
    ProgramSpec,
    add_output_options,
    add_pid_option,
    add_plugin_switch,
    apply_follow,
    open_session,
    output_options,
)

if TYPE_CHECKING:
    import pluggy

    from ..session import Session


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "replay", help="replay and debug a recording",
        description="Reproduce a recorded run exactly, without touching the host (stdin "
        "is not read, files are not written, clocks and random values come from the "
        "recording), with full reverse execution. Going forward past the end of the "
        "recording stops with 'No more reverse-execution history' (replaylog:end). By "
        "default gdb is started on it, as rr does.",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--gdb", dest="mode", action="store_const", const="gdb",
                      help="debug it with gdb (the default)")
    mode.add_argument("--port", type=types.port, metavar="N",
                      help="serve it to gdb on port N (0: pick one; see 'syxdbg serve')")
    mode.add_argument("--shell", dest="mode", action="store_const", const="shell",
                      help="debug it in the syxdbg shell")
    mode.add_argument("--check", dest="mode", action="store_const", const="check",
                      help="replay it to the end, checking every recorded digest; exit "
                      "status 0 if the replay matches the recording, 1 if it diverges")
    p.add_argument("--host", default=serve_command.DEFAULT_HOST, metavar="H",
                   help="with --port: the address to bind (default "
                   f"{serve_command.DEFAULT_HOST}; see 'syxdbg serve')")
    p.add_argument("--ex", "-ex", action="append", default=[], metavar="CMD",
                   help="gdb or shell command to run (may be repeated)")
    p.add_argument("--batch", action="store_true",
                   help="exit after the --ex commands (gdb and shell)")
    p.add_argument("--debugger", metavar="PATH",
                   help="the gdb to run (default: gdb, or gdb-multiarch for a foreign "
                   "architecture)")
    p.add_argument("--gdb-arg", action="append", default=[], metavar="ARG",
                   help="pass ARG to gdb (may be repeated)")
    add_plugin_switch(p)
    p.add_argument("--snapshot-budget", type=types.size, metavar="SIZE",
                   help="memory for in-memory checkpoints (default 1G)")
    add_pid_option(p)
    add_output_options(p)
    p.add_argument("recording", metavar="FILE", help="a recording made by syxdbg record")
    p.set_defaults(_takes_program=True, mode=None, handler=_handle)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds: the session removes its temporary files


def _handle(ns: argparse.Namespace, pm: pluggy.PluginManager) -> int:
    mode = ns.mode or ("serve" if ns.port is not None else "gdb")
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    spec = ProgramSpec.from_args(ns)
    if mode == "check":
        with open_session(spec, pm) as session:
            return check(session)
    if mode == "serve":
        endpoint = serve_command.Endpoint.resolve(ns.host, ns.port)
        with open_session(spec, pm, **output_options(ns)) as session:
            apply_follow(session)
            return serve_command.serve(session, endpoint)
    if mode == "shell":
        with open_session(spec, pm) as session:
            apply_follow(session)
            script = list(ns.ex) if (ns.ex or ns.batch) else None
            return shell_command.shell(session, script=script)
    with open_session(spec, pm, **output_options(ns)) as session:
        apply_follow(session)
        return gdb_command.debug(session, gdb=ns.debugger, batch=ns.batch, commands=ns.ex,
                                 extra=ns.gdb_arg)


def check(session: Session) -> int:
    """Replay to the end, checking every digest; print what was compared. 0 if the replay
    matches the recording, 1 if it diverges."""
    from ..eventlog import Divergence
    from ..recording import ReplaySource, describe_end_event, memory_digest

    rec = session.recording
    assert rec is not None
    source = session.timeline.recorded
    if isinstance(source, ReplaySource):
        source.jumps = False  # re-execute everything, checking every digest
    started = time.monotonic()
    try:
        event = session.cont()  # no breakpoints: to the end (or the recorded fault)
    except Divergence as exc:
        print(f"syxdbg: {exc}", file=sys.stderr)
        return 1
    digest = memory_digest(session.machine)
    want = rec.end["memory_digest"]
    checked = getattr(source, "checked", 0)
    used = session.eventlog.cursor
    final = session.machine.finished
    outcome = (describe_end_event(final) if final is not None
               else "it reached the end of the recording")
    problems = []
    if session.position != rec.end_position:
        problems.append(f"it stops at position {session.position} ({event!r}), the "
                        f"recording at {rec.end_position}")
    if used != len(rec.events):
        problems.append(f"it used {used} of the {len(rec.events)} recorded host inputs")
    if digest != want:
        problems.append(f"its final memory digest is {digest}, the recording's {want}")
    if problems:
        print("syxdbg: replay diverged from the recording: " + "; ".join(problems),
              file=sys.stderr)
        return 1
    interp = (f"; the interpreter {rec.interp_name} matched its digest when extracted"
              if rec.interp_name else "")
    print(f"syxdbg: replayed {session.position:,} instructions in "
          f"{time.monotonic() - started:.2f} s: {outcome}, as recorded; all {used:,} host "
          f"inputs replayed, {checked} recorded states and the final memory digest "
          f"match ({digest}){interp}")
    return 0
