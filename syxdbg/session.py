"""The Session: the facade every front end (CLI, scripts, gdb adapter, shell) talks to."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

from .errors import LoadError, SyxdbgError
from .loader import LoadedImage, inspect_elf, load_elf, load_raw
from .machine import Machine, Memory, Registers, StopEvent, get_arch
from .plugins import make_plugin_manager
from .state import StateRegistry

if TYPE_CHECKING:
    from .eventlog import EventLog
    from .recording import Recording
    from .timeline import (
        CheckpointInfo,
        Direction,
        FutureDiscarded,
        LastWrite,
        NamedPoint,
        PollFn,
        Timeline,
        When,
    )


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
        self._timeline: Timeline | None = None
        self._closed = False
        #: The recording this session replays (:func:`syxdbg.replay`), if any.
        self.recording: Recording | None = None
        #: Directories removed when the session closes (a replay's extracted program).
        self.temporary: list[str] = []
        self.hook = plugins.hook
        self.hook.syxdbg_configure(session=self)

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def open(cls, path: str, args: Sequence[str] = (), *, env: Mapping[str, str] | None = None,
             arch: str | None = None, raw: bool = False, base: int | None = None,
             entry: int | None = None, argv0: str | None = None,
             disable_plugins: Sequence[str] = (), options: Mapping[str, Any] | None = None,
             plugins: pluggy.PluginManager | None = None) -> Session:
        pm = plugins if plugins is not None else make_plugin_manager(disable_plugins)
        session = cls(pm, options)
        try:
            session._load(os.fspath(path), list(args), env, arch, raw, base, entry, argv0)
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
            image = self.hook.syxdbg_load_image(session=self, machine=machine, path=path)
            if image is None:
                load_raw(machine, path, base, entry)
        else:
            info = inspect_elf(path)
            if arch is not None and get_arch(arch) is not info.arch:
                raise LoadError(f"{path}: is a {info.arch.name} program, not {arch}")
            machine = Machine(info.arch)
            image = self.hook.syxdbg_load_image(session=self, machine=machine, path=path)
            if image is None:
                environ = dict(os.environ if env is None else env)
                envp = [f"{k}={v}" for k, v in environ.items()]
                load_elf(machine, path, [argv0 if argv0 is not None else path, *args], envp)
        self._machine = machine
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
        image = self.machine.image
        if image is None:
            raise SyxdbgError("no program is loaded")
        return image

    @property
    def regs(self) -> Registers:
        return self.machine.regs

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
        self.hook.syxdbg_stop(session=self, event=event)
        return event

    # -- time travel --------------------------------------------------------------------------
    @property
    def timeline(self) -> Timeline:
        """The session's :class:`~syxdbg.timeline.Timeline` (created on first use; history
        starts where the machine is then)."""
        if self._timeline is None:
            from .timeline import DEFAULT_BUDGET, DEFAULT_INTERVAL, Timeline

            self._timeline = Timeline(
                self.machine, self.states,
                interval=int(self.options.get("timeline.interval", DEFAULT_INTERVAL)),
                budget=int(self.options.get("timeline.budget", DEFAULT_BUDGET)),
            )
        return self._timeline

    @property
    def has_timeline(self) -> bool:
        return self._timeline is not None

    @property
    def eventlog(self) -> EventLog:
        """Recorded host inputs (see :mod:`syxdbg.eventlog`)."""
        return self.timeline.eventlog

    def step(self, direction: Direction | str = "forward", count: int = 1, *,
             poll: PollFn | None = None) -> StopEvent:
        """Step ``count`` instructions forward or backward (reverse-stepi)."""
        return self._stopped(self.timeline.step(direction, count, poll=poll))

    def cont(self, direction: Direction | str = "forward", *, poll: PollFn | None = None,
             until: int | str | None = None) -> StopEvent:
        """Continue forward or backward to the next breakpoint/watchpoint hit."""
        target = None if until is None else self.resolve(until)
        return self._stopped(self.timeline.cont(direction, poll=poll, until=target))

    def seek(self, position: int, *, poll: PollFn | None = None, jump: bool = True
             ) -> StopEvent:
        """Go to instruction count ``position`` (``monitor goto``). ``jump=False``: in a
        replayed recording, re-execute all the way instead of loading a persisted
        checkpoint on the way forward (for recorders that must see every instruction)."""
        return self._stopped(self.timeline.seek(position, poll=poll, jump=jump))

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

    def last_write(self, where: int | str, length: int = 1) -> LastWrite | None:
        """Go back to the last instruction that wrote ``[where, where+length)``."""
        result = self.timeline.last_write(self.resolve(where), length)
        if result is not None:
            self._stopped(result.event)
        return result

    def write_memory(self, where: int | str, data: bytes) -> FutureDiscarded | None:
        """Write guest memory; in the past this discards the recorded future."""
        return self.timeline.write_memory(self.resolve(where), data)

    def write_register(self, name: str, value: int) -> FutureDiscarded | None:
        return self.timeline.write_register(name, value)

    def add_breakpoint(self, where: int | str) -> int:
        address = self.resolve(where)
        self.timeline.add_breakpoint(address)
        return address

    def remove_breakpoint(self, where: int | str) -> None:
        self.timeline.remove_breakpoint(self.resolve(where))

    def add_watchpoint(self, where: int | str, size: int, kind: str = "write") -> int:
        address = self.resolve(where)
        self.timeline.add_watchpoint(address, size, kind)
        return address

    def remove_watchpoint(self, where: int | str, size: int, kind: str = "write") -> None:
        self.timeline.remove_watchpoint(self.resolve(where), size, kind)

    def snapshot_save(self, name: str) -> NamedPoint:
        """``snapshot save NAME``: name the current point in time."""
        return self.timeline.save(name)

    def snapshot_restore(self, name: str) -> StopEvent:
        """``snapshot restore NAME``: go back (or forward) to a named point in time."""
        return self._stopped(self.timeline.restore(name))

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


def open(path: str, args: Sequence[str] = (), *, env: Mapping[str, str] | None = None,
         arch: str | None = None, raw: bool = False, base: int | None = None,
         entry: int | None = None, **kwargs: Any) -> Session:
    """Load a program and return its :class:`Session`; nothing is executed yet.

    ``env`` defaults to this process's environment; ``args`` are argv[1:].
    """
    return Session.open(path, args, env=env, arch=arch, raw=raw, base=base, entry=entry, **kwargs)


def replay(path: str, **kwargs: Any) -> Session:
    """Open recording ``path`` (made by ``syxdbg record``) for replay: a session whose
    history is the recording (see :func:`syxdbg.recording.open_replay`)."""
    from .recording import open_replay

    return open_replay(path, **kwargs)
