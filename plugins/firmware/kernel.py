"""The bare-metal "kernel": what a Cortex-M chip has around its core.

:class:`FirmwareKernel` plays for firmware the part ``plugins/linux`` plays for Linux
programs. It owns

* the **system control space** at 0xE000E000 (an MMIO window): the NVIC (ISER/ICER,
  ISPR/ICPR, IABR, IPR, STIR), the SCB (CPUID, ICSR, VTOR, AIRCR, SHPR1-3, SHCSR...) and
  SysTick; deterministic state, saved with every snapshot (``"firmware"`` state);
* **exceptions**: SysTick, PendSV, SVCall, the peripherals' IRQs, with the NVIC's rules as
  far as firmware needs them: an exception is taken when it is pending, enabled, and its
  priority is higher (numerically lower) than the execution priority (the active
  exceptions', PRIMASK's, BASEPRI's, FAULTMASK's); the highest pending one first, the
  lowest number among equals; entry and return frames are the machine's
  (:mod:`syxdbg.machine.arch.cortex_m`);
* **virtual time**: one cycle per instruction plus the cycles ``wfi`` sleeps (``idle``);
  ``wfi`` jumps to the next timed event (SysTick, a model's event) and takes it;
* the **peripheral models** (:mod:`.models`) behind their windows, called only at the
  frontier: each read's value, each write and each model event (with the interrupts it
  raised) is an event-log entry, so re-execution and replays take them from the log;
* **semihosting** (``bkpt 0xab``): SYS_EXIT / SYS_EXIT_EXTENDED end the run with a status,
  SYS_WRITEC / SYS_WRITE0 / SYS_WRITE print (an event-log effect, shown once).

Exact positions: exceptions are taken at instruction boundaries the machine stops at
exactly (its position timer, an ``svc``, an exception return, a ``wfi``). An interrupt made
pending by a store to a register (ICSR.PENDSVSET, ISPR, STIR, ISER of a pending line,
a model raising its IRQ) is taken after the first instruction from the store on that
certainly ends Unicorn's translation block (a branch, ``isb``, ``svc``...: firmware puts
``dsb; isb`` there), a point that does not depend on how the code was translated, so
every re-execution takes it at the same position. A pending interrupt masked by
PRIMASK/BASEPRI/FAULTMASK is looked at again every :data:`MASK_POLL` instructions
(``cpsie i`` has no hook in Unicorn).
"""

from __future__ import annotations

import os
import signal
import struct
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from syxdbg.errors import SyxdbgError
from syxdbg.machine.arch import cortex_m as cm

from .board import Board, PeripheralSpec
from .models import Peripheral, model_class
from .state import FirmwareState

if TYPE_CHECKING:
    from syxdbg.eventlog import Event, EventLog
    from syxdbg.machine import Machine
    from syxdbg.machine.events import Fault

SOURCE = "firmware"
#: Instructions between two looks at a pending interrupt that a mask holds back.
MASK_POLL = 16
#: QEMU ends a translation block after at most this many instructions.
_TB_MAX = 512
SCS_BASE = 0xE000_E000
SCS_SIZE = 0x1000
CPUID_M4 = 0x410F_C241
_WFI = (b"\x30\xbf", b"\xaf\xf3\x03\x80")
_SEMIHOST_BKPT = b"\xab\xbe"
_BRANCHES = frozenset({"bx", "blx", "tbb", "tbh", "svc", "wfi", "wfe", "isb", "bkpt",
                       "udf", "b", "bl", "cbz", "cbnz"})


class FirmwareKernel:
    """See the module docstring. ``live``: models are created and called (False in a
    replay of a recording: every model interaction comes from its event log)."""

    def __init__(self, machine: Machine, board: Board, *, live: bool = True) -> None:
        self.machine = machine
        self.board = board
        self.live = live
        self.log: EventLog | None = None
        self.idle = 0
        self.vtor = board.reset_vtor
        self.enabled: set[int] = set()
        self.pending: set[int] = set()
        self.active: list[int] = []
        self.priority: dict[int, int] = {}
        # SysTick: CSR, RVR, the time of the next wrap (while enabled), the counter while
        # stopped, COUNTFLAG.
        self.st_csr = 0
        self.st_rvr = 0
        self.st_next = 0
        self.st_cur = 0
        self.st_flag = 0
        self.regs: dict[int, int] = {}
        #: A position where pending exceptions are looked at (-1: none).
        self.check_at = -1
        self.models: list[Peripheral] = []
        self.windows: list[cm.MmioWindow] = []
        self._raised: list[int] = []
        self._tb_end: dict[int, int] = {}
        self._next_logged: tuple[int, Event | None] | None = None
        self._closed = False

    # -- set-up ---------------------------------------------------------------------------
    def install(self) -> None:
        """Map the system control space and the peripherals' windows; hook the machine."""
        m = self.machine
        for window in self.windows:
            window.close()
        self.windows.clear()
        self.windows.append(cm.map_mmio(m, SCS_BASE, SCS_SIZE, self._scs_read,
                                        self._scs_write, self._scs_peek))
        for spec in self.board.peripherals:
            model: Peripheral | None = None
            if self.live:
                model = model_class(spec.model)(spec, self.now, self._raise)
                self.models.append(model)
            self.windows.append(cm.map_mmio(
                m, spec.base, spec.size, self._model_reader(spec.name, model),
                self._model_writer(spec.name, model), self._model_peeker(spec, model)))
        m.set_exception_handler(self._on_exception, self._on_idle)
        m.set_fault_handler(self._on_fault)

    def reset(self) -> None:
        """The CPU's reset: SP and pc from the vector table."""
        m = self.machine
        sp, entry = struct.unpack("<II", m.mem.read(self.vtor, 8))
        cm.set_special(m, "MSP", sp)
        m.regs.pc = entry | 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.machine.set_exception_handler(None, None)
        self.machine.set_fault_handler(None)
        self.machine.set_timer(None)
        for model in self.models:
            model.close()

    # -- record / replay (syxdbg.eventlog.Recordable) -----------------------------------
    def attach_eventlog(self, log: EventLog) -> None:
        self.log = log
        self._next_logged = None

    def detach_eventlog(self) -> None:
        self.log = None

    def _replaying(self) -> bool:
        return self.log is not None and self.log.replaying

    def _io(self, position: int, call: str, key: tuple[Any, ...],
            live: Callable[[], Any]) -> Any:
        """A model interaction: live at the frontier (recorded), else from the log."""
        if self.log is None:
            if not self.live:
                raise SyxdbgError("a replayed firmware reached a peripheral access the "
                                  "recording does not have")
            return live()
        return self.log.call(position, SOURCE, call, key, live)[0]

    # -- time ---------------------------------------------------------------------------
    def now(self) -> int:
        """Virtual time in cycles (valid at the current instruction or access)."""
        return self._pos + self.idle

    #: (position, pc) of the MMIO access being handled.
    _access: tuple[int, int] | None = None

    @property
    def _pos(self) -> int:
        return self._access[0] if self._access is not None else self.machine.position

    # -- peripherals ----------------------------------------------------------------------
    def _raise(self, irq: int) -> None:
        self._raised.append(irq)

    def _model_reader(self, name: str, model: Peripheral | None
                      ) -> Callable[[int, int, int, int], int]:
        def read(offset: int, size: int, position: int, pc: int) -> int:
            def live() -> tuple[int, tuple[int, ...]]:
                assert model is not None
                self._raised = []
                value = int(model.read(offset, size)) & ((1 << (8 * size)) - 1)
                return value, tuple(self._raised)

            self._access = (position, pc)
            try:
                value, irqs = self._io(position, "read", (name, offset, size), live)
                self._after_access(position, irqs)
            finally:
                self._access = None
            return int(value)

        return read

    def _model_writer(self, name: str, model: Peripheral | None
                      ) -> Callable[[int, int, int, int, int], None]:
        def write(offset: int, size: int, value: int, position: int, pc: int) -> None:
            def live() -> tuple[int, ...]:
                assert model is not None
                self._raised = []
                model.write(offset, size, value)
                return tuple(self._raised)

            self._access = (position, pc)
            try:
                irqs = self._io(position, "write", (name, offset, size, value), live)
                self._after_access(position, irqs)
            finally:
                self._access = None

        return write

    def _after_access(self, position: int, irqs: tuple[int, ...]) -> None:
        for irq in irqs:
            self.pending.add(16 + int(irq))
        if irqs:
            self.check_at = self._boundary_after(position)
        self._arm(from_access=position)

    def _fire_models(self) -> None:
        """Model events due now: live (recorded) or from the log."""
        pos = self.machine.position
        while self._replaying():
            ev = self._peek_event()
            if ev is None or ev.position != pos:
                return
            assert self.log is not None
            _, irqs = self.log.replay(pos, SOURCE, "event", ev.key).outcome()
            for irq in irqs:
                self.pending.add(16 + int(irq))
        # (At the frontier, the live models: the log may have just run out here.)
        now = self.now()
        for model in self.models:
            due = model.next_event()
            if due is None or due > now:
                continue

            def live(model: Peripheral = model) -> tuple[int, tuple[int, ...]]:
                self._raised = []
                model.event()
                return now, tuple(self._raised)

            _, irqs = self._io(pos, "event", (model.name,), live)
            for irq in irqs:
                self.pending.add(16 + int(irq))

    def _peek_event(self) -> Event | None:
        """The next model event in the log (replaying). The scan is kept: the events
        between the cursor and the one found are accesses, so it stays the answer until
        the cursor passes it (no rescans per access)."""
        log = self.log
        if log is None:
            return None
        cursor = log.cursor
        cached = self._next_logged
        if cached is not None and cached[0] <= cursor and (
                cached[1] is None or cursor <= cached[1].seq):
            return cached[1]
        found = None
        seq = cursor
        while (ev := log.at(seq)) is not None:
            if ev.source == SOURCE and ev.call == "event":
                found = ev
                break
            seq += 1
        self._next_logged = (cursor, found)
        return found

    def _next_model_time(self) -> int | None:
        """The virtual time of the next model event (for wfi)."""
        if self._replaying():
            ev = self._peek_event()
            return None if ev is None else int(ev.outcome()[0])
        times = [t for t in (m.next_event() for m in self.models) if t is not None]
        return min(times) if times else None

    # -- the timer --------------------------------------------------------------------------
    def _systick_running(self) -> bool:
        return bool(self.st_csr & 1) and self.st_rvr > 0

    def _arm(self, from_access: int | None = None) -> None:
        """Set the machine's timer to the next event: SysTick's wrap, a model event, a
        pending-exception check. From inside an access, never before the access's
        translation-block-independent boundary (see the module docstring)."""
        m = self.machine
        cands: list[int] = []
        if self._systick_running():
            cands.append(self.st_next - self.idle)
        if self.check_at >= 0:
            cands.append(self.check_at)
        if self._replaying():
            ev = self._peek_event()
            if ev is not None:
                cands.append(ev.position)
        else:
            for model in self.models:
                t = model.next_event()
                if t is not None:
                    cands.append(t - self.idle)
        if not cands:
            m.set_timer(None)
            return
        at = min(cands)
        if from_access is not None:
            if at < from_access + 1 + _TB_MAX:
                at = max(at, self._boundary_after(from_access))
            at = max(at, m.position)
        else:
            at = max(at, m.position + 1)
        try:
            m.set_timer(at, self._on_timer)
        except ValueError:
            m.set_timer(m.position + 1, self._on_timer)

    def _boundary_after(self, position: int) -> int:
        """The position after the first instruction, from the one at ``position`` (whose
        pc is the last MMIO access's), that certainly ends a translation block."""
        pc = self.machine.pc if self._access is None else self._access[1]
        n = self._tb_end.get(pc)
        if n is None:
            n = self._scan_block_end(pc)
            self._tb_end[pc] = n
        return position + n

    def _scan_block_end(self, pc: int) -> int:
        m = self.machine
        addr = pc
        for i in range(_TB_MAX):
            insn = m.disassemble(addr, 1)
            if not insn:
                return i + 1
            _, mnem, ops, raw = insn[0]
            base = mnem.split(".")[0]
            dest = ops.split(",")[0].strip()
            if base in _BRANCHES or base in m.arch.direct_branches \
                    or (base.startswith("b") and len(base) <= 3 and base[1:] in _CONDS) \
                    or ((base.startswith("pop") or base.startswith("ldm")) and "pc" in ops) \
                    or dest == "pc":
                return i + 1
            addr += len(raw)
        return _TB_MAX

    def _on_timer(self, machine: Machine) -> None:
        self.check_at = -1
        self._tick()
        self._dispatch()
        self._arm()

    def _tick(self) -> None:
        """Everything due at the current time: SysTick wraps, model events."""
        now = self.now()
        if self._systick_running():
            period = self.st_rvr + 1
            while self.st_next <= now:
                self.st_flag = 1
                if self.st_csr & 2:
                    self.pending.add(cm.SYSTICK)
                self.st_next += period
        self._fire_models()

    # -- exceptions -----------------------------------------------------------------------
    def _prio(self, number: int) -> int:
        if number == cm.RESET:
            return -3
        if number == cm.NMI:
            return -2
        if number == cm.HARDFAULT:
            return -1
        return self.priority.get(number, 0)

    def _group(self, priority: int) -> int:
        """The group (preemption) priority of ``priority`` under AIRCR.PRIGROUP: the bits
        above bit PRIGROUP; the rest is the subpriority, which only orders pending ones."""
        if priority < 0:
            return priority
        prigroup = (self.regs.get(0xD0C, 0) >> 8) & 7
        return priority & (0xFF << (prigroup + 1)) & 0xFF

    def _execution_priority(self, masks: bool = True) -> int:
        level = 256
        for n in self.active:
            level = min(level, self._group(self._prio(n)))
        if masks:
            m = self.machine
            if cm.special(m, "FAULTMASK") & 1:
                level = min(level, -1)
            elif cm.special(m, "PRIMASK") & 1:
                level = min(level, 0)
            basepri = cm.special(m, "BASEPRI") & 0xFF
            if basepri:
                level = min(level, self._group(basepri))
        return level

    def _takeable(self) -> list[int]:
        return [n for n in self.pending if n < 16 or n in self.enabled]

    def _dispatch(self) -> None:
        """At an instruction boundary: take the best pending exception if it may preempt."""
        ready = self._takeable()
        if not ready:
            return
        best = min(ready, key=lambda n: (self._prio(n), n))
        group = self._group(self._prio(best))
        if group < self._execution_priority():
            self._enter(best, self.machine.pc)
        elif group < self._execution_priority(masks=False):
            # Held back by PRIMASK/BASEPRI/FAULTMASK only: look again soon.
            self.check_at = self.machine.position + MASK_POLL

    def _enter(self, number: int, return_pc: int) -> None:
        self.pending.discard(number)
        self.active.append(number)
        cm.exception_entry(self.machine, number, return_pc, self.vtor)

    def _on_exception(self, machine: Machine, intno: int) -> Callable[[], None] | None:
        """A CPU exception Unicorn reports: the work that takes it (the machine runs it
        once the emulation stopped), or None (a fault the machine reports)."""
        if intno == cm.EXCP_EXCEPTION_EXIT:
            exc_return = machine.pc | 1
            if exc_return & 0xFFFF_FFE0 != 0xFFFF_FFE0 or not self.active:
                return None
            return lambda: self._return(exc_return)
        if intno == cm.EXCP_SWI:
            return self._svc
        if intno == cm.EXCP_BKPT and machine.mem.read_partial(machine.pc, 2) == _SEMIHOST_BKPT:
            # The bkpt retires (the machine counts it: pc is past it when Unicorn stops).
            machine.regs.pc = machine.pc + 2
            return self._semihost
        return None

    def _return(self, exc_return: int) -> None:
        current = cm.current_exception(self.machine)
        if current in self.active:
            self.active.remove(current)
        cm.exception_return(self.machine, exc_return)
        self._dispatch()  # tail-chaining: a pending exception goes first
        self._arm()

    def _svc(self) -> None:
        pc = self.machine.pc  # after the svc
        if self._group(self._prio(cm.SVCALL)) < self._execution_priority():
            self._enter(cm.SVCALL, pc)
        else:  # an svc that cannot run now escalates
            self._enter(cm.HARDFAULT, pc)
        self._arm()

    def _on_fault(self, machine: Machine, fault: Fault) -> bool:
        """A bad access or an undefined instruction: with ``faults = "handler"`` the
        firmware's HardFault handler runs (the fault escalated: BusFault and UsageFault are
        not enabled), with CFSR, HFSR and BFAR set; a fault in HardFault itself (lockup)
        and a breakpoint instruction stop the run."""
        if self.board.faults != "handler" or cm.HARDFAULT in self.active or \
                fault.signal not in (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL):
            return False
        if fault.signal == signal.SIGILL:
            cfsr = 1 << 16  # UNDEFINSTR
        elif "execute" in fault.detail:
            cfsr = 1 << 8  # IBUSERR
        else:
            cfsr = (1 << 9) | (1 << 15)  # PRECISERR, BFARVALID
            self.regs[0xD38] = fault.address & 0xFFFFFFFF  # BFAR
        self.regs[0xD28] = self.regs.get(0xD28, 0) | cfsr
        self.regs[0xD2C] = self.regs.get(0xD2C, 0) | (1 << 30)  # HFSR.FORCED
        self._enter(cm.HARDFAULT, fault.pc)
        self._arm()
        return True

    def _on_idle(self, machine: Machine) -> bool:
        """The emulation ended after a ``wfi``: sleep until the next event and take it."""
        pc = machine.pc
        if not any(machine.mem.read_partial(pc - len(w), len(w)) == w for w in _WFI):
            return False
        if not self._takeable():
            times = [t for t in (self._next_model_time(),
                                 self.st_next if self._systick_running() else None)
                     if t is not None]
            if not times:
                self._sleep_forever()
                return False
            wake = min(times)
            now = self.now()
            if wake > now:
                self.idle += wake - now
            self._tick()
        self.check_at = -1
        self._dispatch()
        self._arm()
        return True

    def _sleep_forever(self) -> None:
        """A wfi with no interrupt pending and none to come (no SysTick, no model event):
        the firmware would sleep forever. As the Linux layer does with a deadlock, it is
        killed (SIGKILL) with one line saying so."""
        m = self.machine
        name = self._symbolize(m.pc - 2)
        text = (f"syxdbg: the firmware waits for an interrupt (wfi at {m.pc - 2:#x}{name}) "
                "that nothing can raise; it is killed (SIGKILL)\n")

        def live() -> int:
            if self.live:
                sys.stderr.write(text)
                sys.stderr.flush()
            return 0

        self._io(m.position, "warn", (text,), live)
        m.request_kill(signal.SIGKILL)

    #: Turns an address into " (function+off)" for messages (the session's symbols).
    symbolize: Callable[[int], str | None] | None = None

    def _symbolize(self, address: int) -> str:
        name = self.symbolize(address) if self.symbolize is not None else None
        return f" ({name})" if name else ""

    # -- the system control space ---------------------------------------------------------
    def _scs_read(self, offset: int, size: int, position: int, pc: int) -> int:
        self._access = (position, pc)
        try:
            word = self._scs_read_word(offset & ~3)
        finally:
            self._access = None
        shift = 8 * (offset & 3)
        return (word >> shift) & ((1 << (8 * size)) - 1)

    def _scs_peek(self, offset: int, size: int) -> int:
        """A debugger's read: the register now, with no side effect (the state is the
        kernel's, part of every snapshot: right at any position, in history too)."""
        off = offset & ~3
        if off == 0x010:  # (a read would clear COUNTFLAG)
            wrapped = self._systick_running() and self.st_next <= self.now()
            word = self.st_csr | ((self.st_flag or int(wrapped)) << 16)
        else:
            word = self._scs_read_word(off)
        return (word >> (8 * (offset & 3))) & ((1 << (8 * size)) - 1)

    def _model_peeker(self, spec: PeripheralSpec, model: Peripheral | None) -> cm.MmioPeek:
        def peek(offset: int, size: int) -> int:
            address = spec.base + offset
            if model is None:
                raise cm.DeviceReadError(address, size, f"{spec.name} has no model in a "
                                         "replay (its values are in the event log only)")
            if self._replaying():
                raise cm.DeviceReadError(address, size, f"{spec.name}'s model is at the end "
                                         "of history: its registers are readable there only")
            value = model.peek(offset, size)
            if value is None:
                raise cm.DeviceReadError(address, size, f"the {spec.model} model of "
                                         f"{spec.name} has no side-effect-free read (peek)")
            return int(value) & ((1 << (8 * size)) - 1)

        return peek

    def _scs_read_word(self, off: int) -> int:
        if off == 0x004:  # ICTR
            return (self.board.irqs + 31) // 32 - 1
        if off == 0x010:  # SysTick CSR (reading clears COUNTFLAG)
            self._tick_systick_only()
            value = self.st_csr | (self.st_flag << 16)
            self.st_flag = 0
            return value
        if off == 0x014:
            return self.st_rvr
        if off == 0x018:
            if not self._systick_running():
                return self.st_cur
            return max(0, min(self.st_rvr, self.st_next - self.now()))
        if off == 0x01C:
            return 1 << 31  # CALIB: no reference clock
        if 0x100 <= off < 0x140 or 0x180 <= off < 0x1C0:  # ISER / ICER
            return self._bits(self.enabled, (off & 0x3F) // 4)
        if 0x200 <= off < 0x240 or 0x280 <= off < 0x2C0:  # ISPR / ICPR
            return self._bits(self.pending, (off & 0x3F) // 4)
        if 0x300 <= off < 0x340:  # IABR
            return self._bits(set(self.active), (off & 0x3F) // 4)
        if 0x400 <= off < 0x400 + self.board.irqs:  # IPR
            return self._prio_word(16 + (off - 0x400))
        if off == 0xD00:
            return CPUID_M4
        if off == 0xD04:  # ICSR
            ipsr = cm.current_exception(self.machine)
            ready = self._takeable()
            vectpending = min(ready, key=lambda n: (self._prio(n), n)) if ready else 0
            value = ipsr | (vectpending << 12)
            if any(n >= 16 for n in self.pending):
                value |= 1 << 22
            if cm.PENDSV in self.pending:
                value |= 1 << 28
            if cm.SYSTICK in self.pending:
                value |= 1 << 26
            if len(self.active) <= 1:
                value |= 1 << 11  # RETTOBASE
            return value
        if off == 0xD08:
            return self.vtor
        if off == 0xD0C:
            return 0xFA05_0000 | (self.regs.get(off, 0) & 0x700)
        if off in (0xD18, 0xD1C, 0xD20):  # SHPR1-3
            return self._prio_word(4 + (off - 0xD18))
        return self.regs.get(off, 0)

    def _tick_systick_only(self) -> None:
        now = self.now()
        if self._systick_running() and self.st_next <= now:
            self.st_flag = 1

    def _bits(self, numbers: set[int], word: int) -> int:
        value = 0
        for n in numbers:
            irq = n - 16
            if irq >= 0 and irq // 32 == word:
                value |= 1 << (irq % 32)
        return value

    def _prio_word(self, first: int) -> int:
        return sum(self.priority.get(first + i, 0) << (8 * i) for i in range(4))

    def _scs_write(self, offset: int, size: int, value: int, position: int, pc: int) -> None:
        self._access = (position, pc)
        try:
            self._scs_write_at(offset, size, value, position)
        finally:
            self._access = None

    def _scs_write_at(self, offset: int, size: int, value: int, position: int) -> None:
        off = offset & ~3
        shift = 8 * (offset & 3)
        if (0x400 <= off < 0x400 + self.board.irqs) or off in (0xD18, 0xD1C, 0xD20):
            first = 16 + (off - 0x400) if off < 0xD00 else 4 + (off - 0xD18)
            mask = (0xFF << (8 - self.board.priority_bits)) & 0xFF
            for i in range(size):
                n = first + (offset & 3) + i
                self.priority[n] = (value >> (8 * i)) & mask
            self._changed(position)
            return
        value <<= shift
        if off == 0x010:
            was = self._systick_running()
            self.st_csr = value & 7
            if self._systick_running() and not was:
                start = self.st_cur if self.st_cur else self.st_rvr + 1
                self.st_next = self.now() + start
            elif was and not self._systick_running():
                self.st_cur = max(0, min(self.st_rvr, self.st_next - self.now()))
        elif off == 0x014:
            self.st_rvr = value & 0xFFFFFF
        elif off == 0x018:
            self.st_cur = 0
            self.st_flag = 0
            if self._systick_running():
                self.st_next = self.now() + self.st_rvr + 1
        elif 0x100 <= off < 0x140:
            self.enabled |= self._numbers(value, (off - 0x100) // 4)
        elif 0x180 <= off < 0x1C0:
            self.enabled -= self._numbers(value, (off - 0x180) // 4)
        elif 0x200 <= off < 0x240:
            self.pending |= self._numbers(value, (off - 0x200) // 4)
        elif 0x280 <= off < 0x2C0:
            self.pending -= self._numbers(value, (off - 0x280) // 4)
        elif off == 0xD04:  # ICSR
            if value & (1 << 28):
                self.pending.add(cm.PENDSV)
            if value & (1 << 27):
                self.pending.discard(cm.PENDSV)
            if value & (1 << 26):
                self.pending.add(cm.SYSTICK)
            if value & (1 << 25):
                self.pending.discard(cm.SYSTICK)
            if value & (1 << 31):
                self.pending.add(cm.NMI)
        elif off == 0xD08:
            self.vtor = value & 0xFFFF_FF80
        elif off == 0xD0C:  # AIRCR (needs VECTKEY)
            if value >> 16 == 0x05FA:
                self.regs[off] = value & 0x700
                if value & 4:  # SYSRESETREQ: the firmware asks for a reset; end the run
                    self.machine.request_exit(0)
        elif off == 0xF00:  # STIR
            irq = value & 0x1FF
            if irq < self.board.irqs:
                self.pending.add(16 + irq)
        else:
            self.regs[off] = value
        self._changed(position)

    def _numbers(self, value: int, word: int) -> set[int]:
        return {16 + 32 * word + i for i in range(32)
                if value >> i & 1 and 32 * word + i < self.board.irqs}

    def _changed(self, position: int) -> None:
        if self._takeable():
            self.check_at = self._boundary_after(position)
        self._arm(from_access=position)

    # -- semihosting ----------------------------------------------------------------------
    def _semihost(self) -> None:
        m = self.machine
        op, arg = m.regs.r0, m.regs.r1
        pos = m.position
        result = 0
        if op == 0x18:  # SYS_EXIT: r1 is the reason
            m.request_exit(0 if arg == 0x20026 else 1)
            return
        if op == 0x20:  # SYS_EXIT_EXTENDED: r1 -> (reason, subcode)
            reason, code = struct.unpack("<II", m.mem.read(arg, 8))
            m.request_exit(code if reason == 0x20026 else 1)
            return
        if op == 0x03:  # SYS_WRITEC
            self._print(pos, m.mem.read(arg, 1))
        elif op == 0x04:  # SYS_WRITE0
            self._print(pos, m.mem.read_cstring(arg))
        elif op == 0x05:  # SYS_WRITE: r1 -> (fd, buffer, length); r0 = bytes not written
            _, buf, length = struct.unpack("<III", m.mem.read(arg, 12))
            self._print(pos, m.mem.read(buf, length))
        elif op == 0x10:  # SYS_CLOCK: centiseconds (virtual: 100 MHz)
            result = self.now() // 1_000_000
        elif op == 0x11:  # SYS_TIME
            result = 0
        else:
            result = 0xFFFFFFFF
        m.regs.r0 = result

    def _print(self, position: int, data: bytes) -> None:
        def live() -> int:
            if self.live:
                os.write(sys.stdout.fileno() if hasattr(sys.stdout, "fileno") else 1, data)
            return len(data)

        self._io(position, "semihost_write", (data,), live)

    # -- snapshots ------------------------------------------------------------------------
    def save_state(self) -> FirmwareState:
        return FirmwareState(
            self.board.text, self.idle, self.vtor, tuple(sorted(self.enabled)),
            tuple(sorted(self.pending)), tuple(self.active),
            tuple(sorted(self.priority.items())),
            (self.st_csr, self.st_rvr, self.st_next, self.st_cur, self.st_flag),
            tuple(sorted(self.regs.items())), self.check_at)

    def load_state(self, state: FirmwareState) -> None:
        if state.board_text != self.board.text or not self.windows:
            # A replay learns the recorded board here (its first checkpoint).
            from .board import parse_board

            self.board = parse_board(state.board_text, "the recording's board")
            self.install()
        self.idle = state.idle
        self.vtor = state.vtor
        self.enabled = set(state.enabled)
        self.pending = set(state.pending)
        self.active = list(state.active)
        self.priority = dict(state.priority)
        self.st_csr, self.st_rvr, self.st_next, self.st_cur, self.st_flag = state.systick
        self.regs = dict(state.regs)
        self.check_at = state.check_at
        self._next_logged = None
        self._arm()


_CONDS = frozenset({"eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls",
                    "ge", "lt", "gt", "le"})
