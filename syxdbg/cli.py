"""The ``syxdbg`` command line.

Options go before the program, as with ``gdb --args`` and ``rr record``: everything after the
program path belongs to the program.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from importlib import resources

import pluggy

from . import __version__
from .errors import SyxdbgError
from .machine.events import Exited, Fault, Killed, StopEvent, Stopped
from .recording import DEFAULT_CHECKPOINT_INTERVAL
from .session import Session


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _size(text: str) -> int:
    """A byte count: a number with an optional K, M or G suffix (powers of 1024)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = units.get(t[-1:], 1)
    try:
        value = int(t[:-1] if scale > 1 else t, 0) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 512M, 2G)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive: {text!r}")
    return value


def _env_pair(text: str) -> tuple[str, str]:
    name, eq, value = text.partition("=")
    if not eq or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _add_program_options(p: argparse.ArgumentParser) -> None:
    p.set_defaults(_takes_program=True)
    g = p.add_argument_group("program")
    g.add_argument("--raw", metavar="FILE",
                   help="load FILE as a raw blob instead of an ELF (needs --arch and --base)")
    g.add_argument("--arch", help="architecture of a raw blob: x86_64 or aarch64 "
                   "(ELF programs: inferred from the file)")
    g.add_argument("--base", type=_int, metavar="ADDR", help="load address of a raw blob")
    g.add_argument("--entry", type=_int, metavar="ADDR",
                   help="entry point of a raw blob (default: --base)")
    g.add_argument("-E", "--env", type=_env_pair, action="append", default=[],
                   metavar="NAME=VALUE", help="set an environment variable for the program")
    g.add_argument("--clear-env", action="store_true",
                   help="start the program with an empty environment (then apply --env)")
    g.add_argument("--argv0", help="argv[0] for the program (default: PROG as given)")
    g.add_argument("-p", dest="plugin_opts", action="append", default=[], metavar="no:NAME",
                   help="disable plugin NAME (may be repeated)")
    g.add_argument("--snapshot-budget", type=_size, metavar="SIZE",
                   help="memory for recorded history (checkpoints), e.g. 512M or 2G; older "
                   "checkpoints are thinned to stay inside it (default 1G)")
    p.add_argument("prog", nargs="?", metavar="PROG", help="static Linux ELF executable")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                   help="arguments passed to the program")


def _prescan_disabled(argv: Sequence[str]) -> list[str]:
    """The ``-p no:NAME`` options before the program, needed before parsing (plugins add
    options of their own)."""
    out = []
    for i, tok in enumerate(argv):
        if os.path.isfile(tok):
            break  # the program: what follows is its own
        if tok == "-p" and i + 1 < len(argv) and argv[i + 1].startswith("no:"):
            out.append(argv[i + 1][3:])
        elif tok.startswith("-pno:"):
            out.append(tok[5:])
    return out


def _add_plugin_options(parser: argparse.ArgumentParser, pm: pluggy.PluginManager) -> None:
    """Let plugins add options to every command that runs a program."""
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        for sub in getattr(action, "choices", {}).values():
            if sub.get_default("_takes_program"):
                group = sub.add_argument_group("plugin options")
                pm.hook.syxdbg_addoption(parser=group)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syxdbg",
        description="Run and debug static Linux programs (x86_64, aarch64) and raw firmware "
        "blobs on an emulated machine.",
    )
    parser.add_argument("--version", action="version", version=f"syxdbg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser(
        "run", help="run a program under emulation",
        description="Run PROG under emulation with this process's stdin, stdout and stderr. "
        "The exit status is the program's, or 128+N when it dies of signal N (a fault: "
        "SIGSEGV, SIGILL, ...).",
    )
    run.add_argument("--max-insns", type=_int, metavar="N",
                     help="stop after N instructions (exit status 124 if the program is "
                     "still running)")
    _add_program_options(run)
    record = sub.add_parser(
        "record", help="record a run to a file, to replay and debug it later",
        description="Run PROG to its end (or to --max-insns, or Ctrl-C) and write a "
        "recording: the program image, argv, environment, every nondeterministic input it "
        "took (stdin, files, clocks, random bytes, ids) and periodic checkpoints. "
        "'syxdbg replay FILE' then reproduces the run exactly, forwards and backwards, "
        "without the host or the binary. The exit status is the program's, as with run "
        "(124 when stopped by --max-insns, 130 when interrupted by Ctrl-C, SIGTERM or SIGHUP; "
        "the recording is complete up to there).",
    )
    record.add_argument("-o", "--output", metavar="FILE",
                        help="the recording to write (default: PROG's name + .syxrec in the "
                        "current directory, numbered if it exists)")
    record.add_argument("--max-insns", type=_int, metavar="N",
                        help="stop recording after N instructions")
    record.add_argument("--checkpoint-interval", type=_int, metavar="N",
                        default=DEFAULT_CHECKPOINT_INTERVAL,
                        help="instructions between persisted checkpoints (default "
                        f"{DEFAULT_CHECKPOINT_INTERVAL:,}, at least 1,000,000, rounded up to "
                        "a multiple of it; smaller: bigger file, faster jumps in replay)")
    record.add_argument("-q", "--quiet", action="store_true",
                        help="no progress and no summary")
    _add_program_options(record)
    for action in record._actions:  # record keeps no in-memory history: no budget to set
        if action.dest == "snapshot_budget":
            action.help = argparse.SUPPRESS
    replay = sub.add_parser(
        "replay", help="replay and debug a recording",
        description="Reproduce a recorded run exactly, without touching the host (stdin "
        "is not read, files are not written, clocks and random values come from the "
        "recording), with full reverse execution. Going forward past the end of the "
        "recording stops with 'No more reverse-execution history' (replaylog:end). By "
        "default gdb is started on it, as rr does.",
    )
    mode = replay.add_mutually_exclusive_group()
    mode.add_argument("--gdb", dest="mode", action="store_const", const="gdb",
                      help="debug it with gdb (the default)")
    mode.add_argument("--port", type=_int, metavar="N",
                      help="serve it to gdb on port N (0: pick one; see 'syxdbg serve')")
    mode.add_argument("--shell", dest="mode", action="store_const", const="shell",
                      help="debug it in the syxdbg shell")
    mode.add_argument("--check", dest="mode", action="store_const", const="check",
                      help="replay it to the end, checking every recorded digest; exit "
                      "status 0 if the replay matches the recording, 1 if it diverges")
    replay.add_argument("--host", default="127.0.0.1", metavar="H",
                        help="with --port: the address to bind (default 127.0.0.1)")
    replay.add_argument("--ex", "-ex", action="append", default=[], metavar="CMD",
                        help="gdb or shell command to run (may be repeated)")
    replay.add_argument("--batch", action="store_true",
                        help="exit after the --ex commands (gdb and shell)")
    replay.add_argument("--debugger", metavar="PATH",
                        help="the gdb to run (default: gdb, or gdb-multiarch for a foreign "
                        "architecture)")
    replay.add_argument("--gdb-arg", action="append", default=[], metavar="ARG",
                        help="pass ARG to gdb (may be repeated)")
    replay.add_argument("-p", dest="plugin_opts", action="append", default=[],
                        metavar="no:NAME", help="disable plugin NAME (may be repeated)")
    replay.add_argument("--snapshot-budget", type=_size, metavar="SIZE",
                        help="memory for in-memory checkpoints (default 1G)")
    replay.add_argument("recording", metavar="FILE", help="a recording made by syxdbg record")
    replay.set_defaults(_takes_program=True, mode=None)
    sub.add_parser("demo", help="run the bundled example program",
                   description="Run the bundled example program (a ledger whose balance gets "
                   "corrupted) under emulation.")
    plugins = sub.add_parser("plugins", help="list the loaded plugins",
                             description="List the plugins syxdbg loads: first-party ones and "
                             "those of the 'syxdbg' entry-point group, with their version and "
                             "origin.")
    plugins.add_argument("-p", dest="plugin_opts", action="append", default=[],
                         metavar="no:NAME", help="disable plugin NAME (may be repeated)")
    from . import gdbserver
    from .shell import app as shell_app
    gdbserver.add_commands(sub)
    shell_app.add_commands(sub)
    return parser


def _disabled_plugins(opts: Sequence[str]) -> list[str]:
    out = []
    for opt in opts:
        if not opt.startswith("no:") or len(opt) == 3:
            raise SyxdbgError(f"-p expects no:NAME, got {opt!r}")
        out.append(opt[3:])
    return out


def _session_options(ns: argparse.Namespace) -> dict[str, object]:
    options = dict(vars(ns))
    if getattr(ns, "snapshot_budget", None):
        options["timeline.budget"] = ns.snapshot_budget
    return options


def open_session(ns: argparse.Namespace) -> Session:
    """Create the session an ``ns`` from :func:`_add_program_options` describes."""
    disabled = _disabled_plugins(ns.plugin_opts)
    if getattr(ns, "recording", None):
        from .recording import open_replay

        return open_replay(ns.recording, disable_plugins=disabled,
                           plugins=getattr(ns, "plugin_manager", None),
                           options=_session_options(ns))
    env = {} if ns.clear_env else dict(os.environ)
    env.update(dict(ns.env))
    if ns.raw:
        if ns.prog:
            raise SyxdbgError("give either PROG or --raw FILE, not both")
        return Session.open(ns.raw, (), arch=ns.arch, raw=True, base=ns.base, entry=ns.entry,
                            disable_plugins=disabled,
                            plugins=getattr(ns, "plugin_manager", None),
                            options=_session_options(ns))
    if not ns.prog:
        raise SyxdbgError("no program given (PROG, or --raw FILE)")
    if ns.base is not None or ns.entry is not None:
        raise SyxdbgError("--base and --entry apply to raw blobs (--raw FILE) only")
    return Session.open(ns.prog, ns.args, env=env, arch=ns.arch, argv0=ns.argv0,
                        disable_plugins=disabled, plugins=getattr(ns, "plugin_manager", None),
                        options=_session_options(ns))


def _where(session: Session, pc: int) -> str:
    try:
        name = session.image.symbolize(pc)
    except SyxdbgError:
        name = None
    return f"{pc:#x}" + (f" ({name})" if name else "")


def report_end(session: Session, event: StopEvent) -> int:
    """Print one line for abnormal ends and return the shell-style exit status."""
    if isinstance(event, Exited):
        return event.status
    if isinstance(event, Fault):
        name = signal.Signals(event.signal).name
        detail = f": {event.detail} at {event.address:#x}" if event.signal != signal.SIGILL \
            else f": {event.detail}"
        print(f"syxdbg: program received {name} at pc {_where(session, event.pc)}{detail}",
              file=sys.stderr)
        return 128 + event.signal
    if isinstance(event, Killed):
        name = signal.Signals(event.signal).name
        print(f"syxdbg: program killed by {name} at pc {_where(session, event.pc)}",
              file=sys.stderr)
        return 128 + event.signal
    assert isinstance(event, Stopped)
    if event.why == "interrupt":
        print(f"syxdbg: interrupted at pc {_where(session, event.pc)} after "
              f"{event.position} instructions", file=sys.stderr)
        return 128 + signal.SIGINT
    print(f"syxdbg: stopped after {event.position} instructions at pc "
          f"{_where(session, event.pc)}", file=sys.stderr)
    return 124


def cmd_run(ns: argparse.Namespace) -> int:
    import threading

    from .sigint import sigint_calls

    session = open_session(ns)
    try:
        # The flag, polled between chunks, keeps a Ctrl-C that lands just before the
        # emulator starts (when machine.interrupt() alone would be reset) from being lost.
        stop = threading.Event()

        def interrupt() -> None:
            stop.set()
            session.interrupt()

        with sigint_calls(interrupt):
            event = session.run(count=ns.max_insns, poll=stop.is_set)
        return report_end(session, event)
    finally:
        session.close()


def _default_output(prog: str) -> str:
    base = os.path.basename(prog) or "program"
    path = f"{base}.syxrec"
    n = 0
    while os.path.exists(path):
        n += 1
        path = f"{base}-{n}.syxrec"
    return path


def cmd_record(ns: argparse.Namespace) -> int:
    from .recording import Recorder, format_size, progress_printer

    if ns.max_insns is not None and ns.max_insns <= 0:
        raise SyxdbgError("--max-insns must be positive")
    session = open_session(ns)
    try:
        output = ns.output or _default_output(ns.prog or ns.raw)
        recorder = Recorder(session, output, checkpoint_interval=ns.checkpoint_interval,
                            progress=None if ns.quiet else progress_printer())
        from .recording import describe_end_event
        from .sigint import sigint_calls

        # SIGTERM and SIGHUP end the recording as Ctrl-C does: the file stays usable.
        stops = {sig: signal.signal(sig, lambda *_: recorder.interrupt())
                 for sig in (signal.SIGTERM, signal.SIGHUP)}
        try:
            with sigint_calls(recorder.interrupt):
                summary = recorder.run(ns.max_insns)
        finally:
            for sig, old in stops.items():
                signal.signal(sig, old)
        if sys.stdout is not None:
            with contextlib.suppress(OSError, ValueError):
                sys.stdout.flush()
        end = summary.end
        if isinstance(end, Stopped):
            # As run: 130 when interrupted, 124 at the instruction limit.
            status = 128 + signal.SIGINT if end.why == "interrupt" else 124
            why = ("interrupted" if end.why == "interrupt"
                   else f"stopped at the --max-insns limit, pc {_where(session, end.pc)}")
        else:
            status = report_end(session, end)
            why = describe_end_event(end)
        if not ns.quiet and sys.stderr is not None:
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
    finally:
        session.close()


def cmd_replay(ns: argparse.Namespace) -> int:
    from . import gdbserver
    from .shell import app as shell_app

    mode = ns.mode or ("serve" if ns.port is not None else "gdb")

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds: the session removes its temporary files

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)
    if mode == "check":
        return _replay_check(ns)
    if mode == "serve":
        return gdbserver.cmd_serve(ns)
    if mode == "shell":
        ns.shell_script = [("cmd", c) for c in ns.ex] if (ns.ex or ns.batch) else None
        ns.history = None
        return shell_app.cmd_shell(ns)
    ns.gdb = ns.debugger
    return gdbserver.cmd_gdb(ns)


def _replay_check(ns: argparse.Namespace) -> int:
    """Replay to the end, checking every digest; print what was compared."""
    import time

    from .eventlog import Divergence
    from .recording import ReplaySource, describe_end_event, memory_digest

    session = open_session(ns)
    try:
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
        print(f"syxdbg: replayed {session.position:,} instructions in "
              f"{time.monotonic() - started:.2f} s: {outcome}, as recorded; all {used:,} host "
              f"inputs replayed, {checked} recorded states and the final memory digest "
              f"match ({digest})")
        return 0
    finally:
        session.close()


def cmd_demo(ns: argparse.Namespace) -> int:
    """Run the bundled ledger, then find by time travel who corrupted its balance."""
    from .commands.debuginfo import DebugInfo

    example = resources.files("syxdbg").joinpath("examples", "ledger-x86_64")
    with resources.as_file(example) as path:
        print(f"syxdbg demo: running the bundled example {path.name} under emulation, "
              "recording its history\n", file=sys.stderr)
        sys.stdout.flush()
        with Session.open(str(path), (), env={}, argv0="ledger") as session:
            end = session.run()
            status = report_end(session, end)
            sys.stdout.flush()
            balance = session.symbols["ledger"] + 16 * 8  # struct ledger: history[16], balance
            final = int.from_bytes(session.mem.read(balance, 8), "little", signed=True)
            print(f"\nsyxdbg demo: the program exited with status {status} after "
                  f"{end.position} instructions; ledger.balance ends as {final}.",
                  file=sys.stderr)
            print("syxdbg demo: who wrote ledger.balance last, and when? Going back in "
                  "time...", file=sys.stderr)
            found = session.last_write(balance, 8)
            if found is None:
                print("syxdbg demo: no write to ledger.balance in the recorded history",
                      file=sys.stderr)
                return 1
            before = int.from_bytes(session.mem.read(balance, 8), "little", signed=True)
            insn = session.machine.disassemble(found.pc, 1)
            text = f"{insn[0][1]} {insn[0][2]}".strip() if insn else "?"
            where = session.image.symbolize(found.pc) or "?"
            row = DebugInfo(session).line_at(found.pc)
            line = f"{os.path.basename(row.file)}:{row.line}" if row else "no line information"
            print(f"""
  the last write to ledger.balance ({balance:#x}) is
    instruction  {found.pc:#x}: {text}
    function     {where}
    source       {line}
    position     {found.position} (of {end.position} instructions)
    value        {before} before it, {final} after it

  Explore it yourself (the binary is {path}):
    syxdbg gdb {path}
        (gdb) watch ledger.balance
        (gdb) continue             # ... until the program exits
        (gdb) reverse-continue     # lands on the store above
    syxdbg shell {path}
        > run
        > last-write ledger.balance 8
""", file=sys.stderr)
    return 0


def cmd_plugins(ns: argparse.Namespace) -> int:
    from .plugins import describe_plugins, make_plugin_manager

    pm = make_plugin_manager(_disabled_plugins(ns.plugin_opts))
    rows = describe_plugins(pm)
    width = max([len(r[0]) for r in rows] + [4])
    for name, version, origin in rows:
        print(f"{name:<{width}}  {version or '-':<8}  {origin}")
    if not rows:
        print("no plugins loaded")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from .plugins import make_plugin_manager

    args = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        pm = make_plugin_manager(_prescan_disabled(args))
    except SyxdbgError as exc:
        print(f"syxdbg: error: {exc}", file=sys.stderr)
        return 2
    _add_plugin_options(parser, pm)
    ns = parser.parse_args(args)
    ns.plugin_manager = pm
    if ns.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        if ns.command == "run":
            return cmd_run(ns)
        if ns.command == "record":
            return cmd_record(ns)
        if ns.command == "replay":
            return cmd_replay(ns)
        if ns.command == "demo":
            return cmd_demo(ns)
        if ns.command == "plugins":
            return cmd_plugins(ns)
        from . import gdbserver
        from .shell import app as shell_app
        for table in (gdbserver.COMMANDS, shell_app.COMMANDS):
            if ns.command in table:
                return table[ns.command](ns)
    except SyxdbgError as exc:
        print(f"syxdbg: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("syxdbg: interrupted", file=sys.stderr)
        return 130
    parser.error(f"unknown command {ns.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
