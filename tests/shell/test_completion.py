"""The completion engine as pure functions (litecli style), then through ``Document``."""

from __future__ import annotations

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from syxdbg.commands import CommandRegistry
from syxdbg.shell.completion import (
    ShellCompleter,
    Sources,
    Suggestion,
    candidates,
    complete,
    suggest,
)

SRC = Sources(
    commands=("break", "bt", "continue", "c", "info", "reverse-continue", "reverse-stepi",
              "rsi", "set", "snapshot", "stepi", "x"),
    symbols=("main", "malloc", "record_history", "ledger"),
    registers=("rax", "rbx", "rip", "rsp"),
    snapshots=("before", "after-bug"),
    settings=("context.panes", "context.auto", "progress"),
    panes=("regs", "code", "stack"),
    files=("corrupt.c",),
    setting_values={"context.auto": ("on", "off"), "context.panes": ("regs", "code", "stack")},
)


@pytest.mark.parametrize("text,expected", [
    ("", [Suggestion("command", "")]),
    ("rev", [Suggestion("command", "rev")]),
    ("b ", [Suggestion("location", "")]),
    ("break ma", [Suggestion("location", "ma")]),
    ("break main if $r", [Suggestion("address", "$r")]),
    ("x/4gx $r", [Suggestion("address", "$r")]),
    ("regs r", [Suggestion("register", "r")]),
    ("regs rax r", [Suggestion("register", "r")]),
    ("goto b", [Suggestion("position", "b")]),
    ("stepi ", []),                      # a count: nothing to complete
    ("bogus ", []),
    ("set ", [Suggestion("setting", "", ("reg",))]),
    ("set reg r", [Suggestion("register", "r")]),
    ("set context.auto o", [Suggestion("setting-value", "o", ("context.auto",))]),
    ("context st", [Suggestion("pane", "st")]),
    ("help rev", [Suggestion("command", "rev")]),
    ("last-write led", [Suggestion("address", "led")]),
])
def test_suggest_says_what_kind_of_word_comes_next(registry: CommandRegistry, text: str,
                                                  expected: list[Suggestion]) -> None:
    assert suggest(text, registry) == expected


def test_suggest_offers_subcommands(registry: CommandRegistry) -> None:
    [s] = suggest("info ", registry)
    assert s.kind == "subcommand"
    assert {"breakpoints", "registers", "mappings", "checkpoints", "symbols"} <= set(s.choices)
    [s] = suggest("snapshot r", registry)
    assert s.kind == "subcommand" and s.word == "r"
    assert set(s.choices) == {"save", "restore", "list", "diff"}
    assert suggest("snapshot restore b", registry) == [Suggestion("snapshot", "b")]
    assert suggest("info symbols rec", registry) == [Suggestion("symbol", "rec")]


@pytest.mark.parametrize("suggestion,expected", [
    (Suggestion("command", "rev"), ["reverse-continue", "reverse-stepi"]),
    (Suggestion("location", "ma"), ["main", "malloc"]),
    (Suggestion("location", "cor"), ["corrupt.c:"]),
    (Suggestion("address", "$r"), ["$rax", "$rbx", "$rip", "$rsp"]),
    (Suggestion("address", "le"), ["ledger"]),
    (Suggestion("register", "rs"), ["rsp"]),
    (Suggestion("snapshot", ""), ["after-bug", "before"]),
    (Suggestion("position", "a"), ["after-bug"]),
    (Suggestion("setting", "c", ("reg",)), ["context.auto", "context.panes"]),
    (Suggestion("setting", "r", ("reg",)), ["reg"]),
    (Suggestion("setting-value", "o", ("context.auto",)), ["off", "on"]),
    (Suggestion("subcommand", "s", ("save", "restore", "list", "diff")), ["save"]),
    (Suggestion("pane", ""), ["code", "regs", "stack"]),
])
def test_candidates_come_from_plain_data(suggestion: Suggestion, expected: list[str]) -> None:
    assert candidates(suggestion, SRC) == expected


def test_complete_gives_replacement_offsets(registry: CommandRegistry) -> None:
    assert complete("x/2gx $rs", registry, SRC) == [("$rsp", -3)]
    assert ("record_history", -3) in complete("break rec", registry, SRC)


def test_completer_through_document_uses_the_live_session(registry: CommandRegistry) -> None:
    completer = ShellCompleter(registry)

    def words(text: str) -> list[str]:
        doc = Document(text, len(text))
        return [c.text for c in completer.get_completions(doc, CompleteEvent())]

    assert "reverse-stepi" in words("reverse-s")
    assert "record_history" in words("break record_h")
    assert "corrupt.c:" in words("break corrupt")
    assert words("regs ri") == ["rip"]
    assert "$rsp" in words("x/4gx $rs")
    registry.run("break main")
    registry.run("run")
    registry.run("snapshot save at-main")
    assert words("snapshot restore at") == ["at-main"]
    assert words("goto at") == ["at-main"]
    assert "timeline" in words("context ti")


def test_gdb_frontend_does_not_complete_shell_only_commands(session) -> None:
    from syxdbg.commands import make_registry

    gdb = make_registry(session, frontend="gdb")
    cmds = [c for c, _ in complete("", gdb, Sources(commands=tuple(gdb.names())))]
    assert "when" in cmds and "stepi" not in cmds
