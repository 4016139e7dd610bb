"""Exceptions shared by every layer of syxdbg.

Each one carries a message meant for the user: the CLI prints ``str(exc)`` on one line and
exits with status 2, so messages say what was wrong and with which input.
"""

from __future__ import annotations


class SyxdbgError(Exception):
    """Base class of every error syxdbg reports to its user."""


class LoadError(SyxdbgError):
    """The program or blob cannot be loaded (bad ELF, dynamic ELF, unsupported machine...)."""


class ArchError(SyxdbgError):
    """An unknown or unsupported architecture was asked for."""


class MemoryAccessError(SyxdbgError):
    """A host-side access touched guest memory that is not mapped."""

    def __init__(self, address: int, size: int, what: str = "access") -> None:
        super().__init__(f"cannot {what} {size} byte(s) at {address:#x}: memory is not mapped")
        self.address = address
        self.size = size


class MemoryMapError(SyxdbgError):
    """A map, unmap or protect request is invalid (overlap, misalignment, zero size)."""


class RegisterError(SyxdbgError):
    """An unknown register name or number."""
