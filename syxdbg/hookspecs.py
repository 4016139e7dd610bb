"""The hooks syxdbg calls on its plugins. These docstrings are the hook reference.

Every hook name starts with ``syxdbg_``. Hooks run at setup, at stops and at teardown only:
never per instruction or per memory access (a plugin that needs those attaches a C/Cython or
address-limited Unicorn callback in :func:`syxdbg_machine_created`).

A plugin is any module or object with functions of these names marked with
``syxdbg.hookimpl``; first-party plugins live in ``plugins/`` and register exactly like
third-party ones, which are found through the ``syxdbg`` entry-point group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import argparse

    from .commands import CommandRegistry
    from .commands.panes import PaneRegistry
    from .machine import Machine
    from .machine.events import StopEvent
    from .session import Session, ThreadSource
    from .state import StateRegistry

hookspec = pluggy.HookspecMarker("syxdbg")
hookimpl = pluggy.HookimplMarker("syxdbg")


@hookspec
def syxdbg_addoption(parser: argparse.ArgumentParser) -> None:
    """Add command-line options to ``parser`` (called once, before arguments are parsed).

    Options land in ``session.options`` under their ``dest`` names.
    """


@hookspec
def syxdbg_configure(session: Session) -> None:
    """The session is created and its options are known; nothing is loaded yet.

    Register per-session plugin objects here (``session.plugins.register(obj)``) when the
    plugin keeps state, so that two sessions never share it.
    """


@hookspec(firstresult=True)
def syxdbg_load_image(session: Session, machine: Machine, path: str) -> Any:
    """Load ``path`` into ``machine`` and return a ``LoadedImage``, or None to pass.

    The first plugin that returns a result wins; the built-in ELF and raw loaders run when
    every plugin passed.
    """


@hookspec
def syxdbg_machine_created(session: Session, machine: Machine) -> None:
    """The machine exists and its image is loaded (``session.image``); nothing has run yet.

    Attach emulator-level behaviour here: syscall handlers, address-limited hooks, C hooks.
    """


@hookspec
def syxdbg_register_state(session: Session, registry: StateRegistry) -> None:
    """Register snapshottable plugin state with ``registry.register(name, obj)``.

    ``obj`` implements ``save_state() -> object`` and ``load_state(object)``; every snapshot
    saves it and every restore loads it back, so reverse execution sees the plugin's state
    (fd tables, brk, device models...) exactly as it was at that point in time.
    """


@hookspec(firstresult=True)
def syxdbg_thread_source(session: Session) -> ThreadSource | None:
    """The guest threads of ``session``'s program, or None to pass (first answer wins).

    A plugin that runs several guest threads on the one machine (the Linux kernel's
    scheduler) returns an object with ``guest_threads() -> list[GuestThread]`` (the running
    thread first) and ``thread_registers(tid) -> dict[str, int]`` (a thread that is not
    running, as it will resume). :attr:`Session.threads`, :meth:`Session.select_thread`,
    gdb's thread packets, the shell's ``threads`` and DAP's ``threads`` ask it; without
    one the program has one thread, id 1. Called at stops only, never while running.
    """


@hookspec
def syxdbg_register_commands(registry: CommandRegistry) -> None:
    """Add commands (and settings) to a session's command registry.

    Called once for every registry :func:`syxdbg.commands.make_registry` builds: the shell's
    and gdb's ``monitor`` (each session's front end owns one, so plugins never share command
    state between sessions). The same commands serve both front ends; ``registry.frontend``
    says which one this is, and ``registry.session`` is the session.

    A command is a function ``fn(ctx, args) -> str`` (or prompt_toolkit formatted text)
    that returns its output and never prints; ``ctx`` is the registry's
    :class:`~syxdbg.commands.Context` (``ctx.session``, ``ctx.evaluate(expr)``,
    ``ctx.where(addr)``, ``ctx.debuginfo``), ``args`` the parsed arguments by name.
    Declare it with :meth:`~syxdbg.commands.CommandRegistry.command`::

        from syxdbg.commands import Arg

        @hookimpl
        def syxdbg_register_commands(registry):
            @registry.command("fds", "the guest's open file descriptors", category="info",
                              args=(Arg("fd", "int", optional=True),))
            def fds(ctx, args):
                return "..."

            registry.settings.declare("linux.strace", False, "print every system call")

    The argument kinds (``address``, ``register``, ``symbol``, ``snapshot``, ``setting``,
    ``position``, ``location``, ``int``, ``choice``, ``pane``, ``command``, ``text``) drive
    parsing, completion and ``help``. Mark commands that move execution ``moves=True`` (the
    shell shows the context display after them) and commands gdb must not see
    ``shell_only=True``. A name or alias that is already taken raises ``ValueError``.
    Every command needs a one-line ``help``; the test suite checks that docs/shell.md
    documents each built-in one.
    """


@hookspec
def syxdbg_register_panes(registry: PaneRegistry) -> None:
    """Add panes to the context display (the shell shows it after every stop).

    A pane is a pure function ``fn(ctx, width) -> list of lines``, each line a list of
    prompt_toolkit ``(style, text)`` fragments; it reads the session (``ctx.session``) and
    changes nothing. Use the style roles of :mod:`syxdbg.commands.theme` (``class:addr.stack``,
    ``class:reg.changed``...) rather than colors::

        @hookimpl
        def syxdbg_register_panes(registry):
            registry.add("fds", lambda ctx, width: [[("", "0 1 2")]], "open descriptors")

    Users show it with ``set context.panes regs code fds`` or ``context fds``.
    """


@hookspec
def syxdbg_stop(session: Session, event: StopEvent) -> None:
    """Execution stopped with ``event`` (breakpoint, step, exit, fault...)."""


@hookspec
def syxdbg_unconfigure(session: Session) -> None:
    """The session is closing: release files and other host resources."""
