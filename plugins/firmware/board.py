"""Board files: the memory map and the peripherals of a Cortex-M board (TOML).

See docs/firmware.md for the reference. A board is plain data (:class:`Board`); its TOML
text travels with a recording (the firmware state keeps it), so a replay needs no file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import tomllib

from syxdbg.errors import LoadError

PAGE = 4096


@dataclass(frozen=True)
class MemoryRegion:
    """RAM or flash (``perms`` "rx", "rw", "rwx"...), or an ``alias`` of another region."""

    name: str
    base: int
    size: int
    perms: str = "rwx"
    alias: str = ""


@dataclass(frozen=True)
class PeripheralSpec:
    """A peripheral at ``[base, base+size)`` implemented by model ``model`` (a built-in
    name or ``module:Class``); ``irq`` its interrupt line (None: none); ``config`` every
    other key of its table, for the model."""

    name: str
    model: str
    base: int
    size: int
    irq: int | None = None
    config: tuple[tuple[str, Any], ...] = ()

    def option(self, key: str, default: Any = None) -> Any:
        return dict(self.config).get(key, default)


@dataclass(frozen=True)
class Board:
    name: str
    memory: tuple[MemoryRegion, ...]
    peripherals: tuple[PeripheralSpec, ...] = ()
    #: The vector table at reset (VTOR); None: the lowest executable region's base.
    vtor: int | None = None
    #: External interrupt lines of the NVIC.
    irqs: int = 64
    #: Implemented priority bits (the upper bits of each 8-bit priority field).
    priority_bits: int = 4
    #: What a bus fault or an undefined instruction does: "stop" (the run stops with the
    #: fault, as for a program) or "handler" (the firmware's HardFault handler runs).
    faults: str = "stop"
    text: str = field(default="", compare=False)

    def region(self, name: str) -> MemoryRegion:
        for r in self.memory:
            if r.name == name:
                return r
        raise LoadError(f"board {self.name!r}: no memory region named {name!r}")

    @property
    def reset_vtor(self) -> int:
        if self.vtor is not None:
            return self.vtor
        code = [r for r in self.memory if "x" in r.perms and not r.alias]
        if not code:
            raise LoadError(f"board {self.name!r}: no executable memory region (flash)")
        return min(r.base for r in code)


#: The board used when none is given (``--arch cortex-m`` alone): 1M flash at 0, 256K
#: SRAM at 0x20000000, the built-in UART at 0x40004000 (IRQ 1) and timer at 0x40001000
#: (IRQ 0).
DEFAULT_BOARD_TEXT = """\
name = "generic cortex-m"

[[memory]]
name = "flash"
base = 0x00000000
size = 0x100000
perms = "rx"

[[memory]]
name = "sram"
base = 0x20000000
size = 0x40000
perms = "rwx"

[[peripheral]]
name = "uart0"
model = "uart"
base = 0x40004000
size = 0x1000
irq = 1

[[peripheral]]
name = "timer0"
model = "timer"
base = 0x40001000
size = 0x1000
irq = 0
"""


def _int(table: dict[str, Any], key: str, where: str, default: int | None = None) -> int:
    value = table.get(key, default)
    if isinstance(value, str):
        try:
            value = int(value.replace("_", ""), 0)
        except ValueError:
            value = None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise LoadError(f"{where}: {key} must be a non-negative integer (got {value!r})")
    return value


def parse_board(text: str, source: str = "board") -> Board:
    """Parse and check a board file's text (one :class:`LoadError` line when it is bad)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LoadError(f"{source}: not a valid TOML board file ({exc})") from None
    name = str(data.get("name", source))
    regions: list[MemoryRegion] = []
    for i, t in enumerate(data.get("memory", [])):
        where = f"{source}: memory #{i + 1}"
        if not isinstance(t, dict):
            raise LoadError(f"{where}: must be a table")
        rname = str(t.get("name", f"mem{i}"))
        base, size = _int(t, "base", where), _int(t, "size", where)
        perms = str(t.get("perms", "rwx"))
        if base % PAGE or size % PAGE or not size:
            raise LoadError(f"{where} ({rname}): base and size must be multiples of 4 KiB")
        if base + size > 1 << 32:
            raise LoadError(f"{where} ({rname}): beyond the 32-bit address space")
        if set(perms) - set("rwx"):
            raise LoadError(f"{where} ({rname}): perms is made of r, w and x")
        regions.append(MemoryRegion(rname, base, size, perms, str(t.get("alias", ""))))
    if not regions:
        raise LoadError(f"{source}: a board needs at least one [[memory]] region")
    names = {r.name: r for r in regions}
    for r in regions:
        if r.alias:
            target = names.get(r.alias)
            if target is None or target.alias:
                raise LoadError(f"{source}: region {r.name!r} aliases {r.alias!r}, which is "
                                "not a plain memory region")
            if r.size > target.size:
                raise LoadError(f"{source}: alias {r.name!r} is larger than {r.alias!r}")
    peripherals: list[PeripheralSpec] = []
    for i, t in enumerate(data.get("peripheral", [])):
        where = f"{source}: peripheral #{i + 1}"
        if not isinstance(t, dict):
            raise LoadError(f"{where}: must be a table")
        pname = str(t.get("name", f"periph{i}"))
        base, size = _int(t, "base", where), _int(t, "size", where, PAGE)
        if base % PAGE or size % PAGE or not size:
            raise LoadError(f"{where} ({pname}): base and size must be multiples of 4 KiB")
        if "model" not in t:
            raise LoadError(f"{where} ({pname}): needs a model (uart, timer or module:Class)")
        irq = None if "irq" not in t else _int(t, "irq", where)
        config = tuple(sorted((k, v) for k, v in t.items()
                              if k not in ("name", "model", "base", "size", "irq")))
        peripherals.append(PeripheralSpec(pname, str(t["model"]), base, size, irq, config))
    spans = [(r.base, r.base + r.size, r.name) for r in regions] + \
        [(p.base, p.base + p.size, p.name) for p in peripherals] + \
        [(0xE000_0000, 0xE010_0000, "the private peripheral bus (SCS)")]
    spans.sort()
    for (_, a1, an), (b0, _, bn) in zip(spans, spans[1:], strict=False):
        if b0 < a1:
            raise LoadError(f"{source}: {an!r} and {bn!r} overlap")
    board = Board(name=name, memory=tuple(regions), peripherals=tuple(peripherals),
                  vtor=None if "vtor" not in data else _int(data, "vtor", source),
                  irqs=_int(data, "irqs", source, 64),
                  priority_bits=_int(data, "priority_bits", source, 4),
                  faults=str(data.get("faults", "stop")), text=text)
    if board.faults not in ("stop", "handler"):
        raise LoadError(f"{source}: faults is \"stop\" or \"handler\"")
    if not 1 <= board.irqs <= 240 or not 2 <= board.priority_bits <= 8:
        raise LoadError(f"{source}: irqs is 1-240 and priority_bits 2-8")
    for p in peripherals:
        if p.irq is not None and p.irq >= board.irqs:
            raise LoadError(f"{source}: {p.name!r} uses IRQ {p.irq}, the board has "
                            f"{board.irqs}")
    return board


def load_board(path: str | None) -> Board:
    """The board of file ``path`` (None: :data:`DEFAULT_BOARD_TEXT`)."""
    if path is None:
        return parse_board(DEFAULT_BOARD_TEXT, "default board")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise LoadError(f"{path}: cannot read the board file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise LoadError(f"{path}: the board file is not UTF-8 text") from None
    return parse_board(text, path)
