"""``SyxSnapshot`` on the compiled journal (``_core.Journal``).

:func:`attach` creates the machine's journal early: before the machine first runs it can use
Unicorn's virtual TLB (the fast tracker); afterwards only the C write hook is possible.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _api
from ._core import Journal

if TYPE_CHECKING:
    from ..machine import Machine


def _journal(machine: Machine, mode: str = "auto") -> Journal:
    owner = machine.tlb_owner
    if isinstance(owner, Journal):
        owner.reopen()
        return owner
    return Journal(machine, mode)


def attach(machine: Machine, mode: str = "auto") -> _api.SyxSnapshotTracker:
    """Create (or return) the machine's tracker on the compiled journal.

    ``mode``: ``"tlb"`` (virtual TLB; the machine must not have run yet), ``"hook"`` (C write
    hook) or ``"auto"`` (tlb when still possible).
    """
    return _api.SyxSnapshotTracker.of(machine, lambda m: _journal(m, mode), "core")


class CoreSyxSnapshot(_api.SyxSnapshot):
    """:class:`syxdbg.snapshot.SyxSnapshot` on the compiled journal."""

    _engine_factory = staticmethod(_journal)
    _backend = "core"


__all__ = ["CoreSyxSnapshot", "Journal", "attach"]
