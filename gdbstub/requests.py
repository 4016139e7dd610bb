"""Typed requests and the packet parser.

:func:`parse` turns a decoded packet body into one frozen request dataclass. The
:data:`PREFIX_TABLE` is grouped by capability: a packet whose capability the target lacks is
:class:`Unsupported` (empty reply), a packet with bad fields is :class:`Malformed` (``E01``).
:func:`parse` never raises. Packet formats: https://sourceware.org/gdb/current/onlinedocs/gdb/Packets.html
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .packet import hex_decode, hex_int
from .target import Cap, Capabilities, WatchKind

ALL_THREADS = -1
ANY_THREAD = 0


# --- base --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuerySupported:
    """``qSupported[:feature;...]``; ``features`` are GDB's (e.g. ``swbreak+``)."""

    features: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StartNoAckMode:
    """``QStartNoAckMode``."""


@dataclass(frozen=True, slots=True)
class QueryHaltReason:
    """``?``."""


@dataclass(frozen=True, slots=True)
class ReadFeatures:
    """``qXfer:features:read:ANNEX:OFFSET,LENGTH``."""

    annex: str
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class ReadObject:
    """``qXfer:OBJECT:read:ANNEX:OFFSET,LENGTH`` for the objects other than ``features``
    (``auxv``, ``exec-file``, ``libraries-svr4``)."""

    object: str
    annex: str
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class ReadRegisters:
    """``g``."""


@dataclass(frozen=True, slots=True)
class WriteRegisters:
    """``G<hex>``."""

    data: bytes


@dataclass(frozen=True, slots=True)
class ReadRegister:
    """``p<regnum>``."""

    regnum: int


@dataclass(frozen=True, slots=True)
class WriteRegister:
    """``P<regnum>=<hex>``."""

    regnum: int
    value: bytes


@dataclass(frozen=True, slots=True)
class ReadMemory:
    """``m<addr>,<length>``."""

    addr: int
    length: int


@dataclass(frozen=True, slots=True)
class WriteMemory:
    """``M<addr>,<length>:<hex>`` and ``X<addr>,<length>:<binary>``."""

    addr: int
    data: bytes


@dataclass(frozen=True, slots=True)
class SetThread:
    """``H<op><tid>`` (``op`` is ``g`` or ``c``); ``pid`` from a multiprocess id
    ``pPID.TID`` (None: none given, ``ALL_THREADS``: ``p-1``)."""

    op: str
    tid: int
    pid: int | None = None


@dataclass(frozen=True, slots=True)
class ThreadAlive:
    """``T<tid>`` (``pid`` as in :class:`SetThread`)."""

    tid: int
    pid: int | None = None


@dataclass(frozen=True, slots=True)
class CurrentThread:
    """``qC``."""


@dataclass(frozen=True, slots=True)
class ThreadInfoFirst:
    """``qfThreadInfo``."""


@dataclass(frozen=True, slots=True)
class ThreadInfoNext:
    """``qsThreadInfo``."""


@dataclass(frozen=True, slots=True)
class ThreadExtraInfo:
    """``qThreadExtraInfo,<tid>``."""

    tid: int


@dataclass(frozen=True, slots=True)
class QueryAttached:
    """``qAttached[:pid]``."""

    pid: int | None


@dataclass(frozen=True, slots=True)
class Kill:
    """``k``."""


@dataclass(frozen=True, slots=True)
class Detach:
    """``D[;pid]``."""

    pid: int | None


@dataclass(frozen=True, slots=True)
class PassSignals:
    """``QPassSignals:sig;sig...`` (hex gdb signal numbers)."""

    signals: frozenset[int]


@dataclass(frozen=True, slots=True)
class AttachProcess:
    """``vAttach;pid`` (multiprocess, extended-remote)."""

    pid: int


@dataclass(frozen=True, slots=True)
class KillProcess:
    """``vKill;pid`` (multiprocess)."""

    pid: int


@dataclass(frozen=True, slots=True)
class MustReplyEmpty:
    """``vMustReplyEmpty``: answered empty, like any unknown ``v`` packet."""


@dataclass(frozen=True, slots=True)
class TraceStatus:
    """``qTStatus``: no tracepoints, so answered empty."""


@dataclass(frozen=True, slots=True)
class SectionOffsets:
    """``qOffsets``: no relocation, so answered empty."""


@dataclass(frozen=True, slots=True)
class SymbolLookup:
    """``qSymbol:...``: the stub needs no symbols, so answered ``OK``."""


# --- run control -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Continue:
    """``c[addr]`` and ``C<sig>[;addr]``."""

    signal: int | None = None
    addr: int | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """``s[addr]`` and ``S<sig>[;addr]``."""

    signal: int | None = None
    addr: int | None = None


@dataclass(frozen=True, slots=True)
class VContQuery:
    """``vCont?``."""


@dataclass(frozen=True, slots=True)
class VContAction:
    """One ``vCont`` action: ``op`` in ``c s t r``; ``tid`` ``None`` means every thread."""

    op: str
    signal: int | None = None
    tid: int | None = None
    start: int = 0
    end: int = 0
    #: The process of a multiprocess id ``pPID.TID`` (None: none given).
    pid: int | None = None

    def applies_to(self, tid: int) -> bool:
        return self.tid in (None, ALL_THREADS, tid)


@dataclass(frozen=True, slots=True)
class VCont:
    """``vCont;action[:tid];...``."""

    actions: tuple[VContAction, ...]


@dataclass(frozen=True, slots=True)
class ReverseStepRequest:
    """``bs``."""


@dataclass(frozen=True, slots=True)
class ReverseContinueRequest:
    """``bc``."""


# --- breakpoints and monitor -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddBreakpoint:
    """``Z<type>,<addr>,<kind>``; ``type`` 0 sw, 1 hw, 2-4 watch (kind = length)."""

    type: int
    addr: int
    kind: int


@dataclass(frozen=True, slots=True)
class RemoveBreakpoint:
    """``z<type>,<addr>,<kind>``."""

    type: int
    addr: int
    kind: int


@dataclass(frozen=True, slots=True)
class MonitorCommand:
    """``qRcmd,<hex>``."""

    command: bytes


# --- outcomes of a failed parse ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Unsupported:
    """Unknown packet, or one whose capability the target lacks: empty reply."""

    packet: bytes


@dataclass(frozen=True, slots=True)
class Malformed:
    """A known packet with bad fields: ``E01`` reply."""

    packet: bytes
    reason: str


Request = (
    QuerySupported
    | StartNoAckMode
    | QueryHaltReason
    | ReadFeatures
    | ReadObject
    | ReadRegisters
    | WriteRegisters
    | ReadRegister
    | WriteRegister
    | ReadMemory
    | WriteMemory
    | SetThread
    | ThreadAlive
    | CurrentThread
    | ThreadInfoFirst
    | ThreadInfoNext
    | ThreadExtraInfo
    | QueryAttached
    | Kill
    | Detach
    | KillProcess
    | AttachProcess
    | PassSignals
    | MustReplyEmpty
    | TraceStatus
    | SectionOffsets
    | SymbolLookup
    | Continue
    | Step
    | VContQuery
    | VCont
    | ReverseStepRequest
    | ReverseContinueRequest
    | AddBreakpoint
    | RemoveBreakpoint
    | MonitorCommand
    | Unsupported
    | Malformed
)

_Parser = Callable[[bytes], Request]

# --- field parsers (raise ValueError; parse() turns that into Malformed) -----------------


def _split(args: bytes, sep: bytes, count: int) -> list[bytes]:
    parts = args.split(sep, count - 1)
    if len(parts) != count:
        raise ValueError(f"expected {count} fields separated by {sep!r}")
    return parts


def parse_thread_id(text: bytes) -> int:
    """``-1`` (all), ``0`` (any), a hex id, or multiprocess ``p<pid>.<tid>`` (tid kept)."""
    return parse_ptid(text)[1]


def parse_ptid(text: bytes) -> tuple[int | None, int]:
    """``(pid, tid)`` of a thread id: ``pid`` None without the multiprocess ``p<pid>.``
    prefix, ``ALL_THREADS`` for ``p-1``; ``tid`` ``ALL_THREADS`` for ``-1`` (and a bare
    ``p<pid>``: every thread of it), ``ANY_THREAD`` for ``0``."""
    pid: int | None = None
    if text.startswith(b"p"):
        ptext, dot, text = text[1:].partition(b".")
        pid = ALL_THREADS if ptext == b"-1" else hex_int(ptext)
        if not dot:
            return pid, ALL_THREADS
    if text == b"-1":
        return pid, ALL_THREADS
    return pid, hex_int(text)


#: Addresses (and lengths) are at most 64 bits: a larger value is a malformed field, not
#: something a target should ever see (a 65-bit breakpoint used to wedge every resume).
ADDRESS_LIMIT = 1 << 64


def hex_addr(text: bytes) -> int:
    """A hex address or length of at most 64 bits (``ValueError`` otherwise)."""
    value = hex_int(text)
    if value >= ADDRESS_LIMIT:
        raise ValueError(f"{text[:32]!r} does not fit in 64 bits")
    return value


def _addr_len(args: bytes) -> tuple[int, int]:
    addr, length = _split(args, b",", 2)
    return hex_addr(addr), hex_addr(length)


def _optional_hex(args: bytes) -> int | None:
    return hex_addr(args) if args else None


def _parse_m(args: bytes) -> Request:
    return ReadMemory(*_addr_len(args))


def _parse_M(args: bytes) -> Request:
    head, data = _split(args, b":", 2)
    addr, length = _addr_len(head)
    payload = hex_decode(data)
    if len(payload) != length:
        raise ValueError(f"M length {length} but {len(payload)} data bytes")
    return WriteMemory(addr, payload)


def _parse_X(args: bytes) -> Request:
    head, data = _split(args, b":", 2)
    addr, length = _addr_len(head)
    if len(data) != length:
        raise ValueError(f"X length {length} but {len(data)} data bytes")
    return WriteMemory(addr, data)


def _parse_p(args: bytes) -> Request:
    return ReadRegister(hex_int(args))


def _parse_P(args: bytes) -> Request:
    regnum, value = _split(args, b"=", 2)
    return WriteRegister(hex_int(regnum), hex_decode(value))


def _parse_G(args: bytes) -> Request:
    return WriteRegisters(hex_decode(args))


def _parse_H(args: bytes) -> Request:
    if len(args) < 2 or args[:1] not in (b"g", b"c"):
        raise ValueError("H needs g or c and a thread id")
    pid, tid = parse_ptid(args[1:])
    return SetThread(args[:1].decode(), tid, pid)


def _parse_T(args: bytes) -> Request:
    pid, tid = parse_ptid(args)
    return ThreadAlive(tid, pid)


def _parse_QPassSignals(args: bytes) -> Request:
    return PassSignals(frozenset(_signal(s) for s in args.split(b";") if s))


def _parse_vAttach(args: bytes) -> Request:
    return AttachProcess(hex_int(args))


def _parse_vKill(args: bytes) -> Request:
    return KillProcess(hex_int(args))


def _parse_qThreadExtraInfo(args: bytes) -> Request:
    return ThreadExtraInfo(parse_thread_id(args))


def _parse_qSupported(args: bytes) -> Request:
    if args and not args.startswith(b":"):
        raise ValueError("qSupported features must follow ':'")
    features = args[1:].split(b";") if args else []
    return QuerySupported(tuple(f.decode("latin-1") for f in features if f))


def _parse_qXfer_features(args: bytes) -> Request:
    annex, span = _split(args, b":", 2)
    offset, length = _addr_len(span)
    return ReadFeatures(annex.decode("latin-1"), offset, length)


def _xfer_parser(obj: str) -> _Parser:
    def parse(args: bytes) -> Request:
        annex, span = _split(args, b":", 2)
        offset, length = _addr_len(span)
        if obj == "exec-file" and annex:
            hex_int(annex)  # the pid
        elif obj == "libraries-svr4":
            svr4_annex(annex.decode("latin-1"))
        elif obj in ("auxv", "threads") and annex:
            raise ValueError(f"qXfer:{obj} takes no annex")
        return ReadObject(obj, annex.decode("latin-1"), offset, length)

    return parse


def svr4_annex(annex: str) -> dict[str, int | None]:
    """``start=ADDR;prev=ADDR[;lmid=ADDR]`` (gdb's incremental link-map read): the hex
    values by name (``None`` when empty); unknown names are ignored, bad hex is malformed."""
    out: dict[str, int | None] = {}
    for part in annex.split(";"):
        if not part:
            continue
        name, eq, value = part.partition("=")
        if not eq:
            raise ValueError(f"bad libraries-svr4 annex field {part[:32]!r}")
        out[name] = hex_int(value.encode("latin-1")) if value else None
    return out


def _parse_qAttached(args: bytes) -> Request:
    if args and not args.startswith(b":"):
        raise ValueError("qAttached pid must follow ':'")
    return QueryAttached(hex_int(args[1:]) if args else None)


def _parse_D(args: bytes) -> Request:
    if args and not args.startswith(b";"):
        raise ValueError("D pid must follow ';'")
    return Detach(hex_int(args[1:]) if args else None)


def _parse_qRcmd(args: bytes) -> Request:
    return MonitorCommand(hex_decode(args))


def _signal_and_addr(args: bytes) -> tuple[int, int | None]:
    sig, _, addr = args.partition(b";")
    return _signal(sig), _optional_hex(addr)


def _signal(text: bytes) -> int:
    """A signal number: two hex digits in practice; anything beyond a byte is malformed."""
    value = hex_int(text)
    if value > 0xFF:
        raise ValueError(f"signal {text[:32]!r} out of range")
    return value


def _parse_c(args: bytes) -> Request:
    return Continue(addr=_optional_hex(args))


def _parse_C(args: bytes) -> Request:
    return Continue(*_signal_and_addr(args))


def _parse_s(args: bytes) -> Request:
    return Step(addr=_optional_hex(args))


def _parse_S(args: bytes) -> Request:
    return Step(*_signal_and_addr(args))


def _parse_vcont_action(text: bytes) -> VContAction:
    body, colon, tid_text = text.partition(b":")
    pid, tid = parse_ptid(tid_text) if colon else (None, None)
    op, arg = body[:1], body[1:]
    if op in (b"c", b"s", b"t") and not arg:
        return VContAction(op.decode(), tid=tid, pid=pid)
    if op in (b"C", b"S"):
        return VContAction(op.lower().decode(), signal=_signal(arg), tid=tid, pid=pid)
    if op == b"r":
        start, end = _split(arg, b",", 2)
        return VContAction("r", tid=tid, start=hex_addr(start), end=hex_addr(end), pid=pid)
    raise ValueError(f"bad vCont action {text[:32]!r}")


def _parse_vCont(args: bytes) -> Request:
    actions = tuple(_parse_vcont_action(a) for a in args.split(b";"))
    return VCont(actions)


def _breakpoint_parser(cls: type[AddBreakpoint] | type[RemoveBreakpoint], bp_type: int) -> _Parser:
    def parse(args: bytes) -> Request:
        # "Z0,addr,kind[;cond...]": conditions are only sent if negotiated; ignore them.
        if not args.startswith(b","):
            raise ValueError("breakpoint type must be followed by ','")
        addr, kind = _addr_len(args[1:].split(b";", 1)[0])
        if bp_type >= WatchKind.WRITE.value and addr + kind > ADDRESS_LIMIT:
            raise ValueError("watched range goes beyond the 64-bit address space")
        return cls(bp_type, addr, kind)

    return parse


def _exact(request: Request) -> _Parser:
    def parse(args: bytes) -> Request:
        return request  # only called on an exact match

    return parse


@dataclass(frozen=True, slots=True)
class PrefixEntry:
    """A table row: ``prefix`` matches exactly if ``exact`` else as a prefix."""

    prefix: bytes
    parse: _Parser
    exact: bool = False


def _z_entries(types: tuple[int, ...]) -> tuple[PrefixEntry, ...]:
    return tuple(
        PrefixEntry(letter + b"%d" % t, _breakpoint_parser(cls, t))
        for t in types
        for letter, cls in ((b"Z", AddBreakpoint), (b"z", RemoveBreakpoint))
    )


# Grouped by the capability that enables them; ``None`` rows are always parsed.
PREFIX_TABLE: dict[Cap | None, tuple[PrefixEntry, ...]] = {
    None: (
        PrefixEntry(b"qSupported", _parse_qSupported),
        PrefixEntry(b"QStartNoAckMode", _exact(StartNoAckMode()), exact=True),
        PrefixEntry(b"?", _exact(QueryHaltReason()), exact=True),
        PrefixEntry(b"qXfer:features:read:", _parse_qXfer_features),
        PrefixEntry(b"g", _exact(ReadRegisters()), exact=True),
        PrefixEntry(b"G", _parse_G),
        PrefixEntry(b"p", _parse_p),
        PrefixEntry(b"P", _parse_P),
        PrefixEntry(b"m", _parse_m),
        PrefixEntry(b"M", _parse_M),
        PrefixEntry(b"X", _parse_X),
        PrefixEntry(b"H", _parse_H),
        PrefixEntry(b"T", _parse_T),
        PrefixEntry(b"qC", _exact(CurrentThread()), exact=True),
        PrefixEntry(b"qfThreadInfo", _exact(ThreadInfoFirst()), exact=True),
        PrefixEntry(b"qsThreadInfo", _exact(ThreadInfoNext()), exact=True),
        PrefixEntry(b"qAttached", _parse_qAttached),
        PrefixEntry(b"k", _exact(Kill()), exact=True),
        PrefixEntry(b"D", _parse_D),
        PrefixEntry(b"vMustReplyEmpty", _exact(MustReplyEmpty()), exact=True),
        PrefixEntry(b"qTStatus", _exact(TraceStatus()), exact=True),
        PrefixEntry(b"qOffsets", _exact(SectionOffsets()), exact=True),
        PrefixEntry(b"qSymbol:", _exact(SymbolLookup())),
    ),
    Cap.RESUME: (
        PrefixEntry(b"c", _parse_c),
        PrefixEntry(b"C", _parse_C),
        PrefixEntry(b"s", _parse_s),
        PrefixEntry(b"S", _parse_S),
        PrefixEntry(b"vCont?", _exact(VContQuery()), exact=True),
        PrefixEntry(b"vCont;", _parse_vCont),
    ),
    Cap.REVERSE_STEP: (PrefixEntry(b"bs", _exact(ReverseStepRequest()), exact=True),),
    Cap.REVERSE_CONTINUE: (PrefixEntry(b"bc", _exact(ReverseContinueRequest()), exact=True),),
    Cap.SW_BREAK: _z_entries((0,)),
    Cap.HW_BREAK: _z_entries((1,)),
    Cap.WATCH: _z_entries(tuple(k.value for k in WatchKind)),
    Cap.MONITOR: (PrefixEntry(b"qRcmd,", _parse_qRcmd),),
    Cap.AUXV: (PrefixEntry(b"qXfer:auxv:read:", _xfer_parser("auxv")),),
    Cap.EXEC_FILE: (PrefixEntry(b"qXfer:exec-file:read:", _xfer_parser("exec-file")),),
    Cap.LIBRARIES_SVR4: (
        PrefixEntry(b"qXfer:libraries-svr4:read:", _xfer_parser("libraries-svr4")),
    ),
    Cap.THREADS: (
        PrefixEntry(b"qXfer:threads:read:", _xfer_parser("threads")),
        PrefixEntry(b"qThreadExtraInfo,", _parse_qThreadExtraInfo),
    ),
    Cap.PROCESSES: (PrefixEntry(b"vKill;", _parse_vKill),
                    PrefixEntry(b"vAttach;", _parse_vAttach)),
    Cap.PASS_SIGNALS: (PrefixEntry(b"QPassSignals:", _parse_QPassSignals),),
}


class Parser:
    """The prefix table filtered by one :class:`Capabilities` value, longest prefix first."""

    def __init__(self, caps: Capabilities) -> None:
        rows = [
            row
            for cap, group in PREFIX_TABLE.items()
            if cap is None or caps.has(cap)
            for row in group
        ]
        self._rows = sorted(rows, key=lambda r: len(r.prefix), reverse=True)
        # The same rows, longest prefix first, by first byte (a stepi parses in a few tries).
        self._by_first: dict[int, list[PrefixEntry]] = {}
        for row in self._rows:
            self._by_first.setdefault(row.prefix[0], []).append(row)
        self._range_step = caps.has(Cap.RANGE_STEP)
        #: Requests are immutable: a packet seen again (gdb's stepi sends the same
        #: ``vCont;s:TID;c`` and the same stack ``m`` read every time) is parsed once.
        self._seen: dict[bytes, Request] = {}

    #: Longest packet kept in the parse cache, and how many are kept.
    _CACHED_SIZE = 64
    _CACHED_COUNT = 256

    def parse(self, packet: bytes) -> Request:
        request = self._seen.get(packet)
        if request is not None:
            return request
        request = self._parse_new(packet)
        if len(packet) <= self._CACHED_SIZE:
            if len(self._seen) >= self._CACHED_COUNT:
                self._seen.clear()
            self._seen[bytes(packet)] = request
        return request

    def _parse_new(self, packet: bytes) -> Request:
        request = self._parse(packet)
        if (
            isinstance(request, VCont)
            and not self._range_step
            and any(a.op == "r" for a in request.actions)
        ):
            # Range stepping is a target capability (RangeStepping): vCont? did not offer it.
            return Unsupported(packet)
        return request

    def _parse(self, packet: bytes) -> Request:
        for row in self._by_first.get(packet[0], ()) if packet else self._rows:
            if row.exact:
                if packet == row.prefix:
                    return row.parse(b"")
            elif packet.startswith(row.prefix):
                try:
                    return row.parse(packet[len(row.prefix) :])
                except ValueError as exc:
                    return Malformed(packet, str(exc))
        return Unsupported(packet)


def parse(packet: bytes, caps: Capabilities) -> Request:
    """Parse one decoded packet body (convenience wrapper around :class:`Parser`)."""
    return Parser(caps).parse(packet)
