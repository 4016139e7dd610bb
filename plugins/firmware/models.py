"""Peripheral models: the API (:class:`Peripheral`) and the built-in UART and timer.

A model is Python code behind a range of guest addresses. The firmware layer calls it only
**at the frontier** (live execution): every value it returns to the firmware (a register
read) and every interrupt it raises is recorded in the session's event log, so reverse
execution and replays take them from the log and never call the model again, and its host
side (a terminal, a file) sees each byte once. A model's own state therefore moves only
forward, with the live run; it is not part of snapshots.

Writing a model (docs/firmware.md has the whole reference)::

    from syxdbg_plugins.firmware.models import Peripheral

    class Rng(Peripheral):
        '''A random number register at offset 0.'''

        def read(self, offset: int, size: int) -> int:
            return int.from_bytes(os.urandom(4), "little") if offset == 0 else 0

and in the board file ``model = "mypackage.rng:Rng"``.
"""

from __future__ import annotations

import importlib
import os
import select
import sys
from collections.abc import Callable, Mapping
from typing import Any

from syxdbg.errors import LoadError

from .board import PeripheralSpec


class Peripheral:
    """Base class of a peripheral model (override what the device needs).

    ``name``, ``base``, ``size``, ``irq`` and ``config`` (the board table's other keys) come
    from the board file. :attr:`now` is the virtual time in CPU cycles (one per instruction,
    plus the cycles ``wfi`` slept). Offsets are relative to ``base``; sizes are 1, 2 or 4.
    """

    def __init__(self, spec: PeripheralSpec, clock: Callable[[], int],
                 raise_irq: Callable[[int], None]) -> None:
        self.spec = spec
        self.name = spec.name
        self.base = spec.base
        self.size = spec.size
        self.irq = spec.irq
        self.config: Mapping[str, Any] = dict(spec.config)
        self._clock = clock
        self._raise = raise_irq

    @property
    def now(self) -> int:
        """Virtual time (cycles)."""
        return self._clock()

    def raise_irq(self, irq: int | None = None) -> None:
        """Make interrupt ``irq`` (default: this peripheral's) pending in the NVIC."""
        line = self.irq if irq is None else irq
        if line is None:
            raise ValueError(f"{self.name}: no IRQ line in the board file")
        self._raise(line)

    def read(self, offset: int, size: int) -> int:
        """A load of ``size`` bytes at ``base + offset``: the value the firmware gets."""
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        """A store of ``value`` (``size`` bytes) at ``base + offset``."""

    def peek(self, offset: int, size: int) -> int | None:
        """For a debugger (gdb's ``x``, the shell's ``x``): the register's value now,
        without any side effect (no state change, no host I/O, no interrupt); None when
        the register cannot be read that way (the default: the read is then an error)."""
        return None

    def next_event(self) -> int | None:
        """The virtual time of this model's next timed event (None: none scheduled).
        Asked after every access and event; :meth:`event` is called at that time."""
        return None

    def event(self) -> None:
        """The time :meth:`next_event` gave has come (raise interrupts here)."""

    def close(self) -> None:
        """The session ends: release host resources."""


class Uart(Peripheral):
    """A minimal UART.

    Registers: ``0x0 DATA`` (write: send a byte; read: the next received byte, 0 if none),
    ``0x4 STATUS`` (bit 0: a received byte is waiting; bit 1: ready to send, always 1),
    ``0x8 CTRL`` (bit 0: raise the IRQ when a received byte is waiting, checked at every
    STATUS read and every ``poll`` cycles until the input ends). Board keys: ``output``
    ("-": standard output, the default; "none"; or a file path, created), ``input``
    ("stdin", the default, or "none"), ``poll`` (cycles between input checks while the RX
    interrupt is enabled, default 100000).
    """

    def __init__(self, spec: PeripheralSpec, clock: Callable[[], int],
                 raise_irq: Callable[[int], None]) -> None:
        super().__init__(spec, clock, raise_irq)
        out = str(self.config.get("output", "-"))
        self._out_fd: int | None
        self._own_out = False
        if out == "-":
            self._out_fd = sys.stdout.fileno() if _has_fileno(sys.stdout) else 1
        elif out == "none":
            self._out_fd = None
        else:
            self._out_fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                                   0o644)
            self._own_out = True
        self._in_fd: int | None = 0 if str(self.config.get("input", "stdin")) == "stdin" \
            else None
        self._rx = bytearray()
        self._eof = False
        self._ctrl = 0
        self._poll = int(self.config.get("poll", 100000))
        self._next_poll: int | None = None

    def _fill(self) -> None:
        if self._rx or self._eof or self._in_fd is None:
            return
        try:
            if not select.select([self._in_fd], [], [], 0)[0]:
                return
            data = os.read(self._in_fd, 256)
        except (OSError, ValueError):
            data = b""
        if data:
            self._rx += data
        else:
            self._eof = True

    def read(self, offset: int, size: int) -> int:
        if offset == 0:
            self._fill()
            if not self._rx:
                return 0
            byte = self._rx[0]
            del self._rx[0]
            return byte
        if offset == 4:
            self._fill()
            if self._rx and self._ctrl & 1:
                self.raise_irq()
            return (1 if self._rx else 0) | 2
        if offset == 8:
            return self._ctrl
        return 0

    def peek(self, offset: int, size: int) -> int | None:
        # What the model holds now: no poll of the host input (a read would poll it).
        if offset == 0:
            return self._rx[0] if self._rx else 0
        if offset == 4:
            return (1 if self._rx else 0) | 2
        if offset == 8:
            return self._ctrl
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == 0:
            if self._out_fd is not None:
                os.write(self._out_fd, bytes([value & 0xFF]))
        elif offset == 8:
            self._ctrl = value & 1
            self._next_poll = self.now + self._poll if self._ctrl & 1 else None

    def next_event(self) -> int | None:
        return self._next_poll

    def event(self) -> None:
        self._fill()
        if self._rx and self._ctrl & 1:
            self.raise_irq()
        # No more polls once the input ended and was read: nothing can arrive any more.
        done = self._in_fd is None or (self._eof and not self._rx)
        self._next_poll = self.now + self._poll if self._ctrl & 1 and not done else None

    def close(self) -> None:
        if self._own_out and self._out_fd is not None:
            os.close(self._out_fd)
            self._out_fd = None


def _has_fileno(stream: Any) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


class Timer(Peripheral):
    """A periodic timer counting CPU cycles.

    Registers: ``0x0 CTRL`` (bit 0: running, bit 1: raise the IRQ at each expiry),
    ``0x4 LOAD`` (the period in cycles), ``0x8 VALUE`` (cycles to the next expiry, read
    only), ``0xC STATUS`` (bit 0: expired since last cleared; write 1 to clear).
    """

    def __init__(self, spec: PeripheralSpec, clock: Callable[[], int],
                 raise_irq: Callable[[int], None]) -> None:
        super().__init__(spec, clock, raise_irq)
        self._ctrl = 0
        self._load = 0
        self._status = 0
        self._next: int | None = None

    def _restart(self) -> None:
        self._next = self.now + self._load if self._ctrl & 1 and self._load else None

    def read(self, offset: int, size: int) -> int:
        if offset == 0:
            return self._ctrl
        if offset == 4:
            return self._load
        if offset == 8:
            return max(0, self._next - self.now) if self._next is not None else 0
        if offset == 12:
            return self._status
        return 0

    def peek(self, offset: int, size: int) -> int | None:
        return self.read(offset, size)  # (reads have no side effect)

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == 0:
            was = self._ctrl & 1
            self._ctrl = value & 3
            if not was or not self._ctrl & 1:
                self._restart()
        elif offset == 4:
            self._load = value
            self._restart()
        elif offset == 12 and value & 1:
            self._status = 0

    def next_event(self) -> int | None:
        return self._next

    def event(self) -> None:
        self._status = 1
        if self._ctrl & 2:
            self.raise_irq()
        self._next = None if self._next is None else self._next + self._load
        if self._next is not None and self._next <= self.now:
            self._next = self.now + self._load  # (a period shorter than the wake-up)


#: Built-in models by the name a board file uses.
MODELS: dict[str, type[Peripheral]] = {"uart": Uart, "timer": Timer}


def model_class(name: str) -> type[Peripheral]:
    """A built-in model's class, or ``module:Class`` imported (a LoadError line if not)."""
    if name in MODELS:
        return MODELS[name]
    module, colon, attr = name.partition(":")
    if not colon:
        raise LoadError(f"unknown peripheral model {name!r} (built-in: "
                        f"{', '.join(sorted(MODELS))}; or module:Class)")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise LoadError(f"peripheral model {name!r} cannot be loaded ({exc})") from None
    if not (isinstance(cls, type) and issubclass(cls, Peripheral)):
        raise LoadError(f"peripheral model {name!r} is not a Peripheral subclass")
    return cls
