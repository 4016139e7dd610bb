"""docs/shell.md documents every registered command, subcommand and setting."""

from __future__ import annotations

import re
from pathlib import Path

from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from syxdbg.shell.app import Shell

DOC = Path(__file__).resolve().parents[2] / "docs" / "shell.md"


def test_every_command_and_setting_is_documented(session) -> None:
    text = DOC.read_text()
    headings = set(re.findall(r"^### `([^`]+)`", text, re.M))
    with create_pipe_input() as pipe:
        registry = Shell(session, input=pipe, output=DummyOutput()).registry
    missing = []
    for cmd in registry:
        names = [cmd.full_name] + [s.full_name for s in cmd.subcommands.values()]
        missing += [n for n in names if n not in headings]
        for alias in cmd.aliases:
            assert alias in text, f"alias {alias} of {cmd.name} undocumented"
    assert not missing, f"docs/shell.md lacks a '### `NAME`' section for {sorted(set(missing))}"
    for name in registry.settings.names():
        assert f"| `{name}` |" in text, f"setting {name} undocumented"


def test_every_hookspec_is_documented() -> None:
    import syxdbg.hookspecs as specs

    for name in dir(specs):
        if name.startswith("syxdbg_"):
            doc = getattr(specs, name).__doc__ or ""
            assert len(doc.strip()) > 40, name
