"""Machine state as recording data: register values and digests, the memory layout, page
bytes and the CPU by name, and applying them back to a machine.

The CPU is always stored as named register values, never as Unicorn's raw context (it holds
host pointers, and a forged one would reach them).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..errors import SyxdbgError
from ..machine.events import StopEvent
from ..machine.memory import PAGE, Perm
from ._format import RecordingError, require

if TYPE_CHECKING:
    from ..machine import Machine

ZERO_PAGE = bytes(PAGE)


def register_values(machine: Machine, names: list[str]) -> tuple[int, ...]:
    regs = machine.regs
    return tuple(int(regs[n]) for n in names)


def digest_registers(machine: Machine) -> list[str]:
    """The registers compared every :data:`CHECK_INTERVAL` instructions: the general
    registers, pc and flags (gdb's core feature: every register before the first one wider
    than 8 bytes). Checkpoints hold the whole CPU."""
    out = []
    regs = machine.regs
    for name in regs.names():
        if regs.info(name).size > 8:
            break
        out.append(name)
    return out


def layout(machine: Machine) -> list[tuple[int, int, int, str]]:
    return [(r.start, r.size, int(r.perms), r.name) for r in machine.mem.regions()]


def pages(machine: Machine) -> Iterable[tuple[int, memoryview]]:
    for r in machine.mem.regions():
        view = r.view
        for off in range(0, r.size, PAGE):
            yield r.start + off, view[off:off + PAGE]


def memory_digest(machine: Machine) -> str:
    """A digest of the memory layout (addresses and permissions; region names are labels)
    and every mapped byte (one hash call per region)."""
    h = hashlib.blake2b(digest_size=16)
    spans: list[list[int]] = []  # adjacent regions with the same permissions coalesced:
    for r in machine.mem.regions():  # how a range is split into regions is bookkeeping
        if spans and spans[-1][1] == r.start and spans[-1][2] == int(r.perms):
            spans[-1][1] = r.end
        else:
            spans.append([r.start, r.end, int(r.perms)])
    h.update(repr(spans).encode())
    for r in machine.mem.regions():
        h.update(r.view)
    return h.hexdigest()


def apply_layout(machine: Machine, layout: list[tuple[int, int, int, str]]) -> None:
    """Map, unmap and protect so the memory map is exactly ``layout``."""
    mem = machine.mem
    want = sorted(layout)

    def subtract(start: int, end: int, cuts: list[tuple[int, int]]) -> list[tuple[int, int]]:
        out = []
        cur = start
        for s, e in cuts:
            if e <= cur or s >= end:
                continue
            if s > cur:
                out.append((cur, s))
            cur = max(cur, e)
        if cur < end:
            out.append((cur, end))
        return out

    want_spans = [(s, s + n) for s, n, _, _ in want]
    for r in mem.regions():
        for s, e in subtract(r.start, r.end, want_spans):
            mem.unmap(s, e - s)
    for s, n, perms, name in want:
        have = [(r.start, r.end) for r in mem.regions()]
        for a, b in subtract(s, s + n, have):
            mem.map(a, b - a, Perm(perms), name)
        for r in mem.regions():
            lo, hi = max(r.start, s), min(r.end, s + n)
            if lo < hi and int(r.perms) != perms:
                mem.protect(lo, hi - lo, Perm(perms))




def page_bytes(machine: Machine, addresses: list[int]) -> tuple[list[int], bytes]:
    """(the zero pages among ``addresses``, the other pages' bytes, in order)."""
    zero: list[int] = []
    blob = bytearray()
    mem = machine.mem
    region = None
    for addr in addresses:
        if region is None or not region.start <= addr < region.end:
            region = mem.find(addr)
            assert region is not None
        off = addr - region.start
        page = region.view[off:off + PAGE]
        if page == ZERO_PAGE:
            zero.append(addr)
        else:
            blob += page
    return zero, bytes(blob)



def cpu_state(machine: Machine) -> dict[str, Any]:
    """The CPU as data: every register by name, the position, the machine-held registers
    and the terminal event. (Never unicorn's raw context: it holds host pointers, and a
    forged one would reach them.)"""
    cpu = machine.save_cpu()
    names = machine.regs.names()
    return {"registers": dict(zip(names, register_values(machine, names), strict=True)),
            "position": cpu.position, "virtual": dict(cpu.virtual), "final": cpu.final}


def restore_cpu(machine: Machine, cpu: dict[str, Any]) -> None:
    """Make the CPU the recorded one: this engine's own context, then the recorded register
    values written by name (only those that differ) and read back."""
    from ..machine.core import CpuState

    require("CPU state", cpu, {"registers": dict, "position": int, "virtual": dict,
                                "final": (StopEvent, type(None))})
    live = machine.save_cpu()
    machine.load_cpu(CpuState(live.context, cpu["position"],
                              {str(k): int(v) for k, v in cpu["virtual"].items()},
                              cpu["final"]))
    regs = machine.regs
    wrong = []
    for name, value in cpu["registers"].items():
        if name not in regs or not isinstance(value, int):
            raise RecordingError(f"corrupted recording: no register {name!r} here")
        if regs[name] != value:
            with contextlib.suppress(SyxdbgError, ValueError, OverflowError):
                regs[name] = value
            if regs[name] != value:
                wrong.append(name)
    if wrong:
        raise RecordingError(f"the recording's CPU state cannot be restored here (registers "
                             f"{', '.join(wrong)}): another emulator version?")

