"""Recordings on disk: ``syxdbg record`` writes one, ``syxdbg replay`` debugs it.

A recording is everything needed to reproduce one run without the host: the program image,
argv and environment, every nondeterministic input the guest took (the
:class:`~syxdbg.eventlog.EventLog`), persisted checkpoints (full guest state, stored as page
deltas) so replay can jump near any position, and digests of the state along the way so a
replay that goes wrong says where.

File format (version 1, little endian)::

    header   magic b"\\x89SYXREC\\n"  u32 version
    chunk*   tag (4 bytes)  u32 crc32(payload)  u64 length  payload
    last     an "END!" chunk (a file without it is truncated)

Chunks, in file order:

* ``META`` JSON: versions, architecture, argv, environment, program path and sha256, the
  register names used by digests, the plugins and states of the recording session.
* ``PROG`` zlib: the program file (ELF or raw blob), so a recording replays after the binary
  changed or is gone.
* ``STAT`` + ``PAGE`` (one pair per persisted checkpoint): the checkpoint's CPU, registers,
  memory layout, the list of pages that changed since the previous one and every
  snapshottable state (the Linux fd table, brk, the event log cursor...); then the changed
  pages' bytes (all-zero pages are not stored). Checkpoint 0 is the initial state.
* ``EVNT``: a batch of recorded host calls (events are numbered; batches are contiguous).
* ``MILE``: register values at regular positions (every :data:`CHECK_INTERVAL`
  instructions): replay compares them and reports the first position where they differ.
* ``END!``: where the run ended and why, and the totals (chunks, events, checkpoints).

Payloads other than META and PROG are zlib-compressed pickles read back by a restricted
unpickler that only builds syxdbg's (and the loaded plugins') dataclasses, enums and tuples,
plus a few builtins: loading a recording never runs code chosen by the file.

Every chunk carries a CRC32; the header a magic and a version: a corrupted, truncated or
foreign file is one :class:`RecordingError` (one line), never a traceback.
"""

from __future__ import annotations

import bisect
import builtins
import contextlib
import dataclasses
import enum
import hashlib
import io
import json
import os
import pickle
import platform
import shutil
import signal
import stat
import struct
import sys
import tempfile
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import IO, TYPE_CHECKING, Any

from . import __version__
from .errors import SyxdbgError
from .eventlog import STATE_NAME as EVENTLOG_STATE
from .eventlog import Divergence, Event, EventLog, Recordable
from .machine.events import Exited, Fault, Killed, StopEvent, Stopped
from .machine.memory import PAGE, Perm

if TYPE_CHECKING:
    from .machine import Machine
    from .session import Session

MAGIC = b"\x89SYXREC\n"
VERSION = 1
_HEADER = struct.Struct("<8sI")
_CHUNK = struct.Struct("<4sIQ")

#: Instructions between two register digests (recorded and checked on replay).
CHECK_INTERVAL = 1_000_000
#: Default instructions between two persisted checkpoints.
DEFAULT_CHECKPOINT_INTERVAL = 20_000_000
#: Recorded events are written in batches of at most this many.
EVENT_BATCH = 4096

_ZERO_PAGE = bytes(PAGE)
_ZERO_DIGEST = hashlib.blake2b(_ZERO_PAGE, digest_size=16).digest()


class RecordingError(SyxdbgError):
    """A recording file that cannot be read (not one, corrupted, truncated, too new)."""


# =========================================================================================
# safe serialization
# =========================================================================================
_SAFE_BUILTINS = frozenset({"set", "frozenset", "bytearray", "complex"})
_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("os", "stat_result"): os.stat_result,
    ("posix", "stat_result"): os.stat_result,
    ("signal", "Signals"): signal.Signals,
}
#: Largest decompressed size of one pickled chunk (a bound against decompression bombs).
MAX_CHUNK = 256 << 20


def _dumps(obj: Any) -> bytes:
    return zlib.compress(pickle.dumps(obj, protocol=5), 6)


def _data_class(obj: object) -> bool:
    """A class whose instances are plain data: a frozen dataclass, an enum or a tuple."""
    if not isinstance(obj, type):
        return False
    if dataclasses.is_dataclass(obj):
        params = getattr(obj, "__dataclass_params__", None)
        return bool(getattr(params, "frozen", False))
    return issubclass(obj, enum.Enum | tuple)


def _allowed_classes(trusted: frozenset[str]) -> dict[tuple[str, str], type]:
    """Every data class defined at the top level of an already imported module of a trusted
    package. Nothing is imported to build it (importing runs module code)."""
    out: dict[tuple[str, str], type] = {}
    for modname, module in list(sys.modules.items()):
        if module is None or modname.split(".")[0] not in trusted:
            continue
        for name, obj in list(vars(module).items()):
            if _data_class(obj) and obj.__module__ == modname and obj.__qualname__ == name:
                out[modname, name] = obj
    return out


def _import_first_party() -> None:
    """Import syxdbg's own plugins (a fixed list, never names read from a file)."""
    import importlib

    from .plugins import DEFAULT_PLUGINS

    for _, modname in DEFAULT_PLUGINS:
        with contextlib.suppress(ImportError):
            importlib.import_module(modname)


class _Unpickler(pickle.Unpickler):
    """Builds only data: syxdbg's and the trusted plugins' frozen dataclasses, enums and
    tuples (looked up, never imported), and a few builtins."""

    def __init__(self, data: bytes, allowed: dict[tuple[str, str], type]) -> None:
        super().__init__(io.BytesIO(data))
        self.allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        if module == "builtins" and name in _SAFE_BUILTINS:
            return getattr(builtins, name)
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[module, name]
        cls = self.allowed.get((module, name))
        if cls is not None:
            return cls
        raise RecordingError(f"the recording refers to {module}.{name}, which recordings "
                             "may not contain (or a plugin that is not loaded)")


def _inflate(data: bytes, limit: int, what: str) -> bytes:
    """zlib-decompress at most ``limit`` bytes (more is a corrupted recording)."""
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, limit)
    except zlib.error as exc:
        raise RecordingError(f"corrupted recording: cannot decompress {what} ({exc})") from None
    if d.unconsumed_tail or not d.eof:
        raise RecordingError(f"corrupted recording: {what} is larger than it may be "
                             f"({limit} bytes) or incomplete")
    return out


def _loads(data: bytes, trusted: frozenset[str]) -> Any:
    raw = _inflate(data, MAX_CHUNK, "a chunk")
    try:
        return _Unpickler(raw, _allowed_classes(trusted)).load()
    except RecordingError:
        raise
    except Exception as exc:  # noqa: BLE001 - any malformed pickle is one clear error
        raise RecordingError(f"corrupted recording: undecodable chunk ({exc})") from None


def _trusted_roots(session: Session) -> frozenset[str]:
    """Top-level packages whose classes may appear in a recording: syxdbg, its first-party
    plugins and the packages of the plugins loaded in ``session``."""
    roots = {"syxdbg", "syxdbg_plugins"}
    for _, plugin in session.plugins.list_name_plugin():
        mod = getattr(plugin, "__module__", None)
        if not isinstance(mod, str) or mod == "builtins":
            mod = getattr(plugin, "__name__", None)
        if isinstance(mod, str):
            roots.add(mod.split(".")[0])
    return frozenset(roots)


# =========================================================================================
# machine state: registers, memory layout and pages
# =========================================================================================
def register_values(machine: Machine, names: list[str]) -> tuple[int, ...]:
    regs = machine.regs
    return tuple(int(regs[n]) for n in names)


def digest_registers(machine: Machine) -> list[str]:
    """The registers compared every :data:`CHECK_INTERVAL` instructions: the general
    registers, pc and flags (gdb's core feature: every register before the first one wider
    than 8 bytes). Checkpoints hold the whole CPU."""
    out = []
    regs = machine.regs
    for name in regs.names():
        if regs.info(name).size > 8:
            break
        out.append(name)
    return out


def _layout(machine: Machine) -> list[tuple[int, int, int, str]]:
    return [(r.start, r.size, int(r.perms), r.name) for r in machine.mem.regions()]


def _pages(machine: Machine) -> Iterable[tuple[int, memoryview]]:
    for r in machine.mem.regions():
        view = r.view
        for off in range(0, r.size, PAGE):
            yield r.start + off, view[off:off + PAGE]


def memory_digest(machine: Machine) -> str:
    """A digest of the memory layout (addresses and permissions; region names are labels)
    and every mapped byte (one hash call per region)."""
    h = hashlib.blake2b(digest_size=16)
    spans: list[list[int]] = []  # adjacent regions with the same permissions coalesced:
    for r in machine.mem.regions():  # how a range is split into regions is bookkeeping
        if spans and spans[-1][1] == r.start and spans[-1][2] == int(r.perms):
            spans[-1][1] = r.end
        else:
            spans.append([r.start, r.end, int(r.perms)])
    h.update(repr(spans).encode())
    for r in machine.mem.regions():
        h.update(r.view)
    return h.hexdigest()


def apply_layout(machine: Machine, layout: list[tuple[int, int, int, str]]) -> None:
    """Map, unmap and protect so the memory map is exactly ``layout``."""
    mem = machine.mem
    want = sorted(layout)

    def subtract(start: int, end: int, cuts: list[tuple[int, int]]) -> list[tuple[int, int]]:
        out = []
        cur = start
        for s, e in cuts:
            if e <= cur or s >= end:
                continue
            if s > cur:
                out.append((cur, s))
            cur = max(cur, e)
        if cur < end:
            out.append((cur, end))
        return out

    want_spans = [(s, s + n) for s, n, _, _ in want]
    for r in mem.regions():
        for s, e in subtract(r.start, r.end, want_spans):
            mem.unmap(s, e - s)
    for s, n, perms, name in want:
        have = [(r.start, r.end) for r in mem.regions()]
        for a, b in subtract(s, s + n, have):
            mem.map(a, b - a, Perm(perms), name)
        for r in mem.regions():
            lo, hi = max(r.start, s), min(r.end, s + n)
            if lo < hi and int(r.perms) != perms:
                mem.protect(lo, hi - lo, Perm(perms))


class _DirtyPages:
    """Which pages changed since the last persisted checkpoint, at the cost of the pages
    written (never of RAM size): the snapshot core's C journal records first writes per
    epoch (guest stores and host writes alike); regions mapped or reshaped since then are
    taken whole."""

    def __init__(self, machine: Machine) -> None:
        from .snapshot.core import Journal

        self.machine = machine
        owner = machine.tlb_owner
        self.journal = owner if isinstance(owner, Journal) else Journal(machine)
        self.log = self.journal.open_log()
        self.regions: set[tuple[int, int, int, int]] = set()

    def take(self) -> list[int]:
        """Sorted addresses of the pages changed since the previous call (all, the first
        time); starts a new epoch."""
        new_log = self.journal.open_log()
        pages = set(self.journal.log_pages(self.log))
        self.journal.drop_older(new_log)  # the pre-images are not needed
        self.log = new_log
        now = set()
        for r in self.machine.mem.regions():
            key = (r.start, r.size, r.backing.id, r.offset)
            now.add(key)
            if key not in self.regions:
                pages.update(range(r.start, r.end, PAGE))
        self.regions = now
        return sorted(pages)

    def close(self) -> None:
        self.journal.close()


def _page_bytes(machine: Machine, addresses: list[int]) -> tuple[list[int], bytes]:
    """(the zero pages among ``addresses``, the other pages' bytes, in order)."""
    zero: list[int] = []
    blob = bytearray()
    mem = machine.mem
    region = None
    for addr in addresses:
        if region is None or not region.start <= addr < region.end:
            region = mem.find(addr)
            assert region is not None
        off = addr - region.start
        page = region.view[off:off + PAGE]
        if page == _ZERO_PAGE:
            zero.append(addr)
        else:
            blob += page
    return zero, bytes(blob)


# =========================================================================================
# writing
# =========================================================================================
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
        self._write(_HEADER.pack(MAGIC, VERSION))

    def _write(self, data: bytes) -> None:
        try:
            self.f.write(data)
        except OSError as exc:
            raise RecordingError(f"{self.path}: cannot write ({exc.strerror})") from None

    def chunk(self, tag: bytes, payload: bytes) -> None:
        self._write(_CHUNK.pack(tag, zlib.crc32(payload), len(payload)))
        self._write(payload)
        self.chunks += 1

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
        self._interrupted = threading.Event()
        self._events_written = 0
        #: System calls the program made (counted around the machine's syscall handler).
        self.syscalls = 0
        self.checkpoints = 0

    # -- the pieces -------------------------------------------------------------------------
    def _meta(self, program: bytes) -> dict[str, Any]:
        s = self.session
        image = s.image
        from .plugins import describe_plugins

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
            "program_sha256": hashlib.sha256(program).hexdigest(),
            "program_size": len(program),
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
        }

    def _checkpoint(self, w: _Writer) -> None:
        """Persist the state: CPU, registers, layout, states and the pages changed since
        the previous checkpoint (the cost grows with those pages, not with RAM)."""
        m = self.machine
        assert self._dirty is not None
        changed = self._dirty.take()
        if not self.checkpoints:
            # Replay loads the same program with the same loader: the pages of its segments
            # need not be stored (the initial memory digest checks that they came out equal).
            segs = [(sg.start, sg.end) for sg in self.session.image.segments]
            changed = [a for a in changed if not any(s <= a and a + PAGE <= e for s, e in segs)]
        zero, blob = _page_bytes(m, changed)
        state = {
            "position": m.position,
            "cpu": _cpu_state(m),
            "registers": register_values(m, self.registers),
            "layout": _layout(m),
            "changed": changed,
            "zero": zero,
            "states": self.session.states.save(),
            "memory_digest": None if self.checkpoints else memory_digest(m),
        }
        w.chunk(b"STAT", _dumps(state))
        w.chunk(b"PAGE", zlib.compress(blob, 1))
        self.checkpoints += 1

    def _flush_events(self, w: _Writer) -> None:
        pending = self.log.events(self._events_written)
        for i in range(0, len(pending), EVENT_BATCH):
            batch = pending[i:i + EVENT_BATCH]
            w.chunk(b"EVNT", _dumps([_event_tuple(e) for e in batch]))
        self._events_written += len(pending)
        self.log.forget_before(self._events_written)  # on disk now: free the memory

    def interrupt(self) -> None:
        """End the recording as soon as possible (Ctrl-C); safe from any thread."""
        self._interrupted.set()
        self.machine.interrupt()

    # -- the run ------------------------------------------------------------------------------
    def run(self, max_insns: int | None = None) -> RecordSummary:
        s = self.session
        m = self.machine
        program = _read_program(s.image.path)
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
        try:
            w.chunk(b"META", json.dumps(self._meta(program)).encode())
            w.chunk(b"PROG", zlib.compress(program, 6))
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
                        w.chunk(b"MILE", _dumps(milestones))
                        milestones = []
                    self._checkpoint(w)
                    last_checkpoint = pos
                now = time.monotonic()
                if self.progress is not None and now - last_report >= 1.0:
                    self.progress(pos, now - started)
                    last_report = now
            self._flush_events(w)
            if milestones:
                w.chunk(b"MILE", _dumps(milestones))
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
            w.chunk(b"END!", _dumps(end_info))
            size = w.close()
        except BaseException:
            w.abort()
            raise
        finally:
            self._dirty.close()
            if inner is not None:
                m.set_syscall_handler(inner)
            for attached in self._attached:
                attached.detach_eventlog()
            s.states.unregister(EVENTLOG_STATE)
        return RecordSummary(self.path, m.position, syscalls, len(self.log), self.checkpoints,
                             size, time.monotonic() - started, end)


def _event_tuple(e: Event) -> tuple[Any, ...]:
    return (e.seq, e.position, e.source, e.call, e.key, e.result, e.error, e.size)


def _read_program(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise SyxdbgError(f"{path}: cannot read the program ({exc.strerror})") from None


# =========================================================================================
# reading
# =========================================================================================
_CHECKPOINT_KEYS = {"position": int, "cpu": dict, "registers": tuple, "layout": list,
                    "changed": list, "zero": list, "states": dict, "memory_digest": (str,
                                                                                     type(None))}
_END_KEYS = {"position": int, "pc": int, "event": StopEvent, "events": int,
             "checkpoints": int, "chunks": int, "syscalls": int, "memory_digest": str}
_META_KEYS = {"arch": str, "kind": str, "path": str, "program_sha256": str,
              "program_size": int, "argv": list, "envp": list, "registers": list,
              "unicorn": str}


def _require(what: str, value: Any, keys: dict[str, Any]) -> dict[str, Any]:
    """``value`` must be a dict with ``keys`` of those types (else: corrupted)."""
    if not isinstance(value, dict):
        raise RecordingError(f"corrupted recording: malformed {what}")
    for key, kind in keys.items():
        if key not in value or not isinstance(value[key], kind):
            raise RecordingError(f"corrupted recording: malformed {what} ({key!r})")
    return value


@dataclass
class _Checkpoint:
    position: int
    stat: tuple[int, int]  # (offset, length) of the STAT payload
    page: tuple[int, int]
    header: dict[str, Any] | None = None


@dataclass
class Recording:
    """A recording file, checked and indexed (pages and states are decoded on demand)."""

    path: str
    meta: dict[str, Any]
    program: bytes
    events: list[Event]
    checks: dict[int, tuple[int, ...]]
    end: dict[str, Any]
    _data: bytes = field(repr=False)
    _checkpoints: list[_Checkpoint] = field(default_factory=list, repr=False)
    _trusted: frozenset[str] = field(default=frozenset({"syxdbg", "syxdbg_plugins"}),
                                     repr=False)

    # -- opening ------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str, *, trusted: frozenset[str] | None = None) -> Recording:
        try:
            with open(path, "rb") as f:
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
            return cls._parse(data, path, trusted)
        except RecordingError as exc:
            if str(exc).startswith(f"{path}: "):
                raise
            raise RecordingError(f"{path}: {exc}") from None

    @classmethod
    def _parse(cls, data: bytes, path: str, trusted: frozenset[str] | None) -> Recording:
        if trusted is None:
            _import_first_party()  # their state classes may appear in the file
        trust = trusted or frozenset({"syxdbg", "syxdbg_plugins"})

        def fail(why: str) -> RecordingError:
            return RecordingError(f"{path}: {why}")

        if len(data) < _HEADER.size or not data.startswith(MAGIC[:4]):
            raise fail("not a syxdbg recording (no recording header)")
        magic, version = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise fail("not a syxdbg recording (bad magic; damaged by a text-mode transfer?)")
        if version != VERSION:
            raise fail(f"recording format version {version} is not supported (this syxdbg "
                       f"{__version__} reads version {VERSION})")
        off = _HEADER.size
        chunks: list[tuple[bytes, int, int]] = []
        while off < len(data):
            if off + _CHUNK.size > len(data):
                raise fail(f"truncated recording: it ends inside a chunk header at byte {off}")
            tag, crc, length = _CHUNK.unpack_from(data, off)
            body = off + _CHUNK.size
            if body + length > len(data):
                raise fail(f"truncated recording: chunk #{len(chunks)} "
                           f"({tag.decode('latin-1')!r}) needs {length} bytes at byte {body}, "
                           f"the file has {len(data) - body}")
            if zlib.crc32(memoryview(data)[body:body + length]) != crc:
                raise fail(f"corrupted recording: chunk #{len(chunks)} "
                           f"({tag.decode('latin-1')!r} at byte {off}) fails its checksum")
            chunks.append((tag, body, length))
            off = body + length
            if tag == b"END!":
                break
        if not chunks or chunks[-1][0] != b"END!":
            raise fail("truncated recording: no end marker (the recording did not finish)")
        if off != len(data):
            raise fail(f"corrupted recording: {len(data) - off} stray bytes after the end "
                       "marker")
        tags = [t for t, _, _ in chunks]
        if tags[:2] != [b"META", b"PROG"]:
            raise fail("corrupted recording: it does not start with META and PROG chunks")
        try:
            meta = json.loads(data[chunks[0][1]:chunks[0][1] + chunks[0][2]])
            program = zlib.decompress(data[chunks[1][1]:chunks[1][1] + chunks[1][2]])
        except (ValueError, zlib.error) as exc:
            raise fail(f"corrupted recording: unreadable header chunks ({exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != "syxdbg recording":
            raise fail("corrupted recording: META is not a syxdbg recording description")
        _require("description (META)", meta, _META_KEYS)
        for key in ("argv", "envp", "registers"):
            if not all(isinstance(x, str) and "\0" not in x for x in meta[key]):
                raise fail(f"corrupted recording: malformed description (META {key!r})")
        if meta["kind"] not in ("elf", "raw") or "\0" in meta["path"] or (
                meta["kind"] == "raw" and not (isinstance(meta.get("base"), int)
                                               and isinstance(meta.get("entry"), int))):
            raise fail("corrupted recording: malformed description (META kind/path)")
        if hashlib.sha256(program).hexdigest() != meta.get("program_sha256"):
            raise fail("corrupted recording: the program image does not match its digest")
        events: list[Event] = []
        checks: dict[int, tuple[int, ...]] = {}
        checkpoints: list[_Checkpoint] = []
        end: dict[str, Any] | None = None
        i = 2
        while i < len(chunks):
            tag, body, length = chunks[i]
            payload = data[body:body + length]
            if tag == b"STAT":
                if i + 1 >= len(chunks) or chunks[i + 1][0] != b"PAGE":
                    raise fail("corrupted recording: a checkpoint without its pages")
                header = _require("checkpoint", _loads(payload, trust), _CHECKPOINT_KEYS)
                ck = _Checkpoint(int(header["position"]), (body, length),
                                 (chunks[i + 1][1], chunks[i + 1][2]), header)
                if checkpoints and ck.position <= checkpoints[-1].position:
                    raise fail("corrupted recording: checkpoints out of order")
                checkpoints.append(ck)
                i += 2
                continue
            if tag == b"EVNT":
                batch = _loads(payload, trust)
                if not isinstance(batch, list):
                    raise fail("corrupted recording: malformed event batch")
                for t in batch:
                    try:
                        ev = Event(*t)
                    except TypeError:
                        raise fail("corrupted recording: malformed event") from None
                    if ev.seq != len(events):
                        raise fail(f"corrupted recording: event #{len(events)} is missing")
                    events.append(ev)
            elif tag == b"MILE":
                try:
                    for pos, values in _loads(payload, trust):
                        checks[int(pos)] = tuple(int(v) for v in values)
                except (TypeError, ValueError):
                    raise fail("corrupted recording: malformed register digests") from None
            elif tag == b"END!":
                end = _require("end marker", _loads(payload, trust), _END_KEYS)
            else:
                raise fail(f"corrupted recording: unknown chunk {tag.decode('latin-1')!r}")
            i += 1
        assert end is not None
        if not checkpoints or checkpoints[0].position != 0:
            raise fail("corrupted recording: no initial checkpoint")
        if end.get("events") != len(events) or end.get("checkpoints") != len(checkpoints) \
                or end.get("chunks") != len(chunks):
            raise fail("corrupted recording: the end marker's totals do not match the chunks")
        return cls(path, meta, program, events, checks, end, data, checkpoints, trust)

    # -- queries ------------------------------------------------------------------------------
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
        if ck.header is None:  # pragma: no cover - headers are decoded at open
            off, n = ck.stat
            ck.header = _loads(self._data[off:off + n], self._trusted)
        return ck.header

    def describe_end(self) -> str:
        return describe_end_event(self.end_event)


def describe_end_event(ev: StopEvent) -> str:
    """How a run ended, in words (for summaries)."""
    if isinstance(ev, Exited):
        return f"the program exited with status {ev.status}"
    if isinstance(ev, Killed):
        return f"the program was killed by signal {ev.signal}"
    if isinstance(ev, Fault):
        return f"the program received signal {ev.signal} ({ev.detail})"
    if isinstance(ev, Stopped) and ev.why == "interrupt":
        return "the recording was interrupted"
    return "the recording stopped at its instruction limit"


class ReplaySource:
    """What the timeline needs from a recording (:class:`syxdbg.timeline.Recorded`):
    its end, its persisted checkpoints ("seeds") and its digests."""

    def __init__(self, recording: Recording, session: Session) -> None:
        self.rec = recording
        self.session = session
        self.machine = session.machine
        self.end = recording.end_position
        self.final = recording.end_event
        self.registers: list[str] = list(recording.meta["registers"])
        self._seeds = recording.checkpoint_positions
        self._seed_index = {p: i for i, p in enumerate(self._seeds)}
        self._checks = sorted(set(recording.checks) | set(self._seeds))
        #: The last position whose state was compared (or loaded) and matched.
        self.last_match: int | None = 0
        # page address -> checkpoint indexes where it changed
        self._versions: dict[int, list[int]] = {}
        self._offsets: list[dict[int, int]] = []
        for i in range(len(self._seeds)):
            h = recording.checkpoint(i)
            zero = set(h["zero"])
            offsets: dict[int, int] = {}
            n = 0
            for addr in h["changed"]:
                self._versions.setdefault(addr, []).append(i)
                if addr not in zero:
                    offsets[addr] = n
                    n += PAGE
            self._offsets.append(offsets)
        self._blobs: OrderedDict[int, bytes] = OrderedDict()
        self.checked = 0  # digests compared so far (for stats and tests)
        #: False: never jump to persisted checkpoints, re-execute everything (and so check
        #: every digest on the way), as ``syxdbg replay --check`` does.
        self.jumps = True
        #: Jumps made to persisted checkpoints.
        self.loads = 0

    # -- seeds --------------------------------------------------------------------------------
    def seed(self, low: int, high: int) -> int | None:
        if not self.jumps:
            return None
        i = bisect.bisect_right(self._seeds, high) - 1
        if i < 0 or self._seeds[i] <= low:
            return None
        return self._seeds[i]

    def _blob(self, index: int) -> bytes:
        blob = self._blobs.get(index)
        if blob is None:
            off, n = self.rec._checkpoints[index].page
            h = self.rec.checkpoint(index)
            size = (len(h["changed"]) - len(h["zero"])) * PAGE
            blob = _inflate(self.rec._data[off:off + n], size, f"checkpoint {index}'s pages")
            if len(blob) != size:
                raise RecordingError(f"corrupted recording: checkpoint {index} has "
                                     f"{len(blob)} bytes of pages, not {size}")
            self._blobs[index] = blob
            while len(self._blobs) > 8:
                self._blobs.popitem(last=False)
        else:
            self._blobs.move_to_end(index)
        return blob

    def page(self, address: int, index: int) -> bytes | None:
        """The bytes of page ``address`` at persisted checkpoint ``index`` (None: as the
        program was loaded, never written since)."""
        versions = self._versions.get(address)
        j = -1 if versions is None else bisect.bisect_right(versions, index) - 1
        if versions is None or j < 0:
            return None  # never written: as the program was loaded
        k = versions[j]
        off = self._offsets[k].get(address)
        if off is None:
            return _ZERO_PAGE
        return self._blob(k)[off:off + PAGE]

    def load_seed(self, position: int) -> None:
        index = self._seeds.index(position)
        self.load_checkpoint(index)
        self.loads += 1
        self.last_match = position

    def load_checkpoint(self, index: int) -> None:
        """Make the machine and states exactly those of persisted checkpoint ``index``."""
        try:
            self._load_checkpoint(index)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            # The file's checksums held, so its contents were forged or written by a
            # broken recorder: still one clear error, never a traceback.
            raise RecordingError(f"{self.rec.path}: corrupted recording: checkpoint {index} "
                                 f"cannot be loaded ({type(exc).__name__}: {exc})") from None

    def _load_checkpoint(self, index: int) -> None:
        h = self.rec.checkpoint(index)
        m = self.machine
        apply_layout(m, [(int(a), int(n), int(p), str(name)) for a, n, p, name in h["layout"]])
        for addr, view in _pages(m):
            want = self.page(addr, index)
            if want is not None and view != want:
                m.mem.write(addr, want)
        _restore_cpu(m, h["cpu"])
        states = dict(h["states"])
        missing = [n for n in states if n not in self.session.states]
        if missing:
            raise RecordingError(f"the recording has state {missing[0]!r} from a plugin that "
                                 "is not loaded")
        self.session.states.load(states)

    # -- digests ------------------------------------------------------------------------------
    def next_check(self, position: int) -> int | None:
        i = bisect.bisect_right(self._checks, position)
        return self._checks[i] if i < len(self._checks) else None

    def check(self, position: int) -> None:
        """Compare the state at ``position`` with what the recording holds there: the
        digest registers, and at a persisted checkpoint every register and the pages
        written since the previous one."""
        want = self.rec.checks.get(position)
        index = self._seed_index.get(position)
        if want is None and index is None:
            return
        self.checked += 1
        if want is not None:
            got = register_values(self.machine, self.registers)
            if got != want:
                self._registers_differ(position, dict(zip(self.registers, want, strict=True)))
        if index is not None:
            h = self.rec.checkpoint(index)
            self._registers_differ(position, h["cpu"]["registers"])
            mem = self.machine.mem
            for addr in h["changed"]:
                page = self.page(addr, index)
                if page is not None and mem.read_partial(addr, PAGE) != page:
                    raise Divergence(self._diverged(position, f"memory differs in the page at "
                                                              f"{addr:#x}"))
        self.last_match = position

    def _registers_differ(self, position: int, want: dict[str, int]) -> None:
        regs = self.machine.regs
        bad = [(n, v, regs[n]) for n, v in want.items() if regs[n] != v]
        if bad:
            shown = ", ".join(f"{n} recorded {a:#x} replayed {b:#x}" for n, a, b in bad)
            raise Divergence(self._diverged(position, f"{len(bad)} register(s) differ: "
                                                      f"{shown}"))

    def _diverged(self, position: int, what: str) -> str:
        last = ("" if self.last_match is None
                else f" (the last check, at position {self.last_match}, matched)")
        return (f"replay diverged from the recording: first difference found at position "
                f"{position}{last}: {what}")


def _cpu_state(machine: Machine) -> dict[str, Any]:
    """The CPU as data: every register by name, the position, the machine-held registers
    and the terminal event. (Never unicorn's raw context: it holds host pointers, and a
    forged one would reach them.)"""
    cpu = machine.save_cpu()
    names = machine.regs.names()
    return {"registers": dict(zip(names, register_values(machine, names), strict=True)),
            "position": cpu.position, "virtual": dict(cpu.virtual), "final": cpu.final}


def _restore_cpu(machine: Machine, cpu: dict[str, Any]) -> None:
    """Make the CPU the recorded one: this engine's own context, then the recorded register
    values written by name (only those that differ) and read back."""
    from .machine.core import CpuState

    _require("CPU state", cpu, {"registers": dict, "position": int, "virtual": dict,
                                "final": (StopEvent, type(None))})
    live = machine.save_cpu()
    machine.load_cpu(CpuState(live.context, cpu["position"],
                              {str(k): int(v) for k, v in cpu["virtual"].items()},
                              cpu["final"]))
    regs = machine.regs
    wrong = []
    for name, value in cpu["registers"].items():
        if name not in regs or not isinstance(value, int):
            raise RecordingError(f"corrupted recording: no register {name!r} here")
        if regs[name] != value:
            with contextlib.suppress(SyxdbgError, ValueError, OverflowError):
                regs[name] = value
            if regs[name] != value:
                wrong.append(name)
    if wrong:
        raise RecordingError(f"the recording's CPU state cannot be restored here (registers "
                             f"{', '.join(wrong)}): another emulator version?")


# =========================================================================================
# opening a replay session
# =========================================================================================
def _program_file(rec: Recording, keep: list[str]) -> str:
    """A path holding the recorded program: the original if it is unchanged, else a copy
    extracted to a private temporary directory (removed with the session)."""
    path = str(rec.meta.get("path") or "")
    try:
        st = os.stat(path)
        if stat.S_ISREG(st.st_mode) and st.st_size == rec.meta["program_size"] == \
                len(rec.program):
            with open(path, "rb") as f:
                if hashlib.sha256(f.read(st.st_size + 1)).hexdigest() == \
                        rec.meta["program_sha256"]:
                    return path
    except (OSError, ValueError):
        pass
    tmp = tempfile.mkdtemp(prefix="syxdbg-replay-")
    keep.append(tmp)
    name = os.path.basename(path)
    if name in ("", ".", "..") or "\0" in name:
        name = "program"
    out = os.path.join(tmp, name)
    with open(out, "wb") as f:
        f.write(rec.program)
    os.chmod(out, 0o755)
    return out


def open_replay(path: str, *, disable_plugins: Iterable[str] = (),
                options: dict[str, Any] | None = None, plugins: Any = None) -> Session:
    """A :class:`~syxdbg.session.Session` replaying recording ``path``.

    The program comes from the recording (the original file is used when unchanged, for
    its path in gdb); the initial state is the recording's checkpoint 0; the timeline's
    history is the recording: host inputs come from its event log, forward motion ends at
    its end (``replaylog:end``), writes are refused and re-execution is checked against
    its digests.
    """
    from .plugins import make_plugin_manager
    from .session import Session
    from .timeline import DEFAULT_BUDGET, DEFAULT_INTERVAL, Timeline

    pm = plugins if plugins is not None else make_plugin_manager(list(disable_plugins))
    session = Session(pm, {**(options or {}), "replay": True})
    cleanup: list[str] = []
    try:
        rec = Recording.open(path, trusted=_trusted_roots(session))
        meta = rec.meta
        try:
            here = metadata.version("unicorn")
        except metadata.PackageNotFoundError:  # pragma: no cover
            here = "?"
        if meta.get("unicorn") != here:
            raise RecordingError(f"{path}: recorded with unicorn {meta.get('unicorn')}, this "
                                 f"syxdbg runs unicorn {here}; replay needs the same emulator")
        prog = _program_file(rec, cleanup)
        argv = list(meta["argv"])
        if meta["kind"] == "raw":
            session._load(prog, [], None, meta["arch"], True, meta["base"], meta["entry"], None)
        else:
            envp = list(meta["envp"])
            session._load(prog, argv[1:], dict(e.partition("=")[::2] for e in envp),
                          meta["arch"], False, None, None, argv[0] if argv else None)
        session.temporary += cleanup
        cleanup = []
        recorded_states = set(rec.checkpoint(0)["states"]) - {EVENTLOG_STATE}
        missing = recorded_states - set(session.states.names())
        if missing:
            raise RecordingError(f"{path}: the recording has state from plugin(s) that are "
                                 f"not loaded here: {', '.join(sorted(missing))}")
        source = ReplaySource(rec, session)
        log = EventLog(rec.events, sealed=True)
        # Checkpoint 0 is the recorded initial state (stack, auxv, cwd, ids...).
        session.states.register(EVENTLOG_STATE, log)
        try:
            source.load_checkpoint(0)
        finally:
            session.states.unregister(EVENTLOG_STATE)
        if memory_digest(session.machine) != rec.checkpoint(0)["memory_digest"]:
            raise RecordingError(f"{path}: the program does not load here as it did when "
                                 "recorded (another syxdbg version?)")
        session._timeline = Timeline(
            session.machine, session.states,
            interval=int(session.options.get("timeline.interval", DEFAULT_INTERVAL)),
            budget=int(session.options.get("timeline.budget", DEFAULT_BUDGET)),
            eventlog=log, recorded=source)
        session.recording = rec
    except BaseException:
        session.close()
        for d in cleanup:
            shutil.rmtree(d, ignore_errors=True)
        raise
    return session


def format_size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"  # pragma: no cover


def progress_printer(stream: IO[str] = sys.stderr) -> Callable[[int, float], None]:
    """A progress callback printing instructions and speed (in place on a terminal)."""
    tty = stream.isatty()

    def show(position: int, elapsed: float) -> None:
        rate = position / elapsed if elapsed > 0 else 0.0
        text = (f"syxdbg: recording: {position:,} instructions, {rate / 1e6:.1f} M "
                f"instructions/s, {elapsed:.0f} s")
        stream.write(f"\r{text}\x1b[K" if tty else text + "\n")
        stream.flush()

    return show


__all__ = [
    "CHECK_INTERVAL", "DEFAULT_CHECKPOINT_INTERVAL", "MAGIC", "VERSION", "RecordSummary",
    "Recorder", "Recording", "RecordingError", "ReplaySource", "apply_layout", "format_size",
    "memory_digest", "open_replay", "progress_printer", "register_values",
]
