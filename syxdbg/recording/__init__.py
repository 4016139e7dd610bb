"""Recordings on disk: ``syxdbg record`` writes one, ``syxdbg replay`` debugs it.

A recording is everything needed to reproduce one run without the host: the program file,
argv and environment, every nondeterministic input the guest took (the
:class:`~syxdbg.eventlog.EventLog`), persisted checkpoints (full guest state, stored as page
deltas) so replay can jump near any position, and digests of the state along the way so a
replay that goes wrong says where. docs/recording.md describes the file format.

One module per concern:

* ``_format``: magic, versions, chunk framing, limits, :class:`RecordingError`;
* ``_codec``: the restricted, bounded unpickler for chunk payloads;
* ``_program``: the program file stored by content (sparse-aware, bounded memory);
* ``_state``: machine state as data (registers, layout, pages, CPU) and back;
* ``_writer``: the file writer and :class:`Recorder`;
* ``_reader``: :class:`Recording` (checks, then indexes a file);
* ``_replay``: :class:`ReplaySource`, :class:`RecordedHistory`, :func:`open_replay`;
* ``_text``: words for people (how a run ended, sizes, progress).

The public names are imported when first used (PEP 562), so the command line's parser
reads ``DEFAULT_CHECKPOINT_INTERVAL`` without loading the writer, the reader or the Session.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._format import (
        CHECK_INTERVAL,
        DEFAULT_CHECKPOINT_INTERVAL,
        MAGIC,
        MAX_CHUNK,
        READABLE_VERSIONS,
        VERSION,
        RecordingError,
    )
    from ._reader import Recording
    from ._replay import RecordedHistory, ReplaySource, open_replay
    from ._state import apply_layout, digest_registers, memory_digest, register_values
    from ._text import describe_end_event, format_size, progress_printer
    from ._writer import Recorder, RecordSummary

#: Public name -> the submodule that defines it.
_LAZY = {
    **dict.fromkeys(("CHECK_INTERVAL", "DEFAULT_CHECKPOINT_INTERVAL", "MAGIC", "MAX_CHUNK",
                     "READABLE_VERSIONS", "VERSION", "RecordingError"), "_format"),
    "Recording": "_reader",
    **dict.fromkeys(("RecordedHistory", "ReplaySource", "open_replay"), "_replay"),
    **dict.fromkeys(("apply_layout", "digest_registers", "memory_digest", "register_values"),
                    "_state"),
    **dict.fromkeys(("describe_end_event", "format_size", "progress_printer"), "_text"),
    **dict.fromkeys(("Recorder", "RecordSummary"), "_writer"),
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
    "CHECK_INTERVAL", "DEFAULT_CHECKPOINT_INTERVAL", "MAGIC", "MAX_CHUNK",
    "READABLE_VERSIONS", "VERSION", "RecordSummary", "RecordedHistory", "Recorder",
    "Recording", "RecordingError", "ReplaySource", "apply_layout", "describe_end_event",
    "digest_registers", "format_size", "memory_digest", "open_replay", "progress_printer",
    "register_values",
]
