"""The Session: the facade every front end (CLI, scripts, gdb adapter, shell) talks to."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import pluggy

from .errors import LoadError, SyxdbgError
from .loader import LoadedImage, inspect_elf, load_elf, load_raw
from .machine import Machine, Memory, Registers, StopEvent, get_arch
from .plugins import make_plugin_manager
from .state import StateRegistry


class Session:
    """One program under syxdbg: its machine, plugins and registered state.

    Create it with :func:`syxdbg.open` (or :meth:`Session.open`); nothing executes until
    :meth:`run` is called.
    """

    def __init__(self, plugins: pluggy.PluginManager, options: Mapping[str, Any] | None = None
                 ) -> None:
        self.plugins = plugins
        self.options: dict[str, Any] = dict(options or {})
        self.states = StateRegistry()
        self._machine: Machine | None = None
        self._closed = False
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
    def run(self, until: int | str | None = None, count: int | None = None) -> StopEvent:
        """Run until the program exits or faults, ``until`` is reached, or ``count`` retire."""
        target = None if until is None else self.resolve(until)
        event = self.machine.run(count=count, until=target)
        self.hook.syxdbg_stop(session=self, event=event)
        return event

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.hook.syxdbg_unconfigure(session=self)
        if self._machine is not None:
            self._machine.close()

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
