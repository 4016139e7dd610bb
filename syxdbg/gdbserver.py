"""``syxdbg serve`` and ``syxdbg gdb``: real gdb debugging a program that runs in syxdbg.

``serve`` listens for gdb's remote protocol (``target remote HOST:PORT``); ``gdb`` starts the
same server on a free loopback port in a thread and runs gdb (gdb-multiarch for a foreign
architecture) already connected, with the program's symbols loaded, as ``rr replay`` does.
The program's own stdin, stdout and stderr stay those of the syxdbg process.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from typing import Any

from gdbstub import GdbServer, SessionEnd

from .errors import SyxdbgError
from .gdb_target import SessionTarget
from .session import Session


def add_commands(subparsers: Any) -> None:
    """Register the ``serve`` and ``gdb`` subcommands on ``subparsers`` (argparse)."""
    from .cli import _add_program_options, _int

    serve = subparsers.add_parser(
        "serve", help="serve a program to gdb over the remote protocol",
        description="Load PROG and wait for gdb to connect (target remote HOST:PORT). The "
        "port is printed on stderr. One connection at a time; gdb may disconnect and "
        "reconnect, the program keeps its state. 'kill' in gdb ends the server.",
    )
    serve.add_argument("--port", type=_int, default=0, metavar="N",
                       help="TCP port (default 0: pick a free one)")
    serve.add_argument("--host", default="127.0.0.1", metavar="H",
                       help="address to bind (default 127.0.0.1; other addresses expose the "
                       "debugger to the network)")
    _add_program_options(serve)

    gdb = subparsers.add_parser(
        "gdb", help="debug a program running in syxdbg with gdb",
        description="Load PROG, serve it on a free loopback port and start gdb connected to "
        "it with the program's symbols loaded (gdb-multiarch for a foreign architecture). "
        "The exit status is gdb's.",
    )
    gdb.add_argument("--gdb", metavar="PATH", help="the gdb to run (default: gdb, or "
                     "gdb-multiarch for a foreign architecture)")
    gdb.add_argument("--ex", action="append", default=[], metavar="CMD",
                     help="run gdb command CMD after connecting (may be repeated)")
    gdb.add_argument("--batch", action="store_true",
                     help="run gdb in batch mode (exit after the --ex commands)")
    gdb.add_argument("--gdb-arg", action="append", default=[], metavar="ARG",
                     help="pass ARG to gdb (may be repeated; e.g. --gdb-arg=-nx)")
    _add_program_options(gdb)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(ns: argparse.Namespace) -> int:
    from .cli import open_session

    if not _is_loopback(ns.host):
        print(f"syxdbg: warning: listening on {ns.host}, not a loopback address: anyone who "
              "can reach it can read and write this process's files through the program",
              file=sys.stderr)
    session = open_session(ns)
    target = SessionTarget(session)
    try:
        with GdbServer.listen(target, ns.host, ns.port) as server:
            host, port = server.address
            print(f"syxdbg: listening on {host}:{port}", file=sys.stderr)
            print(f"syxdbg: in gdb: {' '.join(_symbol_commands(session))} "
                  f"target remote {host}:{port}", file=sys.stderr, flush=True)
            end = server.serve()
        if end is SessionEnd.KILLED:
            print("syxdbg: killed by gdb", file=sys.stderr)
        return 0
    finally:
        target.close()
        session.close()


def _symbol_commands(session: Session) -> list[str]:
    """How gdb gets the program's symbols (a hint line for ``serve``)."""
    image = session.image
    if image.kind == "raw":
        return [f"(gdb) set architecture {session.machine.arch.gdb_arch};"]
    if image.load_bias:
        return [f"(gdb) symbol-file -o {image.load_bias:#x} {shlex.quote(image.path)};"]
    return [f"(gdb) file {shlex.quote(image.path)};"]


def gdb_for(session: Session, explicit: str | None = None) -> str:
    """The gdb binary for the session's architecture."""
    if explicit:
        return explicit
    arch = session.machine.arch
    import platform

    host = platform.machine().lower()
    native = host in ("x86_64", "amd64") and arch.name == "x86_64" or \
        host in ("aarch64", "arm64") and arch.name == "aarch64"
    candidates = ["gdb", "gdb-multiarch"] if native else ["gdb-multiarch", arch.gdb_binary]
    for name in candidates:
        path = shutil.which(name)
        if path:
            return path
    raise SyxdbgError(f"no gdb found for {arch.name} (tried {', '.join(candidates)})")


MONITOR_HOOK = """\
define hookpost-monitor
maintenance flush register-cache
end
"""


def _monitor_hook_script() -> str:
    """A gdb script (written once per process) that flushes gdb's register cache after every
    ``monitor`` command; users of ``syxdbg serve`` can put the same lines in .gdbinit."""
    import atexit
    import tempfile

    global _HOOK_PATH
    if _HOOK_PATH is None or not os.path.exists(_HOOK_PATH):
        fd, path = tempfile.mkstemp(prefix="syxdbg-", suffix=".gdb")
        with os.fdopen(fd, "w") as f:
            f.write(MONITOR_HOOK)
        atexit.register(_remove_quietly, path)
        _HOOK_PATH = path
    return _HOOK_PATH


_HOOK_PATH: str | None = None


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def gdb_command_line(session: Session, port: int, gdb: str, *, batch: bool = False,
                     commands: list[str] | None = None, extra: list[str] | None = None
                     ) -> list[str]:
    """gdb's argv: symbols first, then ``target remote``, then the user's commands."""
    image = session.image
    argv = [gdb, "-q", *(extra or [])]
    if batch:
        argv.append("-batch")
    if image.kind == "raw":
        argv += ["-ex", f"set architecture {session.machine.arch.gdb_arch}"]
    elif image.load_bias:
        argv += ["-ex", f"symbol-file -o {image.load_bias:#x} {image.path}"]
    else:
        argv += ["-ex", f"file {image.path}"]
    # monitor commands can move in time (goto, last-write, snapshot restore) behind gdb's
    # back; gdb re-reads registers only at stops, so flush its cache after each one.
    argv += ["-ex", f"source {_monitor_hook_script()}"]
    argv += ["-ex", f"target remote 127.0.0.1:{port}"]
    for cmd in commands or []:
        argv += ["-ex", cmd]
    return argv


def cmd_gdb(ns: argparse.Namespace) -> int:
    from .cli import open_session

    session = open_session(ns)
    target = SessionTarget(session)
    try:
        gdb = gdb_for(session, ns.gdb)
        with GdbServer.listen(target, "127.0.0.1", 0) as server:
            thread = threading.Thread(target=server.serve, name="syxdbg-gdbserver",
                                      daemon=True)
            thread.start()
            argv = gdb_command_line(session, server.port, gdb, batch=ns.batch,
                                    commands=ns.ex, extra=ns.gdb_arg)
            # Ctrl-C in the terminal reaches gdb, which interrupts the program through the
            # protocol; this process must survive it. A Python handler (not SIG_IGN) is
            # reset to the default in gdb by exec.
            old = signal.signal(signal.SIGINT, lambda *_: None)
            try:
                status = subprocess.call(argv, env=os.environ.copy())
            finally:
                signal.signal(signal.SIGINT, old)
                server.close()
                thread.join()
        return status
    finally:
        target.close()
        session.close()


#: Subcommand name -> implementation, for cli.main's dispatch.
COMMANDS = {"serve": cmd_serve, "gdb": cmd_gdb}
