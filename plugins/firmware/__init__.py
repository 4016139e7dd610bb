"""Bare-metal Cortex-M firmware: boards, peripheral models, exceptions (docs/firmware.md).

The plugin takes every session whose machine is ``cortex-m`` (``--board FILE``, or
``--arch cortex-m`` with ``--raw``): it maps the board's memory, loads the image
(:mod:`.loader`), resets the CPU from the vector table and installs the
:class:`~.kernel.FirmwareKernel` (system control space, NVIC, SysTick, the peripheral
models, semihosting) as the session's ``"firmware"`` state.

Layout
------
* ``board.py``   the board file (TOML) into a :class:`~.board.Board`.
* ``models.py``  the peripheral model API (:class:`~.models.Peripheral`), the built-in
  ``uart`` and ``timer``.
* ``loader.py``  ELF and raw images into the board's memory.
* ``kernel.py``  the chip around the core, record/replay of the models.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from syxdbg import hookimpl

from .state import FirmwareState

if TYPE_CHECKING:
    from syxdbg.commands import CommandRegistry
    from syxdbg.machine import Machine
    from syxdbg.session import Session
    from syxdbg.state import StateRegistry

    from .board import Board
    from .kernel import FirmwareKernel

# The board, loader, kernel and models modules are imported when a cortex-m session
# loads (they pull in the emulator and the ELF reader): building the command line's parser
# stays light (tests/test_startup.py).
__all__ = ["FirmwarePlugin", "FirmwareState", "get_kernel"]

STATE_NAME = "firmware"
#: ``session.options`` key of ``--board``.
BOARD_OPTION = "board"


class FirmwarePlugin:
    """The per-session part of the plugin."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.kernel: FirmwareKernel | None = None
        self.board: Board | None = None

    @hookimpl
    def syxdbg_load_image(self, session: Session, machine: Machine, path: str) -> Any:
        if session is not self.session or machine.arch.name != "cortex-m":
            return None
        from syxdbg.errors import LoadError

        from .board import load_board
        from .loader import fill_aliases, load_firmware_elf, load_firmware_raw, map_board

        replay = bool(session.options.get("replay"))
        board = load_board(session.options.get(BOARD_OPTION))
        self.board = board
        target = None if replay else board
        if not replay:
            map_board(machine, board)
        raw = getattr(session, "raw_load", None)
        if raw is not None:
            base, entry = raw
            if base is None:
                raise LoadError("--raw needs --base ADDRESS")
            image = load_firmware_raw(machine, target, path, base)
            if entry is not None:
                image.entry = entry
        else:
            image = load_firmware_elf(machine, target, path)
        if not replay:
            fill_aliases(machine, board)
        return image

    @hookimpl
    def syxdbg_machine_created(self, session: Session, machine: Machine) -> None:
        if session is not self.session or machine.arch.name != "cortex-m" \
                or self.board is None:
            return
        if self.kernel is not None:
            self.kernel.close()
        from .kernel import FirmwareKernel

        replay = bool(session.options.get("replay"))
        self.kernel = FirmwareKernel(machine, self.board, live=not replay)
        self.kernel.symbolize = session.image.symbolize
        if not replay:  # (a replay's kernel installs itself with the recorded board)
            self.kernel.install()
            self.kernel.reset()
            raw = getattr(session, "raw_load", None)
            if raw is not None and raw[1] is not None:
                machine.regs.pc = raw[1]

    @hookimpl
    def syxdbg_register_state(self, session: Session, registry: StateRegistry) -> None:
        if session is self.session and self.kernel is not None and STATE_NAME not in registry:
            registry.register(STATE_NAME, self.kernel)

    @hookimpl
    def syxdbg_unconfigure(self, session: Session) -> None:
        if session is not self.session:
            return
        if self.kernel is not None:
            self.kernel.close()
        session.states.unregister(STATE_NAME)
        if session.plugins.is_registered(self):
            session.plugins.unregister(self)


@hookimpl
def syxdbg_register_commands(registry: CommandRegistry) -> None:
    session = registry.session
    if session is None or get_kernel(session) is None:
        return
    from .commands import register

    register(registry, lambda: get_kernel(session))


def _plugin_name(session: Session) -> str:
    return f"firmware-session-{id(session):x}"


@hookimpl
def syxdbg_addoption(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--board", metavar="FILE", dest=BOARD_OPTION,
        help="run PROG as Cortex-M firmware on the board FILE describes (TOML: memory "
        "regions, peripherals; docs/firmware.md); with --raw, give --arch cortex-m")


@hookimpl
def syxdbg_configure(session: Session) -> None:
    session.plugins.register(FirmwarePlugin(session), _plugin_name(session))


def get_kernel(session: Session) -> FirmwareKernel | None:
    """The firmware kernel of ``session`` (None unless it runs Cortex-M firmware)."""
    plugin = session.plugins.get_plugin(_plugin_name(session))
    return plugin.kernel if isinstance(plugin, FirmwarePlugin) else None
