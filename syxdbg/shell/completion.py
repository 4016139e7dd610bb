"""Completion, litecli style: pure functions first, a thin prompt_toolkit adapter last.

:func:`suggest` reads the text before the cursor and the registry's command specs and says
*what kind* of word is expected there (a command, a subcommand, a register, a symbol...).
:func:`candidates` turns a suggestion into words from plain data (:class:`Sources`). Neither
touches the terminal or the session, so both are tested with plain strings and
``Document`` objects. :class:`ShellCompleter` glues them to prompt_toolkit.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from ..commands.registry import Command, CommandRegistry


@dataclass(frozen=True)
class Suggestion:
    """``kind``: "command", "subcommand", "setting-value" or an argument kind (``address``,
    ``register``, ``symbol``, ``snapshot``...); ``word`` is the partial word to replace;
    ``choices`` fixed words (subcommands, choice arguments, setting values)."""

    kind: str
    word: str
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Sources:
    """The words completion can offer, as plain data."""

    commands: tuple[str, ...] = ()
    symbols: tuple[str, ...] = ()
    registers: tuple[str, ...] = ()
    snapshots: tuple[str, ...] = ()
    settings: tuple[str, ...] = ()
    panes: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    setting_values: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _words(text: str) -> tuple[list[str], str]:
    """Completed words and the partial word at the end."""
    parts = text.split()
    if not text or text[-1].isspace():
        return parts, ""
    return parts[:-1], parts[-1]


def _arg_suggestions(cmd: Command, done: list[str], word: str) -> list[Suggestion]:
    # ``break LOCATION if CONDITION``: after 'if' comes an expression.
    if "if" in done and cmd.name in ("break", "tbreak"):
        return [Suggestion("address", word)]
    index = len(done)
    args = cmd.args
    if not args:
        return []
    if index >= len(args):
        if not args[-1].many:
            return []
        index = len(args) - 1
    arg = args[index]
    if arg.kind == "int":
        return []
    return [Suggestion(arg.kind, word, arg.choices)]


def suggest(text: str, registry: CommandRegistry) -> list[Suggestion]:
    """What may come at the end of ``text`` (see the module docstring)."""
    done, word = _words(text)
    if not done:
        return [Suggestion("command", word)]
    name = done[0].split("/", 1)[0]
    if name not in registry:
        return []
    cmd = registry.get(name)
    if not registry.visible(cmd):
        return []
    rest = done[1:]
    if cmd.subcommands:
        if not rest:
            subs = tuple(sorted({s.name for s in cmd.subcommands.values()}))
            return [Suggestion("subcommand", word, subs)]
        sub = cmd.subcommands.get(rest[0])
        if sub is None:
            return []
        return _arg_suggestions(sub, rest[1:], word)
    if cmd.name == "set":
        if not rest:
            return [Suggestion("setting", word, ("reg",))]
        if rest[0] in ("reg", "register", "var"):
            return [Suggestion("register", word)] if len(rest) == 1 else \
                [Suggestion("address", word)]
        return [Suggestion("setting-value", word, (rest[0],))]
    return _arg_suggestions(cmd, rest, word)


def candidates(s: Suggestion, src: Sources) -> list[str]:
    """The words for one suggestion that start with its partial word."""
    word = s.word
    pool: Iterable[str]
    prefix = ""
    if s.kind == "command":
        pool = src.commands
    elif s.kind in ("subcommand", "choice"):
        pool = s.choices
    elif s.kind == "register":
        pool = src.registers
        if word.startswith("$"):
            prefix, word = "$", word[1:]
    elif s.kind in ("address", "location"):
        if word.startswith("$"):
            prefix, word = "$", word[1:]
            pool = src.registers
        elif s.kind == "location" and ":" in word:
            pool = ()
        else:
            pool = list(src.symbols) + ([f"{f}:" for f in src.files]
                                        if s.kind == "location" else [])
    elif s.kind == "symbol":
        pool = src.symbols
    elif s.kind in ("snapshot", "position"):
        pool = src.snapshots
    elif s.kind == "setting":
        pool = list(s.choices) + list(src.settings)
    elif s.kind == "setting-value":
        pool = src.setting_values.get(s.choices[0], ()) if s.choices else ()
    elif s.kind == "pane":
        pool = src.panes
    elif s.kind == "command":
        pool = src.commands
    else:
        pool = ()
    return sorted({prefix + p for p in pool if p.startswith(word)})


def complete(text: str, registry: CommandRegistry, src: Sources) -> list[tuple[str, int]]:
    """``(completion, start offset)`` pairs for ``text`` (the offset is negative: how many
    characters before the cursor the completion replaces)."""
    out = []
    for s in suggest(text, registry):
        for c in candidates(s, src):
            out.append((c, -len(s.word)))
    return out


def sources_for(registry: CommandRegistry) -> Sources:
    """Collect :class:`Sources` from a live session (the only impure step)."""
    session = registry.session
    ctx = registry.ctx
    try:
        symbols = tuple(n for _, _, n in ctx.debuginfo.symbols())
    except Exception:
        symbols = ()
    registers = tuple(r.name for r in session.machine.arch.registers)
    snapshots = tuple(p.name for p in session.snapshots()) if session.has_timeline else ()
    try:
        files = tuple(sorted({f.rsplit("/", 1)[-1] for f in ctx.debuginfo.source_files()}))
    except Exception:
        files = ()
    st = registry.settings
    values: dict[str, tuple[str, ...]] = {}
    for name in st.names():
        decl = st.declaration(name)
        if decl.type is bool:
            values[name] = ("on", "off")
        elif name == "context.panes":
            values[name] = tuple(registry.panes.names())
        elif decl.choices:
            values[name] = decl.choices
    return Sources(tuple(registry.names()), symbols, registers, snapshots, tuple(st.names()),
                   tuple(registry.panes.names()), files, values)


class ShellCompleter(Completer):
    """prompt_toolkit's view of :func:`complete`."""

    def __init__(self, registry: CommandRegistry) -> None:
        self.registry = registry

    def get_completions(self, document: Document, complete_event: CompleteEvent
                        ) -> Iterator[Completion]:
        text = document.text_before_cursor
        src = sources_for(self.registry)
        for word, start in complete(text, self.registry, src):
            yield Completion(word, start_position=start)
