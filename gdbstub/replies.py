"""Reply encoders: stop replies, ``qSupported``, ``vCont?``, ``qXfer`` chunks, errors.

:func:`stop_reply` is the single boundary where a :data:`~gdbstub.target.StopReason` becomes a
stop-reply packet, and where its legality is checked against the :class:`Capabilities` and
what GDB offered in ``qSupported``. Format:
https://sourceware.org/gdb/current/onlinedocs/gdb/Stop-Reply-Packets.html
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from xml.sax.saxutils import escape as xml_escape

from .packet import hex_encode
from .target import (
    SIGTRAP,
    Cap,
    Capabilities,
    Execd,
    Exited,
    Forked,
    HwBreak,
    LinkMap,
    ReplayLogBegin,
    ReplayLogEnd,
    Signal,
    StopReason,
    SwBreak,
    Terminated,
    ThreadInfo,
    VforkDone,
    Watch,
    WatchKind,
)

log = logging.getLogger("gdbstub")

OK = b"OK"
EMPTY = b""
THREAD_ID = 1  # single-threaded: the one thread is always 1

# Error numbers used in ``E<nn>`` replies (GDB does not interpret them).
E_MALFORMED = 0x01
E_IO = 0x05
E_FAULT = 0x14  # memory access failed (QEMU's and gdbserver's customary "E14")
E_INVALID = 0x16

#: Features a :class:`~gdbstub.target.Processes` target offers only when gdb does.
PROCESS_FEATURES = ("multiprocess+", "fork-events+", "vfork-events+", "exec-events+")

_WATCH_NAMES = {WatchKind.WRITE: "watch", WatchKind.READ: "rwatch", WatchKind.ACCESS: "awatch"}


def error(errno: int) -> bytes:
    return b"E%02x" % (errno & 0xFF)


def supported_features(caps: Capabilities, packet_size: int,
                       gdb_features: frozenset[str] | set[str] = frozenset()) -> bytes:
    """The ``qSupported`` reply: advertises exactly what ``caps`` enables.

    ``swbreak+``/``hwbreak+`` are only advertised when GDB offered them too (they are only
    meaningful, and only ever sent as stop reasons, when both sides agree).
    """
    features = [f"PacketSize={packet_size:x}", "QStartNoAckMode+", "qXfer:features:read+"]
    optional = (
        (Cap.RESUME, "vContSupported+"),
        (Cap.SW_BREAK, "swbreak+"),
        (Cap.HW_BREAK, "hwbreak+"),
        (Cap.REVERSE_STEP, "ReverseStep+"),
        (Cap.REVERSE_CONTINUE, "ReverseContinue+"),
        (Cap.AUXV, "qXfer:auxv:read+"),
        (Cap.EXEC_FILE, "qXfer:exec-file:read+"),
        (Cap.LIBRARIES_SVR4, "qXfer:libraries-svr4:read+"),
        (Cap.THREADS, "qXfer:threads:read+"),
        (Cap.PROCESSES, "multiprocess+"),
        (Cap.PROCESSES, "fork-events+"),
        (Cap.PROCESSES, "vfork-events+"),
        (Cap.PROCESSES, "exec-events+"),
        (Cap.PASS_SIGNALS, "QPassSignals+"),
    )
    negotiated = {"swbreak+", "hwbreak+", *PROCESS_FEATURES}
    if "multiprocess+" not in gdb_features:  # (process events name pPID.TID threads)
        gdb_features = set(gdb_features) - set(PROCESS_FEATURES)
    features += [name for cap, name in optional
                 if caps.has(cap) and (name not in negotiated or name in gdb_features)]
    return ";".join(features).encode()


def vcont_actions(caps: Capabilities) -> bytes:
    """The ``vCont?`` reply.

    NOTE(gdb): ``remote_vcont_probe`` ignores vCont unless both ``c`` and ``C`` are listed.
    """
    actions = [b"vCont", b"c", b"C", b"s", b"S"]
    if caps.has(Cap.RANGE_STEP):
        actions.append(b"r")
    return b";".join(actions)


def xfer_chunk(data: bytes, offset: int, length: int) -> bytes:
    """A ``qXfer`` read reply: ``m<chunk>`` if more follows, ``l<chunk>`` for the last one."""
    chunk = data[offset : offset + length]
    more = offset + length < len(data) and length > 0
    return (b"m" if more else b"l") + chunk


def library_list_svr4(link_map: LinkMap) -> bytes:
    """The ``qXfer:libraries-svr4:read`` document (gdb.texinfo, "Library List Format for
    SVR4 Targets"; the attributes gdbserver's ``linux-low.cc`` sends)."""
    head = '<library-list-svr4 version="1.0"'
    if link_map.main_lm is not None:
        head += f' main-lm="{link_map.main_lm:#x}"'
    if not link_map.libraries:
        return (head + "/>").encode()
    rows = [
        f'<library name="{xml_escape(lib.name, _XML_ATTR)}" lm="{lib.lm:#x}"'
        f' l_addr="{lib.l_addr:#x}" l_ld="{lib.l_ld:#x}" lmid="{lib.lmid:#x}"/>'
        for lib in link_map.libraries
    ]
    return (head + ">" + "".join(rows) + "</library-list-svr4>").encode()


_XML_ATTR = {'"': "&quot;", "'": "&apos;"}


def thread_id(tid: int, pid: int | None = None) -> str:
    """A thread id as gdb reads it: ``TID`` in hex, or ``pPID.TID`` (multiprocess)."""
    return f"{tid:x}" if pid is None else f"p{pid:x}.{tid:x}"


def thread_list(threads: Iterable[ThreadInfo],
                pid_of: Callable[[int], int | None] = lambda tid: None) -> bytes:
    """The ``qXfer:threads:read`` document (gdb.texinfo, "Thread List Format");
    ``pid_of(tid)``: the process of a thread for multiprocess ids (None: plain ids)."""
    rows = []
    for t in threads:
        name = f' name="{xml_escape(t.name, _XML_ATTR)}"' if t.name else ""
        rows.append(f'<thread id="{thread_id(t.tid, pid_of(t.tid))}" core="0"{name}>'
                    f'{xml_escape(t.extra)}</thread>')
    return ('<?xml version="1.0"?>\n<threads>' + "".join(rows) + "</threads>").encode()


def stop_reason_field(reason: StopReason, caps: Capabilities, gdb_features: set[str]) -> str:
    """The ``name:value;`` stop-reason field of a ``T`` reply, or ``""`` if none is legal.

    A reason the target cannot legally report (GDB did not offer ``swbreak+``, or the target
    lacks the capability) degrades to a plain ``T05`` and is logged: GDB works it out itself,
    whereas an unexpected field makes it raise an error.
    """
    if isinstance(reason, SwBreak):
        field, legal = "swbreak:;", caps.has(Cap.SW_BREAK) and "swbreak+" in gdb_features
    elif isinstance(reason, HwBreak):
        field, legal = "hwbreak:;", caps.has(Cap.HW_BREAK) and "hwbreak+" in gdb_features
    elif isinstance(reason, Watch):
        field, legal = f"{_WATCH_NAMES[reason.kind]}:{reason.addr:x};", caps.has(Cap.WATCH)
    elif isinstance(reason, ReplayLogBegin):
        field, legal = "replaylog:begin;", caps.reverse
    elif isinstance(reason, ReplayLogEnd):
        field, legal = "replaylog:end;", caps.reverse
    elif isinstance(reason, Forked):
        kind = "vfork" if reason.vfork else "fork"
        field = f"{kind}:{thread_id(reason.thread, reason.child)};"
        legal = caps.has(Cap.PROCESSES) and {"multiprocess+", f"{kind}-events+"} <= gdb_features
    elif isinstance(reason, VforkDone):
        field = "vforkdone:;"
        legal = caps.has(Cap.PROCESSES) and "vfork-events+" in gdb_features
    elif isinstance(reason, Execd):
        field = f"exec:{hex_encode(reason.path.encode()).decode()};"
        legal = caps.has(Cap.PROCESSES) and "exec-events+" in gdb_features
    else:
        return ""
    if not legal:
        log.warning("stop reason %r is not legal here; reporting a plain stop", reason)
        return ""
    return field


def stop_reply(
    reason: StopReason,
    caps: Capabilities,
    gdb_features: set[str],
    expedited: Iterable[tuple[int, bytes]] = (),
    thread: int = THREAD_ID,
    pid: int | None = None,
) -> bytes:
    """Translate a stop reason into ``T``/``W``/``X`` stop-reply payload bytes.

    ``expedited`` holds ``(regnum, value)`` pairs (target byte order) to include in ``T``
    replies, saving GDB a ``g`` round trip at every stop; ``thread`` is the thread that
    stopped (gdb switches to it), ``pid`` its process when gdb uses multiprocess ids
    (``thread:pPID.TID``, ``W..;process:PID``).
    """
    if isinstance(reason, Exited | Terminated):
        code = reason.status if isinstance(reason, Exited) else reason.signal
        head = b"W%02x" % (code & 0xFF) if isinstance(reason, Exited) else b"X%02x" % (
            code & 0xFF)
        which = reason.pid if reason.pid is not None else pid
        return head if pid is None or which is None else head + b";process:%x" % which
    signal = reason.signal if isinstance(reason, Signal) else SIGTRAP
    parts = [f"T{signal & 0xFF:02x}", stop_reason_field(reason, caps, gdb_features)]
    parts += [f"{regnum:x}:{hex_encode(value).decode()};" for regnum, value in expedited]
    parts.append(f"thread:{thread_id(thread, pid)};")
    return "".join(parts).encode()
