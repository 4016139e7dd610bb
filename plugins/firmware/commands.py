"""The firmware's shell and ``monitor`` commands: ``nvic`` (exceptions, SysTick, masks,
virtual time) and ``board`` (the memory map and the peripherals)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from syxdbg.machine.arch import cortex_m as cm

if TYPE_CHECKING:
    from syxdbg.commands import CommandRegistry

    from .kernel import FirmwareKernel

_NAMES = {cm.RESET: "Reset", cm.NMI: "NMI", cm.HARDFAULT: "HardFault",
          cm.MEMMANAGE: "MemManage", cm.BUSFAULT: "BusFault", cm.USAGEFAULT: "UsageFault",
          cm.SVCALL: "SVCall", cm.DEBUGMONITOR: "DebugMonitor", cm.PENDSV: "PendSV",
          cm.SYSTICK: "SysTick"}


def exception_name(number: int) -> str:
    return _NAMES.get(number, f"IRQ{number - 16}" if number >= 16 else f"#{number}")


def nvic_text(k: FirmwareKernel) -> str:
    """What ``nvic`` prints (a pure function of the kernel's state)."""
    m = k.machine

    def one(n: int) -> str:
        prio = k._prio(n)
        return f"{n} {exception_name(n)} (priority {prio if prio < 0 else f'{prio:#04x}'})"

    now = k.now()
    ipsr = cm.current_exception(m)
    mode = f"Handler, {exception_name(ipsr)}" if ipsr else "Thread"
    lines = [f"time: cycle {now} (position {m.position} + {k.idle} slept in wfi); "
             f"VTOR {k.vtor:#010x}; PRIGROUP {(k.regs.get(0xD0C, 0) >> 8) & 7}",
             f"mode: {mode}; PRIMASK {cm.special(m, 'PRIMASK') & 1}, BASEPRI "
             f"{cm.special(m, 'BASEPRI') & 0xFF:#04x}, FAULTMASK {cm.special(m, 'FAULTMASK') & 1}"
             f"; execution priority {k._execution_priority()}"]
    if k._systick_running():
        lines.append(f"SysTick: running, reload {k.st_rvr}, next wrap at cycle {k.st_next}"
                     f"{', interrupt' if k.st_csr & 2 else ''}")
    else:
        lines.append(f"SysTick: stopped (reload {k.st_rvr})")
    lines.append("active: " + (", ".join(one(n) for n in reversed(k.active)) or "none"))
    lines.append("pending: " + (", ".join(
        one(n) + ("" if n < 16 or n in k.enabled else " disabled")
        for n in sorted(k.pending)) or "none"))
    lines.append("enabled IRQs: " + (", ".join(one(n) for n in sorted(k.enabled)) or "none"))
    return "\n".join(lines) + "\n"


def board_text(k: FirmwareKernel) -> str:
    b = k.board
    lines = [f"board: {b.name} ({b.irqs} IRQs, {b.priority_bits} priority bits, "
             f"faults: {b.faults})"]
    for r in b.memory:
        what = f"alias of {r.alias}" if r.alias else r.perms
        lines.append(f"  {r.base:#010x}-{r.base + r.size:#010x}  {r.name:<12} {what}")
    for p in b.peripherals:
        irq = "" if p.irq is None else f", IRQ {p.irq}"
        lines.append(f"  {p.base:#010x}-{p.base + p.size:#010x}  {p.name:<12} "
                     f"model {p.model}{irq}")
    lines.append(f"  {0xE000E000:#010x}-{0xE000F000:#010x}  {'scs':<12} system control "
                 "space (NVIC, SCB, SysTick)")
    return "\n".join(lines) + "\n"


def register(registry: CommandRegistry, kernel: Any) -> None:
    """Add the commands to a firmware session's registry (``kernel()`` gives its kernel)."""

    @registry.command("nvic", "the interrupt controller: active and pending exceptions, "
                      "enabled IRQs, masks, SysTick, virtual time", category="info")
    def nvic(ctx: Any, args: Any) -> str:
        return nvic_text(kernel())

    @registry.command("board", "the board: memory regions and peripherals", category="info")
    def board(ctx: Any, args: Any) -> str:
        return board_text(kernel())
