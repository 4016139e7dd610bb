"""Snapshottable state that is not guest memory or registers.

Anything that influences execution and lives outside guest RAM and the CPU (the Linux
plugin's fd table and brk, a peripheral model's registers, a plugin's counters) registers
here. Snapshots save every registered object and restores load it back, or reverse
execution silently diverges.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from .errors import SyxdbgError


@runtime_checkable
class Snapshottable(Protocol):
    def save_state(self) -> Any:
        """Return a value capturing the whole state; it must not alias mutable internals."""

    def load_state(self, state: Any) -> None:
        """Replace the whole state with one returned by :meth:`save_state`."""


class StateRegistry:
    """Named snapshottable states of one session (names are unique)."""

    def __init__(self) -> None:
        self._items: dict[str, Snapshottable] = {}

    def register(self, name: str, obj: Snapshottable) -> None:
        if not isinstance(obj, Snapshottable):
            raise SyxdbgError(f"state {name!r} lacks save_state()/load_state()")
        if name in self._items:
            raise SyxdbgError(f"a state named {name!r} is already registered")
        self._items[name] = obj

    def unregister(self, name: str) -> None:
        self._items.pop(name, None)

    def names(self) -> list[str]:
        return list(self._items)

    def get(self, name: str) -> Snapshottable:
        return self._items[name]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def save(self, names: list[str] | None = None) -> dict[str, Any]:
        """Save the selected (default: all) states."""
        keys = self._items if names is None else names
        return {n: self._items[n].save_state() for n in keys}

    def persistable(self) -> bool:
        """Whether every state can be written to a recording now. A state object may say
        it cannot for a while (``persistable`` False: the Linux kernel while other processes
        live, whose memory a recording's checkpoint would not hold); the recorder then
        skips its checkpoints, and a replay re-executes from an earlier one."""
        return all(getattr(obj, "persistable", True) for obj in self._items.values())

    def load(self, saved: dict[str, Any]) -> None:
        for name, value in saved.items():
            self._items[name].load_state(value)
