"""``syxdbg``: parse the command line, dispatch to the subcommand, turn errors into one line.

Options go before the program, as with ``gdb --args`` and ``rr record``: everything after the
program path belongs to the program. Each subcommand lives in its own module of this package
and registers its parser with a ``handler(namespace, plugin_manager) -> status``.

Start-up is Ctrl-C safe: :func:`main` installs the start-up SIGINT handler
(:mod:`syxdbg.sigint`) before importing the emulator, the plugins or the subcommands, so an
interrupt at any moment ends with one line and status 130.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from .. import sigint
from ..version import __version__

if TYPE_CHECKING:
    import argparse

    import pluggy

#: Exit status of bad input (usage errors, unloadable programs), as argparse's.
STATUS_USAGE = 2


def _parser_class() -> type[argparse.ArgumentParser]:
    import argparse

    class Parser(argparse.ArgumentParser):
        """argparse with one-line errors: ``syxdbg: error: ...`` and status 2."""

        def error(self, message: str) -> NoReturn:
            sys.stderr.write(f"syxdbg: error: {message} (see '{self.prog} --help')\n")
            raise SystemExit(STATUS_USAGE)

    return Parser


#: The subcommands, in ``--help`` order; each is the module of this package of that name.
COMMANDS = ("run", "record", "replay", "demo", "plugins", "serve", "gdb", "shell", "dap",
            "timeline")


def build_parser(pm: pluggy.PluginManager | None = None, *, only: str | None = None
                 ) -> argparse.ArgumentParser:
    """The whole command line; with ``pm``, plugins add their options to every command that
    loads a program. ``only`` names the one subcommand to build (what the command line
    runs: the others' modules are not imported and their options not built)."""
    import importlib

    parser = _parser_class()(
        prog="syxdbg",
        description="Run and debug Linux programs (x86_64, aarch64, arm, riscv64; static or "
        "dynamic) and raw firmware blobs on an emulated machine.",
    )
    parser.add_argument("--version", action="version", version=f"syxdbg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS if only is None else (only,):
        importlib.import_module(f"{__package__}.{name}").register(sub)
    if pm is not None:
        for command in sub.choices.values():
            if command.get_default("_takes_program"):
                group = command.add_argument_group("plugin options")
                pm.hook.syxdbg_addoption(parser=group)
    return parser


def _prescan_disabled(argv: Sequence[str]) -> list[str]:
    """The ``-p no:NAME`` options before the program, needed before parsing (plugins add
    options of their own)."""
    import os

    out = []
    for i, tok in enumerate(argv):
        if os.path.isfile(tok):
            break  # the program: what follows is its own
        if tok == "-p" and i + 1 < len(argv) and argv[i + 1].startswith("no:"):
            out.append(argv[i + 1][3:])
        elif tok.startswith("-pno:"):
            out.append(tok[5:])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    With ``argv`` None (the real command line), a Ctrl-C after the command ended (while the
    interpreter shuts down) still exits 130 with one line; called with an ``argv`` (from
    code), the caller's SIGINT handler is restored.
    """
    previous = sigint.install_startup_handler()
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        sigint.report_interrupted()
        return sigint.STATUS_INTERRUPTED
    finally:
        sigint.finish_startup_handler(None if argv is None else previous)


def _main(args: list[str]) -> int:
    from ..errors import SyxdbgError
    from ..plugins import make_plugin_manager

    try:
        pm = make_plugin_manager(_prescan_disabled(args))
    except SyxdbgError as exc:
        print(f"syxdbg: error: {exc}", file=sys.stderr)
        return STATUS_USAGE
    # The subcommand named first is the only one built (``syxdbg --help``, a misspelt or
    # missing command: all of them).
    parser = build_parser(pm, only=args[0] if args and args[0] in COMMANDS else None)
    ns = parser.parse_args(args)
    if ns.command is None:
        parser.print_help(sys.stderr)
        return STATUS_USAGE
    try:
        status: int = ns.handler(ns, pm)
        return status
    except SyxdbgError as exc:
        print(f"syxdbg: error: {exc}", file=sys.stderr)
        return STATUS_USAGE


if __name__ == "__main__":
    sys.exit(main())
