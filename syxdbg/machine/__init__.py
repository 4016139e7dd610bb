"""The emulated machine: the only pure-Python package that touches Unicorn."""

from .arch import ARCHES, ArchSpec, RegisterInfo, get_arch
from .core import Machine
from .events import Exited, Fault, Killed, StopEvent, Stopped, WatchHit
from .memory import PAGE, AddressRangeError, Memory, Perm, Region
from .probes import BlockRecorder, InsnTracer, TraceError
from .registers import Registers

__all__ = [
    "AddressRangeError",
    "ARCHES", "PAGE", "ArchSpec", "BlockRecorder", "Exited", "Fault", "InsnTracer", "Killed",
    "Machine", "Memory", "Perm", "Region", "RegisterInfo", "Registers", "StopEvent", "Stopped",
    "TraceError", "WatchHit", "get_arch",
]
