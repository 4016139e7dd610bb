"""Writing a recording: the chunked file (``FILE.part``, renamed when complete) and the
:class:`Recorder` that runs a session's program to its end while persisting it."""

from __future__ import annotations

import array
import contextlib
import hashlib
import json
import os
import platform
import sys
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import IO, TYPE_CHECKING, Any

from ..errors import SyxdbgError
from ..eventlog import STATE_NAME as EVENTLOG_STATE
from ..eventlog import Event, EventLog, Recordable
from ..machine.events import Exited, Fault, Killed, StopEvent, Stopped
from ..machine.memory import PAGE
from ..machine.probes import CodeIndex, ranges_pack, ranges_union
from ..plugins import describe_plugins
from ..snapshot import SyxSnapshot, _api
from ..version import __version__
from . import _program
from ._codec import dumps
from ._format import (
    _CHUNK,
    _HEADER,
    CHECK_INTERVAL,
    DEFAULT_CHECKPOINT_INTERVAL,
    EVENT_BATCH,
    MAGIC,
    VERSION,
    RecordingError,
)
from ._state import cpu_state, digest_registers, layout, memory_digest, page_bytes, register_values

if TYPE_CHECKING:
    from ..machine import Machine
    from ..session import Session


class FileDigest:
    """The whole-file digest of format version 2: every chunk header and the sha256 of every
    payload, in file order, so the description (program path, argv, environment, versions)
    is covered as much as the pages and events. Checked before anything is decoded."""

    def __init__(self, header: bytes) -> None:
        self._h = hashlib.sha256(header)

    def chunk(self, head: bytes, payload_sha256: bytes) -> None:
        self._h.update(head)
        self._h.update(payload_sha256)

    def final(self, end_payload: bytes) -> bytes:
        """The digest stored in the ``END!`` chunk, which also covers the rest of it."""
        h = self._h.copy()
        h.update(b"END!")
        h.update(hashlib.sha256(end_payload).digest())
        return h.digest()


class _Writer:
    """Writes ``PATH.part`` and renames it to ``PATH`` once complete: a recording that
    fails half-way never replaces a good file, and a finished one appears whole."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.part = path + ".part"
        try:
            self.f: IO[bytes] = open(self.part, "wb")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise RecordingError(f"{path}: cannot write ({exc.strerror})") from None
        self.chunks = 0
        header = _HEADER.pack(MAGIC, VERSION)
        self.digest = FileDigest(header)
        self._write(header)

    def _write(self, data: bytes | memoryview) -> None:
        try:
            self.f.write(data)
        except OSError as exc:
            raise RecordingError(f"{self.path}: cannot write ({exc.strerror})") from None

    def chunk(self, tag: bytes, payload: bytes) -> None:
        head = _CHUNK.pack(tag, zlib.crc32(payload), len(payload))
        self._write(head)
        self._write(payload)
        self.digest.chunk(head, hashlib.sha256(payload).digest())
        self.chunks += 1

    def program_chunk(self, path: str, digest: str, tag: bytes = b"PROG") -> None:
        """The ``PROG`` chunk (or ``INTP``: a dynamic program's interpreter, same format),
        streamed from the file (bounded memory): a header placeholder, the payload, then the
        real header written in place."""
        try:
            at = self.f.tell()
            self._write(bytes(_CHUNK.size))
            sink = _HashingSink(self)
            length, crc = _program.write_chunk(path, sink, digest)  # type: ignore[arg-type]
            head = _CHUNK.pack(tag, crc, length)
            self.f.seek(at)
            self._write(head)
            self.f.seek(0, os.SEEK_END)
        except OSError as exc:
            raise RecordingError(f"{self.path}: cannot write ({exc.strerror})") from None
        self.digest.chunk(head, sink.sha.digest())
        self.chunks += 1

    def end(self, payload: bytes) -> None:
        """The last chunk: the whole-file digest, then ``payload``."""
        self.chunk(b"END!", self.digest.final(payload) + payload)

    def close(self) -> int:
        """Finish: the file gets its name. Returns its size."""
        try:
            self.f.close()
            os.replace(self.part, self.path)
        except OSError as exc:
            self.abort()
            raise RecordingError(f"{self.path}: cannot write ({exc.strerror})") from None
        return os.path.getsize(self.path)

    def abort(self) -> None:
        """Give up: no file is left behind."""
        with contextlib.suppress(OSError):
            self.f.close()
        with contextlib.suppress(OSError):
            os.unlink(self.part)


class _HashingSink:
    """Where the program chunk is streamed: the file, hashing the payload on the way."""

    def __init__(self, w: _Writer) -> None:
        self.w = w
        self.sha = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.w._write(data)
        return len(data)


@dataclass
class RecordSummary:
    path: str
    instructions: int
    syscalls: int
    events: int
    checkpoints: int
    size: int
    seconds: float
    end: StopEvent


class _DirtyPages:
    """Which pages changed since the last persisted checkpoint, from the snapshot API
    (:meth:`~syxdbg.snapshot.SyxSnapshot.dirty_pages_since`): on the compiled core it costs
    the pages written, never RAM size; the pure-Python reference compares images."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.snap: _api.SyxSnapshot | None = None

    def take(self) -> tuple[list[int], bytes | None]:
        """Sorted addresses of the pages changed since the previous call (all, the first
        time), and what was written meanwhile as range-set bytes (the written pages and
        the regions mapped, unmapped or changed: the timeline's write summary; None when
        the journal cannot tell); the state now becomes the reference for the next call."""
        if self.snap is None:
            self.snap = SyxSnapshot.new(self.machine)
            return ([a for r in self.machine.mem.regions() for a in range(r.start, r.end, PAGE)],
                    None)
        pages = self.snap.dirty_pages_since()
        written = self.snap.written(self.snap.depth)
        writes = None
        if written is not None:
            ranges, reshaped = written
            writes = ranges_union(ranges, ranges_pack(reshaped)) if reshaped else ranges
        self.snap.increment_push()
        self.snap.forget_before(self.snap.depth)  # the older pre-images are not needed
        return pages, writes

    def close(self) -> None:
        if self.snap is not None:
            self.snap.free()
            self.snap = None


class Recorder:
    """Runs a session's program to its end, writing a recording to ``path``.

    The session must be freshly loaded (nothing executed). Host inputs go through an
    :class:`EventLog` (recorded, never replayed); no in-memory history is kept, so recording
    runs at ``syxdbg run`` speed plus the cost of persisting checkpoints.
    """

    def __init__(self, session: Session, path: str, *,
                 checkpoint_interval: int = DEFAULT_CHECKPOINT_INTERVAL,
                 progress: Callable[[int, float], None] | None = None) -> None:
        if session.has_timeline or session.position != 0:
            raise SyxdbgError("record needs a freshly loaded program")
        if checkpoint_interval < CHECK_INTERVAL:
            raise SyxdbgError(f"the checkpoint interval must be at least {CHECK_INTERVAL}")
        self.session = session
        self.machine = session.machine
        self.path = path
        self.checkpoint_interval = checkpoint_interval
        self.progress = progress
        self.log = EventLog()
        self._attached: list[Recordable] = []
        self.registers = digest_registers(self.machine)
        self._dirty: _DirtyPages | None = None
        #: The code executed since the last persisted checkpoint (the interval summaries
        #: a replay's reverse search skips by; format version 3).
        self._index: CodeIndex | None = None
        self._interrupted = threading.Event()
        self._events_written = 0
        #: System calls the program made (counted around the machine's syscall handler).
        self.syscalls = 0
        self.checkpoints = 0

    # -- the pieces -------------------------------------------------------------------------
    def _meta(self, size: int, digest: str,
              interp: dict[str, Any] | None = None) -> dict[str, Any]:
        s = self.session
        image = s.image
        try:
            unicorn_version = metadata.version("unicorn")
        except metadata.PackageNotFoundError:  # pragma: no cover - unicorn is a dependency
            unicorn_version = "?"
        raw = image.kind == "raw"
        return {
            "format": "syxdbg recording",
            "version": VERSION,
            "syxdbg": __version__,
            "unicorn": unicorn_version,
            "python": platform.python_version(),
            "host": platform.node(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "arch": self.machine.arch.name,
            "kind": image.kind,
            "path": image.path,
            "program_digest": digest,
            "program_size": size,
            "argv": list(image.argv),
            "envp": list(image.envp),
            "execfn": image.execfn,
            "random": image.random_bytes.hex(),
            "base": image.segments[0].start if raw and image.segments else None,
            "entry": image.entry,
            "registers": self.registers,
            "states": s.states.names(),
            "plugins": [{"name": n, "version": v, "origin": o}
                        for n, v, o in describe_plugins(s.plugins)],
            "check_interval": CHECK_INTERVAL,
            "checkpoint_interval": self.checkpoint_interval,
            # A dynamic program's interpreter (stored in the INTP chunk): its PT_INTERP
            # name, the host file and sysroot it came from, its size and content digest.
            **({"interp": interp} if interp is not None else {}),
        }

    def _checkpoint(self, w: _Writer) -> None:
        """Persist the state: CPU, registers, layout, states and the pages changed since
        the previous checkpoint (the cost grows with those pages, not with RAM)."""
        m = self.machine
        assert self._dirty is not None
        if self.checkpoints and not self.session.states.persistable():
            return  # the pages changed since stay in the dirty set for the next one
        changed, writes = self._dirty.take()
        summary: tuple[bytes, bytes] | None = None
        if self._index is not None:
            code = self._index.take()
            if self.checkpoints and self._index.usable and writes is not None:
                summary = (_little_endian(code), _little_endian(writes))
        if not self.checkpoints:
            # Replay loads the same program with the same loader: the pages of its segments
            # need not be stored (the initial memory digest checks that they came out equal).
            image = self.session.image
            segs = [(sg.start, sg.end) for sg in (*image.segments, *image.interp_segments)]
            changed = [a for a in changed if not any(s <= a and a + PAGE <= e for s, e in segs)]
        zero, blob = page_bytes(m, changed)
        state = {
            "position": m.position,
            "cpu": cpu_state(m),
            "registers": register_values(m, self.registers),
            "layout": layout(m),
            "changed": changed,
            "zero": zero,
            "states": self.session.states.save(),
            "memory_digest": None if self.checkpoints else memory_digest(m),
            # The interval since the previous checkpoint: (code executed, memory written)
            # as range-set bytes; None when unknown (and at the first checkpoint).
            "summary": summary,
        }
        w.chunk(b"STAT", dumps(state))
        w.chunk(b"PAGE", zlib.compress(blob, 1))
        self.checkpoints += 1

    def _flush_events(self, w: _Writer) -> None:
        pending = self.log.events(self._events_written)
        for i in range(0, len(pending), EVENT_BATCH):
            batch = pending[i:i + EVENT_BATCH]
            w.chunk(b"EVNT", dumps([_event_tuple(e) for e in batch]))
        self._events_written += len(pending)
        self.log.forget_before(self._events_written)  # on disk now: free the memory

    def interrupt(self) -> None:
        """End the recording as soon as possible (Ctrl-C); safe from any thread."""
        self._interrupted.set()
        self.machine.interrupt()

    def _libraries(self, w: _Writer, stored: set[str]) -> None:
        """The ``LIBS`` chunk (guest path, size, digest of each file mapped executable:
        the libraries), then one ``LIBF`` chunk (the PROG format) per content not yet
        stored. A file that cannot be read is left out (the replay needs none of them: its
        reads are in the event log); one changed while stored is refused by its digest."""
        entries: list[dict[str, Any]] = []
        files: list[tuple[str, str]] = []
        for guest, host in _mapped_files(self.session):
            try:
                size, digest = _program.scan(host)
            except OSError:
                continue
            entries.append({"path": guest, "size": size, "digest": digest})
            if digest not in stored:
                stored.add(digest)
                files.append((host, digest))
        if not entries:
            return
        w.chunk(b"LIBS", json.dumps(entries).encode())
        for host, digest in files:
            w.program_chunk(host, digest, b"LIBF")

    # -- the run ------------------------------------------------------------------------------
    def run(self, max_insns: int | None = None) -> RecordSummary:
        s = self.session
        m = self.machine
        size, digest = _scan_program(s.image.path)
        interp = _interp_meta(s.image.interp, s.image.interp_path, s.image.sysroot)
        if os.path.isdir(self.path):
            raise RecordingError(f"{self.path}: is a directory (give -o FILE)")
        if os.path.exists(self.path) and os.path.samefile(self.path, s.image.path):
            raise RecordingError(f"{self.path}: is the program being recorded; choose another "
                                 "output file")
        started = time.monotonic()
        s.states.register(EVENTLOG_STATE, self.log)
        for name in s.states.names():
            obj = s.states.get(name)
            if isinstance(obj, Recordable):
                obj.attach_eventlog(self.log)
                self._attached.append(obj)
        inner = m.syscall_handler
        if inner is not None:
            def counting(machine: Machine) -> None:
                self.syscalls += 1
                inner(machine)

            m.set_syscall_handler(counting)
        w = _Writer(self.path)
        self._dirty = _DirtyPages(m)
        self._index = CodeIndex(m)
        try:
            w.chunk(b"META", json.dumps(self._meta(size, digest, interp)).encode())
            w.program_chunk(s.image.path, digest)
            if interp is not None and (interp["digest"], interp["size"]) != (digest, size):
                w.program_chunk(s.image.interp_path, interp["digest"], b"INTP")
            self._checkpoint(w)
            milestones: list[tuple[int, tuple[int, ...]]] = []
            last_checkpoint = 0
            last_report = started
            end: StopEvent
            while True:
                pos = m.position
                if max_insns is not None and pos >= max_insns:
                    end = Stopped(m.pc, pos, "count")
                    break
                if self._interrupted.is_set():
                    end = Stopped(m.pc, pos, "interrupt")
                    break
                step = CHECK_INTERVAL - pos % CHECK_INTERVAL
                if max_insns is not None:
                    step = min(step, max_insns - pos)
                ev = m.run(count=step)
                pos = m.position
                if pos % CHECK_INTERVAL == 0 and pos:
                    milestones.append((pos, register_values(m, self.registers)))
                if isinstance(ev, Exited | Fault | Killed):
                    end = ev
                    break
                if isinstance(ev, Stopped) and ev.why == "interrupt":
                    end = ev
                    break
                if pos - last_checkpoint >= self.checkpoint_interval:
                    self._flush_events(w)
                    if milestones:
                        w.chunk(b"MILE", dumps(milestones))
                        milestones = []
                    self._checkpoint(w)
                    last_checkpoint = pos
                now = time.monotonic()
                if self.progress is not None and now - last_report >= 1.0:
                    self.progress(pos, now - started)
                    last_report = now
            self._flush_events(w)
            if milestones:
                w.chunk(b"MILE", dumps(milestones))
            if m.position != last_checkpoint:
                self._checkpoint(w)
            syscalls = self.syscalls
            end_info = {
                "position": m.position,
                "pc": m.pc,
                "event": end,
                "events": len(self.log),
                "checkpoints": self.checkpoints,
                "chunks": w.chunks + 1,
                "syscalls": syscalls,
                "memory_digest": memory_digest(m),
            }
            self._libraries(w, {digest} | ({interp["digest"]} if interp else set()))
            end_info["chunks"] = w.chunks + 1
            w.end(dumps(end_info))
            size = w.close()
        except BaseException:
            w.abort()
            raise
        finally:
            self._dirty.close()
            self._index.close()
            self._index = None
            if inner is not None:
                m.set_syscall_handler(inner)
            for attached in self._attached:
                attached.detach_eventlog()
            s.states.unregister(EVENTLOG_STATE)
        return RecordSummary(self.path, m.position, syscalls, len(self.log), self.checkpoints,
                             size, time.monotonic() - started, end)


def _little_endian(ranges: bytes) -> bytes:
    """Range-set bytes (native uint64 pairs) as stored in a recording: little-endian."""
    if sys.byteorder == "little":
        return ranges
    words = array.array("Q", ranges)
    words.byteswap()
    return words.tobytes()


def _mapped_files(session: Session) -> list[tuple[str, str]]:
    """(guest path, host path) of the files the guest has mapped executable (its
    libraries), asked of the kernel plugin's state; none without one."""
    for name in session.states.names():
        proc = getattr(session.states.get(name), "process", None)
        query = getattr(proc, "mapped_files", None)
        if callable(query):
            return [(str(g), os.fsdecode(h)) for g, h in query()]
    return []


def _event_tuple(e: Event) -> tuple[Any, ...]:
    return (e.seq, e.position, e.source, e.call, e.key, e.result, e.error, e.size)


def _interp_meta(name: str, path: str, sysroot: str) -> dict[str, Any] | None:
    """META's ``interp`` entry of a dynamic program (None for a static one)."""
    if not name:
        return None
    size, digest = _scan_program(path)
    return {"name": name, "path": path, "sysroot": sysroot, "size": size, "digest": digest}


def _scan_program(path: str) -> tuple[int, str]:
    """(size, content digest) of the program file, in bounded memory (holes skipped)."""
    try:
        return _program.scan(path)
    except OSError as exc:
        raise SyxdbgError(f"{path}: cannot read the program ({exc.strerror})") from None
