"""Signal dispositions, mask, alternate stack, kill/tkill/tgkill (signals the process sends
itself or one of its threads: a signal to a thread acts as one to the process) and
rt_sigreturn. A signal with a guest handler runs it when the system call that raised or
unblocked it returns (plugins/linux/sigframe.py builds Linux's signal frames).
"""

from __future__ import annotations

import errno
import signal
import struct

from .. import abi, sigframe
from ..kernel import UNBLOCKABLE, Process
from ..registry import I32, U32, U64, Ptr, SyscallError, syscall
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
    size = sigframe.sigaction_size(p.arch)
    new = sigframe.sigaction_from_guest(p.arch, p.mem.read(act, size)) if act else None
    if oact:
        stored = p.s.sigactions.get(sig, bytes(abi.SIGACTION_SIZE))
        p.mem.write(oact, sigframe.sigaction_to_guest(p.arch, stored))
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
    size = sigframe.stack_size(p.arch)
    new = sigframe.stack_from_guest(p.arch, p.mem.read(ss, size)) if ss else None
    current = p.s.altstack or struct.pack("<QiiQ", 0, abi.SS_DISABLE, 0, 0)
    base, flags, _, length = struct.unpack("<QiiQ", current)
    sp = p.stack_pointer()
    on_stack = not flags & abi.SS_DISABLE and base < sp <= base + length
    if new is not None:
        _, nflags, _, nsize = struct.unpack("<QiiQ", new)
        mode = nflags & ~sigframe.SS_AUTODISARM
        if mode not in (0, sigframe.SS_ONSTACK, abi.SS_DISABLE):
            return -errno.EINVAL
        if on_stack:
            return -errno.EPERM  # not while running on it
        if mode != abi.SS_DISABLE and nsize < MINSIGSTKSZ.get(p.arch, 2048):
            return -errno.ENOMEM
    if old_ss:
        shown = struct.pack("<QiiQ", base, flags | (sigframe.SS_ONSTACK if on_stack else 0),
                            0, length)
        p.mem.write(old_ss, sigframe.stack_to_guest(p.arch, shown))
    if new is not None:
        p.s.altstack = new
    return 0


#: The smallest alternate stack Linux accepts (MINSIGSTKSZ), per architecture.
MINSIGSTKSZ = {"x86_64": 2048, "aarch64": 5120, "arm": 2048, "riscv64": 2048}


def _signal_self(p: Process, sig: int, code: int = SI_USER) -> int:
    if not 0 <= sig <= abi.NSIG:
        return -errno.EINVAL
    if sig:
        p.deliver(sig, code)
    return 0


@syscall("kill")
def sys_kill(p: Process, pid: I32, sig: I32) -> int:
    """kill: a process (pid > 0), the caller's group (0), a group (< -1) or every process
    but the first of the tree (-1, as every process the caller may signal but init)."""
    if not 0 <= sig <= abi.NSIG:
        return -errno.EINVAL
    me = p.pid
    if pid > 0:
        if pid not in p.process_ids():
            # Outside the emulated tree: init exists and may not be signalled; any other
            # process does not exist for the guest.
            return -errno.EPERM if pid == 1 else -errno.ESRCH
        targets = [pid]
    elif pid == -1:
        targets = [q for q in p.process_ids() if q != me] + [me]
    else:
        group = -pid if pid < -1 else (p.s.pgid or me)
        targets = p.group_members(group)
    if not targets:
        return -errno.ESRCH
    # The caller last: a fatal signal to itself ends it after the others got theirs.
    for target in sorted(targets, key=lambda q: q == me):
        if target == me:
            _signal_self(p, sig)
        else:
            p.signal_process(target, sig)
    return 0


def _signal_thread(p: Process, tid: int, sig: int) -> int:
    if not 0 <= sig <= abi.NSIG:
        return -errno.EINVAL
    if sig and tid != p.tid and p.sigaction(sig).handler not in (abi.SIG_DFL, abi.SIG_IGN):
        # Its handler must run in that thread (glibc's SIGCANCEL acts on the thread it
        # runs in): pending on it until it runs (syscalls/threads.py).
        from .threads import signal_thread

        signal_thread(p, tid, sig)
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


@syscall("sigreturn")
def sys_sigreturn(p: Process) -> int | None:
    """arm: back from a handler registered without SA_SIGINFO (its frame has no siginfo)."""
    if p.arch != "arm":
        return -errno.ENOSYS
    p.return_from_handler(rt=False)
    return None


# -- timer signals and waiting for a signal --------------------------------------------------
ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF = 0, 1, 2
_NS = 1_000_000_000


def _timeval(p: Process) -> str:
    """struct timeval's two fields: 32-bit on arm (glibc's time32 setitimer), else 64."""
    return "ii" if p.arch == "arm" else "qq"


def _pack_timeval(p: Process, ns: int) -> bytes:
    return struct.pack("<" + _timeval(p), ns // _NS, ns % _NS // 1000)


def _itimerval_size(p: Process) -> int:
    return 2 * struct.calcsize("<" + _timeval(p))


def _unpack_itimerval(p: Process, raw: bytes) -> tuple[int, int]:
    """(interval, value) in ns from a ``struct itimerval``; EINVAL for bad microseconds."""
    isec, iusec, vsec, vusec = struct.unpack("<" + 2 * _timeval(p), raw)
    if not (0 <= iusec < 1_000_000 and 0 <= vusec < 1_000_000) or isec < 0 or vsec < 0:
        raise SyscallError(errno.EINVAL)
    return isec * _NS + iusec * 1000, vsec * _NS + vusec * 1000


def _itimer_left(p: Process) -> tuple[int, int]:
    """(interval, time left) of ITIMER_REAL in ns; (x, 0) when disarmed."""
    deadline, interval = p.s.itimer_real
    if not deadline:
        return interval, 0
    return interval, max(1000, deadline - p.monotonic())


@syscall("setitimer")
def sys_setitimer(p: Process, which: I32, new: Ptr, old: Ptr) -> int:
    if which not in (ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF):
        return -errno.EINVAL
    size = _itimerval_size(p)
    interval, value = _unpack_itimerval(p, p.mem.read(new, size)) if new else (0, 0)
    if which != ITIMER_REAL:
        # CPU-time timers: accepted, never fire (one warning): the guest's CPU time is not
        # modelled (its clocks are the host's).
        p.warn_once(-1000 - which, f"syxdbg: warning: setitimer({which}) (CPU-time timer) "
                                   "is accepted but never fires\n")
        if old:
            p.mem.write(old, bytes(size))
        return 0
    if old:
        left_interval, left = _itimer_left(p)
        p.mem.write(old, _pack_timeval(p, left_interval) + _pack_timeval(p, left))
    p.arm_itimer(value, interval)
    return 0


@syscall("getitimer")
def sys_getitimer(p: Process, which: I32, cur: Ptr) -> int:
    if which not in (ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF):
        return -errno.EINVAL
    interval, left = _itimer_left(p) if which == ITIMER_REAL else (0, 0)
    p.mem.write(cur, _pack_timeval(p, interval) + _pack_timeval(p, left))
    return 0


# -- POSIX timers ------------------------------------------------------------------------------
SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD, SIGEV_THREAD_ID = 0, 1, 2, 4
#: Clocks a timer may use: REALTIME, MONOTONIC, BOOTTIME (and their _ALARM forms); the
#: CPU-time clocks are accepted and never fire (the guest's CPU time is not modelled).
_TIMER_CLOCKS = frozenset({0, 1, 7, 8, 9})
_CPU_CLOCKS = frozenset({2, 3})
#: Most timers a process may have (Linux: RLIMIT_SIGPENDING; plenty for programs).
_MAX_TIMERS = 4096


@syscall("timer_create")
def sys_timer_create(p: Process, clock: I32, sevp: Ptr, timerid: Ptr) -> int:
    """A POSIX timer on ``clock`` that raises its signal (SIGEV_SIGNAL, SIGEV_THREAD_ID:
    to the process), nothing (SIGEV_NONE); default SIGALRM with the id as value. Expiries
    are compared with the recorded host clock where ITIMER_REAL's are."""
    if clock not in _TIMER_CLOCKS | _CPU_CLOCKS and clock >= 0:
        return -errno.EINVAL
    if clock < 0:  # a process or thread CPU clock id (clock_getcpuclockid)
        clock = 2
    ids = p.s.timers
    tid = next(i for i in range(len(ids) + 1) if i not in ids)
    if tid >= _MAX_TIMERS:
        return -errno.EAGAIN
    sig, value = int(signal.SIGALRM), tid
    if sevp:
        if p.arch == "arm":
            value, signo, notify = struct.unpack("<iii", p.mem.read(sevp, 12))
        else:
            value, signo, notify = struct.unpack("<qii", p.mem.read(sevp, 16))
        if notify == SIGEV_NONE:
            sig = 0
        elif notify in (SIGEV_SIGNAL, SIGEV_THREAD_ID, SIGEV_SIGNAL | SIGEV_THREAD_ID):
            if not 1 <= signo <= abi.NSIG:
                return -errno.EINVAL
            sig = signo
        else:  # SIGEV_THREAD is the C library's business (it uses SIGEV_THREAD_ID)
            return -errno.EINVAL
    if clock in _CPU_CLOCKS:
        p.warn_once(-1100 - clock, "syxdbg: warning: a timer on a CPU-time clock is accepted "
                                   "but never fires\n")
        sig = 0
    p.mem.write(timerid, struct.pack("<i", tid))
    ids[tid] = (clock, sig, value, 0, 0, 0)
    return 0


def _timer(p: Process, tid: int) -> tuple[int, int, int, int, int, int]:
    t = p.s.timers.get(tid)
    if t is None:
        raise SyscallError(errno.EINVAL)
    return t


def _itimerspec(p: Process, interval: int, left: int) -> bytes:
    return p.pack_timespec(interval) + p.pack_timespec(left)


@syscall("timer_settime", "timer_settime64")
def sys_timer_settime(p: Process, tid: I32, flags: I32, new: Ptr, old: Ptr) -> int:
    _timer(p, tid)
    if flags & ~1:  # TIMER_ABSTIME
        return -errno.EINVAL
    size = 2 * p.timespec_size
    isec, insec = p.read_timespec(new)
    vsec, vnsec = p.read_timespec(new + size // 2)
    if min(isec, vsec) < 0 or not (0 <= insec < _NS and 0 <= vnsec < _NS):
        return -errno.EINVAL
    left, interval = p.set_posix_timer(tid, vsec * _NS + vnsec, isec * _NS + insec,
                                       absolute=bool(flags & 1))
    if old:
        p.mem.write(old, _itimerspec(p, interval, left))
    return 0


@syscall("timer_gettime", "timer_gettime64")
def sys_timer_gettime(p: Process, tid: I32, cur: Ptr) -> int:
    _, _, _, deadline, interval, _ = _timer(p, tid)
    left = max(deadline - p.monotonic(), 1) if deadline else 0
    p.mem.write(cur, _itimerspec(p, interval, left))
    return 0


@syscall("timer_getoverrun")
def sys_timer_getoverrun(p: Process, tid: I32) -> int:
    return min(_timer(p, tid)[5], 0x7FFFFFFF)


@syscall("timer_delete")
def sys_timer_delete(p: Process, tid: I32) -> int:
    _timer(p, tid)
    del p.s.timers[tid]
    return 0


@syscall("alarm")
def sys_alarm(p: Process, seconds: U32) -> int:
    _, left = _itimer_left(p)
    p.arm_itimer(seconds * _NS, 0)
    # Linux rounds what was left to the nearest second, and never reports 0 for a set one.
    return (left + _NS // 2) // _NS or (1 if left else 0)


@syscall("pause")
def sys_pause(p: Process) -> int:
    return p.wait_for_signal(p.s.sigmask)


@syscall("rt_sigtimedwait", "rt_sigtimedwait_time64")
def sys_rt_sigtimedwait(p: Process, mask: Ptr, info: Ptr, timeout: Ptr,
                        sigsetsize: U64) -> int | None:
    """Wait for a signal of the set (they are normally blocked) and take it without its
    handler: its number, its siginfo at ``info``; EAGAIN when ``timeout`` passes (virtual
    time, as futex timeouts) or at once with a zero timeout."""
    if sigsetsize != 8:
        return -errno.EINVAL
    wanted = struct.unpack("<Q", p.mem.read(mask, 8))[0] & ~UNBLOCKABLE & abi.MASK64
    ns = -1
    if timeout:
        sec, nsec = p.read_timespec(timeout)
        if sec < 0 or not 0 <= nsec < _NS:
            return -errno.EINVAL
        ns = sec * _NS + nsec
    got = p.wait_for_signal_in(wanted, ns)
    if got is None:
        return None
    sig, raw = got
    if info:
        p.mem.write(info, raw)
    return sig


@syscall("rt_sigsuspend")
def sys_rt_sigsuspend(p: Process, mask: Ptr, sigsetsize: U64) -> int:
    if sigsetsize != 8:
        return -errno.EINVAL
    new = struct.unpack("<Q", p.mem.read(mask, 8))[0] & ~UNBLOCKABLE & abi.MASK64
    return p.wait_for_signal(new)
