"""Signal dispositions, mask, alternate stack, kill/tkill/tgkill (signals the process sends
itself or one of its threads: a signal to a thread acts as one to the process) and
rt_sigreturn. A signal with a guest handler runs it when the system call that raised or
unblocked it returns (plugins/linux/sigframe.py builds Linux's signal frames).
"""

from __future__ import annotations

import errno
import struct

from .. import abi
from ..kernel import UNBLOCKABLE, Process
from ..registry import I32, U64, Ptr, SyscallError, syscall
from ..sigframe import SI_TKILL, SI_USER


def _check_signal(sig: int) -> None:
    if not 1 <= sig <= abi.NSIG:
        raise SyscallError(errno.EINVAL)


@syscall("rt_sigaction")
def sys_rt_sigaction(p: Process, sig: I32, act: Ptr, oact: Ptr, sigsetsize: U64) -> int:
    if sigsetsize != 8:
        return -errno.EINVAL
    _check_signal(sig)
    if act and sig in (abi.SIGKILL, abi.SIGSTOP):
        return -errno.EINVAL
    new = p.mem.read(act, abi.SIGACTION_SIZE) if act else None
    if oact:
        p.mem.write(oact, p.s.sigactions.get(sig, bytes(abi.SIGACTION_SIZE)))
    if new is not None:
        p.s.sigactions[sig] = new
        if int.from_bytes(new[:8], "little") == abi.SIG_IGN:
            p.s.sigpending &= ~(1 << (sig - 1))
    return 0


@syscall("rt_sigprocmask")
def sys_rt_sigprocmask(p: Process, how: I32, set_: Ptr, oset: Ptr, sigsetsize: U64) -> int:
    if sigsetsize != 8:
        return -errno.EINVAL
    old = p.s.sigmask
    new = old
    if set_:
        value = struct.unpack("<Q", p.mem.read(set_, 8))[0]
        if how == abi.SIG_BLOCK:
            new = old | value
        elif how == abi.SIG_UNBLOCK:
            new = old & ~value
        elif how == abi.SIG_SETMASK:
            new = value
        else:
            return -errno.EINVAL
    if oset:
        p.mem.write(oset, struct.pack("<Q", old))
    p.s.sigmask = new & ~UNBLOCKABLE & abi.MASK64
    if p.s.sigpending:
        p.deliver_pending()
    return 0


@syscall("rt_sigpending")
def sys_rt_sigpending(p: Process, set_: Ptr, sigsetsize: U64) -> int:
    if sigsetsize > 8:
        return -errno.EINVAL
    p.mem.write(set_, struct.pack("<Q", p.s.sigpending & p.s.sigmask)[:sigsetsize])
    return 0


@syscall("sigaltstack")
def sys_sigaltstack(p: Process, ss: Ptr, old_ss: Ptr) -> int:
    new = p.mem.read(ss, abi.SIGALTSTACK_SIZE) if ss else None
    if old_ss:
        p.mem.write(old_ss, p.s.altstack or struct.pack("<QiiQ", 0, abi.SS_DISABLE, 0, 0))
    if new is not None:
        p.s.altstack = new
    return 0


def _signal_self(p: Process, sig: int, code: int = SI_USER) -> int:
    if not 0 <= sig <= abi.NSIG:
        return -errno.EINVAL
    if sig:
        p.deliver(sig, code)
    return 0


@syscall("kill")
def sys_kill(p: Process, pid: I32, sig: I32) -> int:
    me = p.s.ids[0]
    if pid in (me, 0, -1, -me):
        return _signal_self(p, sig)
    return -errno.EPERM  # other processes are out of the guest's reach


def _signal_thread(p: Process, tid: int, sig: int) -> int:
    if not 0 <= sig <= abi.NSIG:
        return -errno.EINVAL
    if sig and tid != p.tid:
        raw = p.s.sigactions.get(sig)
        handler = int.from_bytes(raw[:8], "little") if raw else abi.SIG_DFL
        if handler not in (abi.SIG_DFL, abi.SIG_IGN):
            # Its handler must run in that thread (glibc's SIGCANCEL acts on the thread it
            # runs in), and threads other than the caller get no signal frames yet.
            p.warn_once(-sig, f"syxdbg: warning: signal {sig} has a handler; delivery to "
                              "a thread other than the caller is not emulated, the signal "
                              "is discarded\n")
            return 0
    return _signal_self(p, sig, SI_TKILL)


@syscall("tgkill")
def sys_tgkill(p: Process, tgid: I32, tid: I32, sig: I32) -> int:
    if tgid <= 0 or tid <= 0:
        return -errno.EINVAL
    if tgid != p.s.ids[0] or not p.has_thread(tid):
        return -errno.ESRCH
    return _signal_thread(p, tid, sig)


@syscall("tkill")
def sys_tkill(p: Process, tid: I32, sig: I32) -> int:
    if tid <= 0:
        return -errno.EINVAL
    if not p.has_thread(tid):
        return -errno.ESRCH
    return _signal_thread(p, tid, sig)


@syscall("rt_sigreturn")
def sys_rt_sigreturn(p: Process) -> None:
    """Back from a handler: every register comes from the frame (no return value)."""
    p.return_from_handler()
