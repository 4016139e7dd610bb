"""Breakpoints on instructions inside Thumb IT blocks (32-bit ARM and Cortex-M).

Unicorn 2.1.4 translates an IT block as a unit: a code hook's stop inside it is ignored,
and the hook is not even called for an instruction whose condition fails. So a breakpoint
on an instruction an IT instruction covers is *anchored* at that IT instruction (a code
hook there stops before it, as for any breakpoint); the machine then runs the exact
number of instructions from the anchor to the breakpoint, a bounded run, which stops
through Unicorn's exit address (it ends the translation right before the target with the
IT state saved, taken or not). The stop is reported at the breakpoint's address with that
instruction's position, whether its condition passes or fails: a BKPT instruction, which
is what a debugger plants on bare metal, is unconditional inside an IT block (ARMv7 ARM),
and every instruction of an IT block, taken or not, has its own position (docs/
architectures.md). gdb itself moves a breakpoint out of an IT block to its IT instruction
on Linux programs (its Thumb breakpoint there is an undefined instruction, which does not
trap reliably when its condition fails: "Breakpoint address adjusted from..."); raw RSP
clients, the shell, DAP and the API set them inside.

Resuming from such a stop (or from a stepped-to instruction inside the block) before a
later breakpoint of the same block runs to that one the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import capstone
from unicorn import arm_const

from ..events import StopEvent, Stopped


class Machine(Protocol):
    """What of :class:`syxdbg.machine.core.Machine` the IT-block breakpoints use (its
    breakpoint hooks; a Protocol, so that this module does not import the core that
    imports it)."""

    _breakpoints: set[int]
    _core: Any
    mem: Any

    @property
    def pc(self) -> int: ...

    @property
    def position(self) -> int: ...

    def _hook_breakpoint(self, address: int) -> None: ...

    def _drop_translation(self, address: int) -> None: ...

RunFn = Callable[[int | None, int | None], StopEvent]

_CPSR_T = 1 << 5
_CPSR_IT = (0x3 << 25) | (0x3F << 10)


class ItBreakpoints:
    """The anchored breakpoints of one machine (see the module docstring)."""

    def __init__(self, machine: Machine, cs_thumb: capstone.Cs) -> None:
        self._m = machine
        self._cs = cs_thumb
        #: Breakpoint address -> its anchor (the IT instruction covering it).
        self._anchor_of: dict[int, int] = {}
        #: Anchor -> the breakpoint addresses inside its block.
        self._targets: dict[int, set[int]] = {}
        #: Anchors an anchor stop in Thumb state confirmed as IT instructions.
        self._confirmed: set[int] = set()
        #: While running: confirmed anchored breakpoints taken out of Machine.breakpoints.
        self._hidden: set[int] = set()
        self._running = False

    def covering(self, address: int) -> tuple[int, list[int]] | None:
        """(the IT instruction's address, the addresses of the instructions it makes
        conditional) when an IT instruction covers ``address``, else None."""
        if address < 2:
            return None
        mem = self._m.mem
        start = max(address - 16, 0)
        code = mem.read_partial(start, address - start + 18)
        for back in range(2, min(address, 16) + 1, 2):
            off = address - start - back
            if off < 0 or off + 1 >= len(code) or code[off + 1] != 0xBF or not code[off] & 0xF:
                continue
            insns = list(self._cs.disasm_lite(bytes(code[off:]), start + off))
            if not insns or not insns[0][2].startswith("it"):
                continue
            covered = [a for a, _, _, _ in insns[1:len(insns[0][2])]]
            if address in covered:
                return start + off, covered
        return None

    # -- planting -------------------------------------------------------------------------
    def added(self, address: int) -> None:
        """A breakpoint was added at ``address``: anchor it if an IT instruction seems to
        cover it. (Its own code hook stays until an anchor stop in Thumb state confirms the
        IT instruction: the bytes before an ARM-state instruction can decode as one.)"""
        found = self.covering(address)
        if found is None:
            return
        anchor = found[0]
        self._anchor_of[address] = anchor
        self._targets.setdefault(anchor, set()).add(address)
        self._m._hook_breakpoint(anchor)
        if anchor in self._confirmed:
            self._unhook(address)

    def removed(self, address: int) -> None:
        """A breakpoint at ``address`` was removed (its code hook with it)."""
        m = self._m
        anchor = self._anchor_of.pop(address, None)
        self._hidden.discard(address)
        if anchor is not None:
            targets = self._targets.get(anchor, set())
            targets.discard(address)
            if not targets:
                self._forget(anchor)
        if address in self._targets and address not in m._breakpoints:
            m._hook_breakpoint(address)  # still the anchor of other breakpoints

    def _unhook(self, address: int) -> None:
        """Inside a confirmed IT block, a breakpoint's own code hook would only record a
        hit whose stop Unicorn defers to the end of the block (a stop at the wrong place):
        the anchor does the work."""
        m = self._m
        m._core.remove_breakpoint(address)
        m._drop_translation(address)
        if address in m._breakpoints and self._running:
            m._breakpoints.discard(address)
            self._hidden.add(address)

    def _confirm(self, anchor: int) -> None:
        if anchor not in self._confirmed:
            self._confirmed.add(anchor)
            for address in self._targets.get(anchor, ()):
                self._unhook(address)

    def _forget(self, anchor: int) -> None:
        """``anchor`` anchors nothing (any more): its hook goes, unless it is a breakpoint;
        breakpoints it anchored get their own hooks back."""
        m = self._m
        for address in self._targets.pop(anchor, set()):
            self._anchor_of.pop(address, None)
            if address in self._hidden:
                self._hidden.discard(address)
                m._breakpoints.add(address)
            if address in m._breakpoints:
                m._hook_breakpoint(address)
        self._confirmed.discard(anchor)
        if anchor not in m._breakpoints:
            m._core.remove_breakpoint(anchor)
            m._drop_translation(anchor)

    @property
    def anchors(self) -> dict[int, frozenset[int]]:
        return {a: frozenset(t) for a, t in self._targets.items()}

    # -- running --------------------------------------------------------------------------
    def run(self, run: RunFn, count: int | None, until: int | None) -> StopEvent:
        """``run(count, until)`` (the machine's run loop) with the anchored breakpoints
        (and an ``until`` inside an IT block) stopping at their instructions."""
        if not self._targets and until is None:
            return run(count, until)
        m = self._m
        # The run loop takes every address of Machine.breakpoints for a code hook that
        # stops there (it would let a bounded run end there on that hook): the confirmed
        # anchored ones have none, so they are out of the set while it runs.
        self._hidden = {a for a in m._breakpoints & self._anchor_of.keys()
                        if self._anchor_of[a] in self._confirmed}
        m._breakpoints -= self._hidden
        self._running = True
        try:
            return self._run(run, count, until)
        finally:
            self._running = False
            m._breakpoints |= self._hidden
            self._hidden = set()

    def _run(self, run: RunFn, count: int | None, until: int | None) -> StopEvent:
        m = self._m
        temp: int | None = None
        if until is not None and until not in self._anchor_of:
            found = self.covering(until)
            if found is not None:
                temp = until
                self.added(until)
        try:
            goal = None if count is None else m.position + count
            ev = self._in_block(run, goal, until)
            if ev is not None:
                return ev
            while True:
                if goal is not None and m.position >= goal:
                    return Stopped(m.pc, m.position, "count")
                # (An until inside a confirmed IT block is the anchor's: the loop must not
                # count on a hook there.)
                inner = None if until is not None and until in self._anchor_of and \
                    self._anchor_of[until] in self._confirmed else until
                ev = run(None if goal is None else goal - m.position, inner)
                if not (isinstance(ev, Stopped) and ev.why == "breakpoint"
                        and ev.pc in self._targets and ev.pc not in m._breakpoints):
                    return ev
                ev2 = self._in_block(run, goal, until)
                if ev2 is not None:
                    return ev2
        finally:
            if temp is not None:
                self.removed(temp)

    def _in_block(self, run: RunFn, goal: int | None, until: int | None) -> StopEvent | None:
        """At an anchor (before its IT instruction) or inside an IT block before one of
        its breakpoints: run exactly to that breakpoint (or the goal, if nearer). None when
        there is no breakpoint ahead in this block."""
        m = self._m
        pc = m.pc
        cpsr = m._core.reg_read(arm_const.UC_ARM_REG_CPSR)  # (as Machine.thumb)
        if pc in self._targets:
            if not cpsr & _CPSR_T:
                self._forget(pc)  # ARM code whose bytes before looked like an IT
                return None
            anchor = pc
            found = self.covering(min(self._targets[pc]))
            if found is None or found[0] != pc:
                self._forget(pc)
                return None
            covered = found[1]
            here = -1
        else:
            if not cpsr & _CPSR_T or not cpsr & _CPSR_IT:
                return None
            found = self.covering(pc)
            if found is None or found[0] not in self._targets:
                return None
            anchor, covered = found
            here = covered.index(pc)
        self._confirm(anchor)
        ahead = [a for a in covered[here + 1:] if a in self._targets.get(anchor, ())]
        if not ahead:
            return None
        target = ahead[0]
        steps = covered.index(target) - here
        if goal is not None and m.position + steps > goal:
            if m.position >= goal:
                return Stopped(pc, m.position, "count")
            return run(goal - m.position, pc)
        ev = run(steps, pc)  # (until = pc: steps off the anchor's own hook)
        if isinstance(ev, Stopped) and ev.why == "count" and m.pc == target:
            return Stopped(target, m.position, "until" if target == until else "breakpoint")
        return ev
