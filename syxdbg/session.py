"""The Session: the facade every front end (CLI, scripts, gdb adapter, shell) talks to."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

from .errors import LoadError, SyxdbgError
from .loader import LoadedImage, inspect_elf, load_elf, load_raw
from .machine import Machine, Memory, Registers, StopEvent, Stopped, get_arch
from .state import StateRegistry

if TYPE_CHECKING:
    from .eventlog import EventLog
    from .timeline import (
        AcceptFn,
        Breakpoint,
        CheckpointInfo,
        Client,
        Direction,
        FutureDiscarded,
        LastWrite,
        NamedPoint,
        PollFn,
        Recorded,
        Timeline,
        Watchpoint,
        When,
    )


class History(Protocol):
    """A history a session is opened on instead of starting from nothing: a recording to
    replay (:class:`syxdbg.recording.RecordedHistory`). See :meth:`Session.open`."""

    #: The recording, kept as :attr:`Session.recording`.
    recording: Any

    def attach(self, session: Session) -> tuple[Recorded, EventLog]:
        """Make ``session``'s freshly loaded machine and states the history's initial state;
        return the timeline's recorded source and its (sealed) event log."""
        ...


@dataclass(frozen=True)
class GuestThread:
    """One thread of the program, as :attr:`Session.threads` lists it.

    ``state`` is ``"running"`` (its registers are the CPU's: the thread that runs now),
    ``"runnable"`` (waiting in the run queue), ``"blocked"`` (``waiting`` says on what) or
    ``"exited"``. ``pc`` is where it resumes. ``current`` marks the thread whose registers
    are the machine's (the first of the list); ``leader`` the process's first thread (its
    tid is the pid; it runs ``main``); ``name`` is the name the program gave it
    (``prctl(PR_SET_NAME)``), "" when it gave none.
    """

    tid: int
    pc: int
    state: str = "running"
    waiting: str = ""
    name: str = ""
    current: bool = False
    leader: bool = False


@dataclass(frozen=True)
class GuestProcess:
    """One process of the program's tree, as :attr:`Session.processes` lists it.

    ``state`` is ``"running"`` (its thread runs now: the machine's memory and registers
    are its), ``"runnable"``, ``"blocked"`` (every thread of it waits) or ``"zombie"``
    (exited, not reaped yet: ``status`` is its wait status). ``program`` is the program it
    runs (its last execve's), ``threads`` how many it has; ``current`` marks the running
    one (the first of the list).
    """

    pid: int
    ppid: int
    pgid: int
    state: str
    program: str
    threads: int
    current: bool = False
    status: int | None = None


class ThreadSource(Protocol):
    """What a plugin that runs several guest threads on the machine tells the Session
    (returned by the ``syxdbg_thread_source`` hook; the Linux plugin's kernel)."""

    def guest_threads(self) -> list[GuestThread]:
        """Every thread, the current one (the machine's registers) first."""
        ...

    def thread_registers(self, tid: int) -> dict[str, int]:
        """A thread that is not the current one: its registers as it will resume, by name
        (KeyError for an unknown thread)."""
        ...


#: The thread id of a program without a thread source (raw blobs, no kernel plugin).
MAIN_THREAD = 1


class ThreadRegisters(Registers):
    """The registers of a thread that is not running (:attr:`Session.regs` after
    :meth:`Session.select_thread`): read like the machine's, read-only."""

    __slots__ = ("_values", "_tid")
    _values: dict[str, int]
    _tid: int

    def __init__(self, arch: Any, values: dict[str, int], tid: int) -> None:
        for name, value in (("_uc", None), ("_arch", arch), ("_virtual", {}),
                            ("_written", None), ("_fast", None), ("_values", values),
                            ("_tid", tid)):
            object.__setattr__(self, name, value)

    def read_info(self, reg: Any) -> int:
        return int(self._values.get(reg.name, 0))

    def write_info(self, reg: Any, value: int) -> None:
        raise SyxdbgError(f"thread {self._tid} is not running: its registers are read-only "
                          f"(select the running thread to write {reg.name})")


class _Motion:
    """:meth:`Session.motion` (a class, not a generator: a stepi pays for it)."""

    __slots__ = ("_session", "_inner")

    def __init__(self, session: Session) -> None:
        self._session = session
        self._inner = session.timeline.motion()

    def __enter__(self) -> None:
        self._session._depth += 1
        self._inner.__enter__()

    def __exit__(self, *exc: object) -> None:
        s = self._session
        try:
            self._inner.__exit__(*exc)
        finally:
            s._depth -= 1
            if s._depth == 0 and s._pending is not None:
                event, s._pending = s._pending, None
                s._stopped(event)


class Session:
    """One program under syxdbg: its machine, plugins and registered state.

    Create it with :func:`syxdbg.open` (or :meth:`Session.open`); nothing executes until
    :meth:`run` is called.

    Time travel goes through :attr:`timeline` (created on first use, normally by the first
    run, so history starts at position 0): :meth:`step`, :meth:`cont` and :meth:`seek` take
    a direction or a position, :meth:`when` tells where we are. Options (``options=``):
    ``timeline`` (False: :meth:`run` drives the machine directly, no history),
    ``timeline.interval`` (instructions between checkpoints), ``timeline.budget`` (bytes).
    """

    def __init__(self, plugins: pluggy.PluginManager, options: Mapping[str, Any] | None = None
                 ) -> None:
        self.plugins = plugins
        self.options: dict[str, Any] = dict(options or {})
        self.states = StateRegistry()
        self._machine: Machine | None = None
        self._image: LoadedImage | None = None
        self._timeline: Timeline | None = None
        self._closed = False
        self._depth = 0  # nesting of motion()
        self._pending: StopEvent | None = None  # the stop a motion reports when it ends
        #: The thread :meth:`select_thread` chose (None: the current one); every stop
        #: selects the thread that stopped (the current one), as gdb does.
        self._selected: int | None = None
        #: The thread list at the machine's state generation it was computed at (the
        #: machine changes its generation at every run, register write and restore).
        self._threads_cache: tuple[int, tuple[GuestThread, ...]] | None = None
        #: The running thread's id at the machine's switch point count it was found at.
        self._current_cache: tuple[int, int] | None = None
        self._source: ThreadSource | None = None  # the thread source, once a plugin gave it
        #: The process whose hits stop motions (:meth:`follow`); 0: the first process (found
        #: when first needed), None: any process.
        self._followed: int | None = 0
        #: The recording this session replays (:func:`syxdbg.replay`), if any: a
        #: ``syxdbg.recording.Recording``, typed loosely so that the Session never imports
        #: the recording layer (which is built on it).
        self.recording: Any = None
        #: Directories removed when the session closes (a replay's extracted program).
        self.temporary: list[str] = []
        #: Where the guest's absolute library paths resolve (dynamic programs; None: default).
        self.sysroot: str | None = None
        #: A raw blob's (base, entry) while it loads (None: an ELF).
        self.raw_load: tuple[int | None, int | None] | None = None
        self.hook = plugins.hook
        self.hook.syxdbg_configure(session=self)

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def open(cls, path: str, args: Sequence[str] = (), *, env: Mapping[str, str] | None = None,
             arch: str | None = None, raw: bool = False, base: int | None = None,
             entry: int | None = None, argv0: str | None = None, sysroot: str | None = None,
             plugins: pluggy.PluginManager, options: Mapping[str, Any] | None = None,
             history: History | None = None) -> Session:
        """Load a program with the plugins of ``plugins`` (nothing runs yet; most callers
        want :func:`syxdbg.open`, which makes the plugin manager). With ``history`` (a
        recording to replay), the session's timeline is that history: it starts at its
        initial state, takes host inputs from its event log and ends where it ends."""
        session = cls(plugins, options)
        session.sysroot = sysroot
        try:
            session._load(os.fspath(path), list(args), env, arch, raw, base, entry, argv0)
            if history is not None:
                source, log = history.attach(session)
                session._timeline = session._new_timeline(eventlog=log, recorded=source)
                session.recording = history.recording
        except BaseException:
            session.close()
            raise
        return session

    def _load(self, path: str, args: list[str], env: Mapping[str, str] | None, arch: str | None,
              raw: bool, base: int | None, entry: int | None, argv0: str | None) -> None:
        if raw:
            if arch is None:
                raise LoadError("--raw needs --arch (x86_64 or aarch64)")
            if base is None:
                raise LoadError("--raw needs --base ADDRESS")
            machine = Machine(get_arch(arch))
            self.raw_load = (base, entry)  # (for a syxdbg_load_image plugin: firmware)
            image = self.hook.syxdbg_load_image(session=self, machine=machine, path=path)
            if image is None:
                image = load_raw(machine, path, base, entry)
        else:
            info = inspect_elf(path)
            if arch is None and self.options.get("board"):
                arch = "cortex-m"  # firmware for a board (the firmware plugin loads it)
            chosen = info.arch if arch is None else get_arch(arch)
            if chosen.elf_machine != info.arch.elf_machine:
                raise LoadError(f"{path}: is a {info.arch.name} program, not {arch}")
            machine = Machine(chosen)
            image = self.hook.syxdbg_load_image(session=self, machine=machine, path=path)
            if image is None:
                environ = dict(os.environ if env is None else env)
                envp = [f"{k}={v}" for k, v in environ.items()]
                image = load_elf(machine, path, [argv0 if argv0 is not None else path, *args],
                                 envp, sysroot=self.sysroot)
        self._machine = machine
        self._image = image
        self.hook.syxdbg_machine_created(session=self, machine=machine)
        self.hook.syxdbg_register_state(session=self, registry=self.states)

    # -- accessors --------------------------------------------------------------------------
    @property
    def machine(self) -> Machine:
        if self._machine is None:
            raise SyxdbgError("no program is loaded")
        return self._machine

    @property
    def image(self) -> LoadedImage:
        """What was loaded (the session owns it; the machine knows nothing of images)."""
        if self._image is None:
            raise SyxdbgError("no program is loaded")
        return self._image

    @property
    def regs(self) -> Registers:
        """The selected thread's registers (:meth:`select_thread`; normally the running
        thread's, the machine's)."""
        if self._selected is None:
            return self.machine.regs
        return self.thread_registers(self._selected)

    @property
    def mem(self) -> Memory:
        return self.machine.mem

    @property
    def symbols(self) -> dict[str, int]:
        return self.image.symbols

    @property
    def position(self) -> int:
        return self.machine.position

    def resolve(self, where: int | str) -> int:
        """An address from an int, a symbol name, ``symbol+off`` or a hex/decimal string."""
        if isinstance(where, int):
            return where
        text = where.strip()
        base, plus, off = text.partition("+")
        try:
            return int(text, 0)
        except ValueError:
            pass
        if base in self.symbols:
            return self.symbols[base] + (int(off, 0) if plus else 0)
        raise SyxdbgError(f"no symbol {base!r} in {self.image.path}")

    # -- execution --------------------------------------------------------------------------
    def run(self, until: int | str | None = None, count: int | None = None, *,
            poll: PollFn | None = None) -> StopEvent:
        """Run until the program exits or faults, ``until`` is reached, or ``count`` retire.

        Goes through the timeline (history is recorded) unless the ``timeline`` option is
        False and no timeline exists yet. ``poll()`` returning True interrupts (it is asked
        between chunks, so an interrupt requested before the run started is not lost).
        """
        target = None if until is None else self.resolve(until)
        if self._timeline is None and not self.options.get("timeline", True):
            event = self.machine.run(count=count, until=target)
        else:
            event = self.timeline.run(count=count, until=target, poll=poll)
        return self._stopped(event)

    def _stopped(self, event: StopEvent) -> StopEvent:
        """The one place ``syxdbg_stop`` is fired: now, or at the end of the outermost
        :meth:`motion`."""
        if self._depth:
            self._pending = event
        else:
            self._selected = None  # a stop selects the thread that stopped
            self.hook.syxdbg_stop(session=self, event=event)
        return event

    # -- threads ----------------------------------------------------------------------------
    def _thread_source(self) -> ThreadSource | None:
        if self._machine is None:
            return None
        source = self._source
        if source is None:  # (asked until a plugin answers; then that one, for good)
            source = self._source = self.hook.syxdbg_thread_source(session=self)
        return source

    @property
    def threads(self) -> list[GuestThread]:
        """Every thread of the program, the running one (``current``) first, then by tid.
        A program without a kernel plugin (a raw blob) has one thread, id 1."""
        machine = self.machine
        cached = self._threads_cache
        if cached is not None and cached[0] == machine.generation:
            return list(cached[1])  # (gdb asks several times per stop: once is computed)
        source = self._thread_source()
        if source is None:
            threads = [GuestThread(MAIN_THREAD, machine.pc, current=True, leader=True)]
        else:
            threads = source.guest_threads()
        self._threads_cache = (machine.generation, tuple(threads))
        self._current_cache = (machine.switch_points, threads[0].tid)
        return threads

    @property
    def current_thread(self) -> int:
        """The id of the thread that runs now (whose registers are the machine's)."""
        cached = self._current_cache
        if cached is not None and cached[0] == self.machine.switch_points:
            return cached[1]  # no system call, timer or restore since: the same thread
        return self.threads[0].tid

    @property
    def thread(self) -> GuestThread:
        """The selected thread (the running one unless :meth:`select_thread` chose
        another since the last stop)."""
        threads = self.threads
        if self._selected is not None:
            for t in threads:
                if t.tid == self._selected:
                    return t
        return threads[0]

    @property
    def processes(self) -> list[GuestProcess]:
        """Every process of the program (fork, vfork, posix_spawn make more), the running
        one first, then by pid, zombies last. A program without a kernel plugin, or whose
        kernel keeps no process table, is one process."""
        source = self._thread_source()
        listing = getattr(source, "guest_processes", None)
        if listing is not None:
            return list(listing())
        threads = self.threads
        return [GuestProcess(threads[0].tid, 0, threads[0].tid, "running",
                             self.image.path, len(threads), current=True)]

    def process_threads(self, pid: int) -> list[GuestThread]:
        """The threads of live process ``pid`` (:attr:`threads` for the running one; for
        another, its queued threads with the pc each resumes at: read-only facts, its
        memory and registers are not the machine's); [] for no such process."""
        if pid == self.current_process:
            return self.threads
        listing = getattr(self._thread_source(), "process_threads", None)
        return list(listing(pid)) if listing is not None else []

    @property
    def current_process(self) -> int:
        """The pid of the process that runs now (whose memory and registers are the
        machine's); the one process of a program without a process table."""
        source = self._thread_source()
        running = getattr(source, "current_process", None)
        if running is not None:
            return int(running())
        return self.threads[0].tid if source is not None else MAIN_THREAD

    @property
    def followed(self) -> int | None:
        """The process whose breakpoint, watchpoint and until hits stop motions (and
        whose writes ``last_write`` finds); None: every process's."""
        if self._followed == 0:
            self._followed = self._root_process()
        return self._followed

    def follow(self, pid: int | None) -> None:
        """Follow process ``pid`` (None: every process). By default a session follows the
        program's first process, as gdb follows the parent of a fork: a breakpoint in code
        a forked child runs too does not stop in the child. A pid that does not exist
        (yet) is accepted: hits stop once it runs."""
        if pid is not None and pid <= 0:
            raise SyxdbgError(f"not a process id: {pid}")
        self._followed = pid

    def run_to_exec(self, name: str, *, poll: PollFn | None = None) -> StopEvent:
        """Run forward until a process execs a program whose file name is ``name``, stop
        right after that execve (the new program's first instruction has not run) and
        follow that process. Raises :class:`SyxdbgError` if the program ends first."""
        import os

        source = self._thread_source()
        watch = getattr(source, "watch_exec", None)
        if watch is None:
            raise SyxdbgError("this program has no processes to follow (no kernel plugin)")
        found: list[int] = []

        def seen(pid: int, program: bytes) -> None:
            if not found and os.path.basename(os.fsdecode(program)) == name:
                found.append(pid)
                self.interrupt()

        watch(seen)
        try:
            event = self.cont("forward", poll=poll)
        finally:
            watch(None)
        if not found:
            raise SyxdbgError(f"no process execs a program named {name!r} before the end "
                              f"({event})")
        self.follow(found[0])
        return event

    def _root_process(self) -> int | None:
        source = self._thread_source()
        root = getattr(source, "root_process", None)
        return int(root()) if root is not None else None

    def _in_followed_process(self, event: StopEvent) -> bool:
        followed = self.followed
        return followed is None or self.current_process == followed

    def select_thread(self, tid: int) -> GuestThread:
        """Select thread ``tid``: :attr:`regs` reads its registers (read-only unless it is
        the running thread) and a forward :meth:`step` steps it. The next stop selects the
        thread that stopped again."""
        threads = self.threads
        for t in threads:
            if t.tid == tid:
                self._selected = None if t.current else tid
                return t
        known = ", ".join(str(t.tid) for t in threads)
        raise SyxdbgError(f"no thread {tid} (threads: {known})")

    def thread_registers(self, tid: int | None = None) -> Registers:
        """Registers of thread ``tid`` (default: the selected one): the machine's for the
        running thread, a read-only :class:`ThreadRegisters` for the others (pc where it
        resumes)."""
        threads = self.threads
        if tid is None:
            tid = self.thread.tid
        if tid == threads[0].tid:
            return self.machine.regs
        source = self._thread_source()
        if source is None or all(t.tid != tid for t in threads):
            raise SyxdbgError(f"no thread {tid}")
        return ThreadRegisters(self.machine.arch, source.thread_registers(tid), tid)

    # -- the processes gdb sees (multiprocess, fork and exec events) -------------------------
    @property
    def has_processes(self) -> bool:
        """Whether the program can have several processes (a kernel plugin runs it)."""
        return getattr(self._thread_source(), "watch_processes", None) is not None

    def watch_processes(self, observer: Callable[[str, int, int, int], None] | None) -> None:
        """Call ``observer(kind, pid, tid, value)`` at the program's process events: "fork"
        and "vfork" (the parent's pid and thread; value: the child's pid), "vforkdone" (the
        vfork parent, once the child exec'd or exited), "exec" and "exit" (a process other
        than the first; value: its wait status). None: stop. Raises :class:`SyxdbgError`
        for a program without processes."""
        watch = getattr(self._thread_source(), "watch_processes", None)
        if watch is None:
            if observer is None:
                return
            raise SyxdbgError("this program has no processes (no kernel plugin)")
        watch(observer)

    def gate_signals(self, gate: Callable[[int, int, int], bool] | None) -> None:
        """Ask ``gate(pid, tid, signal)`` when a signal is about to be given to a guest
        handler (inside the system call, or between two instructions, that delivers it);
        False discards it. The gate must decide the same way whenever execution passes the
        same position (re-execution behind reverse moves), so that history stays one."""
        gates = getattr(self._thread_source(), "gate_signals", None)
        if gates is not None:
            gates(gate)
        elif gate is not None:
            raise SyxdbgError("this program has no signals (no kernel plugin)")

    def inject_signal(self, sig: int) -> FutureDiscarded | None:
        """Give Linux signal ``sig`` to the running thread's handler now (gdb's ``signal
        SIG``), as a debugger write: the handler's frame and the CPU's move to the handler
        are kept as memory and register writes at this position (re-execution repeats
        them; in the past the recorded future is discarded). The kernel's mask is not
        changed (the frame's return restores it). :class:`SyxdbgError` if it cannot be."""
        push = getattr(self._thread_source(), "push_signal_frame", None)
        if push is None:
            raise SyxdbgError("this program has no signals (no kernel plugin)")
        if self.timeline.recorded is not None:
            raise SyxdbgError("this is a recording: a signal cannot be added to it")
        regs = self.machine.regs
        before = dict(regs.read_all())
        sp = int(regs.sp)
        why = push(sig)
        if why:
            raise SyxdbgError(f"cannot inject signal {sig}: {why}")
        after = dict(regs.read_all())
        low = int(regs.sp)
        frame = self.mem.read_partial(low, max(0, min(sp, low + 0x4000) - low) or 0x2000)
        for name, value in before.items():  # (back to before: the writes below redo it)
            if after[name] != value:
                regs[name] = value
        discarded = self.write_memory(low, frame)
        for name, value in after.items():
            if before[name] != value:
                discarded = self.write_register(name, value) or discarded
        return discarded

    def run_to_process(self, pid: int, *, poll: PollFn | None = None) -> StopEvent | None:
        """Run forward until process ``pid`` exists (its parent's fork returned; as ``rr
        replay -p``) and follow it; None if it exists already (nothing runs). Raises
        :class:`SyxdbgError` if the program ends first."""
        self.follow(pid)
        if any(p.pid == pid and p.state != "zombie" for p in self.processes):
            return None
        found: list[int] = []

        def seen(kind: str, parent: int, tid: int, child: int) -> None:
            if kind in ("fork", "vfork") and child == pid and not found:
                found.append(child)
                self.interrupt()

        self.watch_processes(seen)
        try:
            event = self.cont("forward", poll=poll)
        finally:
            self.watch_processes(None)
        if not found:
            raise SyxdbgError(f"no process {pid} is created before the end ({event})")
        return event

    def process_thread_ids(self, pid: int) -> list[int]:
        """The threads of live process ``pid`` by tid ([] for none)."""
        if pid == self.current_process:
            return sorted(t.tid for t in self.threads)
        queued = getattr(self._thread_source(), "queued_registers", None)
        return sorted(queued(pid)) if queued is not None else []

    def process_registers(self, pid: int, tid: int) -> Registers:
        """The registers of thread ``tid`` of process ``pid`` (read-only unless it is the
        running thread; pc where it resumes)."""
        if pid == self.current_process:
            return self.thread_registers(tid)
        queued = getattr(self._thread_source(), "queued_registers", None)
        values = queued(pid).get(tid) if queued is not None else None
        if values is None:
            raise SyxdbgError(f"no thread {tid} in process {pid}")
        return ThreadRegisters(self.machine.arch, values, tid)

    def read_process_memory(self, pid: int, address: int, size: int) -> bytes:
        """Up to ``size`` mapped bytes at ``address`` in process ``pid`` (the machine's
        memory for the running one); b"" when unmapped."""
        if pid == self.current_process:
            return self.mem.read_partial(address, size)
        read = getattr(self._thread_source(), "read_process_memory", None)
        return bytes(read(pid, address, size)) if read is not None else b""

    # -- time travel --------------------------------------------------------------------------
    @property
    def timeline(self) -> Timeline:
        """The session's :class:`~syxdbg.timeline.Timeline` (created on first use; history
        starts where the machine is then)."""
        if self._timeline is None:
            self._timeline = self._new_timeline()
        return self._timeline

    def _new_timeline(self, **history: Any) -> Timeline:
        from .timeline import DEFAULT_BUDGET, DEFAULT_INTERVAL, Timeline

        timeline = Timeline(
            self.machine, self.states,
            interval=int(self.options.get("timeline.interval", DEFAULT_INTERVAL)),
            budget=int(self.options.get("timeline.budget", DEFAULT_BUDGET)),
            **history,
        )
        timeline.hit_filter = self._in_followed_process
        return timeline

    @property
    def has_timeline(self) -> bool:
        return self._timeline is not None

    @property
    def eventlog(self) -> EventLog:
        """Recorded host inputs (see :mod:`syxdbg.eventlog`)."""
        return self.timeline.eventlog

    # -- motion: every front end moves time through these methods ---------------------------
    def motion(self) -> _Motion:
        """Make the motions inside one motion (a context manager; a source-line step,
        ``finish``): one interrupt scope, one stop checkpoint and one ``syxdbg_stop``, at
        the end, with the last stop event."""
        return _Motion(self)

    def step(self, direction: Direction | str = "forward", count: int = 1, *,
             poll: PollFn | None = None, thread: int | None = None) -> StopEvent:
        """Step ``count`` instructions forward or backward (reverse-stepi).

        Backward, and forward with no thread given or selected, the steps are the whole
        program's: instructions of whichever thread runs (a system call or the end of a
        time slice may switch).
        Forward with ``thread`` (or a thread chosen with :meth:`select_thread`), it steps
        that thread's instructions: the others stay still, except while it cannot run (it
        is not the running thread, or its system call gave the CPU away: a block, a yield,
        the end of its time slice), when they run until the scheduler gives it the CPU,
        stopping at breakpoints and watchpoints as a continue does. A thread that is not
        running waits inside a system call (its step is that system call completing, where
        it resumes) or was preempted between two instructions (its step ends where it
        resumes, before that instruction). The schedule is never changed.
        """
        if thread is None:
            thread = self._selected
        if thread is not None and self._forward(direction):
            return self._step_thread(thread, count, poll)
        with self.motion():
            return self._stopped(self.timeline.step(direction, count, poll=poll))

    @staticmethod
    def _forward(direction: Direction | str) -> bool:
        return str(getattr(direction, "value", direction)) == "forward"

    def _step_thread(self, tid: int, count: int, poll: PollFn | None) -> StopEvent:
        if tid != self.current_thread:
            if all(t.tid != tid for t in self.threads):
                raise SyxdbgError(f"no thread {tid}")
        elif count == 1 and not self._depth:
            # gdb's stepi of the running thread: one timeline step (its own motion), and
            # the others only if its system call gave the CPU away.
            stop = self.timeline.step("forward", 1, poll=poll)
            if isinstance(stop, Stopped) and stop.why == "step" and self.current_thread != tid:
                with self.motion():
                    stop = self._switched_away(tid, poll)
            return self._stopped(stop)
        with self.motion():
            event: StopEvent = Stopped(self.machine.pc, self.position, "step")
            for _ in range(count):
                event = self._step_thread_once(tid, poll)
                if not (isinstance(event, Stopped) and event.why == "step"):
                    break
            return self._stopped(event)

    def _step_thread_once(self, tid: int, poll: PollFn | None) -> StopEvent:
        if self.current_thread != tid:
            # A thread that is not running waits inside a system call (the scheduler only
            # switches there): that instruction completes when it gets the CPU back.
            return self._run_to_thread(tid, poll)
        event = self.timeline.step("forward", 1, poll=poll)
        if isinstance(event, Stopped) and event.why == "step" and self.current_thread != tid:
            return self._switched_away(tid, poll)
        return event

    def _switched_away(self, tid: int, poll: PollFn | None) -> StopEvent:
        """Thread ``tid``'s step ended in another thread (its system call gave the CPU
        away): run on until it gets the CPU back, unless it exited."""
        threads = self.threads
        if any(t.tid == tid for t in threads):
            pc = self.machine.pc
            if pc in self.timeline.breakpoints:
                # The thread switched to stands at a breakpoint: it is hit (a run from
                # here would step off it).
                return Stopped(pc, self.position, "breakpoint")
            return self._run_to_thread(tid, poll)  # its system call completes there
        return Stopped(self.machine.pc, self.position, "step")

    def _run_to_thread(self, tid: int, poll: PollFn | None) -> StopEvent:
        """Run the other threads until the scheduler gives ``tid`` the CPU (a ``"step"``
        stop there), or until a breakpoint, watchpoint, exit or interrupt comes first."""
        target = next(t for t in self.threads if t.tid == tid)

        def arrived(event: StopEvent) -> bool:
            if isinstance(event, Stopped) and event.why == "until":
                return self.current_thread == tid
            return True

        event = self.timeline.cont("forward", until=target.pc, accept=arrived, poll=poll)
        if isinstance(event, Stopped) and event.why in ("until", "breakpoint") \
                and event.pc == target.pc and self.current_thread == tid:
            return Stopped(event.pc, event.position, "step")
        return event

    def cont(self, direction: Direction | str = "forward", *, poll: PollFn | None = None,
             until: int | str | None = None, accept: AcceptFn | None = None) -> StopEvent:
        """Continue forward or backward to the next breakpoint/watchpoint hit, or to
        ``until`` (an ``"until"`` stop, either direction). ``accept(event)``, asked with the
        machine at a hit, passes the hits it refuses (conditions, frame checks)."""
        target = None if until is None else self.resolve(until)
        with self.motion():
            return self._stopped(self.timeline.cont(direction, poll=poll, until=target,
                                                    accept=accept))

    def until(self, where: int | str, direction: Direction | str = "forward", *,
              poll: PollFn | None = None, accept: AcceptFn | None = None) -> StopEvent:
        """Run to ``where`` (``until``/``advance``, ``finish`` to a return address):
        :meth:`cont` with ``until``."""
        return self.cont(direction, poll=poll, until=where, accept=accept)

    def range_step(self, start: int, end: int, direction: Direction | str = "forward", *,
                   poll: PollFn | None = None) -> StopEvent:
        """Step while ``start <= pc < end`` (gdb's range stepping, a source line): one
        motion, one checkpoint at the end. See :meth:`Timeline.range_step`."""
        with self.motion():
            return self._stopped(self.timeline.range_step(start, end, direction, poll=poll))

    def seek(self, position: int, *, poll: PollFn | None = None, jump: bool = True
             ) -> StopEvent:
        """Go to instruction count ``position`` (``monitor goto``). ``jump=False``: in a
        replayed recording, re-execute all the way instead of loading a persisted
        checkpoint on the way forward (for recorders that must see every instruction)."""
        with self.motion():
            return self._stopped(self.timeline.seek(position, poll=poll, jump=jump))

    #: Words a position may be besides a number, +N/-N and a snapshot name.
    POSITION_WORDS = ("origin", "frontier", "here")

    def position_of(self, text: str | int) -> int:
        """The one grammar of a POSITION argument (``goto``, ``snapshot diff``, ``trace``,
        ``coverage``): N (``0x..`` too), +N / -N from here, ``origin``, ``frontier``,
        ``here``, or the name of a snapshot."""
        if isinstance(text, int):
            return text
        t = text.strip()
        low = t.lower()
        if low in self.POSITION_WORDS:
            w = self.when()
            return {"origin": w.origin, "frontier": w.frontier, "here": w.position}[low]
        try:
            if t and t[0] in "+-":
                return self.position + int(t, 0)
            return int(t, 0)
        except ValueError:
            pass
        if self.has_timeline:
            for p in self.snapshots():
                if p.name == t:
                    return p.position
        raise SyxdbgError(f"not a position: {text!r} (a number, +N/-N, origin, frontier, "
                          f"here or a snapshot name)")

    def interrupt(self) -> None:
        """Stop a running step/cont/seek/run; safe from any thread (Ctrl-C)."""
        if self._timeline is not None:
            self._timeline.interrupt()
        else:
            self.machine.interrupt()

    def when(self) -> When:
        """Where we are: position, frontier, origin."""
        return self.timeline.when()

    def checkpoints(self) -> list[CheckpointInfo]:
        return self.timeline.checkpoints()

    def last_write(self, where: int | str, length: int = 1, *, poll: PollFn | None = None
                   ) -> LastWrite | None:
        """Go back to the last instruction that wrote ``[where, where+length)``. Raises
        :class:`~syxdbg.timeline.TimelineInterrupted` when interrupted first."""
        from .timeline import TimelineInterrupted

        with self.motion():
            try:
                result = self.timeline.last_write(self.resolve(where), length, poll=poll)
            except TimelineInterrupted as exc:
                self._stopped(exc.event)
                raise
            if result is not None:
                self._stopped(result.event)
            return result

    def write_memory(self, where: int | str, data: bytes) -> FutureDiscarded | None:
        """Write guest memory; in the past this discards the recorded future."""
        return self.timeline.write_memory(self.resolve(where), data)

    def write_register(self, name: str, value: int) -> FutureDiscarded | None:
        """Write a register of the running thread (another selected thread's registers are
        read-only: :class:`SyxdbgError`)."""
        if self._selected is not None and self._selected != self.current_thread:
            raise SyxdbgError(f"thread {self._selected} is not running: its registers are "
                              "read-only")
        return self.timeline.write_register(name, value)

    def add_breakpoint(self, where: int | str, *, client: Client | str = "plugin"
                       ) -> Breakpoint:
        """A reference in the timeline's breakpoint table for ``client`` ("gdb", "shell",
        "plugin", "internal"); returns its handle (``.address``). Other clients' references
        at the same address are independent."""
        return self.timeline.add_breakpoint(self.resolve(where), client)

    def remove_breakpoint(self, where: Breakpoint | int | str, *,
                          client: Client | str | None = None) -> None:
        """Drop a handle, or one reference of ``client`` (any, if None) at an address."""
        from .timeline import Breakpoint

        if isinstance(where, Breakpoint):
            self.timeline.remove_breakpoint(where)
        else:
            self.timeline.remove_breakpoint(self.resolve(where), client)

    def add_watchpoint(self, where: int | str, size: int, kind: str = "write", *,
                       client: Client | str = "plugin") -> Watchpoint:
        """A watchpoint reference (kind "write", "read" or "access"); see add_breakpoint."""
        return self.timeline.add_watchpoint(self.resolve(where), size, kind, client)

    def remove_watchpoint(self, where: Watchpoint | int | str, size: int = 0,
                          kind: str = "write", *, client: Client | str | None = None) -> None:
        from .timeline import Watchpoint

        if isinstance(where, Watchpoint):
            self.timeline.remove_watchpoint(where)
        else:
            self.timeline.remove_watchpoint(self.resolve(where), size, kind, client)

    def snapshot_save(self, name: str) -> NamedPoint:
        """``snapshot save NAME``: name the current point in time."""
        return self.timeline.save(name)

    def snapshot_restore(self, name: str, *, poll: PollFn | None = None) -> StopEvent:
        """``snapshot restore NAME``: go back (or forward) to a named point in time."""
        position = self.timeline.position_of(name)
        return self.seek(position, poll=poll)

    def snapshots(self) -> list[NamedPoint]:
        """``snapshot list``."""
        return self.timeline.names()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._timeline is not None:
            self._timeline.close()
        self.hook.syxdbg_unconfigure(session=self)
        if self._machine is not None:
            self._machine.close()
        for d in self.temporary:
            shutil.rmtree(d, ignore_errors=True)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
