"""The command registry: one instance per session, shared by the shell and gdb's ``monitor``.

A :class:`Command` is data (name, aliases, category, argument spec, help) plus a function
``fn(ctx, args) -> Output`` that returns text and never prints. The argument spec drives
parsing, ``help``, completion (each :class:`Arg` has a *kind*: address, register, snapshot...)
and docs/shell.md. Settings (``set``/``show``) are declared in the same registry.
"""

from __future__ import annotations

import shlex
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, Union

from .base import CommandError, Setting, Settings

if TYPE_CHECKING:
    from prompt_toolkit.formatted_text import StyleAndTextTuples

    from ..session import Session
    from .context import Context

__all__ = ["ARG_KINDS", "CATEGORIES", "Arg", "Args", "Command", "CommandError", "CommandFn",
           "CommandRegistry", "Output", "Result", "Setting", "Settings", "to_text"]

#: What a command returns: plain text, or prompt_toolkit style-and-text fragments.
#: (A string forward reference: plugins import this module without loading prompt_toolkit.)
Output = Union[str, "StyleAndTextTuples"]  # noqa: UP007 - a runtime alias (py3.10 target)
CommandFn = Callable[["Context", "Args"], Output]
F = TypeVar("F", bound=Callable[..., Any])

#: Argument kinds; completion and parsing follow them.
ARG_KINDS = frozenset({
    "text",       # any word
    "int",        # a number (0x.. or decimal)
    "address",    # an expression: number, symbol[+off], $reg, arithmetic, u64(...)
    "location",   # ADDRESS, SYMBOL or FILE:LINE
    "register",   # a register name
    "symbol",     # a symbol name (or a regex over symbol names)
    "snapshot",   # a named point in time
    "setting",    # a setting name
    "command",    # a command name
    "position",   # an instruction count, +N / -N, or a snapshot name
    "choice",     # one of Arg.choices
    "pane",       # a context pane name
})

#: Command categories, in the order ``help`` lists them.
CATEGORIES = ("running", "reverse", "breakpoints", "data", "stack", "history", "info",
              "settings", "support")


@dataclass(frozen=True)
class Arg:
    """One positional argument of a command.

    ``many``: takes all remaining words (joined with spaces for kind ``text``).
    """

    name: str
    kind: str = "text"
    optional: bool = False
    many: bool = False
    help: str = ""
    choices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ARG_KINDS:
            raise ValueError(f"unknown argument kind {self.kind!r}")

    def usage(self) -> str:
        word = self.name.upper() + (" ..." if self.many else "")
        if self.kind == "choice" and self.choices:
            word = "|".join(self.choices)
        return f"[{word}]" if self.optional else word


class Args(dict[str, Any]):
    """Parsed arguments: ``args.name`` or ``args["name"]`` (None when omitted)."""

    def __getattr__(self, name: str) -> Any:
        return self.get(name)


@dataclass
class Command:
    """A command. See the module docstring.

    * ``moves``: it can change the point in time (the shell shows the context after it).
    * ``shell_only``: gdb's ``monitor`` refuses it (gdb does its own run control).
    * ``repeat``: an empty line repeats it (gdb: stepping and ``x`` repeat).
    * ``slash``: accepts ``NAME/FMT`` (``x/4gx``); the format is ``args.fmt``.
    * ``subcommands``: ``info registers``, ``snapshot save``...: the first word picks one.
    """

    name: str
    fn: CommandFn | None
    help: str
    category: str = "support"
    aliases: tuple[str, ...] = ()
    args: tuple[Arg, ...] = ()
    description: str = ""
    moves: bool = False
    shell_only: bool = False
    repeat: bool = False
    slash: bool = False
    subcommands: dict[str, Command] = field(default_factory=dict)
    parent: str = ""

    @property
    def full_name(self) -> str:
        return f"{self.parent} {self.name}" if self.parent else self.name

    def usage(self) -> str:
        if self.subcommands and self.fn is None:
            return f"{self.full_name} " + "|".join(self.subcommands) + " ..."
        slash = "[/FMT]" if self.slash else ""
        parts = [self.full_name + slash] + [a.usage() for a in self.args]
        return " ".join(parts)

    def subcommand(self, name: str, help: str, *, args: tuple[Arg, ...] = (),
                   description: str = "", moves: bool = False, aliases: tuple[str, ...] = ()
                   ) -> Callable[[F], F]:
        """Decorator: add a subcommand (``info registers``)."""

        def add(fn: F) -> F:
            sub = Command(name, fn, help, self.category, aliases, args, description, moves,
                          self.shell_only, False, False, {}, self.name)
            for key in (name, *aliases):
                self.subcommands[key] = sub
            return fn

        return add

    def parse(self, words: list[str], fmt: str | None) -> Args:
        """Words (after the command name) to :class:`Args`; raises :class:`CommandError`."""
        out = Args()
        if fmt is not None and not self.slash:
            raise CommandError(f"{self.full_name} takes no /FMT")
        out["fmt"] = fmt
        i = 0
        for arg in self.args:
            if arg.many:
                rest = words[i:]
                i = len(words)
                if not rest and not arg.optional:
                    raise CommandError(f"{self.full_name}: missing {arg.name.upper()} "
                                       f"(usage: {self.usage()})")
                out[arg.name] = (" ".join(rest) if arg.kind in _JOINED else
                                 [_convert(self, arg, w) for w in rest]) if rest else None
                continue
            if i >= len(words):
                if not arg.optional:
                    raise CommandError(f"{self.full_name}: missing {arg.name.upper()} "
                                       f"(usage: {self.usage()})")
                out[arg.name] = None
                continue
            out[arg.name] = _convert(self, arg, words[i])
            i += 1
        if i < len(words):
            raise CommandError(f"{self.full_name}: unexpected {words[i]!r} "
                               f"(usage: {self.usage()})")
        return out


#: Kinds whose ``many`` arguments arrive as one string (expressions may contain spaces).
_JOINED = frozenset({"text", "location", "address"})


def _convert(cmd: Command, arg: Arg, word: str) -> Any:
    if arg.kind == "int":
        try:
            return int(word, 0)
        except ValueError:
            raise CommandError(f"{cmd.full_name}: {arg.name.upper()} must be a number, "
                               f"not {word!r}") from None
    if arg.kind == "choice" and arg.choices and word not in arg.choices:
        raise CommandError(f"{cmd.full_name}: {arg.name.upper()} is one of "
                           f"{', '.join(arg.choices)}, not {word!r}")
    return word


@dataclass(frozen=True)
class Result:
    """What :meth:`CommandRegistry.execute` returns: the output and the command that ran."""

    output: Output
    command: Command


def to_text(out: Output) -> str:
    """Plain text of an :data:`Output` (gdb's ``monitor`` cannot show styles)."""
    if isinstance(out, str):
        return out
    from prompt_toolkit.formatted_text import fragment_list_to_text

    return fragment_list_to_text(out)


class CommandRegistry:
    """Commands and settings of one session. Fill it with :meth:`command` / :meth:`add`;
    :func:`syxdbg.commands.make_registry` builds one with the built-in commands and every
    plugin's ``syxdbg_register_commands``.

    ``frontend`` is "shell" or "gdb" (gdb's ``monitor`` hides shell-only commands).
    """

    def __init__(self, session: Session, *, frontend: str = "shell") -> None:
        from .context import Context
        from .panes import PaneRegistry

        self.session = session
        self.frontend = frontend
        self.settings = Settings()
        self._commands: dict[str, Command] = {}
        self._names: dict[str, Command] = {}  # names and aliases
        self.ctx = Context(session, self.settings, frontend)
        #: The context display's panes (``syxdbg_register_panes`` adds to it).
        self.panes = PaneRegistry()
        self.lock = threading.Lock()

    # -- registration -----------------------------------------------------------------------
    def add(self, cmd: Command) -> Command:
        if cmd.category not in CATEGORIES:
            raise ValueError(f"{cmd.name}: unknown category {cmd.category!r}")
        for key in (cmd.name, *cmd.aliases):
            if key in self._names:
                raise ValueError(f"command name {key!r} is already taken by "
                                 f"{self._names[key].name!r}")
        self._commands[cmd.name] = cmd
        for key in (cmd.name, *cmd.aliases):
            self._names[key] = cmd
        return cmd

    def command(self, name: str, help: str, *, category: str = "support",
                aliases: tuple[str, ...] = (), args: tuple[Arg, ...] = (),
                description: str = "", moves: bool = False, shell_only: bool = False,
                repeat: bool = False, slash: bool = False) -> Callable[[F], F]:
        """Decorator: register ``fn(ctx, args) -> Output`` as command ``name``."""

        def add(fn: F) -> F:
            self.add(Command(name, fn, help, category, aliases, args,
                             description or (fn.__doc__ or "").strip(), moves, shell_only,
                             repeat, slash))
            return fn

        return add

    def group(self, name: str, help: str, *, category: str = "support",
              aliases: tuple[str, ...] = (), description: str = "",
              default: CommandFn | None = None, shell_only: bool = False) -> Command:
        """A command made of subcommands (``info``, ``snapshot``); ``default`` runs when no
        subcommand is given."""
        return self.add(Command(name, default, help, category, aliases, (), description,
                                shell_only=shell_only))

    # -- lookup -----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Command]:
        return iter(sorted(self._commands.values(), key=lambda c: c.name))

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def names(self, *, aliases: bool = True) -> list[str]:
        """Command names visible in this front end (with aliases unless told not to)."""
        out = []
        for key, cmd in self._names.items():
            if not self.visible(cmd) or (not aliases and key != cmd.name):
                continue
            out.append(key)
        return sorted(out)

    def visible(self, cmd: Command) -> bool:
        return not (cmd.shell_only and self.frontend == "gdb")

    def get(self, name: str) -> Command:
        cmd = self._names.get(name)
        if cmd is None:
            hint = "monitor help" if self.frontend == "gdb" else "help"
            raise CommandError(f"unknown command {name!r} (try '{hint}')")
        return cmd

    def lookup(self, words: list[str]) -> tuple[Command, list[str]]:
        """The (sub)command ``words`` name and the words left for its arguments."""
        cmd = self.get(words[0])
        rest = words[1:]
        if cmd.subcommands and rest:
            if rest[0] in cmd.subcommands:
                return cmd.subcommands[rest[0]], rest[1:]
            if not cmd.args:
                names = sorted({s.name for s in cmd.subcommands.values()})
                raise CommandError(f"{cmd.name}: no subcommand {rest[0]!r} "
                                   f"({', '.join(names)})")
        return cmd, rest

    # -- running ------------------------------------------------------------------------------
    @staticmethod
    def split(line: str) -> tuple[list[str], str | None]:
        """A command line to words, and the ``/FMT`` of ``x/4gx`` (None if absent)."""
        try:
            words = shlex.split(line, comments=False, posix=True)
        except ValueError as exc:
            raise CommandError(f"cannot parse {line!r}: {exc}") from None
        fmt = None
        if words and "/" in words[0] and not words[0].startswith("/"):
            words[0], fmt = words[0].split("/", 1)
        return words, fmt

    def execute(self, line: str) -> Result:
        """Run one command line. Raises :class:`~syxdbg.errors.SyxdbgError` (one line)."""
        words, fmt = self.split(line)
        if not words:
            words = ["help"]
        cmd, rest = self.lookup(words)
        if not self.visible(cmd):
            raise CommandError(f"{cmd.name!r} is a shell command; under gdb use gdb's own "
                               f"commands (monitor help lists syxdbg's)")
        if cmd.fn is None:
            raise CommandError(f"{cmd.name}: which one? ({', '.join(sorted(cmd.subcommands))})")
        args = cmd.parse(rest, fmt)
        with self.lock:
            self.ctx.interrupted.clear()
            before = self.ctx.register_values() if cmd.moves else None
            try:
                if cmd.moves:  # one motion: one stop checkpoint, one syxdbg_stop
                    with self.ctx.session.motion():
                        out = cmd.fn(self.ctx, args)
                else:
                    out = cmd.fn(self.ctx, args)
            finally:
                if before is not None and self.ctx.register_values() != before:
                    # Highlight what this command changed (regs, the registers pane).
                    self.ctx.prev_regs = before
        return Result(out, cmd)

    def run(self, line: str) -> Output:
        """Run one command line and return its output."""
        return self.execute(line).output

    def run_text(self, line: str) -> str:
        """Run one command line and return its output as plain text."""
        return to_text(self.run(line))
