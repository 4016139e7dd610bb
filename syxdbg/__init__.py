"""syxdbg: a time-travel debugger for static Linux programs and firmware, on Unicorn."""

from __future__ import annotations

from .errors import LoadError, MemoryAccessError, SyxdbgError
from .hookspecs import hookimpl
from .session import Session
from .session import open as open  # noqa: PLC0414 (re-export)
from .session import replay as replay  # noqa: PLC0414 (re-export)

__version__ = "0.1.0"

__all__ = ["LoadError", "MemoryAccessError", "Session", "SyxdbgError", "__version__", "hookimpl",
           "open", "replay"]
