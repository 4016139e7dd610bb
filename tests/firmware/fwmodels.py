"""A peripheral model written against the documented API (docs/firmware.md's example),
loaded by the board file as ``model = "fwmodels:Counter"``."""

from __future__ import annotations

from collections.abc import Callable

from syxdbg_plugins.firmware.board import PeripheralSpec
from syxdbg_plugins.firmware.models import Peripheral


class Counter(Peripheral):
    """offset 0: a free-running cycle counter; offset 4: write N to raise the IRQ N
    cycles later."""

    def __init__(self, spec: PeripheralSpec, clock: Callable[[], int],
                 raise_irq: Callable[[int], None]) -> None:
        super().__init__(spec, clock, raise_irq)
        self.due: int | None = None

    def read(self, offset: int, size: int) -> int:
        return self.now & 0xFFFFFFFF if offset == 0 else 0

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == 4:
            self.due = self.now + value

    def next_event(self) -> int | None:
        return self.due

    def event(self) -> None:
        self.due = None
        self.raise_irq()
