"""syxdbg's commands: ONE registry per session, serving the shell and gdb's ``monitor``.

:func:`make_registry` builds a :class:`CommandRegistry` for a session: the built-in command
modules (``BUILTIN_MODULES``, registered in order, like pytest's default plugins) and then
every plugin's ``syxdbg_register_commands(registry)`` hook. Commands return text
(:data:`Output`), never print. See docs/shell.md for the commands and docs/plugins.md... for
writing one.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .registry import (
    ARG_KINDS,
    CATEGORIES,
    Arg,
    Args,
    Command,
    CommandError,
    CommandRegistry,
    Output,
    Result,
    Setting,
    Settings,
    to_text,
)

if TYPE_CHECKING:
    from ..session import Session
    from .context import Breakpoint, Context


def __getattr__(name: str) -> Any:
    # The context (debug info, expressions, the machine's architectures) loads when first
    # used: a plugin importing Arg and CommandError at start-up pays for the registry only.
    if name in ("Breakpoint", "Context"):
        from . import context

        value = getattr(context, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

#: Built-in command modules, registered in this order (``support`` first: it creates the
#: ``info`` group the others add subcommands to).
BUILTIN_MODULES: tuple[str, ...] = (
    "syxdbg.commands.support",
    "syxdbg.commands.running",
    "syxdbg.commands.breakpoints",
    "syxdbg.commands.data",
    "syxdbg.commands.history",
    "syxdbg.commands.libraries",
    "syxdbg.commands.threads",
    "syxdbg.commands.processes",
)


def make_registry(session: Session, *, frontend: str = "shell") -> CommandRegistry:
    """A new registry for ``session`` with the built-in and the plugins' commands and panes.

    ``frontend`` is "shell" or "gdb" (``monitor``: shell-only commands are hidden).
    """
    from .panes import register_builtin_panes

    registry = CommandRegistry(session, frontend=frontend)
    for name in BUILTIN_MODULES:
        importlib.import_module(name).register(registry)
    register_builtin_panes(registry.panes)
    session.hook.syxdbg_register_commands(registry=registry)
    session.hook.syxdbg_register_panes(registry=registry.panes)
    return registry


def run_command(session: Session, line: str, *, frontend: str = "gdb") -> str:
    """Run one command line on a throwaway registry (plain text). Front ends that keep
    state between commands (breakpoint numbers, settings) keep their own registry."""
    return make_registry(session, frontend=frontend).run_text(line)


__all__ = [
    "ARG_KINDS", "BUILTIN_MODULES", "CATEGORIES", "Arg", "Args", "Breakpoint", "Command",
    "CommandError", "CommandRegistry", "Context", "Output", "Result", "Setting", "Settings",
    "make_registry", "run_command", "to_text",
]
