"""SYX-style snapshots of a machine: a root plus increments, restored in O(dirty pages).

``SyxSnapshot`` uses the compiled core (``_core``: C dirty tracking registered with
libunicorn, pre-images in a pooled undo log) when it is built, else the pure-Python
reference (``reference``), which is slow but keeps full RAM images. ``SYXDBG_PURE_PYTHON=1``
forces the reference. See docs/snapshots.md.
"""

from __future__ import annotations

import os

from ._api import (
    CPU,
    DeviceSnapshotKind,
    JournalFull,
    PageDiff,
    SnapshotError,
    SyxSnapshotTracker,
)
from .reference import SyxSnapshot as ReferenceSyxSnapshot

try:
    if os.environ.get("SYXDBG_PURE_PYTHON", "") not in ("", "0"):
        raise ImportError("SYXDBG_PURE_PYTHON is set")
    from .core import CoreSyxSnapshot as SyxSnapshot

    BACKEND = "core"
except ImportError:
    SyxSnapshot = ReferenceSyxSnapshot  # type: ignore[misc,assignment]
    BACKEND = "reference"

__all__ = [
    "BACKEND", "CPU", "DeviceSnapshotKind", "JournalFull", "PageDiff", "ReferenceSyxSnapshot",
    "SnapshotError", "SyxSnapshot", "SyxSnapshotTracker",
]
