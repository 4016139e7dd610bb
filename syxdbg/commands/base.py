"""The command layer's leaf types: :class:`CommandError` and the ``set``/``show``
:class:`Settings`. Every other commands module builds on these; they import none of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import SyxdbgError


class CommandError(SyxdbgError):
    """A command could not run (bad arguments, nothing there...): a one-line message."""


@dataclass
class Setting:
    """A ``set``/``show`` setting. ``type`` is bool, int, str or list (comma separated)."""

    name: str
    default: Any
    help: str
    type: type = str
    choices: tuple[str, ...] = ()

    def parse(self, text: str) -> Any:
        text = text.strip()
        if self.type is bool:
            low = text.lower()
            if low in ("on", "true", "yes", "1"):
                return True
            if low in ("off", "false", "no", "0"):
                return False
            raise CommandError(f"{self.name} is on or off, not {text!r}")
        if self.type is int:
            try:
                return int(text, 0)
            except ValueError:
                raise CommandError(f"{self.name} is a number, not {text!r}") from None
        if self.type is list:
            items = [w for w in text.replace(",", " ").split() if w]
            bad = [w for w in items if self.choices and w not in self.choices]
            if bad:
                raise CommandError(f"{self.name}: unknown {', '.join(bad)} (choose from "
                                   f"{', '.join(self.choices)})")
            return items
        if self.choices and text not in self.choices:
            raise CommandError(f"{self.name} is one of {', '.join(self.choices)}")
        return text

    def show(self, value: Any) -> str:
        if self.type is bool:
            return "on" if value else "off"
        if self.type is list:
            return " ".join(value)
        return str(value)


class Settings:
    """Declared settings and their values (per registry, so per session)."""

    def __init__(self) -> None:
        self._decl: dict[str, Setting] = {}
        self._values: dict[str, Any] = {}

    def declare(self, name: str, default: Any, help: str, *, type: type | None = None,
                choices: tuple[str, ...] = ()) -> None:
        if name in self._decl:
            raise ValueError(f"setting {name!r} declared twice")
        t = type if type is not None else default.__class__
        self._decl[name] = Setting(name, default, help, t, choices)
        self._values[name] = list(default) if t is list else default

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __contains__(self, name: object) -> bool:
        return name in self._decl

    def set(self, name: str, text: str) -> Any:
        decl = self.declaration(name)
        self._values[name] = decl.parse(text)
        return self._values[name]

    def declaration(self, name: str) -> Setting:
        decl = self._decl.get(name)
        if decl is None:
            raise CommandError(f"no setting {name!r} (show lists them)")
        return decl

    def names(self) -> list[str]:
        return sorted(self._decl)

    def show(self, name: str) -> str:
        return self.declaration(name).show(self._values[name])
