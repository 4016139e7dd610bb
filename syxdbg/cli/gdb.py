"""``syxdbg gdb``: real gdb debugging a program that runs in syxdbg, as ``rr replay`` does.

The same server as ``serve`` listens on a free IPv4 loopback port in a thread, and gdb
(gdb-multiarch for a foreign architecture) starts already connected to it, with the
program's symbols loaded. The program's own stdin, stdout and stderr stay those of the
syxdbg process; Ctrl-C in the terminal reaches gdb, which interrupts the program.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import threading
from typing import TYPE_CHECKING, Any

from .. import sigint
from ..errors import SyxdbgError
from .spec import (
    ProgramSpec,
    add_output_options,
    add_pid_option,
    add_program_options,
    apply_follow,
    open_session,
    output_options,
)

if TYPE_CHECKING:
    import pluggy

    from ..session import Session


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "gdb", help="debug a program running in syxdbg with gdb",
        description="Load PROG, serve it on a free loopback port and start gdb connected to "
        "it with the program's symbols loaded (gdb-multiarch for a foreign architecture). "
        "The exit status is gdb's.",
    )
    p.add_argument("--gdb", metavar="PATH", help="the gdb to run (default: gdb, or "
                   "gdb-multiarch for a foreign architecture)")
    p.add_argument("--ex", action="append", default=[], metavar="CMD",
                   help="run gdb command CMD after connecting (may be repeated)")
    p.add_argument("--batch", action="store_true",
                   help="run gdb in batch mode (exit after the --ex commands)")
    p.add_argument("--gdb-arg", action="append", default=[], metavar="ARG",
                   help="pass ARG to gdb (may be repeated; e.g. --gdb-arg=-nx)")
    add_pid_option(p)
    add_output_options(p)
    add_program_options(p)
    p.set_defaults(handler=_handle)


def _handle(ns: argparse.Namespace, pm: pluggy.PluginManager) -> int:
    with open_session(ProgramSpec.from_args(ns), pm, **output_options(ns)) as session:
        apply_follow(session)
        return debug(session, gdb=ns.gdb, batch=ns.batch, commands=ns.ex, extra=ns.gdb_arg)


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
    from ..commands import solibs

    image = session.image
    argv = [gdb, "-q", *(extra or [])]
    if batch:
        argv.append("-batch")
    if image.kind == "raw":
        argv += ["-ex", f"set architecture {session.machine.arch.gdb_arch}"]
    else:
        # Shared libraries' symbols come from the files the guest mapped: the session's
        # sysroot (gdb's default, "target:", would ask the stub for them over vFile).
        argv += ["-ex", f"set sysroot {solibs.files_root(session)}"]
    if image.kind != "raw":
        # A position-independent program is relocated by gdb itself: it reads AT_ENTRY
        # from the auxiliary vector the stub serves (qXfer:auxv:read).
        argv += ["-ex", f"file {image.path}"]
    # monitor commands can move in time (goto, last-write, snapshot restore) behind gdb's
    # back; gdb re-reads registers only at stops, so flush its cache after each one.
    argv += ["-ex", f"source {_monitor_hook_script()}"]
    argv += ["-ex", f"target remote 127.0.0.1:{port}"]
    for cmd in commands or []:
        argv += ["-ex", cmd]
    return argv


def debug(session: Session, *, gdb: str | None = None, batch: bool = False,
          commands: list[str] | None = None, extra: list[str] | None = None) -> int:
    """Serve ``session`` on a free loopback port and run gdb on it; gdb's exit status."""
    from gdbstub import GdbServer

    from ..gdb_target import SessionTarget

    target = SessionTarget(session)
    try:
        binary = gdb_for(session, gdb)
        with GdbServer.listen(target, "127.0.0.1", 0) as server:
            thread = threading.Thread(target=server.serve, name="syxdbg-gdbserver",
                                      daemon=True)
            thread.start()
            argv = gdb_command_line(session, server.port, binary, batch=batch,
                                    commands=commands, extra=extra)
            sigint.startup_done()
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
