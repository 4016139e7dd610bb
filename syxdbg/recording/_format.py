"""The recording file format: magic, versions, chunk framing, limits and the one error type.

Everything that both the writer and the reader must agree on lives here, so a format
change is made in one place (docs/recording.md describes the format for users).
"""

from __future__ import annotations

import struct
from typing import Any

from ..errors import SyxdbgError

MAGIC = b"\x89SYXREC\n"
#: The format version this syxdbg writes.
VERSION = 3
#: Every format version this syxdbg reads (version 1: before the whole-file digest and the
#: sparse program chunk; version 2: before the interval summaries in checkpoints).
READABLE_VERSIONS = (1, 2, 3)
_HEADER = struct.Struct("<8sI")
_CHUNK = struct.Struct("<4sIQ")

#: Instructions between two register digests (recorded and checked on replay).
CHECK_INTERVAL = 1_000_000
#: Default instructions between two persisted checkpoints.
DEFAULT_CHECKPOINT_INTERVAL = 20_000_000
#: Recorded events are written in batches of at most this many.
EVENT_BATCH = 4096

#: Largest decompressed size of one pickled chunk (a bound against decompression bombs).
MAX_CHUNK = 256 << 20
#: Largest decompressed size of all pickled chunks of one file together: what the reader
#: may hold in memory (events, checkpoint headers). Checked before inflating each chunk.
MAX_DECODED = 2 << 30
#: Deepest nesting of containers a decoded chunk may have (real ones have fewer than 10).
MAX_DEPTH = 64
#: Largest program a recording may hold (the logical file size; holes cost nothing).
MAX_PROGRAM = 1 << 40


class RecordingError(SyxdbgError):
    """A recording file that cannot be read (not one, corrupted, truncated, too new)."""


def require(what: str, value: Any, keys: dict[str, Any]) -> dict[str, Any]:
    """``value`` must be a dict with ``keys`` of those types (else: corrupted)."""
    if not isinstance(value, dict):
        raise RecordingError(f"corrupted recording: malformed {what}")
    for key, kind in keys.items():
        if key not in value or not isinstance(value[key], kind) or (
                kind is int and isinstance(value[key], bool)):
            raise RecordingError(f"corrupted recording: malformed {what} ({key!r})")
    return value
