"""syxdbg's own commands, by name: gdb's ``monitor ...`` runs them (and the shell will).

A command is a function ``(session, args) -> str`` returning the text to show. Register one
with :func:`command`; :func:`run_command` parses a line and runs it.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

from .errors import SyxdbgError
from .session import Session

CommandFn = Callable[[Session, list[str]], str]

#: name -> (one-line help, function)
COMMANDS: dict[str, tuple[str, CommandFn]] = {}


def command(*names: str, help: str) -> Callable[[CommandFn], CommandFn]:
    """Register a command under ``names`` (the first is its name, the others aliases)."""

    def register(fn: CommandFn) -> CommandFn:
        for i, name in enumerate(names):
            COMMANDS[name] = (help if i == 0 else f"alias of {names[0]}", fn)
        return fn

    return register


def run_command(session: Session, line: str) -> str:
    """Run one command line; raises :class:`SyxdbgError` for an unknown command."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise SyxdbgError(f"cannot parse {line!r}: {exc}") from None
    if not words:
        words = ["help"]
    entry = COMMANDS.get(words[0])
    if entry is None:
        raise SyxdbgError(f"unknown command {words[0]!r} (try 'monitor help')")
    return entry[1](session, words[1:])


def _where(session: Session, pc: int) -> str:
    try:
        name = session.image.symbolize(pc)
    except SyxdbgError:
        name = None
    return f"{pc:#x}" + (f" <{name}>" if name else "")


@command("help", help="list the commands, or show one command's help: help [NAME]")
def _help(session: Session, args: list[str]) -> str:
    if args:
        entry = COMMANDS.get(args[0])
        if entry is None:
            raise SyxdbgError(f"unknown command {args[0]!r}")
        return f"{args[0]} -- {entry[0]}\n"
    width = max(len(n) for n in COMMANDS)
    lines = ["syxdbg monitor commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (text, _) in sorted(COMMANDS.items())]
    return "\n".join(lines) + "\n"


@command("info", help="program, architecture, position (instructions retired), pc and state")
def _info(session: Session, args: list[str]) -> str:
    m = session.machine
    image = m.image
    regions = m.mem.regions()
    mapped = sum(r.size for r in regions)
    final = m.finished
    state = "stopped" if final is None else getattr(final, "describe", final.__repr__)()
    lines = [
        f"program:   {image.path if image else '?'} ({image.kind if image else '?'})",
        f"arch:      {m.arch.name}",
        f"position:  {m.position}",
        f"pc:        {_where(session, m.pc)}",
        f"state:     {state}",
        f"memory:    {len(regions)} regions, {mapped // 1024} KiB mapped",
        f"breakpoints: {len(m.breakpoints)}, watchpoints: {len(m.watchpoints)}",
    ]
    return "\n".join(lines) + "\n"


@command("regions", "mappings", help="the guest memory map: start-end perms name")
def _regions(session: Session, args: list[str]) -> str:
    return "".join(f"{r}\n" for r in session.machine.mem.regions())


@command("position", help="instructions retired so far")
def _position(session: Session, args: list[str]) -> str:
    return f"{session.machine.position}\n"
