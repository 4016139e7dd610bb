"""The firmware kernel's snapshottable state (a light module: the recording decoder
imports the plugin package, and this class must be known then)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FirmwareState:
    """The snapshottable part of :class:`FirmwareKernel` (plain data)."""

    board_text: str
    idle: int
    vtor: int
    enabled: tuple[int, ...]
    pending: tuple[int, ...]
    active: tuple[int, ...]
    priority: tuple[tuple[int, int], ...]
    systick: tuple[int, int, int, int, int]  # csr, rvr, next (time), cur (stopped), flag
    regs: tuple[tuple[int, int], ...]  # other SCS registers by offset
    check_at: int
