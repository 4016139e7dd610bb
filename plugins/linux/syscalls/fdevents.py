"""Event descriptors: eventfd/eventfd2, timerfd_create/settime/gettime, signalfd/signalfd4.

Each is an emulated open file (no host fd) whose state is its ``data``, so it is saved and
restored with the file table and a replay needs nothing but the recorded clock:

* ``eventfd``: the 64-bit counter and the EFD_SEMAPHORE flag. A read of a zero counter (or
  a write that would overflow it) waits as a read of an empty pipe does
  (``Process.wait_io``): another thread's write wakes it; alone, it is a deadlock report
  (a native run would hang).
* ``timerfd``: the clock id, the deadline on that clock (ns, 0: disarmed) and the interval.
  The clock is the host's (a recorded input, as ITIMER_REAL's): expirations are counted
  from it at each read or readiness question, so a replay gives the same counts at the same
  positions without waiting. A blocking read before the deadline, alone, sleeps on the
  host until it, as nanosleep does (a replay does not sleep); while other threads can run
  it parks and the scheduler reads the clock for it (syscalls/poll.py, register_timers).
* ``signalfd``: the signal mask. Signals the program blocked stay pending in the process
  (``ProcessState.sigpending``); a read takes them from there, lowest first, as
  ``struct signalfd_siginfo``. Nothing pending: with ITIMER_REAL armed for a watched
  SIGALRM the read sleeps until it fires; otherwise it waits as eventfd does.

``read``/``write`` of these files come here from ``syscalls/files.py`` (:data:`READERS`,
:data:`WRITERS`); readiness for poll/select/epoll is :func:`readiness`.
"""

from __future__ import annotations

import errno
import signal
import struct
from collections.abc import Callable
from typing import Any, Protocol

from .. import abi
from ..kernel import UNBLOCKABLE, OpenFile, Process
from ..preempt import PENDING_KEY
from ..registry import I32, U32, U64, Fd, Ptr, SyscallError, syscall

POLLIN, POLLOUT = 0x1, 0x4
_RDNORM, _WRNORM = 0x40, 0x100
_CLOEXEC = 0o2000000
_NONBLOCK = 0o4000  # O_NONBLOCK's value on x86_64, aarch64, arm and riscv64
EFD_SEMAPHORE = 1
_EVENTFD_MAX = (1 << 64) - 2
TFD_TIMER_ABSTIME = 1
TFD_TIMER_CANCEL_ON_SET = 2
#: Clocks a timerfd may use (CLOCK_REALTIME, MONOTONIC, BOOTTIME, REALTIME_ALARM,
#: BOOTTIME_ALARM), and the host clock each one is read from.
_TIMER_CLOCKS = {0: 0, 1: 1, 7: 7, 8: 0, 9: 7}
_SIGINFO_SIZE = 128
_SI_TKILL = -6

#: The kinds of open file this module serves.
KINDS = frozenset({"eventfd", "timerfd", "signalfd"})

_EVENTFD = struct.Struct("<QI")
_TIMERFD = struct.Struct("<iqq")  # clock id, deadline (ns on that clock, 0: off), interval


def _nonblocking(p: Process, f: OpenFile) -> bool:
    return bool(f.flags & abi.guest_flag(p.arch, "O_NONBLOCK"))


def _open(p: Process, kind: str, flags: int, data: bytes) -> int:
    gflags = 2 | (abi.guest_flag(p.arch, "O_NONBLOCK") if flags & _NONBLOCK else 0)
    f = p.new_file(kind, None, gflags, -1, owned=False, data=data)
    return p.install_fd(f, cloexec=bool(flags & _CLOEXEC))


def _wait(p: Process, fd: int) -> None:
    """The calling thread waits until another thread writes or closes a file, then makes
    the call again; with no other thread that can run, the scheduler reports a deadlock."""
    p.wait_io(fd)


# -- eventfd ------------------------------------------------------------------------------------
@syscall("eventfd2")
def sys_eventfd2(p: Process, initval: U32, flags: I32) -> int:
    if flags & ~(_CLOEXEC | _NONBLOCK | EFD_SEMAPHORE):
        return -errno.EINVAL
    return _open(p, "eventfd", flags, _EVENTFD.pack(initval, flags & EFD_SEMAPHORE))


@syscall("eventfd")
def sys_eventfd(p: Process, initval: U32) -> int:
    return sys_eventfd2(p, initval, 0)


def _eventfd_read(p: Process, f: OpenFile, fd: int, buf: int, count: int) -> int | None:
    if count < 8:
        return -errno.EINVAL
    value, sem = _EVENTFD.unpack(f.data or bytes(12))
    if value == 0:
        if _nonblocking(p, f):
            return -errno.EAGAIN
        _wait(p, fd)
        return None
    got = 1 if sem else value
    p.mem.write(buf, struct.pack("<Q", got))
    f.data = _EVENTFD.pack(value - got, sem)
    return 8


def _eventfd_write(p: Process, f: OpenFile, fd: int, buf: int, count: int) -> int:
    if count < 8:
        return -errno.EINVAL
    add = struct.unpack("<Q", p.mem.read(buf, 8))[0]
    if add == (1 << 64) - 1:
        return -errno.EINVAL
    value, sem = _EVENTFD.unpack(f.data or bytes(12))
    if value + add > _EVENTFD_MAX:
        # (A blocking write would wait for a read; a counter this close to 2**64 is not
        # worth a waiting writer: it fails as a non-blocking one does.)
        return -errno.EAGAIN
    f.data = _EVENTFD.pack(value + add, sem)
    return 8


# -- timerfd ------------------------------------------------------------------------------------
def _timer(p: Process, fd: int) -> OpenFile:
    f = p.file(fd)
    if f.kind != "timerfd":
        raise SyscallError(errno.EINVAL)
    return f


def _clock(p: Process, clockid: int) -> int:
    return int(p.host.clock(_TIMER_CLOCKS[clockid]))


def _expirations(p: Process, f: OpenFile, take: bool) -> tuple[int, int]:
    """(expirations since the last read, ns until the next one or -1: disarmed), reading
    the clock once if armed; ``take``: a read, which consumes them (re-arming or disarming)."""
    clockid, deadline, interval = _TIMERFD.unpack(f.data or bytes(_TIMERFD.size))
    if not deadline:
        return 0, -1
    now = _clock(p, clockid)
    if now < deadline:
        return 0, deadline - now
    ticks = 1 + ((now - deadline) // interval if interval else 0)
    nxt = deadline + ticks * interval if interval else 0
    if take:
        f.data = _TIMERFD.pack(clockid, nxt, interval)
    return ticks, (nxt - now) if nxt else -1


def _itimerspec(p: Process, ptr: int) -> tuple[int, int]:
    """(interval, value) in ns of a guest ``struct itimerspec``."""
    size = p.timespec_size
    parts = []
    for i in range(2):
        sec, nsec = p.read_timespec(ptr + i * size)
        if sec < 0 or not 0 <= nsec < 1_000_000_000:
            raise SyscallError(errno.EINVAL)
        parts.append(sec * 1_000_000_000 + nsec)
    return parts[0], parts[1]


def _current(p: Process, f: OpenFile) -> bytes:
    """The guest's ``struct itimerspec`` of the timer now: (interval, time to the next
    expiration), as timerfd_gettime reports it."""
    _, deadline, interval = _TIMERFD.unpack(f.data or bytes(_TIMERFD.size))
    left = 0
    if deadline:
        _, left = _expirations(p, f, take=False)
        left = max(left, 0)  # -1: expired, no interval: it_value is 0
    return p.pack_timespec(interval) + p.pack_timespec(left)


@syscall("timerfd_create")
def sys_timerfd_create(p: Process, clockid: I32, flags: I32) -> int:
    if clockid not in _TIMER_CLOCKS:
        return -errno.EINVAL
    if flags & ~(_CLOEXEC | _NONBLOCK):
        return -errno.EINVAL
    return _open(p, "timerfd", flags, _TIMERFD.pack(clockid, 0, 0))


@syscall("timerfd_settime")
def sys_timerfd_settime(p: Process, fd: Fd, flags: I32, new: Ptr, old: Ptr) -> int:
    f = _timer(p, fd)
    if flags & ~(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET):
        return -errno.EINVAL
    interval, value = _itimerspec(p, new)
    if old:
        p.mem.write(old, _current(p, f))
    clockid = _TIMERFD.unpack(f.data or bytes(_TIMERFD.size))[0]
    if value == 0:
        deadline = 0
    elif flags & TFD_TIMER_ABSTIME:
        deadline = value
    else:
        deadline = _clock(p, clockid) + value
    f.data = _TIMERFD.pack(clockid, deadline, interval if deadline else 0)
    return 0


@syscall("timerfd_gettime", "arm:timerfd_gettime64")
def sys_timerfd_gettime(p: Process, fd: Fd, cur: Ptr) -> int:
    p.mem.write(cur, _current(p, _timer(p, fd)))
    return 0


# 32-bit ARM: timerfd_settime/gettime take the 32-bit struct itimerspec (time32), their
# *_time64 twins the 64-bit one (the generic handlers: the kernel sets time32 per call).
syscall("arm:timerfd_settime64")(sys_timerfd_settime)


@syscall("arm:timerfd_settime")
def sys_timerfd_settime32(p: Process, fd: Fd, flags: I32, new: Ptr, old: Ptr) -> int:
    p.time32 = True
    return sys_timerfd_settime(p, fd, flags, new, old)


@syscall("arm:timerfd_gettime")
def sys_timerfd_gettime32(p: Process, fd: Fd, cur: Ptr) -> int:
    p.time32 = True
    return sys_timerfd_gettime(p, fd, cur)


def _timerfd_read(p: Process, f: OpenFile, fd: int, buf: int, count: int) -> int | None:
    if count < 8:
        return -errno.EINVAL
    poll = PARKING  # (syscalls/poll.py: it imports this module, never the other way)
    assert poll is not None, "syscalls.poll sets PARKING when it is imported"
    poll.clear_host_set(p)
    while True:
        ticks, left = _expirations(p, f, take=True)
        if ticks:
            p.mem.write(buf, struct.pack("<Q", ticks))
            p.yield_cpu()  # it may have slept: as after nanosleep, others get their turn
            return 8
        if _nonblocking(p, f):
            return -errno.EAGAIN
        if left < 0:  # disarmed: only another thread's timerfd_settime could change that
            _wait(p, fd)
            return None
        if p.s.threads and poll.others_runnable(p):
            poll.register_timers(p, fd, [fd])  # the scheduler reads the clock for it
            _wait(p, fd)
            return None
        try:
            p.host.sleep(left)  # as nanosleep: a replay does not wait
        except OSError as exc:
            if exc.errno != errno.EINTR:
                raise
            poll.restart(p)  # Ctrl-C, a debugger's interrupt: read again when resumed
            return None


def _timerfd_write(p: Process, f: OpenFile, fd: int, buf: int, count: int) -> int:
    return -errno.EINVAL


# -- signalfd -----------------------------------------------------------------------------------
def _signalfd(p: Process, fd: int, mask_ptr: int, size: int, flags: int) -> int:
    if size != 8 or flags & ~(_CLOEXEC | _NONBLOCK):
        return -errno.EINVAL
    mask = struct.unpack("<Q", p.mem.read(mask_ptr, 8))[0] & ~UNBLOCKABLE & abi.MASK64
    if fd == -1:
        return _open(p, "signalfd", flags, struct.pack("<Q", mask))
    f = p.file(fd)
    if f.kind != "signalfd":
        return -errno.EINVAL
    f.data = struct.pack("<Q", mask)
    return fd


@syscall("signalfd4")
def sys_signalfd4(p: Process, fd: I32, mask: Ptr, size: U64, flags: I32) -> int:
    return _signalfd(p, fd, mask, size, flags)


@syscall("signalfd")
def sys_signalfd(p: Process, fd: I32, mask: Ptr, size: U64) -> int:
    return _signalfd(p, fd, mask, size, 0)


def _watched(f: OpenFile) -> int:
    return int(struct.unpack("<Q", f.data or bytes(8))[0])


def _siginfo(p: Process, sig: int, code: int) -> bytes:
    """A ``struct signalfd_siginfo`` (128 bytes) for ``sig`` raised with ``code``."""
    pid = uid = 0
    if code in (0, _SI_TKILL):  # SI_USER (kill), SI_TKILL: the sender is this process
        pid, uid = p.s.ids[0], p.s.ids[2]
    head = struct.pack("<IiiIIiIIIIii", sig, 0, code, pid, uid, 0, 0, 0, 0, 0, 0, 0)
    return head + bytes(_SIGINFO_SIZE - len(head))


def _signalfd_read(p: Process, f: OpenFile, fd: int, buf: int, count: int) -> int | None:
    if count < _SIGINFO_SIZE:
        return -errno.EINVAL
    mask = _watched(f)
    s = p.s
    alarm = 1 << (signal.SIGALRM - 1)
    if not (s.sigpending | _own(p)) & mask and not _nonblocking(p, f) and mask & alarm \
            and s.itimer_real[0]:
        left = s.itimer_real[0] - p.monotonic()
        if left > 0:
            p.host.sleep(left)  # as pause() with ITIMER_REAL armed
        p.poll_itimer(p._machine.position, force=True)
    out = b""
    # Linux takes the thread's own pending signals (tgkill, raise) before the process's,
    # each set lowest first.
    own = _own(p) & mask
    ready = [sig for sig in range(1, abi.NSIG + 1) if (s.sigpending | own) & mask
             & 1 << (sig - 1)]
    ready.sort(key=lambda sig: (not own >> (sig - 1) & 1
                                and s.sigcodes.get(sig, 0) != _SI_TKILL, sig))
    key = f"{PENDING_KEY}{p.tid}"
    for sig in ready[:count // _SIGINFO_SIZE]:
        bit = 1 << (sig - 1)
        if own & bit:  # sent to this thread alone (tgkill): taken from its own set
            own &= ~bit
            left = s.misc.get(key, 0) & ~bit
            if left:
                s.misc[key] = left
            else:
                s.misc.pop(key, None)
            out += _siginfo(p, sig, _SI_TKILL)
            continue
        s.sigpending &= ~bit
        out += _siginfo(p, sig, s.sigcodes.pop(sig, 0))
    if not out:
        if _nonblocking(p, f):
            return -errno.EAGAIN
        _wait(p, fd)
        return None
    p.mem.write(buf, out)
    return len(out)


def _signalfd_write(p: Process, f: OpenFile, fd: int, buf: int, count: int) -> int:
    return -errno.EINVAL


class Parking(Protocol):
    """What a blocking timerfd read needs of the scheduler's host waits (syscalls/poll.py,
    which installs itself as :data:`PARKING` when imported)."""

    def clear_host_set(self, p: Process) -> None: ...

    def restart(self, p: Process) -> None: ...

    def others_runnable(self, p: Process) -> bool: ...

    def register_timers(self, p: Process, key_fd: int, fds: list[int]) -> None: ...


#: syscalls/poll.py (set by it; the dispatch package imports both).
PARKING: Parking | None = None


# -- read/write/readiness, for files.py and poll.py ------------------------------------------------
Reader = Callable[[Process, OpenFile, int, int, int], "int | None"]
Writer = Callable[[Process, OpenFile, int, int, int], int]
#: read(2) of each kind: (p, file, fd, buffer, count) -> result (None: the thread waits).
READERS: dict[str, Reader] = {"eventfd": _eventfd_read, "timerfd": _timerfd_read,
                          "signalfd": _signalfd_read}
#: write(2) of each kind.
WRITERS: dict[str, Writer] = {"eventfd": _eventfd_write, "timerfd": _timerfd_write,
                          "signalfd": _signalfd_write}


def _own(p: Process) -> int:
    """Signals sent to the calling thread alone (tgkill of a signal it handles, while it
    was not running: preempt.PENDING_KEY), still pending on it."""
    return p.s.misc.get(f"{PENDING_KEY}{p.tid}", 0) if p.s.misc else 0


def pending_for(st: Any, tid: int) -> int:
    """The signals a signalfd read of thread ``tid`` of process state ``st`` could take:
    the process's and those sent to that thread alone."""
    return int(st.sigpending) | st.misc.get(f"{PENDING_KEY}{tid}", 0)


def watched(f: OpenFile) -> int:
    """The signal mask of signalfd ``f``."""
    return _watched(f)


def readiness(p: Process, f: OpenFile) -> int:
    """poll events of an event file now (timerfd: reads the clock if armed)."""
    if f.kind == "eventfd":
        value, _ = _EVENTFD.unpack(f.data or bytes(12))
        return (POLLIN | _RDNORM if value else 0) | (
            POLLOUT | _WRNORM if value < _EVENTFD_MAX else 0)
    if f.kind == "timerfd":
        return POLLIN | _RDNORM if _expirations(p, f, take=False)[0] else 0
    if f.kind == "signalfd":
        return POLLIN | _RDNORM if (p.s.sigpending | _own(p)) & _watched(f) else 0
    return 0


def timer_peek(p: Process, f: OpenFile) -> tuple[int, int]:
    """(expirations not yet read, ns until the next one or -1) of timerfd ``f``."""
    return _expirations(p, f, take=False)
