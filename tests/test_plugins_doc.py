"""docs/plugins.md documents every hook of syxdbg/hookspecs.py, with its docstring."""

from __future__ import annotations

import inspect
from pathlib import Path

from syxdbg import hookspecs

DOC = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"


def test_every_hook_is_documented_with_its_docstring() -> None:
    text = DOC.read_text()
    hooks = [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction)
             if n.startswith("syxdbg_")]
    assert len(hooks) >= 8
    for name in hooks:
        assert f"### `{name}(" in text, f"{name} is not documented in docs/plugins.md"
        first_line = inspect.getdoc(getattr(hookspecs, name)).splitlines()[0]
        assert first_line in text, f"{name}: docs/plugins.md lacks its docstring"
