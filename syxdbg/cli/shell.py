"""``syxdbg shell``: debug a program in syxdbg's own shell (:class:`syxdbg.shell.app.Shell`),
interactively or running commands from ``--batch FILE`` and ``-ex CMD``."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import sigint
from ..errors import SyxdbgError
from ..shell.history import DEFAULT_HISTORY
from .spec import ProgramSpec, add_program_options, apply_follow, open_session

if TYPE_CHECKING:
    import pluggy

    from ..session import Session


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "shell", help="debug a program in syxdbg's own time-travel shell",
        description="Load PROG and start the syxdbg shell: gdb-like commands (help lists "
        "them), reverse execution, snapshots, a context display after every stop. With "
        "--batch FILE or -ex CMD the commands run without a prompt, in the order given, and "
        "print what an interactive session would; the exit status is 1 if one failed.",
    )
    p.add_argument("--batch", dest="shell_script", action="append", metavar="FILE",
                   type=lambda v: ("file", v), help="run the commands in FILE, then exit")
    p.add_argument("-ex", "--ex", dest="shell_script", action="append", metavar="CMD",
                   type=lambda v: ("cmd", v), help="run CMD, then exit (may be repeated)")
    p.add_argument("--history", metavar="FILE", default=None,
                   help=f"history file (default: $SYXDBG_HISTORY or {DEFAULT_HISTORY})")
    add_program_options(p)
    p.set_defaults(handler=_handle)


def script_lines(script: Sequence[tuple[str, str]]) -> list[str]:
    """The commands of ``--batch FILE`` and ``-ex CMD`` options, in order."""
    lines: list[str] = []
    for kind, value in script:
        if kind == "cmd":
            lines.append(value)
            continue
        try:
            with open(value, encoding="utf-8") as f:
                lines += f.read().splitlines()
        except OSError as exc:
            raise SyxdbgError(f"--batch {value}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise SyxdbgError(f"--batch {value}: not a UTF-8 text file") from None
    return lines


def _handle(ns: argparse.Namespace, pm: pluggy.PluginManager) -> int:
    script = script_lines(ns.shell_script) if ns.shell_script else None
    with open_session(ProgramSpec.from_args(ns), pm) as session:
        apply_follow(session)
        return shell(session, script=script, history=ns.history)


def shell(session: Session, *, script: Sequence[str] | None = None,
          history: str | None = None) -> int:
    """Run the shell on ``session``: the ``script`` lines without a prompt (status 1 if one
    failed), or interactively with ``history`` (default: $SYXDBG_HISTORY or
    ~/.syxdbg_history)."""
    from ..shell.app import Shell

    # The shell handles Ctrl-C itself (interrupting a command, clearing the line).
    sigint.end_startup_handler()
    if script is not None:
        return Shell(session).run_lines(script)
    path = history or os.environ.get("SYXDBG_HISTORY") or DEFAULT_HISTORY
    return Shell(session, history_file=path).cmdloop()
