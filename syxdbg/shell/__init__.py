"""The syxdbg shell: ``Shell`` (app.py), pure completion (completion.py), key bindings
(keys.py), context panes as pure functions (panes.py) and color roles (theme.py)."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:  # lazy: the command registry imports shell.panes
    if name == "Shell":
        from .app import Shell

        return Shell
    raise AttributeError(name)


__all__ = ["Shell"]
