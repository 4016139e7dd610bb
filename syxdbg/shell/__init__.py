"""The syxdbg shell: ``Shell`` (app.py), pure completion (completion.py) and key bindings
(keys.py). The context panes and colour roles it shows live in :mod:`syxdbg.commands`
(``panes``, ``theme``): ``monitor context`` renders them too."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:  # lazy: the package loads no prompt_toolkit application
    if name == "Shell":
        from .app import Shell

        return Shell
    raise AttributeError(name)


__all__ = ["Shell"]
