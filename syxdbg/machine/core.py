"""The emulated machine: one Unicorn engine, its memory, registers and run loop.

This module and the Cython cores are the only code in syxdbg that touch Unicorn.

Run loop contract (:meth:`Machine.run`):

* ``position`` is the exact number of instructions retired since the machine was created.
  It is counted in C per translation block; a stop inside a block subtracts the block's
  instructions that did not retire (the instruction at ``pc`` never has).
* ``run(count=N)`` stops after exactly N instructions, ``run(until=ADDR)`` before the
  instruction at ADDR executes, breakpoints likewise; each returns a typed
  :class:`~syxdbg.machine.events.StopEvent`.
* Resuming at a pc that holds a breakpoint executes that instruction first (a debugger steps
  off the breakpoint it stopped at).
* Nothing in Python runs per instruction or per memory access. Python runs for syscalls, for
  the first execution of each new translation block (to count its instructions) and at stops.
* An exception raised in any hook (a syscall handler, a plugin callback) stops emulation and
  is re-raised by ``run`` once Unicorn has returned.
"""

from __future__ import annotations

import bisect
import signal
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import capstone
import unicorn
from unicorn import arm64_const, arm_const, x86_const

from ..errors import SyxdbgError
from ._native import CounterHooks, RunCore, ThumbItGuard, WatchCore
from .arch import ArchSpec
from .arch.arm import CPSR_IT_MASK, CPSR_T
from .arch.counters import install as install_counter_traps
from .arch.thumb_it import ItBreakpoints
from .events import Exited, Fault, Killed, StopEvent, Stopped, WatchHit
from .memory import Memory, Perm, check_address_range
from .probes import BlockRecorder, InsnTracer, Probe
from .registers import Registers

#: An address no instruction lives at: emu_start's ``until`` is never reached; every stop is
#: one of ours.
_NEVER = 0xFFFF_FFFF_FFFF_FFFF

_FAULT_ERRORS = {
    unicorn.UC_ERR_READ_UNMAPPED: (signal.SIGSEGV, "read from unmapped memory"),
    unicorn.UC_ERR_WRITE_UNMAPPED: (signal.SIGSEGV, "write to unmapped memory"),
    unicorn.UC_ERR_FETCH_UNMAPPED: (signal.SIGSEGV, "execute unmapped memory"),
    unicorn.UC_ERR_READ_PROT: (signal.SIGSEGV, "read from protected memory"),
    unicorn.UC_ERR_WRITE_PROT: (signal.SIGSEGV, "write to protected memory"),
    unicorn.UC_ERR_FETCH_PROT: (signal.SIGSEGV, "execute non-executable memory"),
    unicorn.UC_ERR_READ_UNALIGNED: (signal.SIGBUS, "unaligned read"),
    unicorn.UC_ERR_WRITE_UNALIGNED: (signal.SIGBUS, "unaligned write"),
    unicorn.UC_ERR_FETCH_UNALIGNED: (signal.SIGBUS, "unaligned fetch"),
    unicorn.UC_ERR_INSN_INVALID: (signal.SIGILL, "invalid instruction"),
    unicorn.UC_ERR_EXCEPTION: (signal.SIGILL, "unhandled CPU exception"),
}

_MEM_ACCESS_NAMES = {
    unicorn.UC_MEM_READ_UNMAPPED: "read from unmapped memory",
    unicorn.UC_MEM_WRITE_UNMAPPED: "write to unmapped memory",
    unicorn.UC_MEM_FETCH_UNMAPPED: "execute unmapped memory",
    unicorn.UC_MEM_READ_PROT: "read from protected memory",
    unicorn.UC_MEM_WRITE_PROT: "write to protected memory",
    unicorn.UC_MEM_FETCH_PROT: "execute non-executable memory",
}

# capstone's generic groups: jump, call, ret, int, iret, privilege, branch-relative.
_FLOW_GROUPS = {1, 2, 3, 4, 5, 6, 7}
_TRAPS = {"ud2", "ud1", "ud0", "hlt", "int3", "into", "brk", "udf", "svc", "hvc", "smc",
          "syscall", "sysenter", "wfi", "wfe", "bkpt", "ecall", "ebreak", "c.ebreak"}
#: RISC-V mnemonics that change the flow (capstone 5 gives some of them no group).
_RISCV_FLOW = ("j", "b", "c.j", "c.b", "ret", "tail", "call", "mret", "sret")

# RISC-V exception causes Unicorn passes to UC_HOOK_INTR (the mcause codes).
_RISCV_ILLEGAL = 2
_RISCV_BREAKPOINT = 3
_RISCV_ECALLS = (8, 9, 11)  # from U, S and M mode

# AArch64 exception numbers Unicorn passes to UC_HOOK_INTR (qemu target/arm/cpu.h).
_ARM_EXCP_UDEF = 1
_ARM_EXCP_SWI = 2
_ARM_EXCP_BKPT = 7

#: The signal Linux sends for each x86 exception vector Unicorn passes to UC_HOOK_INTR
#: (arch/x86/kernel/traps.c). Any other vector comes from ``int N``, which a user-mode
#: program may not use (the IDT gate's DPL is 0): a general protection fault, SIGSEGV.
_X86_TRAPS = {
    0: (signal.SIGFPE, "integer divide error"),
    1: (signal.SIGTRAP, "debug trap"),
    3: (signal.SIGTRAP, "breakpoint instruction"),
    4: (signal.SIGSEGV, "overflow trap"),
    5: (signal.SIGSEGV, "bound range exceeded"),
    6: (signal.SIGILL, "invalid instruction"),
    13: (signal.SIGSEGV, "general protection fault"),
    16: (signal.SIGFPE, "x87 floating-point exception"),
    17: (signal.SIGBUS, "alignment check"),
    19: (signal.SIGFPE, "SIMD floating-point exception"),
}

SyscallHandler = Callable[["Machine"], None]
#: Called when the guest faults; True when it redirected the guest (to a signal handler:
#: the run goes on from the new pc), False when the fault is fatal (the run ends with it).
FaultHandler = Callable[["Machine", Fault], bool]
#: Called when a run reaches the timer's position (see Machine.set_timer).
TimerHandler = Callable[["Machine"], None]
P = TypeVar("P", bound=Probe)


@dataclass(frozen=True)
class CpuState:
    """What :meth:`Machine.save_cpu` captures: CPU context, position, virtual registers."""

    context: Any  # unicorn's UcContext (CPU only)
    position: int
    virtual: dict[str, int]
    final: StopEvent | None


class Machine:
    """An emulated CPU with guest RAM owned by syxdbg. See the module docstring."""

    def __init__(self, arch: ArchSpec) -> None:
        self.arch = arch
        self._uc = unicorn.Uc(arch.uc_arch, arch.uc_mode)
        if arch.cpu_init is not None:
            arch.cpu_init(self._uc)
        self.mem = Memory(self._uc, on_code_write=self._code_written)
        pc_info = arch.register(arch.pc)
        assert pc_info is not None and pc_info.uc_id is not None
        # 32-bit ARM: repairs the IT state Unicorn leaves stale (see ThumbItGuard); its block
        # hook must come before the run core's.
        self._it_guard = (ThumbItGuard(self._uc, self._it_legit, arm_const.UC_ARM_REG_CPSR)
                          if arch.name in ("arm", "cortex-m") else None)
        self._core = RunCore(self._uc, self._resolve_block, self._retired_before,
                             pc_info.uc_id)
        self.regs = Registers(self._uc, arch, self._registers_written,
                              fast_read=self._core.reg_read, fast_write=self._core.reg_write,
                              fast_many=self._core.reg_read_many)
        self._cs = capstone.Cs(arch.cs_arch, arch.cs_mode)
        self._cs_detail = capstone.Cs(arch.cs_arch, arch.cs_mode)
        self._cs_detail.detail = True
        #: 32-bit ARM: the Thumb decoders (the CPSR's T bit chooses; see _engine).
        self._arm = arch.name in ("arm", "cortex-m")
        # (Cortex-M: THUMB | MCLASS, without which capstone decodes no mrs/msr of PRIMASK,
        # BASEPRI, PSP...: a block holding one would be miscounted.)
        thumb_mode = (arch.cs_mode if arch.name == "cortex-m" else capstone.CS_MODE_THUMB) \
            if self._arm else arch.cs_mode
        self._cs_thumb = capstone.Cs(arch.cs_arch, thumb_mode)
        self._cs_thumb_detail = capstone.Cs(arch.cs_arch, thumb_mode)
        self._cs_thumb_detail.detail = True
        #: 32-bit ARM: breakpoints inside Thumb IT blocks (arch/thumb_it.py).
        self._it_bps = ItBreakpoints(self, self._cs_thumb) if self._arm else None
        #: Thumb or not, per translated block (start, size), as seen when it first ran.
        self._block_thumb: dict[tuple[int, int], bool] = {}
        self._flow_cache: dict[int, tuple[int, bool]] = {}
        self._offsets: dict[tuple[int, int], list[int]] = {}
        #: _resolve_block's answers (with the offsets) by (start, the block's bytes, Thumb).
        self._by_code: dict[tuple[int, bytes, bool | None], tuple[list[int],
                                                                  tuple[int, int]]] = {}
        self._syscall_handler: SyscallHandler | None = None
        self._fault_handler: FaultHandler | None = None
        #: Cortex-M: the firmware layer's exception and wfi handlers (set_exception_handler)
        #: and the exception handler's work left for after emu_start.
        self._exception_handler: Callable[[Machine, int], Callable[[], None] | None] | None \
            = None
        self._idle_handler: Callable[[Machine], bool] | None = None
        self._deferred: Callable[[], None] | None = None
        #: The position timer (set_timer): where, and what to call there.
        self._timer_at: int | None = None
        self._timer_fn: TimerHandler | None = None
        #: The goal of the run in progress (None: unbounded, or not running).
        self._goal: int | None = None
        self._running = False
        #: The last fault went to the guest's handler: the run resumes at the new pc.
        self._redirected = False
        #: How many times :meth:`interrupt` was called (an interrupt asked by a fault
        #: handler must survive the redirect to the guest's signal handler).
        self._interrupts = 0
        self._breakpoints: set[int] = set()
        self._pending: BaseException | None = None
        self._exit_status: int | None = None
        self._kill_signal: int | None = None
        self._fault: tuple[int, int, str] | None = None
        self._final: StopEvent | None = None
        self._hooks: list[int] = []
        self._emulated = False
        self._tlb_owner: object | None = None
        #: Changes whenever the CPU state may have changed other than through guest memory
        #: (a run, a register write, a CPU restore): views computed from it at a stop (the
        #: Session's thread list) are valid while it stays the same.
        self.generation = 0
        #: Changes at every point where guest code may give the CPU to another guest thread
        #: (a system call, the timer, a fault handed to the guest, a CPU restore): between
        #: two equal values the running thread is the same.
        self.switch_points = 0
        self._install_hooks()
        # Data watchpoints (created on first use; see WatchCore).
        self._watch: WatchCore | None = None
        #: Stop *before* the accessing instruction at a watch hit (aarch64's semantics)
        #: instead of after it (x86's).
        self.watch_before = arch.name in ("aarch64", "arm", "riscv64", "cortex-m")
        self._watch_stop_at: tuple[int, int] | None = None  # (position, pc) of a before-stop
        #: Attached recorders (coverage, traces); told about every stop. Detached ones stay
        #: referenced: Unicorn frees deleted hooks only when an emulation returns, and the
        #: hooks' C state lives in the recorder.
        self._probes: list[Probe] = []
        self._retired_probes: list[Probe] = []
        #: Host-side writes (a system call's results, mapping changes) under a watchpoint:
        #: True while a syscall handler runs; the first overlap found is kept until the stop.
        self._in_syscall = False
        self._host_hit: tuple[int, int] | None = None  # (watch kind, first watched byte)
        #: Resuming from a before-stop at a system call: the position of that system call,
        #: whose writes must not hit again.
        self._host_skip_at: int | None = None
        #: How far before pc a syscall handler's system call instruction lies (x86's
        #: UC_HOOK_INSN sees pc at the syscall; aarch64's exception hook after the svc).
        #: (32-bit ARM: 2 after a Thumb ``svc``; see _syscall_insn_size.)
        self._syscall_back = 0 if arch.name == "x86_64" else 4
        self.mem.write_observers.append(self._host_write)
        self.mem.map_observers.append(self._host_map)

    # -- properties -------------------------------------------------------------------------
    @property
    def position(self) -> int:
        """Instructions retired so far (exact)."""
        return int(self._core.total)

    @property
    def pc(self) -> int:
        return self._core.read_pc()

    @property
    def finished(self) -> StopEvent | None:
        """The terminal event (exit, kill or fatal fault) once the guest can run no more.

        A fault is terminal only for the state it happened in: writing a register (a
        debugger moving pc, gdb restoring its registers after an inferior call that ended
        in a fault) forgets it, and running re-executes from the new state (the same state
        faults again)."""
        return self._final

    def _registers_written(self) -> None:
        self.generation += 1
        if isinstance(self._final, Fault):
            self._final = None

    @property
    def uc(self) -> unicorn.Uc:
        """The Unicorn engine, for the snapshot core and expert scripts."""
        return self._uc

    @property
    def native_core(self) -> Any:
        return self._core

    # -- hooks ------------------------------------------------------------------------------
    def _install_hooks(self) -> None:
        uc = self._uc
        if self.arch.name == "x86_64":
            self._hooks.append(
                uc.hook_add(unicorn.UC_HOOK_INSN, self._on_x86_syscall, None, 1, 0,
                            x86_const.UC_X86_INS_SYSCALL)
            )
            # CPU exceptions (int3, divide error, int N): without this hook Unicorn only
            # says UC_ERR_EXCEPTION, which cannot tell SIGTRAP from SIGFPE.
            self._hooks.append(uc.hook_add(unicorn.UC_HOOK_INTR, self._on_x86_exception))
        else:
            self._hooks.append(uc.hook_add(unicorn.UC_HOOK_INTR, self._on_interrupt))
        # Cycle counters read the position, not the host clock (deterministic re-execution).
        self._counters: CounterHooks | None = None
        if self.arch.name in ("x86_64", "aarch64"):
            counters = ([x86_const.UC_X86_INS_RDTSC, x86_const.UC_X86_INS_RDTSCP]
                        if self.arch.name == "x86_64" else [arm64_const.UC_ARM64_INS_MRS])
            self._counters = CounterHooks(uc, self._on_counter, self.arch.name, counters)
        # (arm and riscv64: answered from the exceptions Unicorn raises; arch/counters.py.)
        self._counter_traps = install_counter_traps(self)
        # No permanent UC_HOOK_MEM_INVALID: any memory hook pushes every guest store onto
        # Unicorn's slow path (measured: 950 -> 265 MIPS with the virtual TLB). Faults are
        # precise, so the faulting instruction is re-run once with such a hook to learn the
        # exact address (see _locate_fault).

    def insn_position(self, address: int) -> int:
        """Inside a hook: the position of the instruction at ``address`` (the instructions
        retired before it), exact even in the middle of a block."""
        blk = self._core.current_block
        total = int(self._core.total)
        if blk is not None:
            start, size, n = blk
            if start <= address < start + size:
                return total - n + self._retired_before(start, size, address)
        return total

    def _on_counter(self, reg: int) -> None:
        """RDTSC/RDTSCP (x86) or MRS CNTVCT/CNTPCT (aarch64): the counter is the position,
        one tick per instruction, so re-execution reads the same values."""
        uc = self._uc
        if self.arch.name == "x86_64":
            pc = uc.reg_read(x86_const.UC_X86_REG_RIP)
            value = self.insn_position(pc)
            uc.reg_write(x86_const.UC_X86_REG_RAX, value & 0xFFFFFFFF)
            uc.reg_write(x86_const.UC_X86_REG_RDX, (value >> 32) & 0xFFFFFFFF)
            if bytes(uc.mem_read(pc, 3)) == b"\x0f\x01\xf9":  # rdtscp: also TSC_AUX
                uc.reg_write(x86_const.UC_X86_REG_RCX, 0)
        else:
            pc = uc.reg_read(arm64_const.UC_ARM64_REG_PC)
            uc.reg_write(reg, self.insn_position(pc))

    def _guard(self, fn: Callable[[], None]) -> None:
        """Run hook work; keep any exception for ``run`` to raise after emu_start returns."""
        try:
            fn()
        except BaseException as exc:  # re-raised by run(); never swallowed
            self._pending = exc
            self._uc.emu_stop()

    def _on_x86_syscall(self, uc: unicorn.Uc, user_data: object) -> None:
        self._guard(self._do_syscall)

    def _on_interrupt(self, uc: unicorn.Uc, intno: int, user_data: object) -> None:
        if self._counter_traps is not None:
            answer = self._counter_traps.exception(intno)
            if answer is not None:  # a counter read, answered once emu_start returned
                self._deferred = answer
                uc.emu_stop()
                return
        if self.arch.name == "riscv64":
            self._on_riscv_exception(uc, intno)
            return
        if self._exception_handler is not None:
            try:
                action = self._exception_handler(self, intno)
            except BaseException as exc:  # re-raised by run()
                self._pending = exc
                uc.emu_stop()
                return
            if action is not None:
                # Taken by the firmware layer (Cortex-M exception entry/return), done once
                # emu_start returned: a pc written inside a hook leaves Unicorn 2.1.4's
                # pc stale in later memory hooks of that emulation (measured).
                self._deferred = action
                uc.emu_stop()
                return
        if intno == _ARM_EXCP_SWI:
            self._guard(self._do_syscall)
            return
        # Undefined instruction / breakpoint instruction: the guest would get a signal.
        pc = self.regs.pc  # Unicorn leaves pc at the offending instruction
        sig = signal.SIGTRAP if intno == _ARM_EXCP_BKPT else signal.SIGILL
        detail = "breakpoint instruction" if intno == _ARM_EXCP_BKPT else "invalid instruction"
        self._fault = (int(sig), pc, detail)
        uc.emu_stop()

    def _on_riscv_exception(self, uc: unicorn.Uc, cause: int) -> None:
        """A RISC-V trap: ``ecall`` is a system call; Unicorn leaves pc after the trapping
        instruction, so a fault is reported at the instruction before it."""
        if cause in _RISCV_ECALLS:
            self._guard(self._do_syscall)
            return
        pc = self._insn_before(self.regs.pc)
        self.regs.pc = pc
        if cause == _RISCV_BREAKPOINT:
            self._fault = (int(signal.SIGTRAP), pc, "breakpoint instruction")
        elif cause == _RISCV_ILLEGAL:
            self._fault = (int(signal.SIGILL), pc, "invalid instruction")
        else:
            self._fault = (int(signal.SIGSEGV), pc, f"exception cause {cause}")
        uc.emu_stop()

    def _insn_before(self, pc: int) -> int:
        """The instruction that ends just before ``pc`` in the current block (pc - 4 when
        the block is unknown)."""
        blk = self._core.current_block
        if blk is not None:
            start, size, _ = blk
            if start < pc <= start + size:
                offs = self._block_offsets(start, size)
                i = bisect.bisect_left(offs, pc - start)
                if i > 0:
                    return start + offs[i - 1]
        return pc - 4

    def _on_x86_exception(self, uc: unicorn.Uc, intno: int, user_data: object) -> None:
        """An x86 exception: the guest gets Linux's signal for it.

        Unicorn leaves pc where Linux reports it: after ``int3`` and ``int N`` (traps), at
        the instruction for faults such as a divide error.
        """
        pc = self.regs.pc
        sig, detail = _X86_TRAPS.get(intno, (signal.SIGSEGV, f"software interrupt {intno:#x}"))
        self._fault = (int(sig), pc, detail)
        uc.emu_stop()

    def _locate_fault(self, pc: int) -> tuple[int, str] | None:
        """Re-run the faulting instruction once with an invalid-access hook.

        Unicorn restores the CPU to the start of a faulting instruction, so running it again
        faults again, this time reporting the exact data address. Position bookkeeping and
        the CPU are left as they were. (A store fault Unicorn's slow path reports lets the
        rest of its block run, the store skipped: the instruction is translated again
        alone, ending at an exit address right after it, and the registers are restored.)
        """
        seen: list[tuple[int, str]] = []

        def on_bad(uc: unicorn.Uc, access: int, address: int, size: int, value: int,
                   user_data: object) -> bool:
            seen.append((address, _MEM_ACCESS_NAMES.get(access, "bad access")))
            return False

        total = self._core.total
        context = self._uc.context_save()
        self._drop_translation(pc)
        hook = self._uc.hook_add(unicorn.UC_HOOK_MEM_INVALID, on_bad)
        # (The snapshot journal's TLB refuses forbidden stores, which makes them precise
        # but hook-less: granted for this one instruction, they reach the hook.)
        owner = self._tlb_owner
        if owner is not None:
            owner.grant_denied = True  # type: ignore[attr-defined]
        flow = self._insn_flow(pc)
        try:
            self._core.set_limit(None)
            if flow is None:
                self._uc.emu_start(self._start_address(pc), _NEVER, 0, 1)
            else:
                self._uc.emu_start(self._start_address(pc), flow[0], 0, 0)
        except unicorn.UcError:
            pass
        finally:
            if owner is not None:
                owner.grant_denied = False  # type: ignore[attr-defined]
            self._uc.hook_del(hook)
            self._uc.context_restore(context)
            self._drop_translation(pc)  # (it ends at the exit address)
            self._core.total = total
            self._core.forget_block()
        return seen[0] if seen else None

    def _do_syscall(self) -> None:
        if self._syscall_handler is None:
            raise SyxdbgError(
                f"the guest made a system call (returning to {self.regs.pc:#x}) but no "
                "syscall layer is loaded (raw blobs have none; is the linux plugin disabled?)"
            )
        skip = (self._host_skip_at is not None and self._host_skip_at
                == self.insn_position(self.regs.pc - self.syscall_insn_size()))
        self._in_syscall = not skip
        self.switch_points += 1
        try:
            self._syscall_handler(self)
        finally:
            self._in_syscall = False
        if self._host_hit is not None:
            # A watched byte changed inside the system call: stop right after the system
            # call instruction (it has retired), as a watchpoint hit.
            self._uc.emu_stop()

    # -- host-side writes under watchpoints ---------------------------------------------------
    def _host_write(self, address: int, size: int) -> None:
        """Memory write observer: a syscall handler writes guest memory (``read(2)``)."""
        if self._in_syscall and self._host_hit is None and self._watch is not None:
            self._host_overlap(address, size)

    def _host_map(self, change: str, address: int, size: int, perms: Perm) -> None:
        """Map observer: a syscall maps or unmaps memory; the bytes of a watched range are
        replaced (``mmap(MAP_FIXED)``: zeros or file contents) or vanish (``munmap``)."""
        if (change != "protect" and self._in_syscall and self._host_hit is None
                and self._watch is not None):
            self._host_overlap(address, size)

    def _host_overlap(self, address: int, size: int) -> None:
        assert self._watch is not None
        end = address + size
        for start, length, kind in self._watch.watches():
            if kind != self._WATCH_KINDS["read"] and start < end and address < start + length:
                self._host_hit = (kind, max(start, address))
                return

    def syscall_insn_size(self) -> int:
        """Inside a system call: how far before pc its instruction lies (0 on x86, whose
        hook sees pc at ``syscall``; 2 after a Thumb ``svc``; else 4)."""
        if self._arm and self.thumb:
            return 2
        return self._syscall_back

    @property
    def thumb(self) -> bool:
        """32-bit ARM: the CPU is in Thumb state (CPSR.T); False on other machines."""
        return self._arm and bool(self._core.reg_read(arm_const.UC_ARM_REG_CPSR) & CPSR_T)

    def _start_address(self, pc: int) -> int:
        """The address Unicorn starts at: on 32-bit ARM the pc with the Thumb bit of the
        current state (Unicorn's start writes the pc, whose low bit selects the state)."""
        return pc | 1 if self.thumb else pc

    def _engine(self, detail: bool = False, thumb: bool | None = None) -> capstone.Cs:
        """The capstone decoder for the current instruction set (ARM or Thumb on 32-bit
        ARM, from the CPSR unless ``thumb`` says)."""
        if self._arm and (self.thumb if thumb is None else thumb):
            return self._cs_thumb_detail if detail else self._cs_thumb
        return self._cs_detail if detail else self._cs

    def capstone(self, detail: bool = False) -> capstone.Cs:
        """A capstone decoder for the code at pc (on 32-bit ARM: the current state's)."""
        return self._engine(detail)

    @property
    def syscall_handler(self) -> SyscallHandler | None:
        """The function called for every guest system call (plugins may wrap it)."""
        return self._syscall_handler

    def set_syscall_handler(self, handler: SyscallHandler | None) -> None:
        """Install the function called for every guest system call."""
        self._syscall_handler = handler

    def set_timer(self, position: int | None, handler: TimerHandler | None = None) -> None:
        """Call ``handler(machine)`` when execution reaches ``position`` (None: no timer).

        It runs between the instruction before ``position`` and the one at it, as if the
        former had done it (as a system call's effects appear at the position after it): a
        stop at ``position`` (a count, a breakpoint at the new pc) shows the state after the
        handler, which may change registers and memory (preempt a thread, push a signal
        frame) and set the next timer. One timer at a time; ``position`` must lie ahead.
        May be called from a system call handler while the guest runs (then ``position``
        may be the current one: it fires before the next block)."""
        if position is not None and (handler is None or position < self.position or (
                position == self.position and not self._running)):
            raise ValueError(f"a timer needs a handler and a position after "
                             f"{self.position} (got {position})")
        self._timer_at, self._timer_fn = position, handler
        if self._running and position is not None:
            # Inside a run (a system call hook): the block hook must stop there too.
            self._core.set_limit(position if self._goal is None else min(position, self._goal))

    @property
    def timer(self) -> int | None:
        """Where the timer fires (None: none set)."""
        return self._timer_at

    def _stop_position(self, goal: int | None) -> int | None:
        """Where the current run must stop next: its goal or the timer, the first."""
        t = self._timer_at
        if t is None:
            return goal
        return t if goal is None else min(t, goal)

    def _fire_timer(self) -> None:
        fn = self._timer_fn
        self._timer_at = self._timer_fn = None
        self.switch_points += 1
        if fn is not None:
            fn(self)

    def set_exception_handler(
            self, handler: Callable[[Machine, int], Callable[[], None] | None] | None,
            idle: Callable[[Machine], bool] | None = None) -> None:
        """Cortex-M: ``handler(machine, intno)`` gets every CPU exception Unicorn reports
        and returns None (not taken: the machine's own fault) or the work that takes it,
        which the machine runs once Unicorn stopped (the run goes on from the pc it set);
        ``idle(machine)`` is called when a block ending in ``wfi`` ended the emulation
        (True: it moved the guest on, e.g. into a handler)."""
        self._exception_handler = handler
        self._idle_handler = idle

    def set_fault_handler(self, handler: FaultHandler | None) -> None:
        """Install the function that may give a guest fault to the guest's own signal
        handler (see :data:`FaultHandler`); None: every fault ends the run."""
        self._fault_handler = handler

    def request_exit(self, status: int) -> None:
        """From a syscall handler: the guest exits with ``status`` (0-255)."""
        self._exit_status = status & 0xFF
        self._uc.emu_stop()

    def request_kill(self, sig: int) -> None:
        """From a syscall handler: the guest dies of signal ``sig``."""
        self._kill_signal = sig
        self._uc.emu_stop()

    def interrupt(self) -> None:
        """Stop a running ``run`` as soon as possible. Safe to call from any thread."""
        self._interrupts += 1  # (seen by a fault handler's caller, see _classify)
        self._core.interrupt()

    @contextmanager
    def interrupt_on_sigint(self) -> Iterator[None]:
        """While running, turn SIGINT (Ctrl-C) into :meth:`interrupt`.

        Python signal handlers cannot run while the main thread is inside Unicorn, so a
        watcher thread reads the signal wakeup fd and stops the emulator (``syxdbg.sigint``).
        """
        from ..sigint import sigint_calls

        with sigint_calls(self.interrupt):
            yield

    # -- breakpoints ------------------------------------------------------------------------
    def add_breakpoint(self, address: int) -> None:
        """Stop before the instruction at ``address`` executes. Raises
        :class:`~syxdbg.machine.memory.AddressRangeError` for an address outside the 64-bit
        address space (nothing is installed then)."""
        check_address_range(address, 1, "break on")
        self._breakpoints.add(address)
        self._hook_breakpoint(address)
        if self._it_bps is not None:
            self._it_bps.added(address)

    def _hook_breakpoint(self, address: int) -> None:
        self._core.add_breakpoint(address)
        # Blocks translated before the hook existed do not call it: retranslate them.
        self._drop_translation(address)

    def _drop_translation(self, address: int) -> None:
        """Drop the translated blocks holding ``address`` (Unicorn refuses an end of 2**64;
        the last byte of the address space shares its page with the byte before it)."""
        start = min(address, _NEVER - 1)
        self._uc.ctl_remove_cache(start, start + 1)

    def remove_breakpoint(self, address: int) -> None:
        """Remove the hook and the translated blocks holding ``address``: a block translated
        while the hook existed must not stop there again."""
        if address not in self._breakpoints:
            return  # never installed (nor installable: it may be out of range)
        self._breakpoints.discard(address)
        self._core.remove_breakpoint(address)
        self._drop_translation(address)
        if self._it_bps is not None:
            self._it_bps.removed(address)

    @property
    def breakpoints(self) -> frozenset[int]:
        return frozenset(self._breakpoints)

    # -- data watchpoints -------------------------------------------------------------------
    _WATCH_KINDS = {"write": 2, "read": 3, "access": 4}

    def add_watchpoint(self, address: int, size: int, kind: str = "write") -> None:
        """Stop when an instruction accesses ``[address, address+size)``.

        ``kind`` is "write", "read" or "access". Runs then end with a
        :class:`~syxdbg.machine.events.WatchHit`, after the accessing instruction or, with
        :attr:`watch_before`, before it. While any watchpoint exists a C code hook runs per
        instruction (about 0.3x speed); there is no Python per access.

        Writes made by the syscall layer (a ``read(2)`` filling the range, ``mmap(MAP_FIXED)``
        or ``munmap`` over it) hit write and access watchpoints too, as under rr: the run
        stops right after the system call instruction (``before`` is False on every
        architecture, since a system call cannot be un-executed), ``access`` "write" and
        ``address`` the first watched byte changed. Debugger writes between runs never hit.
        """
        if kind not in self._WATCH_KINDS:
            raise ValueError(f"unknown watchpoint kind {kind!r} (write, read or access)")
        check_address_range(address, size, "watch")
        if self._watch is None:
            self._watch = WatchCore(self._uc)
        self._watch.add(address, size, self._WATCH_KINDS[kind])

    def hold_watch_stop(self) -> None:
        """Mark the current state as a watch stop *before* the instruction at pc.

        For a history layer that re-creates the state before a system call whose writes hit
        a watchpoint (the machine itself reports those after the system call): on a
        :attr:`watch_before` machine gdb expects the stop before the access and then steps
        over it, so the next run lets that instruction execute once without hitting again,
        exactly as after a machine before-stop.
        """
        self._watch_stop_at = (self.position, self.pc)

    def remove_watchpoint(self, address: int, size: int, kind: str = "write") -> None:
        if (address, size, kind) not in self.watchpoints:
            return  # never installed (nor installable: it may be out of range)
        if self._watch is not None:
            self._watch.remove(address, size, self._WATCH_KINDS[kind])

    @property
    def watchpoints(self) -> list[tuple[int, int, str]]:
        """(address, size, kind) of every watchpoint."""
        names = {v: k for k, v in self._WATCH_KINDS.items()}
        return [(a, n, names[k]) for a, n, k in (self._watch.watches() if self._watch else [])]

    def _watch_hit(self, hit: tuple[int, int, int, int, bool], pc: int) -> WatchHit:
        assert self._watch is not None
        kind, addr, _, _, is_write = hit
        names = {v: k for k, v in self._WATCH_KINDS.items()}
        self._watch.clear_hit()
        before = False
        if self.watch_before:
            preimages, have_ctx, complete = self._watch.undo_info()
            if have_ctx and complete:
                # Un-execute the accessing instruction: its stores' old bytes back (newest
                # first), then the CPU context saved in the hook, whose pc is the instruction.
                for address, data in reversed(preimages):
                    self.mem.write(address, data)
                stop_pc = pc
                self._uc.context_restore(self._watch.context)
                pc = self.pc
                # The stop comes right after the accessing instruction, except inside a
                # Thumb IT block, where Unicorn defers a code hook's stop to the block's
                # end: every instruction from the access to the stop is undone.
                self._core.total = self._core.total - self._insns_between(pc, stop_pc)
                before = True
                self._watch_stop_at = (self.position, pc)
        return WatchHit(pc, self.position, "watchpoint", names[kind],
                        "write" if is_write else "read", addr, before)

    def _insns_between(self, start: int, stop: int) -> int:
        """Instructions from ``start`` up to ``stop`` in straight-line code (1 when
        ``stop`` is not a few instructions ahead, the common case)."""
        address = start
        for n in range(1, 6):
            flow = self._insn_flow(address)
            if flow is None:
                break
            address = flow[0]
            if address == stop:
                return n
        return 1

    # -- recorders --------------------------------------------------------------------------
    def block_recorder(self) -> BlockRecorder:
        """Start recording the basic blocks executed (see :mod:`syxdbg.machine.probes`).

        The recorder is attached until :meth:`~BlockRecorder.detach` (or the end of its
        ``with`` block); while attached, a C block hook runs per block (no Python).
        """
        return self._attach_probe(BlockRecorder(self))

    def insn_tracer(self, fd: int, registers: Sequence[str], *, pc_name: str = "pc"
                    ) -> InsnTracer:
        """Start writing a Tenet-format instruction trace to ``fd``: one line per retired
        instruction with the changes of ``registers`` and the memory accessed (see
        :class:`~syxdbg.machine.probes.InsnTracer`). While attached, C code and memory hooks
        run per instruction and access (no Python); detaching writes out the rest."""
        return self._attach_probe(InsnTracer(self, fd, registers, pc_name=pc_name))

    def _attach_probe(self, probe: P) -> P:
        probe._attach()
        self._probes.append(probe)
        return probe

    def _detach_probe(self, probe: Probe) -> None:
        if probe in self._probes:
            self._probes.remove(probe)
            probe._release()
            self._retired_probes.append(probe)

    @property
    def probes(self) -> list[Probe]:
        """The attached recorders."""
        return list(self._probes)

    # -- code and block bookkeeping -------------------------------------------------------
    def _code_written(self, address: int, size: int) -> None:
        self._uc.ctl_remove_cache(address, address + size)
        self._core.invalidate_blocks()
        self._offsets.clear()
        self._block_thumb.clear()
        self._flow_cache.clear()

    def _block_offsets(self, start: int, size: int) -> list[int]:
        key = (start, size)
        offs = self._offsets.get(key)
        if offs is None:
            code = self.mem.read_partial(start, size)
            thumb = None
            if self._arm:
                thumb = self._block_thumb.setdefault(key, self.thumb)
            cs = self._engine(thumb=thumb)
            offs = [a - start for a, _, _, _ in cs.disasm_lite(code, start)]
            decoded = (offs[-1] + len(next(cs.disasm(code[offs[-1]:], 0)).bytes)
                       if offs else 0)
            if decoded < size:
                # An instruction capstone cannot decode (the guest's SIGILL) ends the block.
                offs.append(decoded)
            if len(self._offsets) > 4096:
                self._offsets.clear()
                self._block_thumb.clear()
            self._offsets[key] = offs
        return offs

    def _resolve_block(self, start: int, size: int) -> tuple[int, int]:
        """(instruction count, direct branch target of the last instruction or 0).

        Also kept by the block's bytes (:attr:`_by_code`), which no code change or layout
        swap invalidates: after a process switch (every translation dropped) the blocks of a
        forked child or of its parent again are the same bytes at the same addresses, and
        are not disassembled again."""
        code = self.mem.read_partial(start, size)
        ckey = (start, code,
                self._block_thumb.get((start, size), self.thumb) if self._arm else None)
        known = self._by_code.get(ckey)
        if known is not None:
            self._offsets[(start, size)] = known[0]
            return known[1]
        answer = self._resolve_uncached(start, size)
        if len(self._by_code) > 65536:
            self._by_code.clear()
        self._by_code[ckey] = (self._offsets[(start, size)], answer)
        return answer

    def _resolve_uncached(self, start: int, size: int) -> tuple[int, int]:
        offs = self._block_offsets(start, size)
        target = 0
        last = self.disassemble(start + offs[-1], 1) if offs else []
        if last and last[0][1].startswith("rep"):
            # x86 rep string instructions loop on themselves, one iteration per execution.
            target = last[0][0]
        elif last and last[0][1] in self.arch.direct_branches:
            token = last[0][2].replace("#", " ").replace(",", " ").split()
            if token:
                try:
                    target = int(token[-1], 0)
                except ValueError:
                    target = 0
                if self.arch.name == "riscv64":
                    # capstone 5 shows RISC-V branch targets as offsets from the branch.
                    target = (last[0][0] + target) & 0xFFFF_FFFF_FFFF_FFFF
        return len(offs), max(target, 0)

    def _retired_before(self, start: int, size: int, address: int) -> int:
        return bisect.bisect_left(self._block_offsets(start, size), address - start)

    def _settle_position(self) -> int:
        """Correct the C count for a stop in the middle of the current block; returns pc.

        The block hook counted the whole block when it was entered. Stops made by the block
        hook itself (limit, interrupt) leave no current block. Any other stop inside the
        block's range (breakpoint, count, fault, hook exception) happened before the
        instruction at pc executed, so only the instructions before pc retired.
        """
        blk = self._core.current_block
        pc = self._core.read_pc()
        inside = False
        if blk is not None:
            start, size, n = blk
            if start <= pc < start + size:
                inside = True
                retired = bisect.bisect_left(self._block_offsets(start, size), pc - start)
                self._core.total = self._core.total - (n - retired)
            self._core.forget_block()
        for probe in self._probes:
            probe._at_stop(pc, inside)
        return pc

    # -- running ----------------------------------------------------------------------------
    def run(self, *, count: int | None = None, until: int | None = None) -> StopEvent:
        """Run from the current pc; see the module docstring for the stop rules."""
        if self._final is not None:
            return self._final
        if count is not None and count < 0:
            raise ValueError("count must be >= 0")
        if until is not None:
            check_address_range(until, 1, "run until")
        if count == 0:
            return Stopped(self.pc, self.position, "count")
        temp_bp = until is not None and until not in self._breakpoints
        if until is not None and temp_bp:
            self._hook_breakpoint(until)
        try:
            if self._it_bps is not None:
                return self._it_bps.run(self._run, count, until)
            return self._run(count, until)
        finally:
            if until is not None and temp_bp:
                # Like any removed code hook: its translated blocks go too (a stale block
                # could call a freed hook, or a new hook that reuses its memory).
                self._core.remove_breakpoint(until)
                self._drop_translation(until)
                if self._it_bps is not None:
                    self._it_bps.removed(until)

    def _run(self, count: int | None, until: int | None) -> StopEvent:
        core = self._core
        self._emulated = True
        self.generation += 1
        limit = None if count is None else self.position + count
        core.reset_stop()
        self._host_hit = None
        pc = self.pc
        if pc in self._breakpoints or pc == until:
            core.skip_once(pc)
        if self._watch is not None:
            # Resuming from a before-stop must let the accessing instruction run.
            self._watch.capture = self.watch_before
            self._watch.begin_run(self._watch_stop_at == (self.position, pc))
        self._host_skip_at = self.position if self._watch_stop_at == (self.position, pc) \
            else None
        self._watch_stop_at = None
        start_pos, start_pc = self.position, pc
        goal = limit  # the position a bounded run must stop at
        self._goal = goal
        stop = self._stop_position(goal)  # where it stops next: the goal or the timer
        limit = stop
        if core.step_hook_count and (goal is None or goal - start_pos > self._STEPPING_RUN):
            # A long run: kept step hooks inside a hot loop would cost a helper call per
            # pass. Drop them (stepping again re-arms them, one retranslation each).
            core.drop_step_hooks()
        # A step hook that ends a bounded run exactly (RunCore.arm_step: kept installed, so
        # stepping through code already stepped costs no retranslation).
        step_target: int | None = None
        #: 32-bit ARM: a stop inside a Thumb IT block is Unicorn's own exit address (a code
        #: hook's stop is ignored there, and not even called for an instruction whose
        #: condition fails); the translation then ends there with the IT state saved.
        until_stop: int | None = None
        if stop is not None:
            # Short bounded runs (single steps) inside straight-line code: arm the
            # instruction to stop at right away instead of first letting the block hook
            # refuse the block (saves one emu_start per step). The limit stays as a backstop.
            target = self._straight_line_target(pc, stop - self.position)
            if target is not None and target not in self._breakpoints and target != until:
                if self._needs_until(pc, target):
                    until_stop = target
                    # A cached block holding target would run past it: translate again
                    # (and drop that translation after the run: it ends at the exit).
                    self._drop_translation(target)
                else:
                    core.arm_step(target)
                    step_target = target
                limit = stop + self._STRAIGHT_MAX
        self._running = True
        try:
            while True:
                core.set_limit(limit)
                # Uc.emu_start's contract, without its ctypes call: a uc_err is a UcError;
                # otherwise an exception a Python hook kept is raised.
                uc = self._uc
                uc._hook_exception = None
                status = core.emu_start(self._start_address(pc),
                                        _NEVER if until_stop is None else until_stop)
                err = unicorn.UcError(status) if status else None
                if err is None and uc._hook_exception is not None:
                    raise uc._hook_exception
                self._retired_probes.clear()  # emu_start freed their deleted hooks
                limit_hit, bp_addr, interrupted, _ = core.stop_flags
                blk = core.current_block
                pc = self._settle_position()
                deferred, self._deferred = self._deferred, None
                moved = False
                if err is None and self._pending is None and core.pending is None:
                    # Cortex-M: an exception the firmware layer takes, or a block that
                    # ended with a wfi (it halts the emulation): the layer slept to the
                    # next interrupt and entered it. Before any stop at this position (a
                    # breakpoint where it leaves pc stops).
                    if deferred is not None:
                        deferred()
                        moved = True
                    elif self._idle_handler is not None and blk is not None \
                            and blk[0] + blk[1] == pc:
                        moved = self._idle_handler(self)
                if moved:
                    self._redirected = True
                    bp_addr = None
                    pc = self.pc
                if self._it_guard is not None and self._it_guard.retry and err is None \
                        and self._pending is None and core.pending is None:
                    # A stale Thumb IT state before a block: clear it and run on.
                    cpsr = self._core.reg_read(arm_const.UC_ARM_REG_CPSR)
                    self._uc.reg_write(arm_const.UC_ARM_REG_CPSR, cpsr & ~CPSR_IT_MASK)
                    core.reset_stop()
                    continue
                if bp_addr is not None and bp_addr == step_target:
                    bp_addr = None  # our own stop: the count is reached
                if bp_addr is not None and self._timer_at is not None \
                        and self.position >= self._timer_at:
                    bp_addr = None  # the timer first (a breakpoint where it leaves pc stops)
                try:
                    event = self._classify(err, bp_addr, interrupted, pc, until)
                finally:
                    for probe in self._probes:
                        probe._settled(self.position)
                if event is not None:
                    return event
                fired = self._timer_at is not None and self.position >= self._timer_at
                if fired:
                    self._fire_timer()
                    if self._exit_status is not None or self._kill_signal is not None or \
                            self._pending is not None:  # it ended the program, or raised
                        event = self._classify(None, None, False, self.pc, until)
                        if event is not None:
                            return event
                if (not fired and until_stop is not None and pc == until_stop
                        and bp_addr is None and not limit_hit and not interrupted):
                    # The exit address of a stop the timer no longer wants (a hook moved
                    # the timer later): run on from here.
                    self._redirected = True
                if self._redirected or fired:  # the guest goes on elsewhere
                    self._redirected = False  # (a fault went to its signal handler)
                    if step_target is not None:  # armed in straight-line code: stale now
                        core.disarm_step()
                        step_target = None
                    if fired and core.step_hook_count and (
                            goal is None or goal - self.position > self._STEPPING_RUN):
                        # The timer's stop hooked an instruction, often in a hot loop: a
                        # kept hook would cost every pass of a long run (as at its start).
                        core.drop_step_hooks()
                    if until_stop is not None:
                        self._drop_translation(until_stop)
                        until_stop = None
                    if goal is not None and self.position >= goal:
                        return Stopped(self.pc, self.position, "count")
                    stop = limit = self._stop_position(goal)
                    pc = self.pc
                    core.reset_stop()
                    continue
                if goal is not None and self.position >= goal:
                    return Stopped(pc, self.position, "count")
                stop = self._stop_position(goal)  # (a system call may have set a timer)
                if not limit_hit or stop is None:
                    # emu_start returned without any of our reasons (a hook stopped it).
                    return Stopped(pc, self.position, "interrupt")
                # The block hook refused a block that would pass the goal. A block is
                # straight-line code, so the instruction to stop at is known: hook it (a C
                # code hook, for this run only) and let the block in. Unicorn's count=
                # would do too, but it miscounts a store that rewrites its own block and
                # flushes every translation when switched off.
                bstart, bsize = core.refused_block
                offsets = self._block_offsets(bstart, bsize)
                if stop - self.position >= len(offsets):
                    # The limit that refused it is stale: a system call in the block before
                    # cleared or moved the timer (a process switch ended the time slices).
                    limit = stop
                    core.reset_stop()
                    continue
                if step_target is not None:
                    core.disarm_step()
                    step_target = None
                if until_stop is not None:
                    self._drop_translation(until_stop)
                until_stop = None
                target = bstart + offsets[stop - self.position]
                if target not in self._breakpoints and target != until:
                    if self._needs_until(bstart, target):
                        until_stop = target
                        self._drop_translation(target)
                    else:
                        core.arm_step(target)
                        step_target = target
                limit = self.position + len(offsets)
                core.reset_stop()
                if self.position == start_pos and pc == start_pc and (
                        pc in self._breakpoints or pc == until):
                    core.skip_once(pc)  # still stepping off the breakpoint we resumed at
        finally:
            self.generation += 1
            self._running = False
            self._goal = None
            if step_target is not None:
                core.disarm_step()
            if until_stop is not None:
                self._drop_translation(until_stop)

    #: Longest stretch the single-step shortcut looks at.
    _STRAIGHT_MAX = 16
    #: Longest bounded run that keeps the step hooks installed (a stepi, a reverse-stepi's
    #: re-execution from a dense checkpoint); longer runs drop them first.
    _STEPPING_RUN = 4096

    def _it_legit(self, address: int) -> bool:
        """Whether a Thumb IT instruction covers ``address``: one of the 16 bytes before
        it decodes as an IT whose following instructions include ``address``."""
        code = self.mem.read_partial(max(address - 16, 0), min(address, 16) + 4)
        base = address - (len(code) - 4)
        for back in range(2, min(address, 16) + 1, 2):
            off = len(code) - 4 - back
            if off < 0 or code[off + 1] != 0xBF or not code[off] & 0xF:
                continue
            insns = list(self._cs_thumb.disasm_lite(code[off:], base + off))
            if insns and insns[0][2].startswith("it"):
                covered = [a for a, _, _, _ in insns[1:len(insns[0][2])]]
                if address in covered:
                    return True
        return False

    def _needs_until(self, start: int, target: int) -> bool:
        """Whether a bounded run stops at ``target`` (reached in straight line from
        ``start``) through Unicorn's exit address instead of a step hook: always on 32-bit
        ARM. A code hook's stop is ignored inside a Thumb IT block (and the hook is not even
        called for an instruction whose condition fails), and measured on glibc's ARM-state
        memset, a step hook's stop after a store that filled the TLB resumed at the start
        of the block; the exit address ends the translation right before ``target``."""
        return self._arm

    def _straight_line_target(self, pc: int, count: int) -> int | None:
        """Address of the instruction ``count`` instructions after ``pc`` when none of the
        first ``count`` can change the flow (branch, call, return, trap, syscall, undefined,
        or an x86 rep instruction, which executes once per iteration); else None."""
        if not 0 < count <= self._STRAIGHT_MAX:
            return None
        addr = pc
        for _ in range(count):
            info = self._insn_flow(addr)
            if info is None or info[1]:
                return None
            addr = info[0]
        return addr

    def _insn_flow(self, address: int) -> tuple[int, bool] | None:
        """(next address, can change the flow) of the instruction at ``address`` (cached)."""
        info = self._flow_cache.get(address)
        if info is None:
            insn = next(self._engine(True).disasm(self.mem.read_partial(address, 16), address,
                                                  1), None)
            if insn is None:
                return None
            flow = bool(set(insn.groups) & _FLOW_GROUPS) or insn.mnemonic in _TRAPS \
                or insn.mnemonic.startswith("rep")
            if self._arm:
                # Anything naming pc may write it (pop {pc}, ldr pc, mov pc, lr...); an IT
                # instruction makes the next ones conditional (see _needs_until).
                flow = flow or "pc" in insn.op_str
            elif self.arch.name == "riscv64":
                flow = flow or insn.mnemonic.startswith(_RISCV_FLOW)
            info = (address + insn.size, flow)
            if len(self._flow_cache) > 65536:
                self._flow_cache.clear()
            self._flow_cache[address] = info
        return info

    def _classify(self, err: unicorn.UcError | None, bp_addr: int | None, interrupted: bool,
                  pc: int, until: int | None) -> StopEvent | None:
        pos = self.position
        exc = self._pending or self._core.pending
        if exc is not None:
            self._pending = None
            self._core.pending = None
            raise exc
        if self._exit_status is not None:
            self._final = Exited(pc, pos, self._exit_status)
            return self._final
        if self._kill_signal is not None:
            self._final = Killed(pc, pos, self._kill_signal)
            return self._final
        if self._fault is not None or err is not None:
            if self._fault is not None:
                sig, addr, detail = self._fault
            else:
                assert err is not None
                sig, detail = _FAULT_ERRORS.get(err.errno, (signal.SIGSEGV, str(err)))
                addr = pc
                if sig == signal.SIGILL and self.arch.name == "riscv64":
                    # Unicorn ends the emulation at an ebreak (no UC_HOOK_INTR call).
                    insn = self.disassemble(pc, 1)
                    if insn and insn[0][1] in ("ebreak", "c.ebreak"):
                        sig, detail = signal.SIGTRAP, "breakpoint instruction"
                if sig in (signal.SIGSEGV, signal.SIGBUS) or (
                        err.errno == unicorn.UC_ERR_EXCEPTION and self._tlb_owner is not None):
                    # (UC_ERR_EXCEPTION: a store the journal's TLB refused, at the store.)
                    located = self._locate_fault(pc)
                    if located is not None:
                        addr, detail = located
                        sig = signal.SIGSEGV if sig == signal.SIGILL else sig
            self._fault = None
            fault = Fault(pc, pos, sig, addr, detail)
            self.switch_points += 1
            asked = self._interrupts
            if self._fault_handler is not None and self._fault_handler(self, fault):
                # The faulting instruction did not retire; the handler's first one runs
                # at this same position.
                if self._interrupts != asked:  # the handler asked for a stop (gdb's
                    return Stopped(self.pc, pos, "interrupt")  # signal stops): here
                self._redirected = True
                return None
            self._final = fault
            return self._final
        if self._host_hit is not None:
            kind, address = self._host_hit
            self._host_hit = None
            names = {v: k for k, v in self._WATCH_KINDS.items()}
            # Reported after the system call on every architecture: a system call cannot be
            # un-executed (its host side effects happened), so there is no before-stop.
            return WatchHit(pc, pos, "watchpoint", names[kind], "write", address, False)
        if self._watch is not None:
            hit = self._watch.hit
            if hit is not None:
                return self._watch_hit(hit, pc)
        if bp_addr is not None:
            return Stopped(pc, pos, "until" if bp_addr == until else "breakpoint")
        if interrupted:
            return Stopped(pc, pos, "interrupt")
        return None

    # -- CPU state for snapshots -------------------------------------------------------------
    def save_cpu(self) -> CpuState:
        """Capture the CPU (Unicorn context), the exact position and machine-held registers.

        Only between runs. Guest RAM and the memory map are the snapshot core's business.
        """
        return CpuState(self._uc.context_save(), int(self._core.total),
                        dict(self.regs._virtual), self._final)

    def load_cpu(self, state: CpuState) -> None:
        """Make the CPU, position and machine-held registers those of ``state``.

        A machine that had exited or faulted can run again from an earlier state.
        """
        self.generation += 1
        self.switch_points += 1
        self._uc.context_restore(state.context)
        self._core.total = state.position
        self._core.forget_block()
        self.regs._virtual.clear()
        self.regs._virtual.update(state.virtual)
        self._final = state.final
        for probe in self._probes:
            probe._rewound(state.position)
        self._watch_stop_at = None  # a restored state was not stopped by a watchpoint
        self._host_hit = None
        self._exit_status = None
        self._kill_signal = None
        self._fault = None

    def can_enable_virtual_tlb(self) -> bool:
        """True while the TLB type can still change (the machine never ran)."""
        return not self._emulated and self._tlb_owner is None

    def enable_virtual_tlb(self, owner: object) -> None:
        """Switch Unicorn to its virtual TLB (``UC_TLB_VIRTUAL``) before the first run.

        ``owner`` (the snapshot journal) installs the ``UC_HOOK_TLB_FILL`` callback that maps
        pages and enforces region permissions; the machine keeps it alive for its lifetime,
        since the callback must outlive every emulation.
        """
        if not self.can_enable_virtual_tlb():
            raise RuntimeError("the virtual TLB must be enabled before the machine first runs")
        self._uc.ctl_set_tlb_mode(unicorn.UC_TLB_VIRTUAL)  # type: ignore[attr-defined]
        self._tlb_owner = owner

    @property
    def tlb_owner(self) -> object | None:
        """The object that owns the virtual TLB fill hook, if the virtual TLB is on."""
        return self._tlb_owner

    def code_restored(self, ranges: Iterable[tuple[int, int]] | None = None, *,
                      everything: bool = False) -> None:
        """Forget what was translated from guest code after its bytes were restored: the
        translations of each ``(start, end)`` of ``ranges`` (or of ``everything``, after a
        layout change), then the per-block instruction counts. A caller that dropped the
        translations itself (the Cython snapshot core) passes neither.
        """
        if everything:
            self._uc.ctl_flush_tb()  # type: ignore[attr-defined]
        for start, end in ranges or ():
            self._uc.ctl_remove_cache(start, end)
        self._core.invalidate_blocks()
        self._offsets.clear()
        self._block_thumb.clear()
        self._flow_cache.clear()

    # -- misc -------------------------------------------------------------------------------
    def disassemble(self, address: int, count: int = 1) -> list[tuple[int, str, str, bytes]]:
        """Up to ``count`` instructions at ``address``: (address, mnemonic, operands, bytes)."""
        code = self.mem.read_partial(address, 16 * count)
        out = []
        for insn in self._engine().disasm(code, address):
            out.append((insn.address, insn.mnemonic, insn.op_str, bytes(insn.bytes)))
            if len(out) >= count:
                break
        return out

    def close(self) -> None:
        for probe in list(self._probes):
            self._detach_probe(probe)
        for h in self._hooks:
            self._uc.hook_del(h)
        self._hooks.clear()
