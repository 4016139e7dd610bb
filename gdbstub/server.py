"""The stub: request dispatch, the Idle/Running run loop, and a TCP server.

:class:`GdbStub` owns one target and its probed :class:`Capabilities`; it outlives connections.
Each connection is a :class:`Session` that reads events, parses requests, and dispatches them
through :data:`HANDLERS` (one function per request type). A resume request moves the session to
the Running state, where the stub calls ``target.run_chunk`` in bounded chunks and polls the
connection for 0x03 between chunks; that is how Ctrl-C works in a single thread.
:class:`GdbServer` accepts TCP connections one at a time.
"""

from __future__ import annotations

import enum
import errno
import logging
import queue
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from . import requests as rq
from .connection import TcpTransport, Transport
from .packet import (
    Ack,
    Corrupt,
    Event,
    Interrupt,
    Nack,
    Packet,
    PacketReader,
    encode_packet,
    hex_encode,
)
from .replies import (
    E_FAULT,
    E_INVALID,
    E_IO,
    E_MALFORMED,
    EMPTY,
    OK,
    THREAD_ID,
    error,
    library_list_svr4,
    stop_reply,
    supported_features,
    thread_id,
    thread_list,
    vcont_actions,
    xfer_chunk,
)
from .target import (
    SIGINT,
    SIGTRAP,
    Auxv,
    BaseTarget,
    Cap,
    Capabilities,
    ConsoleOutput,
    ExecFile,
    Exited,
    HwBreakpoints,
    Interruptible,
    Killable,
    LibrariesSvr4,
    MonitorCmd,
    Processes,
    RangeStepping,
    ResumeAction,
    ResumeKind,
    ResumeTarget,
    ReverseContinue,
    ReverseStep,
    Signal,
    SignalPassing,
    StopReason,
    SwBreakpoints,
    TargetError,
    Terminated,
    Threads,
    WatchKind,
    Watchpoints,
)

log = logging.getLogger("gdbstub")

DEFAULT_PACKET_SIZE = 0x4000
DEFAULT_CHUNK_SECONDS = 0.05
#: A connection that sends no valid packet within this many seconds of being accepted is
#: dropped, so a silent client cannot hold the one session slot (gdb speaks at once).
DEFAULT_IDLE_TIMEOUT = 10.0
#: How long a connection that arrives while another is served may wait for the session to
#: end (a gdb reconnecting right after a disconnect the server has not yet noticed) before
#: it is refused. One such connection waits at a time; others are refused at once.
BUSY_GRACE_SECONDS = 1.0
#: How long a refused second client is kept to read its greeting before the socket closes
#: (closing with unread input would reset the connection and lose the refusal message).
REFUSAL_LINGER_SECONDS = 1.0
#: At most this many refused sockets linger at once; older ones are closed at once.
MAX_LINGERING = 16
#: The reply a second client gets (gdb prints "Remote failure reply: E.…") before the close.
BUSY_REPLY = b"E.busy: another client is already connected to this gdbstub server"


class SessionEnd(enum.Enum):
    """Why a connection ended."""

    DISCONNECTED = "disconnected"  # GDB went away (possibly mid-run); target kept
    DETACHED = "detached"  # ``D``; target kept
    KILLED = "killed"  # ``k``; the server stops serving
    CLOSED = "closed"  # GdbServer.close()
    IDLE = "idle"  # no packet within the idle timeout of the connection; target kept


class GdbStub:
    """Protocol engine for one target. State here survives reconnections."""

    def __init__(
        self,
        target: BaseTarget,
        *,
        packet_size: int = DEFAULT_PACKET_SIZE,
        chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
    ) -> None:
        self.target = target
        self.caps = Capabilities.probe(target)
        self.parser = rq.Parser(self.caps)
        self.packet_size = packet_size
        self.chunk_seconds = chunk_seconds
        #: Seconds a new connection may stay silent (no valid packet) before it is dropped;
        #: ``None`` waits forever. Once a packet has arrived, the session never times out.
        self.idle_timeout = idle_timeout
        self.last_stop: StopReason = Signal(SIGTRAP)
        # Addresses of the Z0 (sw) and Z1 (hw) breakpoints the target accepted (a mirror of
        # gdb's view, for introspection; the target owns the real ones).
        self.breakpoints: dict[int, set[int]] = {0: set(), 1: set()}

    def serve_connection(self, transport: Transport) -> SessionEnd:
        """Serve one GDB connection until it ends; the transport is not closed."""
        return Session(self, transport).run()


# --- session state -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Running:
    """The Running state: the target has a recorded move; drive it until it stops."""


@dataclass(frozen=True, slots=True)
class EndSession:
    reason: SessionEnd
    reply: bytes | None = None


Outcome = bytes | Running | EndSession


class _Disconnected(Exception):
    pass


class _IdleTimeout(enum.Enum):
    IDLE = enum.auto()


_IDLE = _IdleTimeout.IDLE


class _Poll(enum.Enum):
    QUIET = enum.auto()
    INTERRUPTED = enum.auto()
    EOF = enum.auto()


class Session:
    """One GDB connection: framing, ack mode, negotiated features, Idle/Running state."""

    def __init__(self, stub: GdbStub, transport: Transport) -> None:
        self.stub = stub
        self.target = stub.target
        self.caps = stub.caps
        # Asked at every stop: computed once per connection.
        self._console = self.caps.has(Cap.CONSOLE)
        self._expedited = self.caps.arch.expedited()
        self.transport = transport
        self.reader = PacketReader(stub.packet_size)
        self.events: deque[Event] = deque()
        self.no_ack = False
        self.gdb_features: set[str] = set()
        #: The thread ``Hc`` chose (``None``: any): ``s``/``c`` without vCont are for it.
        self.continue_thread: int | None = None
        self._threads = self.caps.has(Cap.THREADS)
        #: gdb and the target agreed on multiprocess ids (``pPID.TID``; qSupported).
        self.multiprocess = False
        self._last_frame: bytes | None = None
        timeout = stub.idle_timeout
        # Until the first valid packet, the connection must speak by this time.
        self._silent_until = None if timeout is None else time.monotonic() + timeout

    # -- event loop (Idle state) --

    def run(self) -> SessionEnd:
        try:
            while True:
                event = self._next_event()
                if event is None:
                    return SessionEnd.DISCONNECTED
                if event is _IDLE:
                    log.info("dropping a connection that sent no packet in %g s",
                             self.stub.idle_timeout)
                    return SessionEnd.IDLE
                end = self._on_event(event)
                if end is not None:
                    return end
        except _Disconnected:
            return SessionEnd.DISCONNECTED

    def _next_event(self) -> Event | _IdleTimeout | None:
        while not self.events:
            timeout = None
            if self._silent_until is not None:
                timeout = max(0.0, self._silent_until - time.monotonic())
            data = self._recv(timeout)
            if data is None:
                if self._silent_until is not None and time.monotonic() >= self._silent_until:
                    return _IDLE
                continue
            if not data:
                return None
            self.events.extend(self.reader.feed(data))
        return self.events.popleft()

    def _recv(self, timeout: float | None) -> bytes | None:
        try:
            return self.transport.recv(timeout)
        except OSError as exc:
            raise _Disconnected from exc

    def _on_event(self, event: Event) -> SessionEnd | None:
        if isinstance(event, Packet):
            if not self.no_ack:
                self._send_raw(b"+")
            return self.handle_packet(event.data)
        if isinstance(event, Corrupt):
            log.debug("corrupt packet: %s", event.reason)
            if not self.no_ack:
                self._send_raw(b"-")
            elif event.data is not None:
                # NOTE(gdb): without acks there is no retransmission; gdbserver assumes the
                # packet is valid despite the checksum, and so do we.
                return self.handle_packet(event.data)
        elif isinstance(event, Nack) and self._last_frame is not None and not self.no_ack:
            self._send_raw(self._last_frame)
        elif isinstance(event, Interrupt):
            log.debug("interrupt while idle ignored")
        return None  # Ack, or nothing to do

    def handle_packet(self, data: bytes) -> SessionEnd | None:
        """Parse and dispatch one packet body, send its reply; report if the session ends."""
        self._silent_until = None  # it spoke: no idle timeout from now on
        outcome = self.dispatch(self.stub.parser.parse(data))
        if isinstance(outcome, Running):
            outcome = self._drive(outcome)
        if isinstance(outcome, EndSession):
            if outcome.reply is not None:
                self.send_packet(outcome.reply)
            return outcome.reason
        self.send_packet(outcome)
        return None

    def dispatch(self, request: rq.Request) -> Outcome:
        """Run the handler for ``request``; target failures become ``E`` replies."""
        handler = HANDLERS[type(request)]
        try:
            return handler(self, request)
        except TargetError as exc:
            log.debug("%r failed: %s", request, exc)
            return error(exc.errno)
        except _Disconnected:
            raise
        except Exception as exc:
            target_failed(f"handling {_describe(request)}", exc)
            return error(E_FAULT if isinstance(request, _MEMORY_REQUESTS) else E_IO)

    # -- output --

    def send_packet(self, payload: bytes) -> None:
        frame = encode_packet(payload)
        self._last_frame = frame
        self._send_raw(frame)

    def _send_raw(self, data: bytes) -> None:
        try:
            self.transport.send(data)
        except OSError as exc:
            raise _Disconnected from exc

    def console_output(self, text: str) -> None:
        """Send ``O<hex>`` console output (``qRcmd`` replies)."""
        if text:
            self.send_packet(b"O" + hex_encode(text.encode()))

    # -- Running state --

    def _drive(self, running: Running) -> bytes | EndSession:
        """Run the target in chunks until it stops, polling for Ctrl-C between chunks."""
        target = cast(ResumeTarget, self.target)
        try:
            while True:
                self._target_output()
                reason = target.run_chunk(time.monotonic() + self.stub.chunk_seconds)
                if reason is not None:
                    break
                poll = self._poll()
                if poll is _Poll.INTERRUPTED:
                    reason = self._interrupt()
                    break
                if poll is _Poll.EOF:
                    self.stub.last_stop = self._interrupt()
                    return EndSession(SessionEnd.DISCONNECTED)
        except _Disconnected:
            self.stub.last_stop = self._interrupt()
            raise
        except Exception as exc:
            target_failed("running", exc)
            self.stub.last_stop = Signal(SIGTRAP)
            return error(E_IO)
        self._target_output()
        self.stub.last_stop = reason
        return self.stop_reply(reason)

    def _target_output(self) -> None:
        """Send what a :class:`ConsoleOutput` target has to say (``O`` packets)."""
        if not self._console:
            return
        try:
            text = cast(ConsoleOutput, self.target).take_console_output()
        except Exception as exc:
            target_failed("take_console_output()", exc)
            return
        self.console_output(text)

    def _poll(self) -> _Poll:
        """Non-blocking check for 0x03. Other events wait until the target stops."""
        data = self._recv(0)
        if data == b"":
            return _Poll.EOF
        if data:
            self.events.extend(self.reader.feed(data))
        interrupted = any(isinstance(e, Interrupt) for e in self.events)
        # Acks seen while running refer to packets already handled; replaying a stale '-'
        # after the stop would resend the stop reply.
        self.events = deque(e for e in self.events if not isinstance(e, Interrupt | Ack | Nack))
        return _Poll.INTERRUPTED if interrupted else _Poll.QUIET

    def run_monitor(self, command: str) -> Outcome:
        """Run a ``qRcmd`` on a worker thread, polling the connection for 0x03 meanwhile.

        A monitor command can move the target for a long time (``monitor goto``); like a
        resume, it must be interruptible. The command's output goes through a queue and is
        sent from this thread as ``O`` packets as it comes (all socket I/O stays here). On
        0x03 the target's ``interrupt()`` is called and the command is waited for; if the
        client goes away, the same, and the session ends.
        """
        output: queue.SimpleQueue[str] = queue.SimpleQueue()
        done = threading.Event()
        failure: list[BaseException] = []

        def work() -> None:
            try:
                cast(MonitorCmd, self.target).monitor_command(command, output.put)
            except BaseException as exc:  # re-raised on the stub's thread below
                failure.append(exc)
            finally:
                done.set()

        worker = threading.Thread(target=work, name="gdbstub-monitor", daemon=True)
        worker.start()
        interrupted = False
        try:
            while not done.wait(min(self.stub.chunk_seconds, 0.05)):
                self._send_output(output)
                poll = self._poll()
                if poll is _Poll.EOF:
                    self._interrupt()
                    done.wait()
                    return EndSession(SessionEnd.DISCONNECTED)
                if poll is _Poll.INTERRUPTED and not interrupted:
                    interrupted = True
                    self._interrupt()
        except _Disconnected:
            self._interrupt()
            done.wait()
            raise
        worker.join()
        self._send_output(output)
        if failure:
            raise failure[0]  # dispatch() turns it into an E reply
        return OK

    def _send_output(self, output: queue.SimpleQueue[str]) -> None:
        while True:
            try:
                text = output.get_nowait()
            except queue.Empty:
                return
            self.console_output(text)

    def _interrupt(self) -> StopReason:
        if self.caps.has(Cap.INTERRUPT):
            try:
                cast(Interruptible, self.target).interrupt()
            except Exception as exc:
                target_failed("interrupt()", exc)
        return Signal(SIGINT)

    # -- helpers for handlers --

    def stop_reply(self, reason: StopReason) -> bytes:
        expedited: list[tuple[int, bytes]] = []
        if not isinstance(reason, _EXIT_REASONS):
            for regnum in self._expedited:
                try:
                    value = self.target.read_register(regnum)
                except Exception as exc:
                    target_failed(f"reading expedited register {regnum}", exc)
                    continue
                if value:
                    expedited.append((regnum, value))
        thread = self.current_thread()
        return stop_reply(reason, self.caps, self.gdb_features, expedited, thread,
                          self.pid_of(thread))

    def pid_of(self, tid: int) -> int | None:
        """The process of thread ``tid`` when gdb uses multiprocess ids, else None."""
        if not self.multiprocess:
            return None
        try:
            return cast(Processes, self.target).process_of(tid)
        except Exception as exc:
            target_failed(f"process_of({tid})", exc)
            return tid

    def ptid(self, tid: int) -> bytes:
        """Thread ``tid`` as gdb names it (``pPID.TID`` with multiprocess ids)."""
        return thread_id(tid, self.pid_of(tid)).encode()

    def thread_of(self, pid: int | None, tid: int) -> int:
        """A specific thread for a request's ``(pid, tid)``: ``tid`` itself, or for "any
        thread" of a process (``pPID.0``, ``pPID.-1``) the current thread if it is that
        process's, else its first. ``ANY_THREAD`` when nothing specific is named."""
        if tid not in (rq.ALL_THREADS, rq.ANY_THREAD) or pid in (None, rq.ALL_THREADS):
            return tid if tid != rq.ALL_THREADS else rq.ANY_THREAD
        current = self.current_thread()
        if self.pid_of(current) == pid:
            return current
        return next((t for t in self.thread_ids() if self.pid_of(t) == pid), rq.ANY_THREAD)

    def current_thread(self) -> int:
        """The thread a stop is reported for (1 for a single-threaded target)."""
        if not self._threads:
            return THREAD_ID
        try:
            return cast(Threads, self.target).current_thread()
        except Exception as exc:
            target_failed("current_thread()", exc)
            return THREAD_ID

    def thread_ids(self) -> list[int]:
        if not self._threads:
            return [THREAD_ID]
        return list(cast(Threads, self.target).thread_ids())

    def write_pc(self, addr: int) -> None:
        arch = self.caps.arch
        size = len(self.target.read_register(arch.pc_regnum) or b"") or 8
        self.target.write_register(
            arch.pc_regnum, (addr % (1 << 8 * size)).to_bytes(size, arch.byteorder)
        )

    def resume(self, kind: ResumeKind, signal: int | None, addr: int | None,
               thread: int | None = None, processes: frozenset[int] | None = None
               ) -> Running:
        if addr is not None:
            self.write_pc(addr)
        cast(ResumeTarget, self.target).resume(ResumeAction(kind, signal, thread, processes))
        return Running()


def target_failed(doing: str, exc: BaseException) -> None:
    """Log an unexpected target exception as one line; the traceback only at DEBUG level.

    A target bug must not flood the server's log (a refused register write used to log a
    traceback per packet); the client gets an ``E`` reply and the session goes on.
    """
    log.error("target failed %s: %s: %s", doing, type(exc).__name__, exc)
    log.debug("traceback of the target failure", exc_info=exc)


def _describe(request: rq.Request) -> str:
    """A short description of a request for the log (a ``G`` packet can be kilobytes)."""
    text = repr(request)
    return text if len(text) <= 80 else text[:77] + "..."


_EXIT_REASONS = (Exited, Terminated)
_MEMORY_REQUESTS = (rq.ReadMemory, rq.WriteMemory)


# --- dispatch table: one function per request type ----------------------------------------

_Handler = Callable[[Session, Any], Outcome]
HANDLERS: dict[type, _Handler] = {}
_H = TypeVar("_H", bound=_Handler)


def handles(request_type: type) -> Callable[[_H], _H]:
    """Register a handler for ``request_type`` in :data:`HANDLERS` (decorators may stack)."""

    def register(fn: _H) -> _H:
        HANDLERS[request_type] = fn
        return fn

    return register


@handles(rq.QuerySupported)
def _query_supported(s: Session, req: rq.QuerySupported) -> Outcome:
    s.gdb_features = set(req.features)
    if s.caps.has(Cap.PROCESSES):
        offered = s.gdb_features
        s.multiprocess = "multiprocess+" in offered
        cast(Processes, s.target).set_process_events(
            s.multiprocess and "fork-events+" in offered,
            s.multiprocess and "vfork-events+" in offered,
            s.multiprocess and "exec-events+" in offered)
    return supported_features(s.caps, s.stub.packet_size, s.gdb_features)


@handles(rq.StartNoAckMode)
def _start_no_ack(s: Session, req: rq.StartNoAckMode) -> Outcome:
    # The '+' for this packet has already been sent; GDB still acks our OK, which is harmless.
    s.no_ack = True
    return OK


@handles(rq.QueryHaltReason)
def _halt_reason(s: Session, req: rq.QueryHaltReason) -> Outcome:
    return s.stop_reply(s.stub.last_stop)


@handles(rq.ReadFeatures)
def _read_features(s: Session, req: rq.ReadFeatures) -> Outcome:
    xml = s.target.description_xml(req.annex)
    if xml is None:
        return error(0)  # E00: unknown annex (gdb.texinfo, qXfer read replies)
    return xfer_chunk(xml.encode(), req.offset, min(req.length, s.stub.packet_size))


@handles(rq.ReadObject)
def _read_object(s: Session, req: rq.ReadObject) -> Outcome:
    """``qXfer`` reads of the optional objects; the parser only makes a ReadObject for an
    object whose capability the target has."""
    data: bytes | None
    if req.object == "auxv":
        data = cast(Auxv, s.target).read_auxv()
    elif req.object == "exec-file":
        pid = int(req.annex, 16) if req.annex else None
        name = cast(ExecFile, s.target).exec_file(pid)
        data = None if name is None else name.encode()
    elif req.object == "libraries-svr4":
        params = rq.svr4_annex(req.annex)  # checked by the parser
        data = library_list_svr4(cast(LibrariesSvr4, s.target).libraries_svr4(
            params.get("start"), params.get("prev")))
    elif req.object == "threads":
        target = cast(Threads, s.target)
        data = thread_list((target.thread_info(t) for t in target.thread_ids()), s.pid_of)
    else:
        data = None
    if data is None:
        return error(0)
    return xfer_chunk(data, req.offset, min(req.length, s.stub.packet_size))


@handles(rq.ReadRegisters)
def _read_registers(s: Session, req: rq.ReadRegisters) -> Outcome:
    return hex_encode(b"".join(s.target.read_registers()))


@handles(rq.WriteRegisters)
def _write_registers(s: Session, req: rq.WriteRegisters) -> Outcome:
    s.target.write_registers(req.data)
    return OK


@handles(rq.ReadRegister)
def _read_register(s: Session, req: rq.ReadRegister) -> Outcome:
    value = s.target.read_register(req.regnum)
    return error(E_INVALID) if value is None else hex_encode(value)


@handles(rq.WriteRegister)
def _write_register(s: Session, req: rq.WriteRegister) -> Outcome:
    s.target.write_register(req.regnum, req.value)
    return OK


@handles(rq.ReadMemory)
def _read_memory(s: Session, req: rq.ReadMemory) -> Outcome:
    # A reply is two hex digits per byte; GDB accepts a short read, so cap at the packet size.
    length = min(req.length, (s.stub.packet_size - 4) // 2)
    if length == 0:
        return EMPTY
    data = s.target.read_memory(req.addr, length)
    return hex_encode(data[:length]) if data else error(E_FAULT)


@handles(rq.WriteMemory)
def _write_memory(s: Session, req: rq.WriteMemory) -> Outcome:
    if req.data:  # "X addr,0:" is GDB probing for X support
        s.target.write_memory(req.addr, req.data)
    return OK


def _specific(tid: int) -> int | None:
    """A thread id, or None for "any" (0) and "all" (-1)."""
    return None if tid in (rq.ALL_THREADS, rq.ANY_THREAD) else tid


@handles(rq.SetThread)
def _set_thread(s: Session, req: rq.SetThread) -> Outcome:
    if not s._threads:
        return OK  # single thread: every selection means thread 1
    tid = _specific(s.thread_of(req.pid, req.tid))
    if tid is not None and tid not in s.thread_ids():
        return error(E_INVALID)
    if req.op == "g":
        cast(Threads, s.target).select_thread(tid)
    else:
        s.continue_thread = tid
    return OK


@handles(rq.ThreadAlive)
def _thread_alive(s: Session, req: rq.ThreadAlive) -> Outcome:
    if req.tid in (rq.ALL_THREADS, rq.ANY_THREAD):
        return OK
    return OK if req.tid in s.thread_ids() else error(E_INVALID)


@handles(rq.CurrentThread)
def _current_thread(s: Session, req: rq.CurrentThread) -> Outcome:
    return b"QC" + s.ptid(s.current_thread())


@handles(rq.ThreadInfoFirst)
def _thread_info_first(s: Session, req: rq.ThreadInfoFirst) -> Outcome:
    return b"m" + b",".join(s.ptid(t) for t in s.thread_ids())


@handles(rq.ThreadExtraInfo)
def _thread_extra_info(s: Session, req: rq.ThreadExtraInfo) -> Outcome:
    info = cast(Threads, s.target).thread_info(req.tid)
    return hex_encode(info.extra.encode())


@handles(rq.ThreadInfoNext)
def _thread_info_next(s: Session, req: rq.ThreadInfoNext) -> Outcome:
    return b"l"


@handles(rq.QueryAttached)
def _query_attached(s: Session, req: rq.QueryAttached) -> Outcome:
    return b"1"  # "attached": GDB's quit detaches (D) instead of killing (k)


@handles(rq.Kill)
def _kill(s: Session, req: rq.Kill) -> Outcome:
    if s.caps.has(Cap.KILL):
        cast(Killable, s.target).kill()
    return EndSession(SessionEnd.KILLED)  # GDB expects no reply; it accepts the close


@handles(rq.Detach)
def _detach(s: Session, req: rq.Detach) -> Outcome:
    # One process of several (gdb detaches a fork child or parent): the session goes on
    # while the target still has attached processes.
    if req.pid is not None and s.caps.has(Cap.PROCESSES) \
            and cast(Processes, s.target).detach_process(req.pid):
        return OK
    return EndSession(SessionEnd.DETACHED, OK)


@handles(rq.PassSignals)
def _pass_signals(s: Session, req: rq.PassSignals) -> Outcome:
    cast(SignalPassing, s.target).pass_signals(req.signals)  # (parsed only for such targets)
    return OK


@handles(rq.AttachProcess)
def _attach_process(s: Session, req: rq.AttachProcess) -> Outcome:
    reason = cast(Processes, s.target).attach_process(req.pid)  # (parsed only for such)
    s.stub.last_stop = reason
    return s.stop_reply(reason)


@handles(rq.KillProcess)
def _kill_process(s: Session, req: rq.KillProcess) -> Outcome:
    # (Only parsed for a Processes target.) gdb mourns the process after OK; killing the
    # last attached one ends the session as ``k`` does (gdb then closes the connection).
    if cast(Processes, s.target).kill_process(req.pid):
        return OK
    if s.caps.has(Cap.KILL):
        cast(Killable, s.target).kill()
    return EndSession(SessionEnd.KILLED, OK)


@handles(rq.MustReplyEmpty)
@handles(rq.TraceStatus)
@handles(rq.SectionOffsets)
@handles(rq.Unsupported)
def _empty(s: Session, req: object) -> Outcome:
    return EMPTY


@handles(rq.SymbolLookup)
def _symbol_lookup(s: Session, req: rq.SymbolLookup) -> Outcome:
    return OK  # no symbols needed


@handles(rq.Malformed)
def _malformed(s: Session, req: rq.Malformed) -> Outcome:
    log.debug("malformed packet %r: %s", req.packet[:64], req.reason)
    return error(E_MALFORMED)


@handles(rq.Continue)
def _continue(s: Session, req: rq.Continue) -> Outcome:
    return s.resume(ResumeKind.CONTINUE, req.signal, req.addr)


@handles(rq.Step)
def _step(s: Session, req: rq.Step) -> Outcome:
    return s.resume(ResumeKind.STEP, req.signal, req.addr, s.continue_thread)


@handles(rq.VContQuery)
def _vcont_query(s: Session, req: rq.VContQuery) -> Outcome:
    return vcont_actions(s.caps)


@handles(rq.VCont)
def _vcont(s: Session, req: rq.VCont) -> Outcome:
    # A step of one thread (gdb's "vCont;s:TID;c") is that thread's step: all-stop, one
    # move. Otherwise the leftmost action that applies to the current thread is the one.
    action = next((a for a in req.actions
                   if a.op in ("s", "r") and a.tid is not None and _specific(a.tid) is not None),
                  None)
    if action is None:
        current = s.current_thread()
        action = next((a for a in req.actions if a.applies_to(current)), None)
    if action is None:
        return error(E_INVALID)
    thread = None if action.tid is None else _specific(action.tid)
    if thread is not None and s._threads and thread != s.current_thread() \
            and thread not in s.thread_ids():
        # As Hg/Hc: a thread the target does not have is refused, nothing moves (a raw
        # client that assumes thread 1 learns the ids from qC or qfThreadInfo).
        return error(E_INVALID)
    if action.op == "t":
        # Only meaningful in non-stop mode, which this stub does not offer: report a stop.
        return s.stop_reply(Signal(0))
    if action.op == "c":
        return s.resume(ResumeKind.CONTINUE, action.signal, None,
                        processes=_resumed_processes(s, req))
    if action.op == "r":  # only parsed when the target has RangeStepping
        cast(RangeStepping, s.target).range_step(action.start, action.end)
        return Running()
    return s.resume(ResumeKind.STEP, action.signal, None, thread)


def _resumed_processes(s: Session, req: rq.VCont) -> frozenset[int] | None:
    """The processes a multiprocess ``vCont`` resumes (``c:pPID.-1`` for each), None for
    every process (an action without a thread, or for every process)."""
    if not s.multiprocess:
        return None
    pids: set[int] = set()
    for a in req.actions:
        if a.op not in ("c", "s", "r"):
            continue
        if a.tid is None or a.pid in (None, rq.ALL_THREADS):
            return None
        pid = a.pid if a.tid in (rq.ALL_THREADS, rq.ANY_THREAD) else s.pid_of(a.tid)
        if pid is None:
            return None
        pids.add(pid)
    return frozenset(pids)


@handles(rq.ReverseStepRequest)
def _reverse_step(s: Session, req: rq.ReverseStepRequest) -> Outcome:
    cast(ReverseStep, s.target).reverse_step()
    return Running()


@handles(rq.ReverseContinueRequest)
def _reverse_continue(s: Session, req: rq.ReverseContinueRequest) -> Outcome:
    cast(ReverseContinue, s.target).reverse_continue()
    return Running()


@handles(rq.AddBreakpoint)
@handles(rq.RemoveBreakpoint)
def _breakpoint(s: Session, req: rq.AddBreakpoint | rq.RemoveBreakpoint) -> Outcome:
    add = isinstance(req, rq.AddBreakpoint)
    target = s.target
    if req.type == 0:
        sw = cast(SwBreakpoints, target)
        ok = (sw.add_sw_breakpoint if add else sw.remove_sw_breakpoint)(req.addr, req.kind)
    elif req.type == 1:
        hw = cast(HwBreakpoints, target)
        ok = (hw.add_hw_breakpoint if add else hw.remove_hw_breakpoint)(req.addr, req.kind)
    else:
        wp = cast(Watchpoints, target)
        ok = (wp.add_watchpoint if add else wp.remove_watchpoint)(
            req.addr, req.kind, WatchKind(req.type)
        )
    if not ok:
        return error(E_INVALID)
    if req.type in s.stub.breakpoints:
        if add:
            s.stub.breakpoints[req.type].add(req.addr)
        else:
            s.stub.breakpoints[req.type].discard(req.addr)
    return OK


@handles(rq.MonitorCommand)
def _monitor(s: Session, req: rq.MonitorCommand) -> Outcome:
    return s.run_monitor(req.command.decode("utf-8", errors="replace"))


# --- TCP server ---------------------------------------------------------------------------


class GdbServer:
    """Serves one GDB connection at a time over TCP (IPv4 or IPv6); the target survives
    reconnections.

    Create with :meth:`listen` (binds immediately, so :attr:`port` is known before serving),
    then call :meth:`serve` (until ``k`` or :meth:`close`) or :meth:`serve_one`.

    Admission: once serving has started, a gatekeeper thread accepts every connection at
    once, so the kernel's accept queue never fills. The first connection is served. One
    connection arriving while another is served may wait up to :data:`BUSY_GRACE_SECONDS`
    for that session to end (a reconnect racing the server's view of a disconnect); any
    other client, or that one once its grace is over, is refused: it gets ``+`` and a
    ``$E.busy…`` reply (gdb prints "Remote failure reply: E.busy: …"), then its socket is
    shut down, drained for at most :data:`REFUSAL_LINGER_SECONDS` and closed. A connection
    that sends no valid packet within the stub's ``idle_timeout`` is dropped.
    """

    def __init__(self, stub: GdbStub, listener: socket.socket) -> None:
        self.stub = stub
        self.listener = listener
        self._wake_r, self._wake_w = socket.socketpair()
        self._closed = False
        self._cond = threading.Condition()
        self._pending: tuple[socket.socket, tuple[Any, ...]] | None = None
        # A connection that came while busy: (socket, peer, refuse-at time).
        self._waiting: tuple[socket.socket, tuple[Any, ...], float] | None = None
        self._active = False  # a session is being served
        self._gate: threading.Thread | None = None
        self._lingering: list[tuple[socket.socket, float]] = []
        #: Connections refused because another client held the session (for tests/logs).
        self.refused = 0

    @classmethod
    def listen(
        cls,
        target: BaseTarget | GdbStub,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        packet_size: int = DEFAULT_PACKET_SIZE,
        chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
    ) -> GdbServer:
        """Bind (port 0 picks a free port) and listen; the stub options apply to a new stub.

        ``host`` is an IPv4 or IPv6 address or a name (``"::1"``, ``"::"`` and ``"0.0.0.0"``
        work; an IPv6 socket is IPv6-only). Every failure is an :class:`OSError`: a port
        outside 0-65535 or an unusable host string (``EINVAL``), a name that does not
        resolve (:class:`socket.gaierror`), an address in use or not local (from ``bind``).
        """
        if isinstance(target, GdbStub):
            stub = target
        else:
            stub = GdbStub(target, packet_size=packet_size, chunk_seconds=chunk_seconds,
                           idle_timeout=idle_timeout)
        return cls(stub, _bind(host, port))

    @property
    def address(self) -> tuple[str, int]:
        """The bound host (as the socket reports it, e.g. ``"::1"``) and port."""
        host, port = self.listener.getsockname()[:2]
        return host, port

    @property
    def port(self) -> int:
        return self.address[1]

    def serve(self) -> SessionEnd:
        """Serve connections one after another until ``k`` or :meth:`close`."""
        while True:
            end = self.serve_one()
            if end in (SessionEnd.KILLED, SessionEnd.CLOSED):
                return end

    def serve_one(self) -> SessionEnd:
        """Wait for one connection and serve it to the end."""
        self._start_gate()
        with self._cond:
            while self._pending is None and self._waiting is None and not self._closed:
                self._cond.wait()
            if self._closed:
                return SessionEnd.CLOSED
            if self._pending is not None:
                (sock, peer), self._pending = self._pending, None
            else:
                assert self._waiting is not None
                (sock, peer, _), self._waiting = self._waiting, None
            self._active = True
        try:
            log.info("gdb connected from %s", _peer_name(peer))
            transport = TcpTransport(sock, wake=self._wake_r)
            try:
                end = self.stub.serve_connection(transport)
            finally:
                transport.close()
        finally:
            with self._cond:
                self._active = False
        log.info("gdb session ended: %s", end.value)
        return SessionEnd.CLOSED if self._closed else end

    def close(self) -> None:
        """Stop serving; safe to call from another thread. Wakes a blocked serve().

        The sockets are released by ``__exit__`` (use the server as a context manager).
        """
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._wake_w.send(b"x")

    def __enter__(self) -> GdbServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
        if self._gate is not None:
            self._join_gate(self._gate)
        with self._cond:
            pending, self._pending = self._pending, None
            waiting, self._waiting = self._waiting, None
        for queued in (pending, waiting):
            if queued is not None:
                queued[0].close()
        for sock, _ in self._lingering:
            sock.close()
        self._lingering.clear()
        for sock in (self.listener, self._wake_r, self._wake_w):
            sock.close()

    # -- the gatekeeper thread --

    @staticmethod
    def _join_gate(gate: threading.Thread) -> None:
        # A Ctrl-C can interrupt Thread.start() after the thread was created but before it
        # reported running; join() then refuses. The thread starts within moments and sees
        # the closed flag, so wait for it to be joinable.
        deadline = time.monotonic() + 5.0
        while True:
            try:
                gate.join()
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.001)

    def _start_gate(self) -> None:
        with self._cond:
            if self._gate is None and not self._closed:
                self._gate = threading.Thread(target=self._gatekeeper, name="gdbstub-accept",
                                              daemon=True)
                self._gate.start()

    def _gatekeeper(self) -> None:
        """Accept every connection; hand one to serve_one(), refuse the others."""
        while not self._closed:
            now = time.monotonic()
            for sock, _ in [x for x in self._lingering if x[1] <= now]:
                self._drop_lingering(sock)
            with self._cond:
                waiting = self._waiting
                if waiting is not None and waiting[2] <= now:
                    self._waiting = None
            if waiting is not None and waiting[2] <= now:
                self._refuse(waiting[0], waiting[1])
                waiting = None
            deadlines = [d for _, d in self._lingering]
            if waiting is not None:
                deadlines.append(waiting[2])
            timeout = min(deadlines, default=None)
            if timeout is not None:
                timeout = max(0.0, timeout - now)
            watched = [self.listener, self._wake_r] + [sock for sock, _ in self._lingering]
            try:
                readable, _, _ = select.select(watched, [], [], timeout)
            except (OSError, ValueError):  # a socket closed under us: the server is closing
                return
            if self._wake_r in readable:
                return
            for sock in readable:
                if sock is not self.listener:
                    self._drain(sock)
            if self.listener in readable:
                self._accept()

    def _accept(self) -> None:
        try:
            sock, peer = self.listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                # Out of descriptors: the listener stays readable; back off instead of
                # spinning (woken early by close()).
                log.warning("cannot accept a connection: %s", exc)
                select.select([self._wake_r], [], [], 0.1)
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._cond:
            if not self._closed:
                if self._pending is None and not self._active:
                    self._pending = (sock, peer)
                    self._cond.notify_all()
                    return
                if self._waiting is None:
                    self._waiting = (sock, peer, time.monotonic() + BUSY_GRACE_SECONDS)
                    self._cond.notify_all()
                    return
        self._refuse(sock, peer)

    def _refuse(self, sock: socket.socket, peer: tuple[Any, ...]) -> None:
        """Tell a second client the server is busy, then close it (see the class docstring).

        NOTE(gdb): the ``+`` first acknowledges gdb's ``qSupported``, which gdb sends right
        after connecting; gdb skips a reply that comes before the ack it waits for.
        """
        self.refused += 1
        log.info("refused a connection from %s: another client is connected",
                 _peer_name(peer))
        try:
            sock.setblocking(False)
            sock.send(b"+" + encode_packet(BUSY_REPLY))
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            sock.close()
            return
        if len(self._lingering) >= MAX_LINGERING:
            self._drop_lingering(self._lingering[0][0])
        self._lingering.append((sock, time.monotonic() + REFUSAL_LINGER_SECONDS))

    def _drain(self, sock: socket.socket) -> None:
        """Read (and discard) what a refused client sends; close it at its end of stream."""
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop_lingering(sock)

    def _drop_lingering(self, sock: socket.socket) -> None:
        self._lingering = [x for x in self._lingering if x[0] is not sock]
        sock.close()


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket for ``host``/``port``, IPv4 or IPv6; every failure an OSError."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 0xFFFF:
        raise OSError(errno.EINVAL, f"port {port!r} is not a number from 0 to 65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except (UnicodeError, ValueError, TypeError) as exc:  # e.g. an embedded NUL byte
        raise OSError(errno.EINVAL, f"bad host {host!r}: {exc}") from None
    family, _, _, _, sockaddr = infos[0]
    return socket.create_server(sockaddr, family=family)


def _peer_name(peer: tuple[Any, ...]) -> str:
    host, port = peer[:2]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
