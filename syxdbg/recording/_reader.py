"""Reading a recording: check the framing, the checksums and (format 2) the whole-file
digest before decoding anything, then index the chunks (:class:`Recording`)."""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from ..eventlog import Event
from ..machine.events import StopEvent
from ..version import __version__
from ._codec import FIRST_PARTY, check_depth, import_first_party, loads_sized
from ._format import (
    _CHUNK,
    _HEADER,
    MAGIC,
    MAX_CHUNK,
    MAX_DECODED,
    MAX_PROGRAM,
    READABLE_VERSIONS,
    VERSION,
    RecordingError,
    require,
)
from ._program import StoredProgram
from ._text import describe_end_event

_DIGEST_SIZE = 32
_CHECKPOINT_KEYS = {"position": int, "cpu": dict, "registers": tuple, "layout": list,
                    "changed": list, "zero": list, "states": dict,
                    "memory_digest": (str, type(None))}
_END_KEYS = {"position": int, "pc": int, "event": StopEvent, "events": int,
             "checkpoints": int, "chunks": int, "syscalls": int, "memory_digest": str}
_META_KEYS = {"arch": str, "kind": str, "path": str, "program_size": int, "argv": list,
              "envp": list, "registers": list, "unicorn": str, "version": int,
              "syxdbg": str, "created": str, "host": str}
#: Where each format version keeps the program's digest in META.
_PROGRAM_DIGEST = {1: "program_sha256", 2: "program_digest", 3: "program_digest"}


_INTERP_KEYS = {"name": str, "path": str, "sysroot": str, "size": int, "digest": str}


def _check_interp(info: Any) -> None:
    """META's ``interp``: an absolute guest path without ``..`` or NULs (a replay extracts
    the interpreter under that name), a size within bounds."""
    require("description (META 'interp')", info, _INTERP_KEYS)
    name = info["name"]
    parts = name.split("/")
    if not name.startswith("/") or "\0" in name or ".." in parts or len(name) > 4096 or \
            not 0 <= info["size"] <= MAX_PROGRAM or "\0" in info["path"] or \
            "\0" in info["sysroot"]:
        raise RecordingError("corrupted recording: malformed description (META 'interp')")


def _check_summary(header: dict[str, Any]) -> None:
    """Format 3: a checkpoint's ``summary`` of the interval that ends there is None or
    (code, writes), each range-set bytes (little-endian uint64 pairs)."""
    if "summary" not in header:
        raise RecordingError("corrupted recording: malformed checkpoint ('summary')")
    summary = header["summary"]
    if summary is None:
        return
    if not (isinstance(summary, tuple) and len(summary) == 2 and all(
            isinstance(part, bytes) and len(part) % 16 == 0 for part in summary)):
        raise RecordingError("corrupted recording: malformed checkpoint ('summary')")


@dataclass
class _Checkpoint:
    position: int
    stat: tuple[int, int]  # (offset, length) of the STAT payload
    page: tuple[int, int]
    header: dict[str, Any] | None = None


class _Budget:
    """How much may still be inflated from this file's pickled chunks (bounded before each
    decompression, so a small forged file cannot expand without limit)."""

    def __init__(self) -> None:
        self.left = MAX_DECODED

    def loads(self, payload: bytes | memoryview, trust: frozenset[str]) -> Any:
        if self.left <= 0:
            raise RecordingError(f"corrupted recording: its chunks decode to more than "
                                 f"{MAX_DECODED} bytes")
        obj, size = loads_sized(payload, trust, min(MAX_CHUNK, self.left))
        self.left -= size
        return obj


def _library_entries(raw: memoryview) -> list[dict[str, Any]]:
    """The ``LIBS`` chunk: guest paths (absolute, no ``..``, no NUL, each once; a replay
    extracts the files under them), sizes within bounds, digests."""
    try:
        entries = json.loads(bytes(raw))
    except (ValueError, RecursionError):
        entries = None
    if not isinstance(entries, list):
        raise RecordingError("corrupted recording: malformed library list (LIBS)")
    seen: set[str] = set()
    for e in entries:
        require("library list (LIBS)", e, {"path": str, "size": int, "digest": str})
        path = e["path"]
        if not path.startswith("/") or "\0" in path or ".." in path.split("/") or \
                path in seen or not 0 <= e["size"] <= MAX_PROGRAM:
            raise RecordingError("corrupted recording: malformed library list (LIBS)")
        seen.add(path)
    return entries


@dataclass
class Recording:
    """A recording file, checked and indexed (pages are decoded on demand)."""

    path: str
    meta: dict[str, Any]
    stored_program: StoredProgram
    events: list[Event]
    checks: dict[int, tuple[int, ...]]
    end: dict[str, Any]
    _data: bytes = field(repr=False)
    _checkpoints: list[_Checkpoint] = field(default_factory=list, repr=False)
    _trusted: frozenset[str] = field(default=FIRST_PARTY, repr=False)
    #: The file's format version.
    version: int = VERSION
    #: A dynamic program's interpreter (``INTP`` chunk, or the program itself when they
    #: are the same file); None for static programs and recordings made before them.
    stored_interp: StoredProgram | None = None
    #: The files the program had mapped executable (``LIBS`` and ``LIBF`` chunks): guest
    #: path and stored content; empty for recordings made before them.
    libraries: list[tuple[str, StoredProgram]] = field(default_factory=list)

    # -- opening ------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str, *, trusted: frozenset[str] | None = None) -> Recording:
        import os
        import stat

        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, ValueError) as exc:
            raise RecordingError(f"{path}: cannot read "
                                 f"({getattr(exc, 'strerror', None) or exc})") from None
        try:
            with os.fdopen(fd, "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    raise RecordingError(f"{path}: not a syxdbg recording (not a file)")
                data = f.read()
        except OSError as exc:
            raise RecordingError(f"{path}: cannot read ({exc.strerror})") from None
        return cls.parse(data, path, trusted=trusted)

    @classmethod
    def parse(cls, data: bytes, path: str = "<recording>", *,
              trusted: frozenset[str] | None = None) -> Recording:
        """Check and index a whole recording; any problem is one :class:`RecordingError`
        whose message starts with ``path``."""
        try:
            try:
                return cls._parse(data, path, trusted)
            except RecursionError:
                raise RecordingError("corrupted recording: data nested too deeply") from None
        except RecordingError as exc:
            if str(exc).startswith(f"{path}: "):
                raise
            raise RecordingError(f"{path}: {exc}") from None

    @staticmethod
    def _frames(data: bytes) -> tuple[int, list[tuple[bytes, int, int]]]:
        """(format version, [(tag, payload offset, length)]) after checking the header, the
        framing and every CRC; nothing is decoded."""
        if len(data) < _HEADER.size or not data.startswith(MAGIC[:4]):
            raise RecordingError("not a syxdbg recording (no recording header)")
        magic, version = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise RecordingError("not a syxdbg recording (bad magic; damaged by a text-mode "
                                 "transfer?)")
        if version not in READABLE_VERSIONS:
            raise RecordingError(f"recording format version {version} is not supported (this "
                                 f"syxdbg {__version__} reads versions "
                                 f"{', '.join(map(str, READABLE_VERSIONS))})")
        off = _HEADER.size
        chunks: list[tuple[bytes, int, int]] = []
        view = memoryview(data)
        while off < len(data):
            if off + _CHUNK.size > len(data):
                raise RecordingError(f"truncated recording: it ends inside a chunk header at "
                                     f"byte {off}")
            tag, crc, length = _CHUNK.unpack_from(data, off)
            body = off + _CHUNK.size
            if body + length > len(data):
                raise RecordingError(f"truncated recording: chunk #{len(chunks)} "
                                     f"({tag.decode('latin-1')!r}) needs {length} bytes at "
                                     f"byte {body}, the file has {len(data) - body}")
            if zlib.crc32(view[body:body + length]) != crc:
                raise RecordingError(f"corrupted recording: chunk #{len(chunks)} "
                                     f"({tag.decode('latin-1')!r} at byte {off}) fails its "
                                     "checksum")
            chunks.append((tag, body, length))
            off = body + length
            if tag == b"END!":
                break
        if not chunks or chunks[-1][0] != b"END!":
            raise RecordingError("truncated recording: no end marker (the recording did not "
                                 "finish)")
        if off != len(data):
            raise RecordingError(f"corrupted recording: {len(data) - off} stray bytes after "
                                 "the end marker")
        return version, chunks

    @staticmethod
    def _check_digest(data: bytes, chunks: list[tuple[bytes, int, int]]) -> memoryview:
        """Format 2: the whole-file digest in ``END!`` must match (checked before anything
        is decompressed). Returns the rest of the ``END!`` payload."""
        view = memoryview(data)
        h = hashlib.sha256(view[:_HEADER.size])
        for _tag, body, length in chunks[:-1]:
            h.update(view[body - _CHUNK.size:body])
            h.update(hashlib.sha256(view[body:body + length]).digest())
        _, body, length = chunks[-1]
        if length < _DIGEST_SIZE:
            raise RecordingError("corrupted recording: the end marker has no digest")
        rest = view[body + _DIGEST_SIZE:body + length]
        h.update(b"END!")
        h.update(hashlib.sha256(rest).digest())
        if h.digest() != view[body:body + _DIGEST_SIZE]:
            raise RecordingError("corrupted recording: the file does not match its digest "
                                 "(edited or damaged)")
        return rest

    @classmethod
    def _parse(cls, data: bytes, path: str, trusted: frozenset[str] | None) -> Recording:
        if trusted is None:
            import_first_party()  # their state classes may appear in the file
        trust = trusted or FIRST_PARTY
        version, chunks = cls._frames(data)
        view = memoryview(data)
        end_payload = view[chunks[-1][1]:chunks[-1][1] + chunks[-1][2]]
        if version >= 2:
            end_payload = cls._check_digest(data, chunks)
        tags = [t for t, _, _ in chunks]
        if tags[:2] != [b"META", b"PROG"]:
            raise RecordingError("corrupted recording: it does not start with META and PROG "
                                 "chunks")
        meta = cls._meta(view[chunks[0][1]:chunks[0][1] + chunks[0][2]], version)
        program = StoredProgram(view[chunks[1][1]:chunks[1][1] + chunks[1][2]], version,
                                meta["program_size"], meta[_PROGRAM_DIGEST[version]])
        i = 2
        interp = None
        if "interp" in meta:
            info = meta["interp"]
            if len(chunks) > 2 and chunks[2][0] == b"INTP":
                interp = StoredProgram(view[chunks[2][1]:chunks[2][1] + chunks[2][2]],
                                       version, info["size"], info["digest"])
                i = 3
            elif (info["digest"], info["size"]) == (program.digest, program.size):
                interp = program
            else:
                raise RecordingError("corrupted recording: the interpreter's chunk (INTP) "
                                     "is missing")
        budget = _Budget()
        events: list[Event] = []
        checks: dict[int, tuple[int, ...]] = {}
        checkpoints: list[_Checkpoint] = []
        end: dict[str, Any] | None = None
        libraries: list[tuple[str, StoredProgram]] = []
        while i < len(chunks):
            tag, body, length = chunks[i]
            payload = view[body:body + length]
            if tag == b"STAT":
                if i + 1 >= len(chunks) or chunks[i + 1][0] != b"PAGE":
                    raise RecordingError("corrupted recording: a checkpoint without its pages")
                header = require("checkpoint", budget.loads(payload, trust), _CHECKPOINT_KEYS)
                if version >= 3:
                    _check_summary(header)
                ck = _Checkpoint(int(header["position"]), (body, length),
                                 (chunks[i + 1][1], chunks[i + 1][2]), header)
                if checkpoints and ck.position <= checkpoints[-1].position:
                    raise RecordingError("corrupted recording: checkpoints out of order")
                checkpoints.append(ck)
                i += 2
                continue
            if tag == b"EVNT":
                batch = budget.loads(payload, trust)
                if not isinstance(batch, list):
                    raise RecordingError("corrupted recording: malformed event batch")
                for t in batch:
                    try:
                        ev = Event(*t)
                    except TypeError:
                        raise RecordingError("corrupted recording: malformed event") from None
                    if ev.seq != len(events):
                        raise RecordingError(f"corrupted recording: event #{len(events)} is "
                                             "missing")
                    events.append(ev)
            elif tag == b"MILE":
                try:
                    for pos, values in budget.loads(payload, trust):
                        checks[int(pos)] = tuple(int(v) for v in values)
                except (TypeError, ValueError):
                    raise RecordingError("corrupted recording: malformed register digests"
                                         ) from None
            elif tag == b"LIBS" and not libraries:
                by_digest = {program.digest: program}
                if interp is not None:
                    by_digest[interp.digest] = interp
                for entry in _library_entries(payload):
                    if entry["digest"] not in by_digest:
                        i += 1
                        if i >= len(chunks) or chunks[i][0] != b"LIBF":
                            raise RecordingError("corrupted recording: a library's chunk "
                                                 "(LIBF) is missing")
                        by_digest[entry["digest"]] = StoredProgram(
                            view[chunks[i][1]:chunks[i][1] + chunks[i][2]], version,
                            entry["size"], entry["digest"])
                    stored = by_digest[entry["digest"]]
                    if stored.size != entry["size"]:
                        raise RecordingError("corrupted recording: malformed library list "
                                             "(LIBS)")
                    libraries.append((entry["path"], stored))
            elif tag == b"END!":
                end = require("end marker", budget.loads(end_payload, trust), _END_KEYS)
            else:
                raise RecordingError(f"corrupted recording: unknown chunk "
                                     f"{tag.decode('latin-1')!r}")
            i += 1
        assert end is not None
        if not checkpoints or checkpoints[0].position != 0:
            raise RecordingError("corrupted recording: no initial checkpoint")
        if end.get("events") != len(events) or end.get("checkpoints") != len(checkpoints) \
                or end.get("chunks") != len(chunks):
            raise RecordingError("corrupted recording: the end marker's totals do not match "
                                 "the chunks")
        return cls(path, meta, program, events, checks, end, data, checkpoints, trust,
                   version, interp, libraries)

    @staticmethod
    def _meta(raw: memoryview, version: int) -> dict[str, Any]:
        """The JSON description, checked field by field."""
        try:
            meta = json.loads(bytes(raw))
        except (ValueError, RecursionError) as exc:
            raise RecordingError(f"corrupted recording: unreadable description "
                                 f"({type(exc).__name__})") from None
        if not isinstance(meta, dict) or meta.get("format") != "syxdbg recording":
            raise RecordingError("corrupted recording: META is not a syxdbg recording "
                                 "description")
        check_depth(meta)
        require("description (META)", meta, {**_META_KEYS, _PROGRAM_DIGEST[version]: str})
        if meta["version"] != version:
            raise RecordingError("corrupted recording: the description's format version is "
                                 "not the file's")
        for key in ("argv", "envp", "registers"):
            if not all(isinstance(x, str) and "\0" not in x for x in meta[key]):
                raise RecordingError(f"corrupted recording: malformed description (META "
                                     f"{key!r})")
        if meta["kind"] not in ("elf", "raw", "firmware") or "\0" in meta["path"] or (
                meta["kind"] == "raw" and not (isinstance(meta.get("base"), int)
                                               and isinstance(meta.get("entry"), int))):
            raise RecordingError("corrupted recording: malformed description (META "
                                 "kind/path)")
        if not 0 <= meta["program_size"] <= MAX_PROGRAM:
            raise RecordingError("corrupted recording: malformed description (META "
                                 "'program_size')")
        if "interp" in meta:
            _check_interp(meta["interp"])
        return meta

    # -- queries ------------------------------------------------------------------------------
    @property
    def program(self) -> bytes:
        """The recorded program file, whole (in memory: prefer :attr:`stored_program`'s
        ``write_to`` for files of unknown size)."""
        return self.stored_program.read()

    @property
    def interp_name(self) -> str | None:
        """The recorded program's interpreter (its PT_INTERP name), None if static."""
        return str(self.meta["interp"]["name"]) if self.stored_interp is not None else None

    @property
    def program_digest(self) -> str:
        """The program's digest, labelled (``sha256 ...`` of the file in version 1,
        ``content-sha256 ...`` of its non-zero blocks in version 2)."""
        label = "sha256" if self.version < 2 else "content-sha256"
        return f"{label} {self.stored_program.digest}"

    @property
    def end_position(self) -> int:
        return int(self.end["position"])

    @property
    def end_event(self) -> StopEvent:
        ev = self.end["event"]
        assert isinstance(ev, StopEvent)
        return ev

    @property
    def checkpoint_positions(self) -> list[int]:
        return [c.position for c in self._checkpoints]

    def checkpoint(self, index: int) -> dict[str, Any]:
        ck = self._checkpoints[index]
        assert ck.header is not None  # decoded at open
        return ck.header

    def summary(self, index: int) -> tuple[bytes, bytes] | None:
        """The summaries (code executed, memory written: range-set bytes, little-endian
        uint64 pairs) of the interval that ends at persisted checkpoint ``index`` and
        starts at the one before; None when the file has none (format 1 and 2, or the
        recorder could not tell)."""
        summary = self.checkpoint(index).get("summary") if index > 0 else None
        return summary if isinstance(summary, tuple) else None

    def page_payload(self, index: int) -> memoryview:
        """The compressed page bytes of persisted checkpoint ``index``."""
        off, n = self._checkpoints[index].page
        return memoryview(self._data)[off:off + n]

    def describe_end(self) -> str:
        return describe_end_event(self.end_event)
