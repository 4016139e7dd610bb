"""The emulated machine: the only pure-Python package that touches Unicorn.

The public names are imported when first used (PEP 562): ``syxdbg.machine.events`` or
``syxdbg.machine.memory`` load neither Unicorn nor Capstone, so the command line can build
its parser and report how a run ended without paying for the emulator.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .arch import ARCHES, ArchSpec, RegisterInfo, get_arch
    from .core import Machine
    from .events import Exited, Fault, Killed, StopEvent, Stopped, WatchHit
    from .memory import PAGE, AddressRangeError, Memory, Perm, Region
    from .probes import BlockRecorder, InsnTracer, TraceError
    from .registers import Registers

#: Public name -> the submodule that defines it.
_LAZY = {
    **dict.fromkeys(("ARCHES", "ArchSpec", "RegisterInfo", "get_arch"), "arch"),
    "Machine": "core",
    **dict.fromkeys(("Exited", "Fault", "Killed", "StopEvent", "Stopped", "WatchHit"), "events"),
    **dict.fromkeys(("PAGE", "AddressRangeError", "Memory", "Perm", "Region"), "memory"),
    **dict.fromkeys(("BlockRecorder", "InsnTracer", "TraceError"), "probes"),
    "Registers": "registers",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "AddressRangeError",
    "ARCHES", "PAGE", "ArchSpec", "BlockRecorder", "Exited", "Fault", "InsnTracer", "Killed",
    "Machine", "Memory", "Perm", "Region", "RegisterInfo", "Registers", "StopEvent", "Stopped",
    "TraceError", "WatchHit", "get_arch",
]
