"""The Debug Adapter Protocol server: editors drive a syxdbg :class:`~syxdbg.session.Session`.

Threads. The connection's reader thread answers ``initialize``, ``threads``, ``pause`` and
``disconnect`` itself and hands every other request, in order, to one *session thread*,
the only thread that touches the session. Motions (continue, steps, the reverse ones, goto,
a moving REPL command) run there: the request is answered first, the ``stopped`` event
follows when the motion lands, and ``pause`` (on the reader thread) interrupts it with
``Session.interrupt()`` at the next block boundary (Ctrl-C semantics).

Every motion goes through the Session: the shell's own algorithms for source lines
(:func:`syxdbg.commands.motion.line_step`, ``finish``, ``nexti``), ``Session.cont`` in
either direction, ``Session.until`` and ``Session.seek``. Breakpoints are the command
context's numbered breakpoints (so ``info breakpoints`` in the REPL lists them), with the
DAP's conditions, hit conditions and log messages applied inside the motion (a false one
never stops it). Variables come from :mod:`syxdbg.commands.variables`.
"""

from __future__ import annotations

import base64
import contextlib
import os
import queue
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import api
from ..commands import CommandRegistry, make_registry, motion
from ..commands.debuginfo import Frame
from ..commands.variables import (
    VECTOR_REGS,
    FrameState,
    Renderer,
    Variable,
    Variables,
    describe_type,
    frame_registers,
    is_path,
    resolve_path,
)
from ..errors import SyxdbgError
from ..machine import events as ev
from ..session import GuestProcess, GuestThread, Session
from ..timeline import (
    BACKWARD,
    FORWARD,
    Direction,
    FutureDiscarded,
    HistoryBoundary,
    TimelineInterrupted,
)
from .protocol import Connection, ProtocolError
from .stdio import GuestStdio

#: The one DAP thread of today's single-threaded guests.
THREAD_ID = 1

#: What this adapter implements (and nothing more).
CAPABILITIES: dict[str, Any] = {
    "supportsConfigurationDoneRequest": True,
    "supportsFunctionBreakpoints": True,
    "supportsConditionalBreakpoints": True,
    "supportsHitConditionalBreakpoints": True,
    "supportsLogPoints": True,
    "supportsEvaluateForHovers": True,
    "supportsStepBack": True,
    "supportsGotoTargetsRequest": True,
    "supportsRestartRequest": True,
    "supportsExceptionInfoRequest": True,
    "supportsLoadedSourcesRequest": True,
    "supportsTerminateRequest": True,
    "supportsDataBreakpoints": True,
    "supportsReadMemoryRequest": True,
    "supportsWriteMemoryRequest": True,
    "supportsDisassembleRequest": True,
    "supportsSteppingGranularity": True,
    "supportsSetVariable": True,
    "supportsCompletionsRequest": True,
    "supportsInstructionBreakpoints": True,
    "exceptionBreakpointFilters": [
        {"filter": "signals", "label": "Signals given to handlers", "default": True,
         "description": "Stop before a signal is given to the program's handler (in the "
                        "followed process), in forward motions; continuing delivers it. Not "
                        "SIGALRM, SIGURG, SIGCHLD, SIGWINCH, SIGIO, SIGPROF, SIGVTALRM (gdb's "
                        "nostop defaults)."},
    ],
}

#: Signals that never stop (gdb's "handle ... nostop" defaults; Linux numbers, the same on
#: every architecture syxdbg runs): SIGALRM, SIGCHLD, SIGURG, SIGVTALRM, SIGPROF, SIGWINCH,
#: SIGIO.
NOSTOP_SIGNALS = frozenset({14, 17, 23, 26, 27, 28, 29})

_BREAKPOINT_REQUESTS = frozenset({"setBreakpoints", "setFunctionBreakpoints",
                                  "setInstructionBreakpoints", "setDataBreakpoints"})
_WATCH_KINDS = {"write": "watch", "read": "rwatch", "readWrite": "awatch"}
_HIT = re.compile(r"\s*(>=|<=|==|>|<|%|=)?\s*(\d+)\s*$")
_WORD = re.compile(r"(?<![\w$.])[A-Za-z_]\w*(?:\s*(?:\.|->)\s*[A-Za-z_]\w*|\[[^\]]*\])*")


class RequestError(Exception):
    """A request that cannot be served: an error response with this message."""


@dataclass
class DapBreakpoint:
    """One DAP breakpoint: its id, what the client asked and the context's numbered
    breakpoints (one per address) that implement it."""

    id: int
    kind: str  # "source", "function", "instruction", "data"
    spec: dict[str, Any]
    path: str = ""
    numbers: list[int] = field(default_factory=list)
    verified: bool = False
    line: int | None = None
    message: str = ""
    hits: int = 0
    address: int | None = None

    @property
    def condition(self) -> str:
        return str(self.spec.get("condition") or "")

    @property
    def hit_condition(self) -> str:
        return str(self.spec.get("hitCondition") or "")

    @property
    def log_message(self) -> str:
        return str(self.spec.get("logMessage") or "")


@dataclass
class LaunchConfig:
    """The launch request's arguments (see docs/ide.md)."""

    program: str | None
    args: list[str]
    env: dict[str, str] | None
    cwd: str | None
    stdin: str | None
    arch: str | None
    sysroot: str | None
    recording: str | None
    stop_on_entry: bool
    stop_at_exit: bool
    #: "Run Without Debugging": no breakpoints, no stops; the session ends with the program.
    no_debug: bool = False
    #: ``"schedule": "seed:N"`` (or N): the seeded thread schedule of ``--schedule`` (race
    #: hunting, docs/timetravel.md); 0: the plain round robin; None: the default.
    schedule: int | None = None
    #: ``"follow"``: which process of a forking program stops motions, as ``--follow``:
    #: ("first", None) (the default), ("any", None), ("pid", N) or ("exec", NAME).
    follow: tuple[str, int | str | None] | None = None

    @classmethod
    def parse(cls, a: Mapping[str, Any]) -> LaunchConfig:
        def text(name: str) -> str | None:
            v = a.get(name)
            if v is None or v == "":
                return None
            if not isinstance(v, str):
                raise RequestError(f"launch: {name} must be a string")
            return v

        args = a.get("args", [])
        if isinstance(args, str):
            import shlex

            args = shlex.split(args)
        if not isinstance(args, list) or not all(isinstance(x, str) for x in args):
            raise RequestError("launch: args must be a list of strings")
        env_arg = a.get("env")
        if env_arg is not None and (not isinstance(env_arg, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in env_arg.items())):
            raise RequestError("launch: env must map names to strings")
        env: dict[str, str] | None = None
        if env_arg is not None or a.get("clearEnv"):
            env = {} if a.get("clearEnv") else dict(os.environ)
            env.update(env_arg or {})
        no_debug = bool(a.get("noDebug", False))
        cfg = cls(text("program"), list(args), env, text("cwd"), text("stdin"), text("arch"),
                  text("sysroot"), text("recording"),
                  bool(a.get("stopOnEntry", False)) and not no_debug,
                  bool(a.get("stopAtExit", True)) and not no_debug, no_debug,
                  _schedule(a.get("schedule")), _follow(a.get("follow")))
        if cfg.program is None and cfg.recording is None:
            raise RequestError("launch: give 'program' (an ELF file) or 'recording' "
                               "(a .syxrec file)")
        return cfg


def _follow(value: Any) -> tuple[str, int | str | None] | None:
    """The launch configuration's ``follow`` (``--follow``'s values): "first", "any",
    "pid:N" or "exec:NAME"; None if absent."""
    if value is None or value == "":
        return None
    text = value.strip() if isinstance(value, str) else ""
    kind, _, arg = text.partition(":")
    if kind == "pid" and arg.isdigit() and int(arg) > 0:
        return ("pid", int(arg))
    if kind == "exec" and arg and "/" not in arg:
        return ("exec", arg)
    if kind in ("first", "any") and not arg:
        return (kind, None)
    raise RequestError(f"launch: follow {value!r}: give \"first\", \"any\", \"pid:N\" or "
                       "\"exec:NAME\" (a program's file name)")


def _schedule(value: Any) -> int | None:
    """The launch configuration's ``schedule``: "seed:N", N or "fifo" (0); None if absent."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RequestError("launch: schedule must be \"seed:N\", a number or \"fifo\"")
    if isinstance(value, int):
        seed = value
    elif isinstance(value, str) and value.strip().lower() == "fifo":
        seed = 0
    elif isinstance(value, str) and value.strip().lower().startswith("seed:"):
        try:
            seed = int(value.strip()[5:].replace("_", ""), 0)
        except ValueError:
            seed = -1
    else:
        seed = -1
    if not 0 <= seed < 1 << 63:
        raise RequestError(f"launch: schedule {value!r}: give \"seed:N\" with N a positive "
                           "integer, or \"fifo\"")
    return seed


class DapServer:
    """One client's debugging session (see the module docstring).

    ``stdio``: the guest's standard streams when this process owns them (``syxdbg dap``);
    None in-process (the guest then writes to this process's fds, and ``stdin`` is refused).
    ``options``: session options for every session it opens.
    """

    def __init__(self, conn: Connection, *, stdio: GuestStdio | None = None,
                 options: Mapping[str, Any] | None = None) -> None:
        self.conn = conn
        self.stdio = stdio
        self.options = dict(options or {})
        self.session: Session | None = None
        self.registry: CommandRegistry | None = None
        self.vars: Variables | None = None
        self.config: LaunchConfig | None = None
        self.client: dict[str, Any] = {}
        self._line_base = 1
        self._queue: queue.Queue[tuple[Callable[..., None], dict[str, Any]] | None] = \
            queue.Queue()
        self._worker = threading.Thread(target=self._work, name="syxdbg-dap-session",
                                        daemon=True)
        self._moving = False
        self._restartable = False
        self._bp_interrupt = False
        self._paused = False
        self._lock = threading.Lock()
        self._configured = False
        self._started = False
        self._ended = False
        self._next_id = 1
        self._bps: dict[int, DapBreakpoint] = {}
        self._source_bps: dict[str, list[int]] = {}
        self._function_bps: list[int] = []
        self._instruction_bps: list[int] = []
        self._data_bps: list[int] = []
        self._by_number: dict[int, DapBreakpoint] = {}
        self._refs: dict[int, Callable[[int, int | None], list[dict[str, Any]]]] = {}
        self._frames: dict[int, tuple[Frame, FrameState]] = {}
        self._indexed: set[int] = set()
        self._goto: dict[int, tuple[int, Direction]] = {}
        self._next_ref = 1
        self._last_event: ev.StopEvent | None = None
        #: The guest's threads as the last stop saw them (the reader thread answers
        #: ``threads`` from it), their DAP ids (stable: by first sight, the main thread 1)
        #: and the DAP id of the thread that stopped.
        self._thread_list: list[dict[str, Any]] = []
        self._dap_ids: dict[int, int] = {}
        self._tids: dict[int, int] = {}
        self._stopped_id = THREAD_ID
        self._from = 0  # the position the last motion started from
        #: Signal stops (the "signals" exception filter): whether they are on, whether the
        #: motion running now watches for them, the delivery seen (position, pid, tid,
        #: signal), the delivery stopped at and where (passed once when resumed from there)
        #: and the signal of the last such stop (signal, pid, tid).
        self._signal_filter = False
        self._watching = False
        self._sig_seen: tuple[int, int, int, int] | None = None
        self._sig_resumed: tuple[tuple[int, int, int], int] | None = None
        self._sig_shown: tuple[int, int, int] | None = None
        #: Processes (docs/ide.md): the pid of every listed thread, the threads of the
        #: processes that are not running (their pc and process), whether the program has
        #: had two processes (names then say ``pid P / tid T``), and what the last stop
        #: listed (for ``thread`` events and the console's process lines).
        self._pid_of: dict[int, int] = {}
        self._others: dict[int, tuple[GuestThread, GuestProcess]] = {}
        self._multi = False
        self._seen_threads: set[int] | None = None
        self._seen_procs: dict[int, tuple[str, str]] = {}
        #: Frames of a thread whose process is not running, or of a process running
        #: another program than the launched one: registers only, or nothing.
        self._bare: dict[int, Frame | None] = {}
        #: Frames of threads of processes that are not running (their own registers).
        self._other_fids: set[int] = set()
        self._done = threading.Event()
        if stdio is not None:
            stdio.sink = lambda category, text: self.conn.event(
                "output", {"category": category, "output": text})

    # -- the loop ---------------------------------------------------------------------------
    def serve(self) -> None:
        """Read and answer requests until the client disconnects or the stream ends."""
        self._worker.start()
        try:
            while not self._done.is_set():
                try:
                    msg = self.conn.read()
                except ProtocolError as exc:
                    self._console(f"syxdbg: protocol error: {exc}\n")
                    break
                if msg is None:
                    break
                if msg.get("type") != "request":
                    continue
                self._dispatch(msg)
        finally:
            self._interrupt()
            self._queue.put((lambda req: self._close(), {}))
            self._queue.put(None)
            self._worker.join(30)

    def _dispatch(self, req: dict[str, Any]) -> None:
        command = str(req.get("command", ""))
        if command in ("initialize", "threads", "pause", "cancel"):
            self._call(getattr(self, f"_req_{command}"), req)
        elif command in ("disconnect", "terminate"):
            self._interrupt()
            self._queue.put((getattr(self, f"_req_{command}"), req))
            if command == "disconnect":
                self._done.wait(60)
        else:
            handler = getattr(self, f"_req_{command}", None)
            if handler is None:
                self.conn.fail(req, f"unsupported request {command!r}")
                return
            self._queue.put((handler, req))
            if command in _BREAKPOINT_REQUESTS:
                with self._lock:
                    if self._moving and self._restartable and self.registry is not None:
                        self._bp_interrupt = True
                        self.registry.ctx.interrupt()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            handler, req = item
            self._call(handler, req)

    def _call(self, handler: Callable[[dict[str, Any]], None], req: dict[str, Any]) -> None:
        try:
            handler(req)
        except RequestError as exc:
            self.conn.fail(req, str(exc))
        except SyxdbgError as exc:
            self.conn.fail(req, str(exc))
        except Exception as exc:  # never let a bad request kill the adapter
            self.conn.fail(req, f"internal error: {type(exc).__name__}: {exc}")

    # -- helpers ----------------------------------------------------------------------------
    @property
    def s(self) -> Session:
        if self.session is None:
            raise RequestError("no program is loaded (launch first)")
        return self.session

    @property
    def reg(self) -> CommandRegistry:
        if self.registry is None:
            raise RequestError("no program is loaded (launch first)")
        return self.registry

    def _console(self, text: str) -> None:
        self.conn.event("output", {"category": "console", "output": text})

    def _interrupt(self) -> None:
        with self._lock:
            if self._moving and self.registry is not None:
                self.registry.ctx.interrupt()

    def _line_in(self, line: int) -> int:
        return line + 1 - self._line_base

    def _line_out(self, line: int) -> int:
        return line - 1 + self._line_base

    def _ref(self, fn: Callable[[int, int | None], list[dict[str, Any]]]) -> int:
        ref = self._next_ref
        self._next_ref += 1
        self._refs[ref] = fn
        return ref

    def _new_id(self) -> int:
        i = self._next_id
        self._next_id += 1
        return i

    # -- initialize, launch, configuration --------------------------------------------------
    def _req_initialize(self, req: dict[str, Any]) -> None:
        self.client = dict(req.get("arguments") or {})
        self._line_base = 1 if self.client.get("linesStartAt1", True) else 0
        self.conn.respond(req, dict(CAPABILITIES))
        self.conn.event("initialized")

    def _req_launch(self, req: dict[str, Any]) -> None:
        if self.session is not None:
            raise RequestError("a program is already launched")
        cfg = LaunchConfig.parse(req.get("arguments") or {})
        self._open(cfg)
        self.conn.respond(req)
        self._after_launch()

    def _open(self, cfg: LaunchConfig) -> None:
        if cfg.stdin is not None and self.stdio is None:
            raise RequestError("launch: stdin redirection needs the adapter's own process "
                               "(syxdbg dap)")
        if cfg.cwd is not None:
            try:
                os.chdir(cfg.cwd)
            except OSError as exc:
                raise RequestError(f"launch: cwd {cfg.cwd}: {exc.strerror}") from None
        if self.stdio is not None:
            try:
                self.stdio.set_stdin(cfg.stdin)
            except OSError as exc:
                raise RequestError(f"launch: stdin {cfg.stdin}: {exc.strerror}") from None
        options = dict(self.options)
        if cfg.follow is not None:  # the Linux plugin's --follow option (FOLLOW_OPTION)
            options["follow"] = cfg.follow
        if cfg.schedule is not None:
            # The linux plugin's --schedule option (SCHEDULE_OPTION): a recording keeps the
            # seed it was made with, so a replay ignores it.
            options["schedule"] = cfg.schedule
        if cfg.recording is not None:
            replay_options = dict(self.options)
            if cfg.follow is not None:
                replay_options["follow"] = cfg.follow
            session = api.replay(cfg.recording, options=replay_options)
        else:
            assert cfg.program is not None
            session = api.open(cfg.program, cfg.args, env=cfg.env, arch=cfg.arch,
                               sysroot=cfg.sysroot, options=options)
        self.config = cfg
        self.session = session
        self.registry = make_registry(session, frontend="shell")
        ctx = self.registry.ctx
        shell_condition = ctx.condition_holds
        # Every motion of the command layer asks the context (see _holds).
        setattr(ctx, "condition_holds",  # noqa: B010 - an instance's own method
                lambda bp: self._holds(bp, shell_condition))
        self.vars = Variables(ctx.debuginfo)
        session.timeline  # noqa: B018 - history starts here
        gate = getattr(session, "gate_signals", None)
        if gate is not None:
            with contextlib.suppress(SyxdbgError):  # (no kernel: no signals)
                gate(self._signal_gate)
        self._sig_resumed = self._sig_seen = None
        self._started = False
        self._ended = False
        self._multi = False
        self._seen_threads = None
        self._seen_procs = {}
        if cfg.follow is not None and cfg.follow[0] == "exec":
            # As the other front ends (--follow exec:NAME): start in the process that execs
            # NAME, right after its execve.
            try:
                session.run_to_exec(str(cfg.follow[1]))
            except SyxdbgError as exc:
                self._close()
                raise RequestError(f"launch: follow exec:{cfg.follow[1]}: {exc}") from None

    def _after_launch(self) -> None:
        assert self.config is not None
        name = os.path.basename(self.config.recording or self.config.program or "program")
        self.conn.event("process", {"name": name, "startMethod": "launch",
                                    "isLocalProcess": True})
        self._apply_all_breakpoints(announce=True)
        if self._configured:
            self._start()

    def _req_configurationDone(self, req: dict[str, Any]) -> None:  # noqa: N802
        self.conn.respond(req)
        self._configured = True
        if self.session is not None:
            self._start()

    def _start(self) -> None:
        """Launched and configured: stop on entry, or run."""
        if self._started:
            return
        self._started = True
        assert self.config is not None
        if self.config.stop_on_entry:
            s = self.s
            self._report(ev.Stopped(s.regs.pc, s.position, "entry"), "entry")
        else:
            self._run(lambda: self._cont(FORWARD), "step", restartable=True, watch=True)

    def _req_attach(self, req: dict[str, Any]) -> None:
        raise RequestError("attach is not supported: launch a program or a recording")

    def _req_restart(self, req: dict[str, Any]) -> None:
        args = (req.get("arguments") or {}).get("arguments")
        self.s  # noqa: B018 - launched first
        if isinstance(args, dict):
            cfg = LaunchConfig.parse(args)
            old = self.config
            if old is None or (cfg.program, cfg.args, cfg.env, cfg.recording, cfg.arch,
                               cfg.sysroot, cfg.stdin, cfg.cwd, cfg.schedule, cfg.follow) != \
                    (old.program, old.args, old.env, old.recording, old.arch, old.sysroot,
                     old.stdin, old.cwd, old.schedule, old.follow):
                self._close()
                self._open(cfg)
                self.conn.respond(req)
                self._after_launch()  # breakpoints again; starts (configured already)
                return
            self.config = cfg
        self.conn.respond(req)
        self._forget()
        self._run(self._to_start, "entry", after=self._restart_run)

    def _to_start(self) -> ev.StopEvent:
        """Back to the beginning of history, and with ``follow: exec:NAME`` forward again
        to that exec (where the launch started)."""
        s = self.s
        event = s.seek(s.when().origin)
        cfg = self.config
        if cfg is not None and cfg.follow is not None and cfg.follow[0] == "exec":
            s.run_to_exec(str(cfg.follow[1]))
            return ev.Stopped(s.regs.pc, s.position, "entry")
        return event

    def _restart_run(self, event: ev.StopEvent | None) -> bool:
        """After a restart's seek to the origin: stop there, or run on."""
        assert self.config is not None
        if self.config.stop_on_entry or event is None:
            return False
        self._run(lambda: self._cont(FORWARD), "step", watch=True)
        return True

    def _req_threads(self, req: dict[str, Any]) -> None:
        with self._lock:
            listed = list(self._thread_list)
        if not listed:
            name = "program"
            if self.config is not None:
                name = os.path.basename(self.config.program or self.config.recording or name)
            listed = [{"id": THREAD_ID, "name": name}]
        self.conn.respond(req, {"threads": listed})

    def _note_threads(self) -> None:
        """At a stop (session thread): the threads of every live process for ``threads``
        requests, and the id of the one that stopped (the running one); ``thread`` events
        for threads that appeared or went since the last stop and a console line for each
        process that forked, exec'd or ended (going backwards: undone).

        A single-process program's main thread is named by its program, the others ``TID
        function`` (the function each started in); once the program has had two processes,
        every name starts with ``pid P / tid T``. DAP ids are stable: by first sight, the
        main thread 1."""
        from ..commands.threads import start_function

        s = self.s
        direction = BACKWARD if s.position < self._from else FORWARD
        listed: list[dict[str, Any]] = []
        stopped = THREAD_ID
        program = os.path.basename(s.image.path) if s.image.kind == "elf" else "program"
        running = s.current_process
        procs = [p for p in s.processes if p.state != "zombie"]
        if len(procs) > 1:
            self._multi = True
        pid_of: dict[int, int] = {}
        others: dict[int, tuple[GuestThread, GuestProcess]] = {}
        for proc in sorted(procs, key=lambda p: p.pid):
            mine = proc.pid == running
            threads = s.threads if mine else s.process_threads(proc.pid)
            for t in sorted(threads, key=lambda t: t.tid):
                dap_id = self._dap_ids.setdefault(t.tid, len(self._dap_ids) + 1)
                self._tids[dap_id] = t.tid
                pid_of[t.tid] = proc.pid
                own = os.path.basename(proc.program) if proc.program else program
                if t.leader:  # the process: named by its program, as before threads
                    name = t.name or own
                elif mine:
                    name = f"{t.tid} {t.name or start_function(s, t) or t.state}"
                else:
                    name = t.name or t.state
                if self._multi:
                    name = f"pid {proc.pid} / tid {t.tid} {name}"
                    if not mine:
                        name += f" ({t.waiting})" if t.waiting else " (not running)"
                listed.append({"id": dap_id, "name": name})
                if not mine:
                    others[t.tid] = (t, proc)
                if t.current and mine:
                    stopped = dap_id
        self._process_notes(s.processes, direction)
        now = {int(x["id"]) for x in listed}
        before = self._seen_threads
        self._seen_threads = now
        with self._lock:
            self._thread_list = listed
            self._stopped_id = stopped
            self._pid_of = pid_of
            self._others = others
        if before is not None:
            for dap_id in sorted(now - before):
                self.conn.event("thread", {"reason": "started", "threadId": dap_id})
            for dap_id in sorted(before - now):
                self.conn.event("thread", {"reason": "exited", "threadId": dap_id})

    def _process_notes(self, procs: list[GuestProcess], direction: Direction) -> None:
        """Console lines for the processes that appeared, exec'd or ended since the last
        stop (the DAP has no event for a debuggee's child processes: their threads come
        and go with ``thread`` events)."""
        now = {p.pid: p for p in procs}
        seen = self._seen_procs
        self._seen_procs = {p.pid: (p.state, p.program) for p in procs}
        if not seen:
            return
        back = direction is BACKWARD
        position = self.s.position
        lines = []
        for pid, p in sorted(now.items()):
            prog = os.path.basename(p.program) if p.program else "?"
            old = seen.get(pid)
            alive = p.state != "zombie"
            if old is None or (old[0] == "zombie" and alive):
                if alive:
                    lines.append(f"process {pid} ({prog}): " + (
                        "alive again (before its end)" if back else f"forked by {p.ppid}"))
                else:
                    lines.append(f"process {pid}: ended ({_wait_status(p.status)})")
            elif old[0] != "zombie" and not alive:
                lines.append(f"process {pid}: ended ({_wait_status(p.status)})")
            elif alive and p.program and old[1] and p.program != old[1]:
                lines.append(f"process {pid}: " + (f"back before its exec: runs {prog}"
                                                   if back else f"execs {p.program}"))
        for pid in sorted(set(seen) - set(now)):
            if seen[pid][0] != "zombie":
                lines.append(f"process {pid}: " + ("not forked yet" if back
                                                   else "ended and reaped"))
        for line in lines:
            self._console(f"[{line} at position {position}]\n")

    def _select(self, req: dict[str, Any]) -> None:
        """``threadId`` of a stackTrace: that thread's frames (until the next motion)."""
        dap_id = (req.get("arguments") or {}).get("threadId")
        tid = self._tids.get(int(dap_id)) if isinstance(dap_id, int) else None
        if tid is not None and self.session is not None and tid != self.s.thread.tid:
            with contextlib.suppress(SyxdbgError):
                self.s.select_thread(tid)

    def _req_cancel(self, req: dict[str, Any]) -> None:
        self.conn.respond(req)

    def _req_pause(self, req: dict[str, Any]) -> None:
        self.conn.respond(req)
        with self._lock:
            self._paused = True
        self._interrupt()

    def _apply_queued_breakpoints(self) -> None:
        """Serve the breakpoint requests waiting in the queue now (the others keep their
        order)."""
        q = self._queue
        with q.mutex:
            items = list(q.queue)
            q.queue.clear()
            keep = [it for it in items
                    if it is None or str(it[1].get("command")) not in _BREAKPOINT_REQUESTS]
            q.queue.extend(keep)
        for it in items:
            if it is not None and str(it[1].get("command")) in _BREAKPOINT_REQUESTS:
                self._call(it[0], it[1])

    def _req_terminate(self, req: dict[str, Any]) -> None:
        self.conn.respond(req)
        if not self._ended:
            self._ended = True
            self.conn.event("terminated")

    def _req_disconnect(self, req: dict[str, Any]) -> None:
        self._close()
        self.conn.respond(req)
        self._done.set()

    def _close(self) -> None:
        for bp in self._bps.values():  # their numbers die with the registry
            bp.numbers = []
        self._by_number.clear()
        if self.vars is not None:
            self.vars.close()
            self.vars = None
        if self.session is not None:
            self.session.close()
            self.session = None
            self.registry = None
        if self.stdio is not None:
            self.stdio.drain()

    # -- motions ----------------------------------------------------------------------------
    def _forget(self) -> None:
        """A motion starts: frames and variable references of the last stop expire."""
        self._refs.clear()
        self._indexed.clear()
        self._frames.clear()
        self._bare.clear()
        self._other_fids.clear()

    def _at_end(self) -> ev.StopEvent | None:
        """The final event when the machine can run no further forward from here."""
        s = self.s
        if s.timeline.end is not None:  # a recording reports its own end
            return None
        final = s.machine.finished
        if final is not None and final.position == s.position:
            return final
        return None

    def _forward(self, req: dict[str, Any], fn: Callable[[], ev.StopEvent], reason: str
                 ) -> None:
        final = self._at_end()
        self.conn.respond(req)
        if final is not None:
            self._end(final)
            return
        self._run(fn, reason, watch=True)

    def _end(self, final: ev.StopEvent) -> None:
        """The program is over: ``exited`` and ``terminated``."""
        if self._ended:
            return
        self._ended = True
        if isinstance(final, ev.Exited):
            code = final.status
        elif isinstance(final, (ev.Fault, ev.Killed)):
            code = 128 + final.signal
        else:
            code = 0
        if self.stdio is not None:
            self.stdio.drain()
        self.conn.event("exited", {"exitCode": code})
        self.conn.event("terminated")

    def _run(self, fn: Callable[[], ev.StopEvent], reason: str, *,
             after: Callable[[ev.StopEvent | None], bool] | None = None,
             restartable: bool = False, watch: bool = False) -> None:
        """Run one motion on this (the session) thread, then report where it stopped.

        ``restartable`` (a forward continue): breakpoint requests arriving meanwhile
        interrupt it, are applied, and it goes on (as gdb inserts breakpoints while the
        program runs)."""
        ctx = self.reg.ctx
        self._forget()
        self._from = self.s.position
        event: ev.StopEvent | None = None
        error = None
        progress = self._progress()
        resumed = self._sig_resumed
        if resumed is not None and resumed[1] != self._from:
            self._sig_resumed = None  # (not resuming from that signal stop: it stops again)
        self._sig_seen = None
        while True:
            with self._lock:
                ctx.interrupted.clear()
                self._moving = True
                self._restartable = restartable
                self._bp_interrupt = self._paused = False
                self._watching = watch and self._signal_filter
            try:
                event = fn()
            except TimelineInterrupted as exc:
                event = exc.event
            except SyxdbgError as exc:
                error = str(exc)
            finally:
                with self._lock:
                    self._moving = False
                    self._watching = False
                    again = self._bp_interrupt and not self._paused and self._sig_seen is None
            if again and error is None and isinstance(event, ev.Stopped) and \
                    event.why == "interrupt":
                self._apply_queued_breakpoints()
                continue
            break
        seen, self._sig_seen = self._sig_seen, None
        if seen is not None and error is None:
            try:
                event = self._signal_stop(seen)
            except SyxdbgError as exc:
                error = str(exc)
        progress.end()
        ctx.progress = None
        if after is not None and after(event):
            return
        if error is not None:
            self._console(f"error: {error}\n")
            s = self.s
            self._report(ev.Stopped(s.regs.pc, s.position, "error"), reason, error=error)
            return
        assert event is not None
        self._report(event, reason)

    def _signal_gate(self, pid: int, tid: int, sig: int) -> bool:
        """The kernel asks before it gives ``sig`` to a handler of thread ``tid`` (inside
        the system call or between the instructions that deliver it): in a watched forward
        motion, a signal of the followed process stops it (the motion is interrupted, then
        goes back one position: :meth:`_signal_stop`). Always delivered: history is one.
        A negative ``sig`` comes from a fault of the instruction at pc (a handler takes it):
        the stop is at that instruction."""
        fault, sig = sig < 0, abs(sig)
        s = self.session
        if not self._watching or self._sig_seen is not None or sig in NOSTOP_SIGNALS or \
                s is None:
            return True
        followed = s.followed
        position = s.position
        resumed = self._sig_resumed
        if (followed is None or followed == pid) and (
                resumed is None or resumed[0] != (position, pid, sig)):
            self._sig_seen = (position, pid, tid, -sig if fault else sig)
            s.interrupt()
        return True

    def _signal_stop(self, seen: tuple[int, int, int, int]) -> ev.StopEvent:
        """A signal was about to be given to a handler at ``seen``'s position: back one
        position, to the system call or instruction that delivers it (no frame pushed)."""
        position, pid, tid, sig = seen
        fault, sig = sig < 0, abs(sig)
        s = self.s
        origin = s.when().origin
        # A fault's own position: its instruction never retired (the handler's first one
        # runs at the same position), reached again from the one before it.
        before = position if fault else max(position - 1, origin)
        if fault and s.position >= position > origin:
            s.seek(position - 1)  # (a seek to where it stands would not move)
        landed = s.seek(before)
        if landed.position != before:
            return landed
        self._sig_resumed = ((position, pid, sig), before)
        self._sig_shown = (sig, pid, tid)
        return ev.Stopped(s.regs.pc, s.position, "signal")

    def _report(self, event: ev.StopEvent, reason: str, *, error: str | None = None) -> None:
        """The stopped event (or the end of the program) for ``event``."""
        if self.stdio is not None:
            self.stdio.drain()
        self._forget()
        self._last_event = event
        ctx = self.reg.ctx
        assert self.config is not None
        if isinstance(event, (ev.Exited, ev.Fault, ev.Killed)) and not self.config.stop_at_exit:
            self._end(event)
            return
        self._note_threads()
        body: dict[str, Any] = {"threadId": self._stopped_id, "allThreadsStopped": True}
        hit = ctx.breakpoint_for(event)
        dbp = self._by_number.get(hit.number) if hit is not None else None
        position = f"position {event.position}"
        if isinstance(event, ev.WatchHit):
            body["reason"] = "data breakpoint"
            body["description"] = f"Data breakpoint hit ({event.access} of "\
                                  f"{event.address:#x}, {position})"
        elif isinstance(event, HistoryBoundary):
            body["reason"] = "entry" if event.edge == "begin" else "end of history"
            body["description"] = ("Beginning of history" if event.edge == "begin"
                                   else "End of the recording") + f" ({position})"
        elif isinstance(event, ev.Exited):
            body["reason"] = "exited"
            body["description"] = (f"Program exited with status {event.status} ({position}): "
                                   "go back in time, or continue to end the session")
        elif isinstance(event, (ev.Fault, ev.Killed)):
            import signal as signals

            name = signals.Signals(event.signal).name
            body["reason"] = "exception"
            body["text"] = name
            body["description"] = f"{name}: {event.describe()} ({position})"
        elif isinstance(event, ev.Stopped) and event.why == "signal" and \
                self._sig_shown is not None:
            sig, pid, tid = self._sig_shown
            name = _signal_name(sig)
            body["reason"] = "exception"
            body["text"] = name
            body["description"] = (f"{name} about to be given to its handler (thread {tid}, "
                                   f"{position}): continue delivers it")
            self._console(f"Program received signal {name} (process {pid}, thread {tid}, "
                          f"{position}): continue gives it to the program's handler\n")
        elif isinstance(event, ev.Stopped) and event.why == "breakpoint":
            kind = dbp.kind if dbp is not None else "source"
            body["reason"] = {"function": "function breakpoint",
                              "instruction": "instruction breakpoint"}.get(kind, "breakpoint")
            body["description"] = f"Breakpoint hit ({position})"
        elif isinstance(event, ev.Stopped) and event.why == "interrupt":
            body["reason"] = "pause"
            body["description"] = f"Paused ({position})"
        elif isinstance(event, ev.Stopped) and event.why == "memory":
            body["reason"] = "pause"
            body["description"] = event.describe()
        else:
            body["reason"] = reason
            body["description"] = (f"error: {error}" if error else
                                   f"{reason.capitalize()} ({position})")
        if dbp is not None:
            body["hitBreakpointIds"] = [dbp.id]
        if not isinstance(event, ev.Stopped) or event.why not in ("entry", "error", "signal"):
            with contextlib.suppress(SyxdbgError):
                self._console(ctx.describe(event).rstrip("\n") + "\n")
        self.conn.event("stopped", body)

    def _progress(self) -> _Progress:
        """Progress events for a long motion (when the client reports progress)."""
        p = _Progress(self.conn if self.client.get("supportsProgressReporting") else None,
                      self._new_id())
        self.reg.ctx.progress = p.update
        return p

    def _accept(self, event: ev.StopEvent) -> bool:
        """Does a breakpoint or watchpoint hit stop the motion? (conditions, hit counts,
        log points: asked with the machine at the hit)."""
        ctx = self.reg.ctx
        if isinstance(event, ev.Stopped) and event.why == "until":
            return True
        bp = ctx.breakpoint_for(event)
        if bp is None:
            # A breakpoint stop at an address nobody holds is a stale hook of an earlier
            # run(until=): pass it.
            stale = isinstance(event, ev.Stopped) and event.why == "breakpoint" and not any(
                h.address == event.pc for h in self.s.timeline.breakpoint_table())
            return not stale
        dbp = self._by_number.get(bp.number)
        if dbp is not None and dbp.kind in ("source", "function") and self._foreign():
            return False  # its address is the launched program's, not this program's
        return ctx.condition_holds(bp)

    def _foreign(self) -> bool:
        """The running process runs another program than the launched one (it exec'd)."""
        s = self.s
        if s.image.kind != "elf":
            return False
        program = s.processes[0].program
        return bool(program) and not _same_program(program, s.image.path)

    def _holds(self, bp: Any, shell_condition: Callable[[Any], bool]) -> bool:
        """The command context's ``condition_holds`` while this server runs it: an editor
        breakpoint's condition, hit count and log message; a REPL breakpoint's shell
        condition. So every motion that asks, the shell's line steps and ``finish``
        included, passes a false one."""
        dbp = self._by_number.get(bp.number)
        if dbp is None:
            return shell_condition(bp)
        if dbp.condition:
            try:
                if not self._eval_int(dbp.condition, None):
                    return False
            except SyxdbgError:
                pass  # gdb stops when the condition cannot be evaluated
        dbp.hits += 1
        if dbp.hit_condition and not _hit_ok(dbp.hit_condition, dbp.hits):
            return False
        if dbp.log_message:
            self._console(self._interpolate(dbp.log_message) + "\n")
            return False
        return True

    def _interpolate(self, text: str) -> str:
        def sub(m: re.Match[str]) -> str:
            try:
                return self._eval_text(m.group(1), None)
            except SyxdbgError as exc:
                return f"<{exc}>"

        return re.sub(r"\{([^{}]+)\}", sub, text)

    def _cont(self, direction: Direction, until: int | None = None) -> ev.StopEvent:
        ctx = self.reg.ctx
        label = "continue" if direction is FORWARD else "reverse-continue"
        event = self.s.cont(direction, poll=ctx.poll(label), until=until, accept=self._accept)
        return motion._before_access(ctx, event)

    def _granular(self, req: dict[str, Any]) -> bool:
        """Instruction steps: asked for, or where pc has no line information (``_start``
        after stopOnEntry, a library without DWARF)."""
        if (req.get("arguments") or {}).get("granularity") == "instruction":
            return True
        s = self.s
        return s.image.kind != "elf" or self.reg.ctx.debuginfo.line_at(s.regs.pc) is None

    def _follow_thread(self, req: dict[str, Any]) -> tuple[int, GuestThread] | None:
        """A motion asked for ``threadId``: a thread of another process than the followed
        one makes the Session follow that process (its breakpoints stop motions from now
        on). Returns (pid, thread) when that process is not running now."""
        dap_id = (req.get("arguments") or {}).get("threadId")
        tid = self._tids.get(dap_id) if isinstance(dap_id, int) else None
        pid = self._pid_of.get(tid) if tid is not None else None
        if pid is None:
            return None
        s = self.s
        followed = s.followed
        if followed is not None and followed != pid:
            s.follow(pid)
            self._console(f"[following process {pid}: its breakpoints and data breakpoints "
                          "stop the program now]\n")
        other = self._others.get(tid) if tid is not None else None
        return (pid, other[0]) if other is not None else None

    def _enter(self, pid: int, thread: GuestThread, direction: Direction) -> ev.StopEvent:
        """A step of a thread of process ``pid``, which is not running: forward, run until
        it runs (where the thread resumes: a ``step`` stop); backward, back to where the
        process last ran (before the system call that gave the CPU away: at that pc for a
        call it makes again, 2 or 4 bytes before it otherwise). Hits of the followed
        processes on the way stop first."""
        s = self.s
        pcs = [thread.pc] if direction is FORWARD else [
            thread.pc - n for n in (0, 2, 4) if thread.pc >= n]
        handles = [s.add_breakpoint(pc, client="internal") for pc in pcs]

        def accept(event: ev.StopEvent) -> bool:
            if isinstance(event, ev.Stopped) and event.why == "breakpoint" and \
                    event.pc in pcs and self.reg.ctx.breakpoint_for(event) is None:
                return s.current_process == pid
            return self._accept(event)

        try:
            event = s.cont(direction, poll=self.reg.ctx.poll("step"), accept=accept)
        finally:
            for h in handles:
                s.remove_breakpoint(h)
        if isinstance(event, ev.Stopped) and event.why == "breakpoint" and \
                event.pc in pcs and s.current_process == pid and \
                self.reg.ctx.breakpoint_for(event) is None:
            return ev.Stopped(event.pc, event.position, "step")
        return event

    def _req_continue(self, req: dict[str, Any]) -> None:
        self._follow_thread(req)
        final = self._at_end()
        self.conn.respond(req, {"allThreadsContinued": True})
        if final is not None:
            self._end(final)
            return
        self._run(lambda: self._cont(FORWARD), "step", restartable=True, watch=True)

    def _req_reverseContinue(self, req: dict[str, Any]) -> None:  # noqa: N802
        self._follow_thread(req)
        self.conn.respond(req)
        self._run(lambda: self._cont(BACKWARD), "step")

    def _req_next(self, req: dict[str, Any]) -> None:
        ctx = self.reg.ctx
        other = self._follow_thread(req)
        if other is not None:
            self._forward(req, lambda: self._enter(*other, FORWARD), "step")
        elif self._granular(req):
            self._forward(req, lambda: motion.nexti(ctx, 1), "step")
        else:
            self._forward(req, lambda: motion.line_step(ctx, over=True), "step")

    def _req_stepIn(self, req: dict[str, Any]) -> None:  # noqa: N802
        ctx = self.reg.ctx
        other = self._follow_thread(req)
        if other is not None:
            self._forward(req, lambda: self._enter(*other, FORWARD), "step")
        elif self._granular(req):
            self._forward(req, lambda: motion.step(ctx, FORWARD), "step")
        else:
            self._forward(req, lambda: motion.line_step(ctx, over=False), "step")

    def _req_stepOut(self, req: dict[str, Any]) -> None:  # noqa: N802
        ctx = self.reg.ctx
        other = self._follow_thread(req)
        if other is not None:
            self._forward(req, lambda: self._enter(*other, FORWARD), "step")
            return
        self._forward(req, lambda: motion.finish(ctx, FORWARD), "step")

    def _req_stepBack(self, req: dict[str, Any]) -> None:  # noqa: N802
        ctx = self.reg.ctx
        other = self._follow_thread(req)
        self.conn.respond(req)
        if other is not None:
            self._run(lambda: self._enter(*other, BACKWARD), "step")
        elif self._granular(req):
            self._run(lambda: motion.step(ctx, BACKWARD), "step")
        else:
            self._run(lambda: motion.line_step(ctx, over=True, direction=BACKWARD), "step")

    def _req_gotoTargets(self, req: dict[str, Any]) -> None:  # noqa: N802
        a = req.get("arguments") or {}
        path = str((a.get("source") or {}).get("path") or "")
        line = self._line_in(int(a.get("line", 0)))
        ctx = self.reg.ctx
        try:
            addrs = ctx.debuginfo.addresses_of(path, line)
        except SyxdbgError:
            addrs = []
        targets = []
        if addrs:
            row = ctx.debuginfo.line_at(addrs[0])
            actual = row.line if row is not None else line
            for direction, label in ((FORWARD, "Run forward to"), (BACKWARD, "Run back to")):
                tid = self._new_id()
                self._goto[tid] = (addrs[0], direction)
                targets.append({"id": tid, "label": f"{label} line {actual}",
                                "line": self._line_out(actual),
                                "instructionPointerReference": f"{addrs[0]:#x}"})
        self.conn.respond(req, {"targets": targets})

    def _req_goto(self, req: dict[str, Any]) -> None:
        a = req.get("arguments") or {}
        target = self._goto.get(int(a.get("targetId", -1)))
        if target is None:
            raise RequestError("unknown goto target")
        address, direction = target
        if direction is FORWARD:
            self._forward(req, lambda: self._run_to(address, FORWARD), "goto")
        else:
            self.conn.respond(req)
            self._run(lambda: self._run_to(address, BACKWARD), "goto")

    def _run_to(self, address: int, direction: Direction) -> ev.StopEvent:
        """Continue to ``address`` (an internal breakpoint: an "until" stop there; other
        breakpoints on the way stop first). Not ``until=``: the machine's temporary until
        hook stays in translated blocks and stops a later run there again."""
        s = self.s
        handle = s.add_breakpoint(address, client="internal")
        try:
            return self._cont(direction)
        finally:
            s.remove_breakpoint(handle)

    def _req_gotoPosition(self, req: dict[str, Any]) -> None:  # noqa: N802
        """Custom request: ``{"position": N | "+N" | "-N" | "origin" | "frontier" | NAME}``
        goes to that point in time (the shell's ``goto``)."""
        a = req.get("arguments") or {}
        s = self.s
        target = s.position_of(str(a.get("position", "")))
        self.conn.respond(req, {"position": target})
        self._run(lambda: s.seek(target, poll=self.reg.ctx.poll("goto")), "goto")

    # -- breakpoints ------------------------------------------------------------------------
    def _describe_bp(self, bp: DapBreakpoint) -> dict[str, Any]:
        out: dict[str, Any] = {"id": bp.id, "verified": bp.verified}
        if bp.message:
            out["message"] = bp.message
        if bp.kind == "source" and bp.path:
            out["source"] = {"name": os.path.basename(bp.path), "path": bp.path}
        if bp.line is not None:
            out["line"] = self._line_out(bp.line)
        if bp.address is not None:
            out["instructionReference"] = f"{bp.address:#x}"
        return out

    def _drop(self, ids: list[int]) -> None:
        for i in ids:
            bp = self._bps.pop(i, None)
            if bp is not None:
                self._unapply(bp)

    def _unapply(self, bp: DapBreakpoint) -> None:
        if self.registry is not None:
            for n in bp.numbers:
                self._by_number.pop(n, None)
                with contextlib.suppress(SyxdbgError):
                    self.registry.ctx.delete_breakpoint(n)
        bp.numbers = []

    def _apply(self, bp: DapBreakpoint) -> None:
        """Make the context breakpoints of ``bp`` (after launch)."""
        self._unapply(bp)
        if self.registry is None:
            bp.verified, bp.message = False, "pending: the program is not loaded yet"
            return
        if self.config is not None and self.config.no_debug:
            bp.verified, bp.message = False, "running without debugging"
            return
        ctx = self.registry.ctx
        try:
            if bp.kind == "data":
                address, size = _data_id(str(bp.spec.get("dataId", "")))
                kind = _WATCH_KINDS.get(str(bp.spec.get("accessType") or "write"), "watch")
                where = str(bp.spec.get("description") or f"{address:#x}")
                b = ctx.add_breakpoint(kind, address, size, where)
                bp.numbers = [b.number]
            else:
                if bp.kind == "source":
                    addrs = ctx.debuginfo.addresses_of(bp.path, int(bp.spec.get("line", 0)))
                    where = f"{os.path.basename(bp.path)}:{bp.spec.get('line')}"
                elif bp.kind == "function":
                    where = str(bp.spec.get("name", ""))
                    addrs = ctx.resolve_location(where)
                else:
                    where = str(bp.spec.get("instructionReference", ""))
                    addrs = [int(where, 0) + int(bp.spec.get("offset") or 0)]
                bp.numbers = [ctx.add_breakpoint("break", a, 1, where).number for a in addrs]
                row = ctx.debuginfo.line_at(addrs[0]) if addrs else None
                if row is not None:
                    bp.line = row.line
                    if bp.kind != "source":
                        bp.path = row.file
                bp.address = addrs[0] if addrs else None
            bp.verified, bp.message = True, ""
            for n in bp.numbers:
                self._by_number[n] = bp
        except (SyxdbgError, ValueError) as exc:
            bp.verified, bp.message = False, str(exc)

    def _apply_all_breakpoints(self, *, announce: bool) -> None:
        for bp in self._bps.values():
            self._apply(bp)
            if announce:
                self.conn.event("breakpoint", {"reason": "changed",
                                               "breakpoint": self._describe_bp(bp)})

    def _set(self, ids: list[int], kind: str, specs: list[dict[str, Any]], path: str = ""
             ) -> list[int]:
        self._drop(ids)
        out = []
        for spec in specs:
            bp = DapBreakpoint(self._new_id(), kind, dict(spec), path)
            if kind == "source":
                bp.spec["line"] = self._line_in(int(spec.get("line", 0)))
                bp.line = bp.spec["line"]
            self._bps[bp.id] = bp
            self._apply(bp)
            out.append(bp.id)
        return out

    def _req_setBreakpoints(self, req: dict[str, Any]) -> None:  # noqa: N802
        a = req.get("arguments") or {}
        path = str((a.get("source") or {}).get("path") or "")
        specs = a.get("breakpoints")
        if specs is None:
            specs = [{"line": n} for n in a.get("lines", [])]
        ids = self._set(self._source_bps.get(path, []), "source", list(specs), path)
        self._source_bps[path] = ids
        self.conn.respond(req, {"breakpoints": [self._describe_bp(self._bps[i])
                                                for i in ids]})

    def _req_setFunctionBreakpoints(self, req: dict[str, Any]) -> None:  # noqa: N802
        a = req.get("arguments") or {}
        self._function_bps = self._set(self._function_bps, "function",
                                        list(a.get("breakpoints", [])))
        self.conn.respond(req, {"breakpoints": [self._describe_bp(self._bps[i])
                                                for i in self._function_bps]})

    def _req_setInstructionBreakpoints(self, req: dict[str, Any]) -> None:  # noqa: N802
        a = req.get("arguments") or {}
        self._instruction_bps = self._set(self._instruction_bps, "instruction",
                                          list(a.get("breakpoints", [])))
        self.conn.respond(req, {"breakpoints": [self._describe_bp(self._bps[i])
                                                for i in self._instruction_bps]})

    def _req_setDataBreakpoints(self, req: dict[str, Any]) -> None:  # noqa: N802
        a = req.get("arguments") or {}
        self._data_bps = self._set(self._data_bps, "data", list(a.get("breakpoints", [])))
        self.conn.respond(req, {"breakpoints": [self._describe_bp(self._bps[i])
                                                for i in self._data_bps]})

    def _req_setExceptionBreakpoints(self, req: dict[str, Any]) -> None:  # noqa: N802
        # Faults and fatal signals always stop (as "exception"); the "signals" filter stops
        # before a signal is given to a handler.
        filters = [str(f) for f in (req.get("arguments") or {}).get("filters") or []]
        self._signal_filter = "signals" in filters
        self.conn.respond(req, {"breakpoints": [
            {"verified": f == "signals", **({} if f == "signals" else
                                            {"message": f"unknown filter {f!r}"})}
            for f in filters]})

    def _req_dataBreakpointInfo(self, req: dict[str, Any]) -> None:  # noqa: N802
        a = req.get("arguments") or {}
        name = str(a.get("name", ""))
        ref = a.get("variablesReference")
        address: int | None = None
        size = 8
        if ref is not None and int(ref) in self._refs:
            for item in self._refs[int(ref)](0, None):
                if item.get("name") == name and "memoryReference" in item.get("_meta", {}):
                    address, size = item["_meta"]["memoryReference"], item["_meta"]["size"]
                    break
        else:
            frame = self._frame_state(a.get("frameId"))
            with contextlib.suppress(SyxdbgError):
                if is_path(name):
                    var = self._resolve(name, frame)
                    if var.location.kind == "memory":
                        from ..commands.variables import type_size

                        address, size = var.location.address, type_size(var.type) or 8
                else:
                    address = self.reg.ctx.evaluate(name)
        if address is None:
            self.conn.respond(req, {"dataId": None,
                                    "description": f"{name} is not in memory"})
            return
        self.conn.respond(req, {"dataId": f"{address:#x}:{size}",
                                "description": f"{name} ({size} bytes at {address:#x})",
                                "accessTypes": ["write", "read", "readWrite"],
                                "canPersist": False})

    # -- stack, scopes, variables -----------------------------------------------------------
    def _frames_now(self, limit: int = 64) -> list[Frame]:
        return motion.frames(self.reg.ctx, limit)

    def _state(self, frame: Frame) -> FrameState:
        mem = self.s.mem
        arch = self.s.machine.arch.name
        regs = frame_registers(arch, frame.regs, frame.level)
        if frame.level == 0:  # floats live in the vector registers
            live = self.s.regs
            regs.update({name: int(live[name])
                         for name in VECTOR_REGS.get(arch, {}).values()})
        return FrameState(frame.pc, regs, frame.cfa, lambda a, n: mem.read(a, n),
                          frame.level)

    def _states(self, frames: list[Frame]) -> list[FrameState]:
        """Frame states linked to their callers (entry values come from call sites)."""
        states = [self._state(f) for f in frames]
        for inner, outer in zip(states, states[1:], strict=False):
            inner.caller = outer
        return states

    def _frame_state(self, frame_id: Any) -> FrameState | None:
        if frame_id is not None and int(frame_id) in self._frames:
            return self._frames[int(frame_id)][1]
        if self.session is None:
            return None
        states = self._states(self._frames_now(4))
        return states[0] if states else None

    def _req_stackTrace(self, req: dict[str, Any]) -> None:  # noqa: N802
        """Frames from the CFI unwinder; a function inlined at a frame's pc is a frame of
        its own (innermost first), as in gdb."""
        import dataclasses

        a = req.get("arguments") or {}
        start = int(a.get("startFrame") or 0)
        levels = int(a.get("levels") or 0)
        dap_id = a.get("threadId")
        tid = self._tids.get(dap_id) if isinstance(dap_id, int) else None
        other = self._others.get(tid) if tid is not None else None
        unwound = self._other_frames(*other) if other is not None else None
        if (other is not None and unwound is None) or \
                (other is None and not self._runs_launched()):
            self.conn.respond(req, self._bare_stack(other, start, levels))
            return
        if unwound is not None:
            frames, states = unwound
        else:
            self._select(req)
            frames = self._frames_now(64)
            states = self._states(frames)
        di = self.reg.ctx.debuginfo
        assert self.vars is not None
        expanded: list[tuple[Frame, FrameState, str | None, int | None, str | None]] = []
        for f, state in zip(frames, states, strict=True):
            inlined = self.vars.inline_frames(state)
            if len(inlined) <= 1:
                expanded.append((f, state, None, None, None))
                continue
            # The innermost function's line is the pc's; each outer one's, its call's.
            for k, (fname, line, file) in enumerate(inlined):
                expanded.append((f, dataclasses.replace(state, inline=k), fname, line, file))
        out = []
        chosen = expanded[start:start + levels] if levels else expanded[start:]
        for f, state, inline_name, call_line, call_file in chosen:
            fid = self._new_id()
            self._frames[fid] = (f, state)
            if unwound is not None:
                self._other_fids.add(fid)
            pc = state.lookup_pc
            found = inline_name or self.vars.function_name(pc) or (
                di.symbolize(pc) if f.level == 0 else None)
            if found is None:
                sym = di.symbol_at(pc)
                found = sym[0] if sym is not None else f"{f.pc:#x}"
            name = found
            row = di.line_at(pc)
            file, line = (row.file, row.line) if row is not None else (None, None)
            if call_line is not None:
                file, line = call_file or file, call_line
            item: dict[str, Any] = {"id": fid, "name": name, "line": 0, "column": 0,
                                    "instructionPointerReference": f"{f.pc:#x}"}
            if file is not None and line is not None:
                item["line"] = self._line_out(line)
                item["column"] = 1
                if os.path.exists(file):
                    item["source"] = {"name": os.path.basename(file), "path": file}
                else:
                    item["source"] = {"name": os.path.basename(file),
                                      "presentationHint": "deemphasize"}
            else:
                item["presentationHint"] = "subtle"
            out.append(item)
        total = len(expanded)
        if other is not None:  # a last frame that says why it cannot be stepped in place
            total += 1
            if not levels or start + levels > len(expanded):
                out.append(self._waiting_label(other[1]))
        self.conn.respond(req, {"stackFrames": out, "totalFrames": total})

    def _waiting_label(self, proc: GuestProcess) -> dict[str, Any]:
        label = self._new_id()
        self._bare[label] = None
        return {"id": label, "line": 0, "column": 0, "presentationHint": "label",
                "name": f"process {proc.pid} is not running at position {self.s.position}: "
                        "continue, step or step back this thread to go where it runs"}

    def _other_frames(self, thread: GuestThread, proc: GuestProcess
                      ) -> tuple[list[Frame], list[FrameState]] | None:
        """The frames of a thread of a process that is not running, unwound in its own
        registers and memory (the Session's ``process_registers`` and
        ``read_process_memory``); None when it runs another program than the launched one
        (no debug information for it) or the Session cannot tell."""
        s = self.s
        if proc.program and not _same_program(proc.program, s.image.path):
            return None
        registers = getattr(s, "process_registers", None)
        memory = getattr(s, "read_process_memory", None)
        if registers is None or memory is None:
            return None
        try:
            live = registers(proc.pid, thread.tid)
        except SyxdbgError:
            return None
        from ..commands.debuginfo import DWARF_REGS

        arch = s.machine.arch
        names = set(DWARF_REGS.get(arch.name, {}).values()) | {arch.pc, arch.sp, "pc", "sp"}
        regs = {n: int(live[n]) for n in names if arch.register(n) is not None}
        read = _ProcessMemory(proc.pid, memory)
        frames = self.reg.ctx.debuginfo.unwind(
            regs, lambda address: int.from_bytes(read(address, 8), "little"), max_frames=64)
        states = [FrameState(f.pc, frame_registers(arch.name, f.regs, f.level), f.cfa, read,
                             f.level) for f in frames]
        for inner, outer in zip(states, states[1:], strict=False):
            inner.caller = outer
        return frames, states

    def _runs_launched(self) -> bool:
        """Does the running process run the launched program (whose DWARF and symbols the
        adapter has)? False after an exec of another program."""
        return not self._multi or not self._foreign()

    def _bare_stack(self, other: tuple[GuestThread, GuestProcess] | None, start: int,
                    levels: int) -> dict[str, Any]:
        """The frames the adapter can show without the launched program's debug
        information or without the process's memory: a thread of a process that is not
        running (its pc, a label saying so; no scopes), or the running process when it
        runs another program (its pc and registers)."""
        s = self.s
        di = self.reg.ctx.debuginfo
        out: list[dict[str, Any]] = []
        if other is not None:
            thread, proc = other
            pc = thread.pc
            same = not proc.program or _same_program(proc.program, s.image.path)
            fid = self._new_id()
            self._bare[fid] = None
            found = (self.vars.function_name(pc) if same and self.vars is not None
                     else None) or (di.symbolize(pc) if same else None)
            item: dict[str, Any] = {
                "id": fid, "name": found or f"{pc:#x} in {os.path.basename(proc.program)}",
                "line": 0, "column": 0, "instructionPointerReference": f"{pc:#x}",
                "presentationHint": "subtle"}
            row = di.line_at(pc) if same else None
            if row is not None and os.path.exists(row.file):
                item.update(line=self._line_out(row.line), column=1,
                            source={"name": os.path.basename(row.file), "path": row.file})
            out = [item, self._waiting_label(proc)]
        else:
            frame = self._frames_now(1)[0]
            fid = self._new_id()
            self._bare[fid] = frame
            program = os.path.basename(s.processes[0].program)
            out = [{"id": fid, "name": f"{frame.pc:#x} in {program}", "line": 0,
                    "column": 0, "instructionPointerReference": f"{frame.pc:#x}",
                    "presentationHint": "subtle"}]
        chosen = out[start:start + levels] if levels else out[start:]
        return {"stackFrames": chosen, "totalFrames": len(out)}

    def _req_scopes(self, req: dict[str, Any]) -> None:
        a = req.get("arguments") or {}
        fid = int(a.get("frameId", -1))
        if fid in self._bare:
            bare = self._bare[fid]
            scopes = [] if bare is None else [
                {"name": "Registers", "presentationHint": "registers",
                 "variablesReference": self._ref(self._registers(bare)), "expensive": False}]
            self.conn.respond(req, {"scopes": scopes})
            return
        if fid not in self._frames:
            raise RequestError("unknown frame (the program moved since)")
        frame, state = self._frames[fid]
        assert self.vars is not None
        params, local = self.vars.frame_variables(state)
        variables = self.vars
        scopes = [
            {"name": "Arguments", "presentationHint": "arguments",
             "variablesReference": self._ref(self._var_list(params, state)),
             "namedVariables": len(params), "expensive": False},
            {"name": "Locals", "presentationHint": "locals",
             "variablesReference": self._ref(self._var_list(local, state)),
             "namedVariables": len(local), "expensive": False},
            {"name": "Globals",
             "variablesReference": self._ref(
                 lambda start, count: self._var_list(variables.globals(state), state)(
                     start, count)),
             "expensive": False},
            {"name": "Registers", "presentationHint": "registers",
             "variablesReference": self._ref(self._registers(
                 frame, live=fid not in self._other_fids)), "expensive": False},
        ]
        self.conn.respond(req, {"scopes": scopes})

    def _registers(self, frame: Frame, *, live: bool = True
                   ) -> Callable[[int, int | None], list[dict[str, Any]]]:
        """The Registers scope: the selected thread's at level 0 (``live``), else the
        frame's unwound ones."""
        def items(start: int, count: int | None) -> list[dict[str, Any]]:
            from ..commands.context import general_registers

            ctx = self.reg.ctx
            values = ctx.register_values() if frame.level == 0 and live else \
                frame_registers(self.s.machine.arch.name, frame.regs, frame.level)
            out = []
            for name in general_registers(ctx):
                if name not in values:
                    continue
                v = values[name]
                item: dict[str, Any] = {"name": name, "value": f"{v:#x}",
                                        "variablesReference": 0,
                                        "type": "register", "evaluateName": f"${name}",
                                        "_meta": {"register": name,
                                                  "level": frame.level if live else -1}}
                sym = ctx.symbolize(v) if v > 0x1000 else None
                if sym:
                    item["value"] += f" <{sym}>"
                out.append(item)
            return out

        return items

    def _var_list(self, vars_: list[Variable], state: FrameState
                  ) -> Callable[[int, int | None], list[dict[str, Any]]]:
        def items(start: int, count: int | None) -> list[dict[str, Any]]:
            return [self._variable(v, state) for v in vars_]

        return items

    def _variable(self, var: Variable, state: FrameState | None) -> dict[str, Any]:
        from ..commands.variables import strip, type_size

        r = Renderer(state)
        item: dict[str, Any] = {"name": var.name, "value": r.value(var),
                                "type": describe_type(var.type), "variablesReference": 0}
        if var.path:
            item["evaluateName"] = var.path
        meta: dict[str, Any] = {"var": var, "state": state}
        if var.location.kind == "memory":
            meta.update(memoryReference=var.location.address, size=type_size(var.type) or 1)
        ty = strip(var.type)
        if ty is not None and ty.tag == "DW_TAG_pointer_type":
            value = r.integer(var) if var.location.readable else None
            if value:
                item["memoryReference"] = f"{value:#x}"
        elif var.location.kind == "memory":
            item["memoryReference"] = f"{var.location.address:#x}"
        if r.has_children(var):
            n = r.element_count(var)

            def children(start: int, count: int | None) -> list[dict[str, Any]]:
                return [self._variable(c, state) for c in r.children(var, start, count)]

            item["variablesReference"] = self._ref(children)
            if n:
                item["indexedVariables"] = n
                self._indexed.add(item["variablesReference"])
        item["_meta"] = meta
        return item

    def _req_variables(self, req: dict[str, Any]) -> None:
        a = req.get("arguments") or {}
        ref = int(a.get("variablesReference", 0))
        fn = self._refs.get(ref)
        if fn is None:
            raise RequestError("unknown variables reference (the program moved since)")
        start = int(a.get("start") or 0)
        count = a.get("count")
        if a.get("filter") == "named" and ref in self._indexed:
            self.conn.respond(req, {"variables": []})  # an array has no named children
            return
        items = fn(start, int(count) if count else None)
        out = []
        for it in items:
            it = dict(it)
            it.pop("_meta", None)
            out.append(it)
        self.conn.respond(req, {"variables": out})

    def _req_setVariable(self, req: dict[str, Any]) -> None:  # noqa: N802
        """Set a variable in memory or a register (the innermost frame's) to an
        expression's value; in the past this discards the recorded future."""
        from ..commands.variables import strip, type_size

        a = req.get("arguments") or {}
        fn = self._refs.get(int(a.get("variablesReference", 0)))
        if fn is None:
            raise RequestError("unknown variables reference (the program moved since)")
        name = str(a.get("name", ""))
        item = next((it for it in fn(0, None) if it.get("name") == name), None)
        if item is None:
            raise RequestError(f"no variable {name!r} there")
        meta = item.get("_meta", {})
        text = str(a.get("value", ""))
        s = self.s
        if "register" in meta:
            if meta["level"] != 0:
                raise RequestError("only the innermost frame's registers can be set")
            self._wrote(s.write_register(meta["register"], self._eval_int(text, None)))
            value = int(s.regs[meta["register"]])
            self.conn.respond(req, {"value": f"{value:#x}"})
            return
        var: Variable = meta["var"]
        state: FrameState | None = meta["state"]
        if state is not None and isinstance(state.read, _ProcessMemory):
            raise RequestError(f"process {state.read.pid} is not running: its variables "
                               "can be set once it runs (continue or step this thread)")
        ty = strip(var.type)
        size = type_size(var.type)
        if ty is None or ty.tag not in ("DW_TAG_base_type", "DW_TAG_pointer_type",
                                        "DW_TAG_enumeration_type") or not size:
            raise RequestError(f"{name}: only numbers and pointers can be set")
        enc = ty.attributes["DW_AT_encoding"].value if "DW_AT_encoding" in ty.attributes \
            else 0
        if enc == 0x04:  # float
            import struct

            try:
                data = struct.pack("<f" if size == 4 else "<d", float(text))
            except (ValueError, struct.error):
                raise RequestError(f"not a number: {text!r}") from None
        else:
            data = (self._eval_int(text, state) & (1 << 8 * size) - 1).to_bytes(size, "little")
        loc = var.location
        if loc.kind == "memory":
            self._wrote(s.write_memory(loc.address, data))
        elif loc.kind == "register" and state is not None and state.level == 0:
            self._wrote(s.write_register(loc.register, int.from_bytes(data, "little")))
        else:
            raise RequestError(f"{name} is not in memory or in a register of this frame")
        frame = self._frame_state(None) if state is None or state.level == 0 else state
        if state is not None and state.level == 0 and frame is not None:
            state.regs.update(frame.regs)
        self.conn.respond(req, {"value": Renderer(state).value(var),
                                "type": describe_type(var.type)})
        if self.client.get("supportsInvalidatedEvent"):
            self.conn.event("invalidated", {"areas": ["variables"],
                                            "threadId": self._stopped_id})

    def _wrote(self, discarded: FutureDiscarded | None) -> None:
        if isinstance(discarded, FutureDiscarded):
            self._console(f"syxdbg: {discarded.describe()}\n")

    # -- evaluate ---------------------------------------------------------------------------
    def _resolve(self, text: str, frame: FrameState | None) -> Variable:
        assert self.vars is not None
        return resolve_path(self.vars, Renderer(frame), text.strip(), frame,
                            lambda index: self._eval_int(index, frame))

    def _eval_int(self, text: str, frame: FrameState | None) -> int:
        """An integer expression: the shell's evaluator, with the C variables of the frame
        (``amount == 777``, ``ledger.balance > 1000``, ``i % 2``) replaced by values."""
        if frame is None:
            frame = self._frame_state(None)
        renderer = Renderer(frame)

        def sub(m: re.Match[str]) -> str:
            word = m.group(0)
            end = m.end()
            if word in ("and", "or", "not") or text[end:end + 1] == "(":
                return word
            try:
                var = self._resolve(word, frame)
            except SyxdbgError:
                return word
            value = renderer.integer(var)
            if value is None:
                if var.location.kind == "memory":
                    return str(var.location.address)
                return word
            return f"({value})"

        return self.reg.ctx.evaluate(_WORD.sub(sub, text))

    def _eval_text(self, text: str, frame: FrameState | None) -> str:
        if is_path(text):
            try:
                var = self._resolve(text, frame)
                return Renderer(frame).value(var)
            except SyxdbgError:
                pass
        value = self._eval_int(text, frame)
        return f"{value} ({value & (1 << 64) - 1:#x})" if value < 0 else \
            f"{value} ({value:#x})"

    def _req_evaluate(self, req: dict[str, Any]) -> None:
        a = req.get("arguments") or {}
        text = str(a.get("expression", "")).strip()
        context = str(a.get("context") or "repl")
        frame = self._frame_state(a.get("frameId"))
        if not text:
            raise RequestError("empty expression")
        if is_path(text):
            try:
                var = self._resolve(text, frame)
            except SyxdbgError:
                var = None
            if var is not None:
                item = self._variable(var, frame)
                body = {"result": item["value"], "type": item["type"],
                        "variablesReference": item["variablesReference"]}
                for key in ("memoryReference", "indexedVariables"):
                    if key in item:
                        body[key] = item[key]
                self.conn.respond(req, body)
                return
        reg = self.reg
        words = text.split()
        if context == "repl" and words[0].split("/")[0] in reg:
            self._repl_command(req, text)
            return
        value = self._eval_int(text, frame)
        shown = value & (1 << 64) - 1 if value < 0 else value
        self.conn.respond(req, {"result": f"{value} ({shown:#x})", "variablesReference": 0})

    def _repl_command(self, req: dict[str, Any], text: str) -> None:
        """A shell command typed in the debug console: the command registry, and when it
        moves in time, a motion (``continued``, then ``stopped``)."""
        reg = self.reg
        words, _ = reg.split(text)
        cmd, _ = reg.lookup(words)
        if not cmd.moves:
            out = reg.run_text(text)
            self.conn.respond(req, {"result": out.rstrip("\n"), "variablesReference": 0})
            return
        if cmd.name in ("continue", "next", "step", "finish", "stepi", "nexti", "until",
                        "advance") and self._at_end() is not None:
            final = self._at_end()
            assert final is not None
            self.conn.respond(req, {"result": "The program is not being run.",
                                    "variablesReference": 0})
            self._end(final)
            return
        self.conn.event("continued", {"threadId": self._stopped_id,
                                      "allThreadsContinued": True})
        result: list[str] = []
        ctx = reg.ctx
        ctx.last_event = None

        def run() -> ev.StopEvent:
            result.append(reg.run_text(text))
            s = self.s
            return ctx.last_event or ev.Stopped(s.regs.pc, s.position, "goto")

        self._forget()
        self._from = self.s.position
        with self._lock:
            self._moving = True
        error = None
        event: ev.StopEvent | None = None
        progress = self._progress()
        try:
            event = run()
        except SyxdbgError as exc:
            error = str(exc)
        finally:
            with self._lock:
                self._moving = False
            progress.end()
            ctx.progress = None
        if error is not None:
            self.conn.fail(req, error)
            s = self.s
            self._report(ev.Stopped(s.regs.pc, s.position, "goto"), "goto")
            return
        self.conn.respond(req, {"result": "".join(result).rstrip("\n"),
                                "variablesReference": 0})
        assert event is not None
        self._report_quiet(event)

    def _report_quiet(self, event: ev.StopEvent) -> None:
        """A stop after a REPL command (which printed its own description)."""
        if self.stdio is not None:
            self.stdio.drain()
        self._forget()
        self._last_event = event
        reason = "goto"
        if isinstance(event, ev.WatchHit):
            reason = "data breakpoint"
        elif isinstance(event, (ev.Fault, ev.Killed)):
            reason = "exception"
        elif isinstance(event, ev.Stopped) and event.why == "breakpoint":
            reason = "breakpoint"
        elif isinstance(event, ev.Stopped) and event.why == "interrupt":
            reason = "pause"
        self._note_threads()
        self.conn.event("stopped", {"reason": reason, "threadId": self._stopped_id,
                                    "allThreadsStopped": True,
                                    "description": f"{reason.capitalize()} "
                                                   f"(position {event.position})"})

    def _req_completions(self, req: dict[str, Any]) -> None:
        """Debug-console completion: command names for the first word, then the frame's
        variables, globals, symbols and ``$registers``."""
        a = req.get("arguments") or {}
        text = str(a.get("text", ""))
        column = int(a.get("column", len(text) + 1)) - 1 if self.client.get(
            "columnsStartAt1", True) else int(a.get("column", len(text)))
        head = text[:max(0, min(column, len(text)))]
        m = re.search(r"[$\w.]*$", head)
        word = m.group(0) if m else ""
        reg = self.reg
        names: list[tuple[str, str]] = []
        if not head[:len(head) - len(word)].strip():
            names += [(n, "keyword") for n in reg.names(aliases=False)]
        if word.startswith("$"):
            names += [(f"${r.name}", "property") for r in self.s.machine.arch.registers]
        else:
            frame = self._frame_state(a.get("frameId"))
            if frame is not None and self.vars is not None:
                params, local = self.vars.frame_variables(frame)
                names += [(v.name, "variable") for v in (*params, *local)]
                names += [(v.name, "variable") for v in self.vars.globals(frame)]
            if len(word) >= 2:
                names += [(n, "function") for n in self.s.symbols if n.startswith(word)]
        base = 1 if self.client.get("columnsStartAt1", True) else 0
        seen: set[str] = set()
        targets: list[dict[str, Any]] = []
        for label, kind in names:
            if label.startswith(word) and label not in seen:
                seen.add(label)
                targets.append({"label": label, "type": kind,
                                "start": column - len(word) + base, "length": len(word)})
                if len(targets) >= 200:
                    break
        self.conn.respond(req, {"targets": targets})

    def _req_exceptionInfo(self, req: dict[str, Any]) -> None:  # noqa: N802
        event = self._last_event
        if isinstance(event, ev.Stopped) and event.why == "signal" and \
                self._sig_shown is not None:
            sig, pid, tid = self._sig_shown
            name = _signal_name(sig)
            text = f"{name} about to be given to its handler in process {pid}, thread {tid}"
            self.conn.respond(req, {"exceptionId": name, "description": text,
                                    "breakMode": "always",
                                    "details": {"message": text, "typeName": name}})
            return
        if not isinstance(event, (ev.Fault, ev.Killed)):
            raise RequestError("the program did not stop on a signal")
        import signal as signals

        name = signals.Signals(event.signal).name
        self.conn.respond(req, {"exceptionId": name, "description": event.describe(),
                                "breakMode": "always",
                                "details": {"message": event.describe(), "typeName": name}})

    # -- memory and code ----------------------------------------------------------------------
    def _req_readMemory(self, req: dict[str, Any]) -> None:  # noqa: N802
        a = req.get("arguments") or {}
        address = _address(a.get("memoryReference")) + int(a.get("offset") or 0)
        count = max(0, min(int(a.get("count") or 0), 1 << 20))
        data = self.s.mem.read_partial(address, count) if 0 <= address < 1 << 64 else b""
        body: dict[str, Any] = {"address": f"{address:#x}"}
        if data:
            body["data"] = base64.b64encode(data).decode()
        if len(data) < count:
            body["unreadableBytes"] = count - len(data)
        self.conn.respond(req, body)

    def _req_writeMemory(self, req: dict[str, Any]) -> None:  # noqa: N802
        a = req.get("arguments") or {}
        address = _address(a.get("memoryReference")) + int(a.get("offset") or 0)
        try:
            data = base64.b64decode(str(a.get("data", "")), validate=True)
        except ValueError:
            raise RequestError("writeMemory: data is not base64") from None
        discarded = self.s.write_memory(address, data)
        self.conn.respond(req, {"offset": 0, "bytesWritten": len(data)})
        if isinstance(discarded, FutureDiscarded):
            self._console(f"syxdbg: {discarded.describe()}\n")
        self.conn.event("memory", {"memoryReference": f"{address:#x}", "offset": 0,
                                   "count": len(data)})
        if self.client.get("supportsInvalidatedEvent"):
            self.conn.event("invalidated", {"areas": ["variables"],
                                            "threadId": self._stopped_id})

    def _req_disassemble(self, req: dict[str, Any]) -> None:
        a = req.get("arguments") or {}
        base = _address(a.get("memoryReference")) + int(a.get("offset") or 0)
        first = int(a.get("instructionOffset") or 0)
        count = max(0, min(int(a.get("instructionCount") or 0), 4096))
        symbols = a.get("resolveSymbols", True)
        insns = self._instructions(base, first, count)
        di = self.reg.ctx.debuginfo
        out = []
        last_line: tuple[str, int] | None = None
        for address, text, data in insns:
            item: dict[str, Any] = {"address": f"{address:#x}", "instruction": text}
            if data:
                item["instructionBytes"] = data.hex(" ")
                if symbols:
                    sym = di.symbolize(address)
                    if sym:
                        item["symbol"] = sym
                row = di.line_at(address)
                if row is not None and (row.file, row.line) != last_line:
                    last_line = (row.file, row.line)
                    item["location"] = {"name": os.path.basename(row.file), "path": row.file}
                    item["line"] = self._line_out(row.line)
            else:
                item["presentationHint"] = "invalid"
            out.append(item)
        self.conn.respond(req, {"instructions": out})

    def _instructions(self, base: int, first: int, count: int
                      ) -> list[tuple[int, str, bytes]]:
        """``count`` instructions starting ``first`` instructions from ``base`` (negative:
        before it); unreadable ones are ``(address, "??", b"")``."""
        machine = self.s.machine
        if machine.arch.name == "aarch64":  # fixed width: count back directly
            start, first, base = base + 4 * first, 0, base + 4 * first
        elif first < 0:
            # x86: decode forward from an instruction boundary before base (the start of
            # its function when near, else far enough back to resynchronise).
            start = self._boundary_before(base, -first)
        else:
            start = base
        need = count + max(first, 0)  # instructions at or after base
        listing: list[tuple[int, str, bytes]] = []
        after = 0
        pc = start
        while after < need and len(listing) < 200000:
            try:
                got = machine.disassemble(pc, 64) if 0 <= pc < 1 << 64 else []
            except Exception:
                got = []
            if not got:
                got_items = [(pc, "??", b"")]
                pc += 4 if machine.arch.name == "aarch64" else 1
            else:
                got_items = [(a, f"{m} {o}".strip(), d) for a, m, o, d in got]
                pc = got[-1][0] + len(got[-1][3])
            for item in got_items:
                listing.append(item)
                if item[0] >= base:
                    after += 1
        idx = next((i for i, x in enumerate(listing) if x[0] >= base), len(listing))
        lo = idx + first
        pre: list[tuple[int, str, bytes]] = []
        if lo < 0:
            top = listing[0][0] if listing else base
            pre = [(max(0, top - (-lo - k)), "??", b"") for k in range(-lo)]
            lo = 0
        out = (pre + listing[lo:])[:count]
        while len(out) < count:
            last = out[-1][0] + max(1, len(out[-1][2])) if out else base
            out.append((last, "??", b""))
        return out

    def _boundary_before(self, base: int, n: int) -> int:
        """An instruction boundary at least ``n`` instructions before ``base`` (x86): the
        start of the function holding it, or of the functions before it."""
        di = self.reg.ctx.debuginfo
        machine = self.s.machine
        start = base
        for _ in range(8):
            sym = di.symbol_at(start - 1) if start > 0 else None
            if sym is None or start - 1 - sym[1] > 1 << 14:
                return self._resync(start, base, n)
            start = sym[1]
            pc, seen = start, 0
            while pc < base:
                got = machine.disassemble(pc, 64)
                if not got:
                    break
                for address, _, _, data in got:
                    if address >= base:
                        break
                    seen += 1
                    pc = address + len(data)
            if seen >= n:
                return start
        return start

    def _resync(self, start: int, base: int, n: int) -> int:
        """No symbol before ``start``: a point far enough back whose decoding falls on
        ``start`` exactly (x86 decoding resynchronises within a few instructions)."""
        machine = self.s.machine
        for back in range(16 * n, 16 * n + 48):
            pc = start - back
            if pc < 0:
                break
            while pc < start:
                got = machine.disassemble(pc, 1)
                if not got:
                    break
                pc = got[0][0] + len(got[0][3])
            if pc == start:
                return start - back
        return start

    def _req_loadedSources(self, req: dict[str, Any]) -> None:  # noqa: N802
        files = self.reg.ctx.debuginfo.source_files()
        self.conn.respond(req, {"sources": [{"name": os.path.basename(f), "path": f}
                                            for f in files if os.path.exists(f)]})

    def _req_source(self, req: dict[str, Any]) -> None:
        a = req.get("arguments") or {}
        path = str((a.get("source") or {}).get("path") or "")
        lines = self.reg.ctx.debuginfo.source_lines(path) if path else None
        if lines is None:
            raise RequestError("no source available")
        self.conn.respond(req, {"content": "\n".join(lines) + "\n"})


class _Progress:
    """``progressStart`` at the first progress line of a motion (the command context
    reports at most every 0.2 s), ``progressUpdate`` after it, ``progressEnd`` at the stop:
    a long reverse-continue or last-write shows the position it has reached."""

    def __init__(self, conn: Connection | None, ident: int) -> None:
        self.conn = conn
        self.id = f"syxdbg-{ident}"
        self.started = False

    def update(self, text: str) -> None:
        if self.conn is None:
            return
        if not self.started:
            self.started = True
            title, _, _ = text.partition(":")
            self.conn.event("progressStart", {"progressId": self.id, "title": title,
                                              "message": text, "cancellable": False})
        else:
            self.conn.event("progressUpdate", {"progressId": self.id, "message": text})

    def end(self) -> None:
        if self.conn is not None and self.started:
            self.conn.event("progressEnd", {"progressId": self.id})


class _ProcessMemory:
    """Reads the memory of a process that is not running (the Session's
    ``read_process_memory``): whole or :class:`SyxdbgError`."""

    def __init__(self, pid: int, memory: Callable[[int, int, int], bytes]) -> None:
        self.pid = pid
        self.memory = memory

    def __call__(self, address: int, size: int) -> bytes:
        data = bytes(self.memory(self.pid, address, size))
        if len(data) < size:
            raise SyxdbgError(f"cannot read {size} bytes at {address:#x} in process "
                              f"{self.pid}")
        return data


def _signal_name(sig: int) -> str:
    import signal as signals

    try:
        return signals.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _wait_status(status: int | None) -> str:
    """A wait status as words: ``exited 5``, ``killed by SIGTERM``."""
    if status is None:
        return "status unknown"
    if status & 0x7F == 0:
        return f"exited {status >> 8 & 0xFF}"
    import signal as signals

    try:
        name = signals.Signals(status & 0x7F).name
    except ValueError:
        name = f"signal {status & 0x7F}"
    return f"killed by {name}"


def _same_program(a: str, b: str) -> bool:
    return a == b or os.path.realpath(a) == os.path.realpath(b)


def _hit_ok(condition: str, hits: int) -> bool:
    """A DAP hit condition: ``N`` or ``== N`` (the Nth hit), ``>= N``, ``> N``, ``< N``,
    ``<= N``, ``% N`` (every Nth)."""
    m = _HIT.match(condition)
    if m is None:
        return True
    op, n = m.group(1) or "==", int(m.group(2))
    if op in ("==", "="):
        return hits == n
    if op == "%":
        return n > 0 and hits % n == 0
    return {">=": hits >= n, ">": hits > n, "<": hits < n, "<=": hits <= n}[op]


def _address(ref: Any) -> int:
    try:
        return int(str(ref), 0)
    except ValueError:
        raise RequestError(f"not a memory reference: {ref!r}") from None


def _data_id(data_id: str) -> tuple[int, int]:
    address, _, size = data_id.partition(":")
    try:
        return int(address, 0), int(size or "8", 0)
    except ValueError:
        raise SyxdbgError(f"not a data breakpoint id: {data_id!r}") from None
