"""Signal frames: what Linux pushes on the user stack to run a guest's signal handler, and
what ``rt_sigreturn`` takes back, for x86_64 and aarch64.

The layouts are the kernel's ABI (``struct rt_sigframe`` of arch/x86/kernel/signal.c and
arch/arm64/kernel/signal.c with their uapi ``sigcontext``/``ucontext``), so glibc's and
musl's handlers, ``ucontext_t`` readers (``uc_mcontext.gregs[REG_RIP]``, ``uc_mcontext.pc``),
``siglongjmp`` out of a handler and gdb's signal-frame unwinders all see what they see on
Linux:

* x86_64: ``pretcode`` (the ``sa_restorer`` the C library registered), ``ucontext`` (flags,
  link, ``uc_stack``, the 256-byte ``sigcontext`` with the general registers, and the
  signal mask), ``siginfo``; the FP/SSE state in the 512-byte ``fxsave`` layout, 64-byte
  aligned, which ``sigcontext.fpstate`` points to. The handler starts with ``rdi = sig``,
  ``rsi = &info``, ``rdx = &uc``, ``rsp`` = the frame (as after a call: ``rsp + 8`` 16-byte
  aligned), below the 128-byte red zone or at the top of the alternate stack.
* aarch64: ``siginfo``, then ``ucontext`` whose ``uc_mcontext`` holds x0-x30, sp, pc,
  pstate and, in ``__reserved``, an ``fpsimd_context`` record (fpsr, fpcr, v0-v31) and the
  terminating null record; above it a frame record (x29, x30) for unwinders. ``x0 = sig``,
  ``x1 = &info``, ``x2 = &uc``, ``x29`` = the frame record, ``x30`` = the restorer.

Everything is written through guest memory and registers at a known position (the return
of a system call), so delivery is deterministic and undone by the snapshots like any store.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from syxdbg.machine import Machine

SA_SIGINFO = 0x4
SA_ONSTACK = 0x08000000
SA_RESTART = 0x10000000
SA_RESTORER = 0x04000000
SA_NODEFER = 0x40000000
SA_RESETHAND = 0x80000000

SS_ONSTACK, SS_DISABLE = 1, 2
SS_AUTODISARM = 1 << 31

#: si_code values: sent by kill(2), by tkill/tgkill, by the kernel (timers).
SI_USER, SI_TKILL, SI_KERNEL = 0, -6, 0x80
#: si_code values of faults: SIGSEGV (no mapping, no permission), SIGBUS (misaligned),
#: SIGFPE (integer divide by zero), SIGILL (illegal opcode: arm64's undefined instruction;
#: illegal operand: x86's #UD, as Linux reports them), SIGTRAP (breakpoint).
SEGV_MAPERR, SEGV_ACCERR, BUS_ADRALN, FPE_INTDIV, TRAP_BRKPT = 1, 2, 1, 1, 1
ILL_ILLOPC, ILL_ILLOPN = 1, 2

#: The instructions of the aarch64 return trampoline (``mov x8, #139; svc #0``: the
#: vDSO's ``__kernel_rt_sigreturn``, which gdb recognises as a signal trampoline). glibc
#: registers no ``sa_restorer`` on aarch64 and returns through the vDSO's.
AARCH64_SIGTRAMP = struct.pack("<II", 0xD2801168, 0xD4000001)

SIGINFO_SIZE = 128
X86_64_FRAME = 8 + 304 + SIGINFO_SIZE  # pretcode, ucontext, siginfo
X86_64_FXSAVE = 512
X86_64_REDZONE = 128
#: Inside Unicorn's x86_64 ``syscall`` hook rip is the system call instruction, and the CPU
#: moves past it (2 bytes) when the hook returns: a frame saves rip + 2 (where Linux
#: resumes), and a new rip is written 2 bytes early.
X86_64_SYSCALL_LEN = 2
#: ucontext.uc_flags of x86_64 frames: UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS.
X86_64_UC_FLAGS = 0x2 | 0x4
#: sigcontext's general registers, in their order in the structure.
X86_64_GREGS = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp",
                "rbx", "rdx", "rax", "rcx", "rsp", "rip", "eflags")
X86_64_EFLAGS_CLEAR = (1 << 8) | (1 << 10) | (1 << 16)  # TF, DF, RF
#: eflags bits a frame may set on return (user-controllable flags only, as the kernel's
#: FIX_EFLAGS: CF PF AF ZF SF TF DF OF NT RF AC).
X86_64_EFLAGS_USER = 0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x400 | 0x800 | 0x4000 \
    | 0x10000 | 0x40000

AARCH64_UC_MCONTEXT = 176  # offsetof(struct ucontext, uc_mcontext)
AARCH64_RESERVED = 288     # offsetof(struct sigcontext, __reserved)
AARCH64_FRAME = SIGINFO_SIZE + AARCH64_UC_MCONTEXT + AARCH64_RESERVED + 4096
FPSIMD_MAGIC, FPSIMD_SIZE = 0x46508001, 528
#: pstate bits a frame may set on return: NZCV and the DIT/SSBS/PAN-free user view (EL0t).
AARCH64_PSTATE_USER = 0xF0000000


class BadFrame(Exception):
    """A frame that cannot be written (stack unmapped) or read back: the caller forces
    SIGSEGV, as Linux does."""


@dataclass(frozen=True)
class SigAction:
    """A ``struct sigaction`` as the kernel keeps it (both architectures: handler, flags,
    restorer, mask; 8 bytes each)."""

    handler: int
    flags: int
    restorer: int
    mask: int

    @classmethod
    def unpack(cls, raw: bytes) -> SigAction:
        return cls(*struct.unpack_from("<QQQQ", raw))


def pack_siginfo(sig: int, code: int, pid: int, uid: int) -> bytes:
    """A ``siginfo_t`` for a signal sent by a process (kill, tgkill): signo, errno 0, code,
    then the sender's pid and uid."""
    return struct.pack("<iii4xiI", sig, 0, code, pid, uid).ljust(SIGINFO_SIZE, b"\0")


def pack_fault_siginfo(sig: int, code: int, address: int) -> bytes:
    """A ``siginfo_t`` for a fault: signo, errno 0, code, then ``si_addr``."""
    return struct.pack("<iii4xQ", sig, 0, code, address).ljust(SIGINFO_SIZE, b"\0")


def _altstack(raw: bytes | None) -> tuple[int, int, int]:
    """(sp, flags, size) of the alternate stack (flags SS_DISABLE when none is set)."""
    if not raw:
        return 0, SS_DISABLE, 0
    sp, flags, _pad, size = struct.unpack("<QiiQ", raw)
    return sp, flags, size


def _on_stack(sp: int, stack: tuple[int, int, int]) -> bool:
    base, flags, size = stack
    return not flags & SS_DISABLE and size > 0 and base < sp <= base + size


def _stack_top(sp: int, act: SigAction, stack: tuple[int, int, int]) -> int:
    base, flags, size = stack
    if act.flags & SA_ONSTACK and not flags & SS_DISABLE and size and \
            not _on_stack(sp, stack):
        return base + size
    return sp


def _uc_stack(sp: int, stack: tuple[int, int, int]) -> bytes:
    base, flags, size = stack
    if flags & SS_DISABLE:
        return struct.pack("<QiiQ", 0, SS_DISABLE, 0, 0)
    flags = (flags & SS_AUTODISARM) | (SS_ONSTACK if _on_stack(sp, stack) else 0)
    return struct.pack("<QiiQ", base, flags, 0, size)


def setup(machine: Machine, sig: int, act: SigAction, info: bytes, old_mask: int,
          altstack: bytes | None, trampoline: int, *, in_syscall: bool = True) -> None:
    """Push the frame for ``sig`` and point the registers at ``act.handler``.

    ``old_mask`` is the mask the handler's return restores; ``trampoline`` is where the
    handler returns when ``act`` has no restorer (aarch64; 0: none); ``in_syscall``: called
    from the system call hook (False: after a fault, the CPU at the faulting instruction).
    Raises :class:`BadFrame` when the stack cannot take the frame."""
    arch = machine.arch.name
    try:
        if arch == "x86_64":
            _setup_x86_64(machine, sig, act, info, old_mask, _altstack(altstack),
                          X86_64_SYSCALL_LEN if in_syscall else 0)
        elif arch == "aarch64":
            _setup_aarch64(machine, sig, act, info, old_mask, _altstack(altstack), trampoline)
        else:
            raise BadFrame(f"signal frames are not emulated for {arch}")
    except BadFrame:
        raise
    except Exception as exc:  # an unmapped or read-only stack: the guest's SIGSEGV
        raise BadFrame(str(exc)) from exc


def restore(machine: Machine) -> int:
    """``rt_sigreturn``: reload the registers from the frame at the stack pointer; returns
    the signal mask saved in it. Raises :class:`BadFrame` for a frame that cannot be read."""
    arch = machine.arch.name
    try:
        if arch == "x86_64":
            return _restore_x86_64(machine)
        if arch == "aarch64":
            return _restore_aarch64(machine)
    except BadFrame:
        raise
    except Exception as exc:
        raise BadFrame(str(exc)) from exc
    raise BadFrame(f"signal frames are not emulated for {arch}")


# -- x86_64 ----------------------------------------------------------------------------------
def _fxsave(machine: Machine) -> bytes:
    regs = machine.regs
    ftag = regs["ftag"]
    abridged = sum(1 << i for i in range(8) if (ftag >> (2 * i)) & 3 != 3)
    out = bytearray(X86_64_FXSAVE)
    struct.pack_into("<HHBxHQQII", out, 0, regs["fctrl"], regs["fstat"], abridged,
                     regs["fop"], regs["fioff"], regs["fooff"], regs["mxcsr"], 0xFFFF)
    for i in range(8):
        out[32 + 16 * i:42 + 16 * i] = regs[f"st{i}"].to_bytes(10, "little")
    for i in range(16):
        out[160 + 16 * i:176 + 16 * i] = regs[f"xmm{i}"].to_bytes(16, "little")
    return bytes(out)


def _fxrstor(machine: Machine, data: bytes) -> None:
    regs = machine.regs
    fcw, fsw, abridged, fop, fip, fdp, mxcsr, _ = struct.unpack_from("<HHBxHQQII", data)
    regs["fctrl"], regs["fstat"], regs["fop"] = fcw, fsw, fop
    regs["ftag"] = sum((0 if abridged >> i & 1 else 3) << (2 * i) for i in range(8))
    regs["fioff"], regs["fooff"] = fip, fdp
    regs["mxcsr"] = mxcsr & 0xFFFF
    for i in range(8):
        regs[f"st{i}"] = int.from_bytes(data[32 + 16 * i:42 + 16 * i], "little")
    for i in range(16):
        regs[f"xmm{i}"] = int.from_bytes(data[160 + 16 * i:176 + 16 * i], "little")


def _setup_x86_64(machine: Machine, sig: int, act: SigAction, info: bytes, old_mask: int,
                  stack: tuple[int, int, int], rip_gap: int) -> None:
    if not act.flags & SA_RESTORER or not act.restorer:
        # Linux refuses too (x86_64 has no vDSO fallback for rt signals): SIGSEGV.
        raise BadFrame("handler registered without SA_RESTORER")
    regs = machine.regs
    sp = regs["rsp"]
    top = _stack_top(sp, act, stack)
    if top == sp:
        top -= X86_64_REDZONE
    fpstate = (top - X86_64_FXSAVE) & ~63
    frame = ((fpstate - X86_64_FRAME) & ~15) - 8
    gregs = [regs[name] for name in X86_64_GREGS]
    gregs[X86_64_GREGS.index("rip")] += rip_gap
    segs = struct.pack("<HHHH", regs["cs"], regs["gs"], regs["fs"], regs["ss"])
    sigcontext = (struct.pack("<18Q", *gregs) + segs
                  + struct.pack("<QQQQQ", 0, 0, old_mask, 0, fpstate) + bytes(64))
    ucontext = (struct.pack("<QQ", X86_64_UC_FLAGS, 0) + _uc_stack(sp, stack) + sigcontext
                + struct.pack("<Q", old_mask))
    assert len(sigcontext) == 256 and len(ucontext) == 304
    machine.mem.write(fpstate, _fxsave(machine))
    machine.mem.write(frame, struct.pack("<Q", act.restorer) + ucontext + info)
    regs["rdi"] = sig
    regs["rsi"] = frame + 8 + 304
    regs["rdx"] = frame + 8
    regs["rax"] = 0
    regs["rsp"] = frame
    regs["eflags"] = regs["eflags"] & ~X86_64_EFLAGS_CLEAR
    regs["rip"] = act.handler - rip_gap


def _restore_x86_64(machine: Machine) -> int:
    regs = machine.regs
    frame = regs["rsp"] - 8  # the handler's ret popped pretcode
    uc = machine.mem.read(frame + 8, 304)
    sigcontext = uc[40:296]
    gregs = struct.unpack_from("<18Q", sigcontext)
    _cs, _gs, _fs, _ss = struct.unpack_from("<HHHH", sigcontext, 144)
    fpstate = struct.unpack_from("<Q", sigcontext, 184)[0]
    mask = struct.unpack_from("<Q", uc, 296)[0]
    fx = machine.mem.read(fpstate, X86_64_FXSAVE) if fpstate else None
    for name, value in zip(X86_64_GREGS, gregs, strict=True):
        if name == "eflags":
            value = (regs["eflags"] & ~X86_64_EFLAGS_USER) | (value & X86_64_EFLAGS_USER)
        elif name == "rip":
            value -= X86_64_SYSCALL_LEN
        regs[name] = value
    if fx is not None:
        _fxrstor(machine, fx)
    return int(mask)


# -- aarch64 ---------------------------------------------------------------------------------
def _setup_aarch64(machine: Machine, sig: int, act: SigAction, info: bytes, old_mask: int,
                   stack: tuple[int, int, int], trampoline: int) -> None:
    ret = act.restorer if act.flags & SA_RESTORER and act.restorer else trampoline
    if not ret:
        raise BadFrame("no return trampoline for the handler")
    regs = machine.regs
    sp = regs["sp"]
    top = _stack_top(sp, act, stack)
    record = (top - 16) & ~15
    frame = (record - AARCH64_FRAME) & ~15
    xregs = [regs[f"x{i}"] for i in range(31)]
    mcontext = (struct.pack("<Q", 0) + struct.pack("<31Q", *xregs)
                + struct.pack("<QQQ", sp, regs["pc"], regs["cpsr"]))
    mcontext = mcontext.ljust(AARCH64_RESERVED, b"\0")
    fpsimd = struct.pack("<IIII", FPSIMD_MAGIC, FPSIMD_SIZE, regs["fpsr"], regs["fpcr"])
    fpsimd += b"".join(regs[f"v{i}"].to_bytes(16, "little") for i in range(32))
    reserved = (fpsimd + bytes(8)).ljust(4096, b"\0")  # fpsimd record, null terminator
    ucontext = (struct.pack("<QQ", 0, 0) + _uc_stack(sp, stack) + struct.pack("<Q", old_mask))
    ucontext = ucontext.ljust(AARCH64_UC_MCONTEXT, b"\0") + mcontext + reserved
    assert len(info) + len(ucontext) == AARCH64_FRAME
    machine.mem.write(record, struct.pack("<QQ", regs["x29"], regs["x30"]))
    machine.mem.write(frame, info + ucontext)
    regs["x0"] = sig
    regs["x1"] = frame
    regs["x2"] = frame + SIGINFO_SIZE
    regs["x29"] = record
    regs["x30"] = ret
    regs["sp"] = frame
    regs["pc"] = act.handler


def _restore_aarch64(machine: Machine) -> int:
    regs = machine.regs
    frame = regs["sp"]
    if frame & 15:
        raise BadFrame(f"misaligned signal frame at {frame:#x}")
    uc_at = frame + SIGINFO_SIZE
    head = machine.mem.read(uc_at, AARCH64_UC_MCONTEXT + AARCH64_RESERVED + FPSIMD_SIZE)
    mask = struct.unpack_from("<Q", head, 40)[0]
    mc = head[AARCH64_UC_MCONTEXT:]
    xregs = struct.unpack_from("<31Q", mc, 8)
    sp, pc, pstate = struct.unpack_from("<QQQ", mc, 8 + 31 * 8)
    fp = mc[AARCH64_RESERVED:]
    magic, size, fpsr, fpcr = struct.unpack_from("<IIII", fp)
    for i, value in enumerate(xregs):
        regs[f"x{i}"] = value
    regs["sp"], regs["pc"] = sp, pc
    regs["cpsr"] = (regs["cpsr"] & ~AARCH64_PSTATE_USER) | (pstate & AARCH64_PSTATE_USER)
    if magic == FPSIMD_MAGIC and size == FPSIMD_SIZE:
        regs["fpsr"], regs["fpcr"] = fpsr, fpcr
        for i in range(32):
            regs[f"v{i}"] = int.from_bytes(fp[16 + 16 * i:32 + 16 * i], "little")
    return int(mask)
