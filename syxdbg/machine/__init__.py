"""The emulated machine: the only pure-Python package that touches Unicorn."""

from .arch import ARCHES, ArchSpec, RegisterInfo, get_arch
from .core import Machine
from .events import Exited, Fault, Killed, StopEvent, Stopped, WatchHit
from .memory import PAGE, Memory, Perm, Region
from .registers import Registers

__all__ = [
    "ARCHES", "PAGE", "ArchSpec", "Exited", "Fault", "Killed", "Machine", "Memory", "Perm",
    "Region", "RegisterInfo", "Registers", "StopEvent", "Stopped", "WatchHit", "get_arch",
]
