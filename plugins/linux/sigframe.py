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

#: Return trampolines for handlers registered without a restorer, per architecture: what
#: the kernel's vDSO or sigpage holds (and gdb recognises as a signal trampoline).
#: aarch64 ``mov x8, #139; svc #0`` (glibc registers no restorer there); arm ``mov r7,
#: #173; svc #0``; riscv64 ``li a7, 139; ecall`` (riscv has no sa_restorer at all).
SIGTRAMPS = {
    "aarch64": struct.pack("<II", 0xD2801168, 0xD4000001),
    "arm": struct.pack("<IIII", 0xE3A070AD, 0xEF000000, 0xE3A07077, 0xEF000000),
    "riscv64": struct.pack("<II", 0x08B00893, 0x00000073),
}
AARCH64_SIGTRAMP = SIGTRAMPS["aarch64"]

#: The guest's ``struct sigaction`` (rt_sigaction) per architecture: handler, flags,
#: restorer, mask (riscv64 has no restorer field; arm's fields are 32-bit). The kernel keeps
#: every action in one form, x86_64's (4 x 64-bit), and converts at the system call.
SIGACTION_FORMATS = {"x86_64": "<QQQQ", "aarch64": "<QQQQ", "arm": "<IIIQ", "riscv64": "<QQQ"}
#: The guest's ``stack_t`` (sigaltstack): sp, flags, size; kept in x86_64's form.
STACK_FORMATS = {"arm": "<IiI"}
_STACK_NATIVE = "<QiiQ"


def sigaction_size(arch: str) -> int:
    return struct.calcsize(SIGACTION_FORMATS.get(arch, "<QQQQ"))


def sigaction_from_guest(arch: str, raw: bytes) -> bytes:
    """A guest ``struct sigaction`` in the kernel's single form (handler, flags, restorer,
    mask as 64-bit values)."""
    fmt = SIGACTION_FORMATS.get(arch, "<QQQQ")
    fields = struct.unpack(fmt, raw)
    if len(fields) == 3:  # no restorer
        fields = (fields[0], fields[1], 0, fields[2])
    return struct.pack("<QQQQ", *fields)


def sigaction_to_guest(arch: str, stored: bytes) -> bytes:
    fmt = SIGACTION_FORMATS.get(arch, "<QQQQ")
    handler, flags, restorer, mask = struct.unpack("<QQQQ", stored)
    fields = (handler, flags, mask) if fmt == "<QQQ" else (handler, flags, restorer, mask)
    if fmt == "<IIIQ":
        fields = (handler & 0xFFFFFFFF, flags & 0xFFFFFFFF, restorer & 0xFFFFFFFF, mask)
    return struct.pack(fmt, *fields)


def stack_size(arch: str) -> int:
    return struct.calcsize(STACK_FORMATS.get(arch, _STACK_NATIVE))


def stack_from_guest(arch: str, raw: bytes) -> bytes:
    fmt = STACK_FORMATS.get(arch)
    if fmt is None:
        return raw
    sp, flags, size = struct.unpack(fmt, raw)
    return struct.pack(_STACK_NATIVE, sp, flags, 0, size)


def stack_to_guest(arch: str, stored: bytes) -> bytes:
    fmt = STACK_FORMATS.get(arch)
    if fmt is None:
        return stored
    sp, flags, _pad, size = struct.unpack(_STACK_NATIVE, stored)
    return struct.pack(fmt, sp & 0xFFFFFFFF, flags, size & 0xFFFFFFFF)

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


#: Where siginfo's union starts: after signo, errno, code, at the union's alignment (a
#: pointer's: 4 bytes on 32-bit arm, 8 elsewhere).
_SIGINFO_HEAD = {"arm": "<iii"}


def pack_siginfo(sig: int, code: int, pid: int, uid: int, arch: str = "x86_64",
                 status: int = 0) -> bytes:
    """A ``siginfo_t`` for a signal sent by a process (kill, tgkill): signo, errno 0, code,
    then the sender's pid and uid (and for SIGCHLD, ``si_status``: the exit code or the
    signal that killed the child)."""
    head = _SIGINFO_HEAD.get(arch, "<iii4x")
    return struct.pack(head + "iIi", sig, 0, code, pid, uid, status).ljust(SIGINFO_SIZE,
                                                                            b"\0")


def pack_fault_siginfo(sig: int, code: int, address: int, arch: str = "x86_64") -> bytes:
    """A ``siginfo_t`` for a fault: signo, errno 0, code, then ``si_addr``."""
    if arch == "arm":
        return struct.pack("<iiiI", sig, 0, code, address).ljust(SIGINFO_SIZE, b"\0")
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
        elif arch == "arm":
            _setup_arm(machine, sig, act, info, old_mask, _altstack(altstack), trampoline)
        elif arch == "riscv64":
            _setup_riscv64(machine, sig, act, info, old_mask, _altstack(altstack), trampoline)
        else:
            raise BadFrame(f"signal frames are not emulated for {arch}")
    except BadFrame:
        raise
    except Exception as exc:  # an unmapped or read-only stack: the guest's SIGSEGV
        raise BadFrame(str(exc)) from exc


def restore(machine: Machine, *, rt: bool = True) -> int:
    """``rt_sigreturn`` (``sigreturn`` with ``rt`` False: arm's frames of handlers without
    SA_SIGINFO): reload the registers from the frame at the stack pointer; returns the
    signal mask saved in it. Raises :class:`BadFrame` for a frame that cannot be read."""
    arch = machine.arch.name
    if not rt and arch != "arm":
        raise BadFrame(f"sigreturn (without rt) is not a system call on {arch}")
    try:
        if arch == "x86_64":
            return _restore_x86_64(machine)
        if arch == "aarch64":
            return _restore_aarch64(machine)
        if arch == "arm":
            return _restore_arm(machine, rt=rt)
        if arch == "riscv64":
            return _restore_riscv64(machine)
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


# -- arm (EABI, 32-bit) ----------------------------------------------------------------------
#: struct ucontext of 32-bit ARM: flags, link, stack_t (12), sigcontext (21 words: trap_no,
#: error_code, oldmask, r0-r10, fp, ip, sp, lr, pc, cpsr, fault_address), the mask, padding
#: to 128 bytes of mask, then uc_regspace (8-aligned) holding the VFP record.
ARM_SIGCONTEXT = 20
ARM_SIGMASK = ARM_SIGCONTEXT + 21 * 4
ARM_REGSPACE = ARM_SIGMASK + 128
ARM_UCONTEXT = ARM_REGSPACE + 512
ARM_FRAME = SIGINFO_SIZE + ARM_UCONTEXT + 16  # siginfo, ucontext, retcode[4]
VFP_MAGIC, VFP_SIZE = 0x56465001, 288
ARM_CPSR_T = 1 << 5
#: Offset in arm's trampoline of ``mov r7, #119; svc #0`` (sigreturn, for non-SA_SIGINFO).
ARM_SIGRETURN_AT = 8
#: CPSR bits a frame may set on return: the flags (NZCVQ, GE) and the Thumb bit; the mode
#: stays user, the IT state is cleared.
ARM_CPSR_USER = 0xF8000000 | 0x000F0000 | ARM_CPSR_T


def _setup_arm(machine: Machine, sig: int, act: SigAction, info: bytes, old_mask: int,
               stack: tuple[int, int, int], trampoline: int) -> None:
    """A handler with SA_SIGINFO gets ``struct rt_sigframe`` (siginfo, then ucontext) and
    returns through rt_sigreturn; one without gets the older ``struct sigframe`` (the
    ucontext alone) and returns through sigreturn (glibc's __default_sa_restorer), as
    Linux's setup_frame/setup_rt_frame do on arm."""
    rt = bool(act.flags & SA_SIGINFO)
    ret = act.restorer if act.flags & SA_RESTORER and act.restorer else \
        trampoline + (0 if rt else ARM_SIGRETURN_AT)
    if not ret:
        raise BadFrame("no return trampoline for the handler")
    regs = machine.regs
    sp = regs["sp"]
    top = _stack_top(sp, act, stack)
    frame = (top - (ARM_FRAME if rt else ARM_FRAME - SIGINFO_SIZE)) & ~7
    gregs = [regs[f"r{i}"] for i in range(13)] + [sp, regs["lr"], regs["pc"], regs["cpsr"]]
    sigcontext = struct.pack("<3I", 0, 0, old_mask & 0xFFFFFFFF) + struct.pack("<17I", *gregs) \
        + struct.pack("<I", 0)
    base, flags, size = stack
    uc_stack = (struct.pack("<IiI", 0, SS_DISABLE, 0) if flags & SS_DISABLE else
                struct.pack("<IiI", base, (flags & SS_AUTODISARM)
                            | (SS_ONSTACK if _on_stack(sp, stack) else 0), size))
    vfp = struct.pack("<II", VFP_MAGIC, VFP_SIZE)
    vfp += b"".join(struct.pack("<Q", regs[f"d{i}"]) for i in range(32))
    # fpscr (user_vfp is 8-aligned: 264 bytes), fpexc, fpinst, fpinst2, padding to 288.
    vfp += struct.pack("<I4x", regs["fpscr"]) + bytes(16)
    ucontext = (struct.pack("<II", 0, 0) + uc_stack + sigcontext
                + struct.pack("<Q", old_mask).ljust(128, b"\0")
                + (vfp + bytes(4)).ljust(512, b"\0"))  # the VFP record, end_magic 0
    assert len(ucontext) == ARM_UCONTEXT and len(vfp) == VFP_SIZE
    if rt:
        machine.mem.write(frame, info + ucontext + bytes(16))
        regs["r1"] = frame
        regs["r2"] = frame + SIGINFO_SIZE
    else:
        machine.mem.write(frame, ucontext + bytes(16))
    regs["r0"] = sig
    regs["sp"] = frame
    regs["lr"] = ret
    thumb = act.handler & 1
    cpsr = regs["cpsr"] & ~(0x0600FC00 | ARM_CPSR_T)  # no IT state
    regs["cpsr"] = cpsr | (ARM_CPSR_T if thumb else 0)
    regs["pc"] = act.handler & ~1


def _restore_arm(machine: Machine, *, rt: bool = True) -> int:
    regs = machine.regs
    frame = regs["sp"]
    if frame & 7:
        raise BadFrame(f"misaligned signal frame at {frame:#x}")
    uc = machine.mem.read(frame + (SIGINFO_SIZE if rt else 0), ARM_UCONTEXT)
    gregs = struct.unpack_from("<17I", uc, ARM_SIGCONTEXT + 12)
    mask = struct.unpack_from("<Q", uc, ARM_SIGMASK)[0]
    magic, size = struct.unpack_from("<II", uc, ARM_REGSPACE)
    for i in range(13):
        regs[f"r{i}"] = gregs[i]
    sp, lr, pc, cpsr = gregs[13:17]
    now = regs["cpsr"] & ~(ARM_CPSR_USER | 0x0600FC00)
    regs["cpsr"] = now | (cpsr & ARM_CPSR_USER)
    regs["sp"], regs["lr"], regs["pc"] = sp, lr, pc & ~1 if cpsr & ARM_CPSR_T else pc & ~3
    if magic == VFP_MAGIC and size == VFP_SIZE:
        at = ARM_REGSPACE + 8
        for i in range(32):
            regs[f"d{i}"] = struct.unpack_from("<Q", uc, at + 8 * i)[0]
        regs["fpscr"] = struct.unpack_from("<I", uc, at + 256)[0]
    return int(mask)


# -- riscv64 ---------------------------------------------------------------------------------
#: struct ucontext of riscv64: flags, link, stack_t, the mask and padding to 128 bytes, then
#: uc_mcontext (16-aligned): pc and x1-x31 (256 bytes), then the FP state (f0-f31, fcsr in
#: the 528-byte union whose tail holds the end-of-extensions header, zero).
RISCV_MCONTEXT = 176
RISCV_FP = RISCV_MCONTEXT + 256
RISCV_UCONTEXT = RISCV_FP + 528
RISCV_FRAME = SIGINFO_SIZE + RISCV_UCONTEXT
#: x1-x31 by their ABI names, in sc_regs order after pc.
RISCV_XREGS = ("ra", "sp", "gp", "tp", "t0", "t1", "t2", "fp", "s1", "a0", "a1", "a2", "a3",
               "a4", "a5", "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10",
               "s11", "t3", "t4", "t5", "t6")
RISCV_FREGS = ("ft0", "ft1", "ft2", "ft3", "ft4", "ft5", "ft6", "ft7", "fs0", "fs1", "fa0",
               "fa1", "fa2", "fa3", "fa4", "fa5", "fa6", "fa7", "fs2", "fs3", "fs4", "fs5",
               "fs6", "fs7", "fs8", "fs9", "fs10", "fs11", "ft8", "ft9", "ft10", "ft11")


def _setup_riscv64(machine: Machine, sig: int, act: SigAction, info: bytes, old_mask: int,
                   stack: tuple[int, int, int], trampoline: int) -> None:
    if not trampoline:  # riscv has no sa_restorer: the vDSO's rt_sigreturn, always
        raise BadFrame("no return trampoline for the handler")
    regs = machine.regs
    sp = regs["sp"]
    top = _stack_top(sp, act, stack)
    frame = (top - RISCV_FRAME) & ~15
    mcontext = struct.pack("<Q", regs["pc"]) + b"".join(
        struct.pack("<Q", regs[name]) for name in RISCV_XREGS)
    fp = b"".join(struct.pack("<Q", regs[name]) for name in RISCV_FREGS)
    fp = (fp + struct.pack("<I", regs["fcsr"])).ljust(528, b"\0")
    ucontext = (struct.pack("<QQ", 0, 0) + _uc_stack(sp, stack) + struct.pack("<Q", old_mask))
    ucontext = ucontext.ljust(RISCV_MCONTEXT, b"\0") + mcontext + fp
    assert len(ucontext) == RISCV_UCONTEXT
    machine.mem.write(frame, info + ucontext)
    regs["a0"] = sig
    regs["a1"] = frame
    regs["a2"] = frame + SIGINFO_SIZE
    regs["sp"] = frame
    regs["ra"] = trampoline
    regs["pc"] = act.handler


def _restore_riscv64(machine: Machine) -> int:
    regs = machine.regs
    frame = regs["sp"]
    uc = machine.mem.read(frame + SIGINFO_SIZE, RISCV_UCONTEXT)
    mask = struct.unpack_from("<Q", uc, 40)[0]
    values = struct.unpack_from("<32Q", uc, RISCV_MCONTEXT)
    for name, value in zip(RISCV_XREGS, values[1:], strict=True):
        regs[name] = value
    regs["pc"] = values[0]
    fregs = struct.unpack_from("<32Q", uc, RISCV_FP)
    for name, value in zip(RISCV_FREGS, fregs, strict=True):
        regs[name] = value
    regs["fcsr"] = struct.unpack_from("<I", uc, RISCV_FP + 256)[0]
    return int(mask)
