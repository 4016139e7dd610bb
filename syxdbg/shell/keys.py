"""Key bindings of the shell: ``load_key_bindings() -> KeyBindings``.

Every binding has a one-line docstring; ``keys`` renders the key help screen from them.
Function keys run a command only on an empty line (a :class:`Condition`), so they never
clobber what the user is typing.
"""

from __future__ import annotations

from collections.abc import Callable

from prompt_toolkit.application.current import get_app
from prompt_toolkit.filters import Condition
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

#: key -> command it runs on an empty line.
FUNCTION_KEYS: dict[str, str] = {
    "f5": "continue",
    "f6": "reverse-continue",
    "f7": "stepi",
    "f8": "nexti",
    "f9": "reverse-stepi",
    "f10": "next",
    "f11": "step",
    "f12": "reverse-next",
}


def load_key_bindings() -> KeyBindings:
    """The shell's bindings; each one types its command into the (empty) line and accepts it,
    so it runs through the same path as typed commands."""
    kb = KeyBindings()
    empty_line = Condition(lambda: not get_app().current_buffer.text)

    def runs(command: str) -> Callable[[KeyPressEvent], None]:
        def handler(event: KeyPressEvent) -> None:
            event.current_buffer.text = command
            event.current_buffer.validate_and_handle()

        handler.__doc__ = f"run '{command}' (on an empty line)"
        return handler

    for key, command in FUNCTION_KEYS.items():
        kb.add(key, filter=empty_line)(runs(command))

    @kb.add("c-l")
    def _redraw(event: KeyPressEvent) -> None:
        """clear the screen"""
        event.app.renderer.clear()

    @kb.add("escape", "c", filter=empty_line)
    def _context(event: KeyPressEvent) -> None:
        """show the context display again (Alt-C)"""
        event.current_buffer.text = "context"
        event.current_buffer.validate_and_handle()

    return kb


def key_help(kb: KeyBindings) -> str:
    """The key help screen: one line per binding, from the docstrings."""
    lines = ["keys (function keys act on an empty line):"]
    for b in kb.bindings:
        keys = " ".join(k.value if hasattr(k, "value") else str(k) for k in b.keys)
        doc = (b.handler.__doc__ or "").strip().splitlines()
        lines.append(f"  {keys:<12} {doc[0] if doc else ''}")
    lines += ["  enter        on an empty line: repeat the last stepping command",
              "  tab          complete commands, symbols, registers, snapshots, settings",
              "  c-c          while a command runs: interrupt it; at the prompt: clear the line",
              "  c-d          leave the shell"]
    return "\n".join(lines) + "\n"
