"""Color roles, defined once: prompt_toolkit style classes mapped to colors.

Panes and commands only name roles (``class:reg.changed``, ``class:addr.stack``); this file
decides what they look like. Address roles follow pwndbg/GEF: stack, heap, code, data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prompt_toolkit.styles import Style

if TYPE_CHECKING:
    from ..session import Session

#: role -> prompt_toolkit style string.
ROLES: dict[str, str] = {
    "prompt": "bold ansiblue",
    "error": "ansired",
    "pane.title": "ansicyan",
    "pane.rule": "ansibrightblack",
    "reg.name": "ansigreen",
    "reg.value": "",
    "reg.changed": "bold ansired",
    "addr.stack": "ansimagenta",
    "addr.heap": "ansiblue",
    "addr.code": "ansired",
    "addr.data": "ansiyellow",
    "pc": "bold ansigreen",
    "code.current": "bold reverse",
    "source.current": "bold ansigreen",
    "source.lineno": "ansibrightblack",
    "timeline.recording": "ansired bold",
    "timeline.replaying": "ansicyan bold",
    "timeline.edge": "ansiyellow bold",
    "timeline.checkpoint": "ansibrightblack",
    "bottom-toolbar": "noreverse bg:ansibrightblack fg:ansiwhite",
    "progress": "ansiyellow",
}


def style() -> Style:
    return Style.from_dict(ROLES)


def address_role(session: Session, address: int) -> str:
    """The style class of an address by what it points into ('' when unmapped)."""
    try:
        region = session.mem.find(address)
    except Exception:
        return ""
    if region is None:
        return ""
    name = region.name or ""
    if "stack" in name:
        return "class:addr.stack"
    if "heap" in name or "brk" in name or "mmap" in name:
        return "class:addr.heap"
    if "x" in str(region.perms):
        return "class:addr.code"
    return "class:addr.data"
