"""Replaying a recording: :class:`ReplaySource` (what the timeline needs from a recording:
its end, persisted checkpoints and digests), :class:`RecordedHistory` (what a session needs
to become a replay) and :func:`open_replay`.

A replay never touches the host beyond reading the recording file, and, when the recorded
program path names a regular file with exactly the recorded contents, that file (for gdb's
sake); otherwise the embedded copy is extracted to a private temporary directory.
"""

from __future__ import annotations

import bisect
import os
import shutil
import struct
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterable
from importlib import metadata
from typing import TYPE_CHECKING, Any

import pluggy

from ..errors import SyxdbgError
from ..eventlog import STATE_NAME as EVENTLOG_STATE
from ..eventlog import Divergence, EventLog
from ..machine.memory import PAGE
from ..machine.probes import ranges_pack
from ..plugins import make_plugin_manager
from ._codec import inflate, trusted_roots
from ._format import RecordingError
from ._reader import Recording
from ._state import ZERO_PAGE, apply_layout, memory_digest, pages, register_values, restore_cpu

if TYPE_CHECKING:
    from ..session import Session


def _native_ranges(stored: bytes) -> bytes:
    """A recording's range set (little-endian uint64 pairs) as the machine's: native byte
    order, sorted and merged (a forged file cannot hand the search unsorted ranges)."""
    pairs = struct.iter_unpack("<QQ", stored)
    return ranges_pack(pairs)


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
        #: Decoded interval summaries by the index of the seed that starts the interval.
        self._summaries: dict[int, tuple[bytes, bytes] | None] = {}

    # -- interval summaries (indexed reverse search, format 3) ------------------------------
    def _summary(self, index: int) -> tuple[bytes, bytes] | None:
        """The summaries of the recorded interval [seed index, seed index + 1) as the
        machine's range sets (native byte order, sorted and merged), or None (unknown:
        the interval is a candidate). Decoded on first use."""
        if index + 1 >= len(self._seeds):
            return None
        cached = self._summaries.get(index)
        if cached is None and index not in self._summaries:
            raw = self.rec.summary(index + 1)
            cached = None if raw is None else (_native_ranges(raw[0]), _native_ranges(raw[1]))
            self._summaries[index] = cached
        return cached

    def narrow(self, low: int, end: int, may_hit: Callable[[bytes, bytes], bool]
               ) -> tuple[int | None, int, int, int]:
        """Where in ``[low, end)`` a backward search's hit can be, by the recorded interval
        summaries: the recorded intervals meeting it are asked newest first (``may_hit``
        with their code and write summaries) and the first that may hold a hit is the
        answer, clipped to ``[low, end)``: ``(start, stop, asked, excluded)``; ``start`` is
        None when every one is excluded. An interval without a summary may hold one."""
        seeds = self._seeds
        i = bisect.bisect_left(seeds, end) - 1  # the interval holding end - 1
        asked = excluded = 0
        while i >= 0:
            start = seeds[i]
            stop = seeds[i + 1] if i + 1 < len(seeds) else self.end
            asked += 1
            summary = self._summary(i)
            if summary is None or may_hit(*summary):
                return max(start, low), min(stop, end), asked, excluded
            excluded += 1
            if start <= low:
                break
            i -= 1
        return None, end, asked, excluded

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
            h = self.rec.checkpoint(index)
            size = (len(h["changed"]) - len(h["zero"])) * PAGE
            blob = inflate(self.rec.page_payload(index), size, f"checkpoint {index}'s pages")
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
            return ZERO_PAGE
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
        except (KeyError, TypeError, ValueError, AttributeError, IndexError,
                RecursionError) as exc:
            # The file's checksums held, so its contents were forged or written by a
            # broken recorder: still one clear error, never a traceback.
            raise RecordingError(f"{self.rec.path}: corrupted recording: checkpoint {index} "
                                 f"cannot be loaded ({type(exc).__name__}: {exc})") from None

    def _load_checkpoint(self, index: int) -> None:
        h = self.rec.checkpoint(index)
        m = self.machine
        apply_layout(m, [(int(a), int(n), int(p), str(name)) for a, n, p, name in h["layout"]])
        for addr, view in pages(m):
            want = self.page(addr, index)
            if want is not None and view != want:
                m.mem.write(addr, want)
        restore_cpu(m, h["cpu"])
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



# =========================================================================================
# the description must be the recorded start
# =========================================================================================
_AT_NULL, _AT_RANDOM, _AT_EXECFN = 0, 25, 31


def check_start(rec: Recording, session: Session) -> None:
    """The description's argv, environment, AT_RANDOM bytes and execfn must be those of the
    recorded initial stack (checkpoint 0, loaded): what `monitor recording` and the gdb
    session show cannot differ from what the program really got."""
    meta = rec.meta
    if meta["kind"] != "elf":
        return
    mem = session.machine.mem
    word = session.machine.arch.bits // 8

    def u(addr: int) -> int:
        return int.from_bytes(mem.read(addr, word), "little")

    def strings(addr: int, limit: int) -> tuple[list[bytes], int]:
        out: list[bytes] = []
        while (p := u(addr)) != 0:
            if len(out) >= limit:
                raise RecordingError(f"{rec.path}: corrupted recording: the initial stack "
                                     "has too many strings")
            out.append(mem.read_cstring(p))
            addr += word
        return out, addr + word

    sp = session.machine.regs.sp
    try:
        argc = u(sp)
        argv, at = strings(sp + word, argc + 1)
        envp, at = strings(at, len(meta["envp"]) + 1)
        aux: dict[int, int] = {}
        for _ in range(64):
            key, value = u(at), u(at + word)
            at += 2 * word
            if key == _AT_NULL:
                break
            aux[key] = value
        random = mem.read(aux[_AT_RANDOM], 16).hex() if _AT_RANDOM in aux else None
        execfn = mem.read_cstring(aux[_AT_EXECFN]) if _AT_EXECFN in aux else None
    except (SyxdbgError, KeyError) as exc:
        raise RecordingError(f"{rec.path}: corrupted recording: the recorded initial stack is "
                             f"unreadable "
                             f"({exc})") from None
    want = ([os.fsencode(a) for a in meta["argv"]], [os.fsencode(e) for e in meta["envp"]])
    wrong = [name for name, got, exp in (
        ("argv", argv, want[0]), ("environment", envp, want[1]),
        ("AT_RANDOM", random, meta.get("random")),
        ("execfn", execfn, os.fsencode(meta["execfn"]) if isinstance(meta.get("execfn"), str)
         else None)) if got != exp]
    if argc != len(argv):
        wrong.insert(0, "argc")
    if wrong:
        raise RecordingError(f"{rec.path}: corrupted recording: its description does not "
                             f"match the recorded start ({', '.join(wrong)} differ)")


# =========================================================================================
# opening a replay session
# =========================================================================================
def program_file(rec: Recording, keep: list[str]) -> str:
    """A path holding the recorded program: the original if it is unchanged, else a copy
    extracted to a private temporary directory (appended to ``keep``; removed with the
    session). The recorded path is only a hint: it must name a regular file with exactly
    the recorded contents (FIFOs and devices are not even opened for reading)."""
    path = str(rec.meta.get("path") or "")
    prog = rec.stored_program
    if path and prog.matches_file(path):
        return path
    tmp = tempfile.mkdtemp(prefix="syxdbg-replay-")
    keep.append(tmp)
    name = os.path.basename(path)
    if name in ("", ".", "..") or "\0" in name:
        name = "program"
    out = os.path.join(tmp, name)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o700)
    try:
        with os.fdopen(fd, "wb") as f:
            prog.write_to(f)
    except RecordingError as exc:
        raise RecordingError(f"{rec.path}: {exc}") from None
    except OSError as exc:
        raise RecordingError(f"{rec.path}: cannot extract the recorded program to {tmp} "
                             f"({exc.strerror})") from None
    return out


def interp_sysroot(rec: Recording, keep: list[str]) -> str | None:
    """A private sysroot holding only the recorded interpreter of a dynamic program, under
    its PT_INTERP name (extracted from the recording and checked against its digest; the
    directory is appended to ``keep``), or None for a static program. The libraries the
    guest opened while recorded come from the event log: a replay needs none of them."""
    stored = rec.stored_interp
    name = rec.interp_name
    if stored is None or name is None:
        return None
    root = tempfile.mkdtemp(prefix="syxdbg-replay-root-")
    keep.append(root)
    _extract_file(rec, root, name, stored, "interpreter", "interpreter")
    _extract_libraries(rec, root)
    return root


def _extract_libraries(rec: Recording, root: str) -> None:
    """The recorded libraries (``LIBS``), each at its guest path under ``root`` (checked
    against its digest; the paths were checked when read: absolute, no ``..``), so gdb and
    the shell find their symbols on a machine without them."""
    for name, stored in rec.libraries:
        if not os.path.lexists(_under(root, name)):  # else the interpreter, or done already
            _extract_file(rec, root, name, stored, "library", f"library {name}")


def _under(root: str, name: str) -> str:
    """Guest path ``name`` below ``root``."""
    return os.path.join(root, *[c for c in name.split("/") if c not in ("", ".")])


def _extract_file(rec: Recording, root: str, name: str, stored: Any, word: str,
                  what: str) -> None:
    """Write ``stored`` (checked against its digest while written) at guest path ``name``
    under ``root``: a new file, never outside ``root``, never through a symlink."""
    out = _under(root, name)
    try:
        os.makedirs(os.path.dirname(out), mode=0o700, exist_ok=True)
        if not os.path.realpath(out).startswith(os.path.realpath(root) + os.sep):
            raise RecordingError(f"{rec.path}: corrupted recording: malformed library "
                                 "list (LIBS)" if word == "library" else
                                 f"{rec.path}: corrupted recording: malformed {word} path")
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o700)
        with os.fdopen(fd, "wb") as f:
            stored.write_to(f)
    except RecordingError as exc:
        if str(exc).startswith(f"{rec.path}: "):
            raise
        raise RecordingError(f"{rec.path}: {str(exc).replace('program', word)}") from None
    except OSError as exc:
        raise RecordingError(f"{rec.path}: cannot extract the recorded {what} to {root} "
                             f"({exc.strerror})") from None


class RecordedHistory:
    """What a :class:`~syxdbg.session.Session` needs to replay a recording: passed as
    ``Session.open(..., history=...)``, which calls :meth:`attach` once the program is loaded
    and the plugins registered their states, and builds its timeline on the result."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording

    def attach(self, session: Session) -> tuple[ReplaySource, EventLog]:
        """Make ``session``'s machine and states the recorded initial state (checkpoint 0),
        checked against the recorded digests; returns the timeline's recorded source and
        event log."""
        rec = self.recording
        path = rec.path
        roots = trusted_roots(session.plugins)
        if roots != rec._trusted:  # a plugin registered while configuring: decode again
            rec = self.recording = Recording.parse(rec._data, path, trusted=roots)
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
        check_start(rec, session)
        return source, log


def _unicorn_version() -> str:
    try:
        return metadata.version("unicorn")
    except metadata.PackageNotFoundError:  # pragma: no cover - unicorn is a dependency
        return "?"


def open_replay(path: str, *, disable_plugins: Iterable[str] = (),
                options: dict[str, Any] | None = None,
                plugins: pluggy.PluginManager | None = None) -> Session:
    """A :class:`~syxdbg.session.Session` replaying recording ``path``.

    The program comes from the recording (the original file is used when unchanged, for
    its path in gdb); the initial state is the recording's checkpoint 0; the timeline's
    history is the recording: host inputs come from its event log, forward motion ends at
    its end (``replaylog:end``), writes are refused and re-execution is checked against
    its digests.
    """
    from ..session import Session

    pm = plugins if plugins is not None else make_plugin_manager(list(disable_plugins))
    rec = Recording.open(path, trusted=trusted_roots(pm))
    meta = rec.meta
    here = _unicorn_version()
    if meta.get("unicorn") != here:
        raise RecordingError(f"{path}: recorded with unicorn {meta.get('unicorn')}, this "
                             f"syxdbg runs unicorn {here}; replay needs the same emulator")
    cleanup: list[str] = []
    try:
        prog = program_file(rec, cleanup)
        sysroot = interp_sysroot(rec, cleanup)
        argv = list(meta["argv"])
        if meta["kind"] == "raw":
            load: dict[str, Any] = {"args": [], "arch": meta["arch"], "raw": True,
                                    "base": meta["base"], "entry": meta["entry"]}
        else:
            load = {"args": argv[1:], "arch": meta["arch"],
                    "env": dict(e.partition("=")[::2] for e in meta["envp"]),
                    "argv0": argv[0] if argv else None, "sysroot": sysroot}
        history = RecordedHistory(rec)
        args = load.pop("args")
        session = Session.open(prog, args, plugins=pm, history=history,
                               options={**(options or {}), "replay": True}, **load)
    except BaseException:
        for d in cleanup:
            shutil.rmtree(d, ignore_errors=True)
        raise
    session.temporary += cleanup
    return session
