"""syxdbg: a time-travel debugger for Linux programs (static or dynamic) and firmware, on Unicorn.

The public names are imported when first used (PEP 562), so ``import syxdbg`` is cheap: the
command line installs its Ctrl-C handling before the emulator and the plugins are imported,
and ``syxdbg --version`` loads nothing else.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from .api import open as open  # noqa: PLC0414 (re-export)
    from .api import replay as replay  # noqa: PLC0414 (re-export)
    from .errors import LoadError, MemoryAccessError, SyxdbgError
    from .hookspecs import hookimpl
    from .session import Session

#: Public name -> the module that defines it.
_LAZY = {"LoadError": "errors", "MemoryAccessError": "errors", "SyxdbgError": "errors",
         "hookimpl": "hookspecs", "Session": "session", "open": "api", "replay": "api"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    if not name.startswith("_"):  # a submodule not imported yet: syxdbg.machine, ...
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["LoadError", "MemoryAccessError", "Session", "SyxdbgError", "__version__", "hookimpl",
           "open", "replay"]
