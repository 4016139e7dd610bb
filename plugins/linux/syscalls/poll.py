"""Readiness: poll, ppoll, select, pselect6.

Which fds are ready is decided in one place (:func:`_readiness`): regular files,
directories and ``/proc`` files are always ready (as on Linux); a guest pipe whose write end
the guest closed is ``POLLHUP``; pipes, the inherited stdio and devices (``/dev/*``) are asked
of the host through :meth:`HostIO.poll`, a recorded input, so a replay or a re-execution
gets the same answers without touching the host.

Waiting (:func:`_wait`): nothing ready and a timeout:

* other threads can run: the caller waits as for an empty pipe (``Process.wait_io``) and
  polls again after a thread writes or closes a file; its timeout runs in virtual time (it
  expires when no thread can run, as a futex timeout, and the call returns 0);
* alone (or every other thread blocked): the host fds are polled with the timeout (a real
  wait: only the outside world can make them ready; the result is recorded, a replay does
  not wait); with only guest pipes, nothing can make them ready: the timeout expires at once
  when other threads exist, a lone thread sleeps it (as nanosleep); no fds at all is a sleep.
"""

from __future__ import annotations

import errno
import struct
import sys
from dataclasses import replace

from .. import abi, kernel
from ..kernel import UNBLOCKABLE, OpenFile, Process, Thread
from ..registry import I32, U32, U64, Ptr, SyscallError, syscall
from . import fdevents

POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL = 1, 2, 4, 8, 0x10, 0x20
POLLRDNORM, POLLRDBAND, POLLWRNORM, POLLWRBAND = 0x40, 0x80, 0x100, 0x200
#: What a file that is always ready reports (Linux's DEFAULT_POLLMASK).
DEFAULT_POLLMASK = POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM
#: Most pollfds (RLIMIT_NOFILE's hard maximum here).
MAX_POLLFDS = 4096
#: select's FD_SETSIZE.
FD_SETSIZE = 1024

# select's classes (fs/select.c): what makes an fd readable, writable, exceptional.
_SEL_IN = POLLRDNORM | POLLRDBAND | POLLIN | POLLHUP | POLLERR
_SEL_OUT = POLLWRBAND | POLLWRNORM | POLLOUT | POLLERR
_SEL_EX = POLLPRI


def _host_polled(kind: str, path: bytes | None) -> bool:
    """Whether readiness of an open file of ``kind`` comes from the host."""
    if kind in ("pipe", "std", "socket"):
        return True
    return kind == "file" and path is not None and path.startswith(b"/dev/")


class _Query:
    """One readiness question over guest fds: ``revents`` per entry, some from the host."""

    def __init__(self, p: Process, entries: list[tuple[int, int]]) -> None:
        self.p = p
        clear_host_set(p)  # (what a parked call of this thread registered is over)
        self.revents = [0] * len(entries)
        #: The guest fd of each entry.
        self.fds = [fd for fd, _ in entries]
        #: (index, file, events) of eventfd/timerfd/signalfd entries (syscalls/fdevents.py).
        self.events: list[tuple[int, OpenFile, int]] = []
        #: ms until the first armed timerfd of the query expires (-1: none).
        self.timer_ms = -1
        #: (index, host fd, host events) of the entries the host answers.
        self.host: list[tuple[int, int, int]] = []
        for i, (fd, events) in enumerate(entries):
            if fd < 0:
                continue
            entry = p.s.fds.get(fd)
            if entry is None:
                self.revents[i] = POLLNVAL
                continue
            f = p.s.files[entry.file]
            if f.kind in fdevents.KINDS:
                self.events.append((i, f, events))
            elif f.kind == "pipe" and p.s.pipe_checks and p.pipe_writer_closed(f):
                # End of file, with data left to read (POLLIN) or none.
                data = f.host_fd >= 0 and p.host.readable(f.host_fd)
                self.revents[i] = POLLHUP | (events & (POLLIN | POLLRDNORM) if data else 0)
            elif _host_polled(f.kind, f.path) and f.host_fd >= 0:
                self.host.append((i, f.host_fd, (events & 0xFFFF) | POLLERR | POLLHUP))
            else:
                self.revents[i] = events & DEFAULT_POLLMASK
        self.refresh()

    def refresh(self) -> None:
        """Readiness of the event files again (a timerfd reads the clock)."""
        self.timer_ms = -1
        for i, f, events in self.events:
            if f.kind == "timerfd":
                ticks, left = fdevents.timer_peek(self.p, f)
                if not ticks and left >= 0:
                    ms = (left + 999_999) // 1_000_000
                    self.timer_ms = ms if self.timer_ms < 0 else min(self.timer_ms, ms)
                self.revents[i] = (POLLIN | POLLRDNORM) & events if ticks else 0
            else:
                self.revents[i] = fdevents.readiness(self.p, f) & (events | POLLERR | POLLHUP)

    def ask(self, timeout_ms: int) -> None:
        """Ask the host about its entries, waiting up to ``timeout_ms`` (-1: forever)."""
        if not self.host:
            return
        query = tuple((hfd, ev) for _, hfd, ev in self.host)
        for (i, _, ev), r in zip(self.host, self.p.host.poll(query, timeout_ms), strict=True):
            self.revents[i] = r & (ev | POLLERR | POLLHUP | POLLNVAL)

    @property
    def ready(self) -> int:
        return sum(1 for r in self.revents if r)


def restart(p: Process) -> None:
    """The calling system call was interrupted while it waited on the host (Ctrl-C, a
    debugger's interrupt: the host wait raised EINTR, a recorded result) before it took
    anything: it is made again when the guest resumes, as Linux restarts a call that a stop
    interrupted. The pc goes back to the system call instruction; the handler then returns
    None (no result is written). A replay meets the same recorded EINTR and does the same."""
    m = p._machine
    back = 2 if p.arch == "x86_64" else m.syscall_insn_size()  # (x86: the hook's pc + 2)
    pc = m.arch.pc
    m.regs[pc] = (m.regs[pc] - back) & abi.MASK64


def interrupted(exc: OSError) -> bool:
    """Whether a host call's error is an interrupt of its wait (see :func:`restart`)."""
    return exc.errno == errno.EINTR


def _others_can_run(p: Process) -> bool:
    return any(not t.wait for t in p.s.threads.values())


def others_runnable(p: Process) -> bool:
    """Whether a thread of any process other than the caller can run now."""
    return any(not t.wait for t in p.s.threads.values()) or any(
        not t.wait for e in p.s.procs.values() for t in e.state.threads.values())


#: ``ProcessState.misc`` keys of the host descriptors a parked poll/select/epoll waits for:
#: "hostpoll.TID.key" = the fd it parked on, "hostpoll.TID.HOSTFD" = poll events.
_SET = "hostpoll."


#: ... and of the timerfds it waits for: "timerpoll.TID.key", "timerpoll.TID.FD" = 1.
_TIMERS = "timerpoll."


#: ... and of the signals its signalfds watch: "sigwatch.TID.key", "sigwatch.TID.mask".
_SIGNALS = "sigwatch."


def clear_host_set(p: Process) -> None:
    """Forget what the calling thread registered when it last parked."""
    if p.s.misc:
        prefixes = (f"{_SET}{p.tid}.", f"{_TIMERS}{p.tid}.", f"{_SIGNALS}{p.tid}.")
        for k in [k for k in p.s.misc if k.startswith(prefixes)]:
            del p.s.misc[k]


def register_timers(p: Process, key_fd: int, fds: list[int]) -> None:
    """The calling thread parks (on ``key_fd``) until one of timerfds ``fds`` expires: the
    scheduler's hook reads their clocks (wake_host_waiters)."""
    prefix = f"{_TIMERS}{p.tid}."
    p.s.misc[prefix + "key"] = key_fd
    for fd in fds:
        p.s.misc[f"{prefix}{fd}"] = 1


def _timer_waits(p: Process, pid: int, t: Thread) -> list[OpenFile]:
    """The timerfds a parked thread waits for (registered with register_timers)."""
    if t.wait != "pipe":
        return []
    st = p.s if pid == p.pid else p.s.procs[pid].state
    prefix = f"{_TIMERS}{t.tid}."
    if st.misc.get(prefix + "key") != t.fd:
        return []
    out = []
    for k in st.misc:
        if k.startswith(prefix) and k != prefix + "key":
            entry = st.fds.get(int(k[len(prefix):]))
            f = p.s.files.get(entry.file) if entry is not None else None
            if f is not None and f.kind == "timerfd":
                out.append(f)
    return out


def _timers_due(p: Process, timers: list[tuple[int, Thread, list[OpenFile]]]
                ) -> tuple[list[tuple[int, Thread]], int]:
    """(threads whose timer expired, ms until the next expiry or -1), reading the clocks."""
    due = []
    first = -1
    for pid, t, files in timers:
        hit = False
        for f in files:
            ticks, left = fdevents.timer_peek(p, f)
            if ticks:
                hit = True
            elif left >= 0:
                ms = (left + 999_999) // 1_000_000
                first = ms if first < 0 else min(first, ms)
        if hit:
            due.append((pid, t))
    return due, first


def _register_signals(p: Process, q: _Query, key_fd: int) -> None:
    """A parked poll/select/epoll with signalfds: the signals they watch, so that a signal
    sent meanwhile (by another thread or process) wakes it (signal_waiters)."""
    mask = 0
    for _, f, _ in q.events:
        if f.kind == "signalfd":
            mask |= fdevents.watched(f)
    if mask:
        p.s.misc[f"{_SIGNALS}{p.tid}.key"] = key_fd
        p.s.misc[f"{_SIGNALS}{p.tid}.mask"] = mask


def signal_waiters(p: Process, others: list[tuple[int, Thread]]) -> list[tuple[int, Thread]]:
    """Parked threads that a pending signal wakes: a blocking read of a signalfd, or a
    poll/select/epoll on signalfds, whose mask takes a signal now pending for that thread
    (its process's, or sent to it alone)."""
    out = []
    for pid, t in others:
        if t.wait != "pipe" or t.fd < 0:
            continue
        st = p.s if pid == p.pid else p.s.procs[pid].state
        if st.misc.get(f"{_SIGNALS}{t.tid}.key") == t.fd:
            mask = st.misc.get(f"{_SIGNALS}{t.tid}.mask", 0)
        else:
            entry = st.fds.get(t.fd)
            f = p.s.files.get(entry.file) if entry is not None else None
            if f is None or f.kind != "signalfd":
                continue
            mask = fdevents.watched(f)
        if fdevents.pending_for(st, t.tid) & mask:
            out.append((pid, t))
    return out


def _register_host_set(p: Process, q: _Query, key_fd: int) -> None:
    prefix = f"{_SET}{p.tid}."
    p.s.misc[prefix + "key"] = key_fd
    for _, hfd, ev in q.host:
        p.s.misc[f"{prefix}{hfd}"] = p.s.misc.get(f"{prefix}{hfd}", 0) | ev


def _host_waits(p: Process, pid: int, t: Thread) -> list[tuple[int, int]]:
    """(host fd, poll events) a parked thread waits for: a blocking socket read
    (syscalls/net.py) or a poll/select/epoll wait with host fds; [] for other waits."""
    if t.wait != "pipe" or t.fd < 0:
        return []
    st = p.s if pid == p.pid else p.s.procs[pid].state
    prefix = f"{_SET}{t.tid}."
    if st.misc.get(prefix + "key") == t.fd:
        return [(int(k[len(prefix):]), v) for k, v in st.misc.items()
                if k.startswith(prefix) and k != prefix + "key"]
    entry = st.fds.get(t.fd)
    f = p.s.files.get(entry.file) if entry is not None else None
    if f is not None and f.kind == "socket" and f.host_fd >= 0:
        return [(f.host_fd, POLLIN | POLLERR | POLLHUP)]
    return []


def host_waiters(p: Process) -> list[tuple[int, Thread, int, int]]:
    """(pid, thread, host fd, poll events) of every thread (of any process) parked on a
    host descriptor (a socket read, write or connect; a poll/select/epoll wait)."""
    threads = [(p.pid, t) for t in p.s.threads.values()] + [
        (pid, t) for pid, e in p.s.procs.items() for t in e.state.threads.values()]
    return [(pid, t, hfd, ev) for pid, t in threads for hfd, ev in _host_waits(p, pid, t)]


def register_host_wait(p: Process, key_fd: int, hfd: int, events: int) -> None:
    """The calling thread parks on guest fd ``key_fd`` until host fd ``hfd`` is ready for
    ``events`` (a blocking send or connect waits for POLLOUT): the scheduler asks."""
    prefix = f"{_SET}{p.tid}."
    p.s.misc[prefix + "key"] = key_fd
    p.s.misc[f"{prefix}{hfd}"] = events


def wake(p: Process, threads: list[tuple[int, Thread]]) -> None:
    """Make parked threads runnable (oldest first): they make their call again."""
    for pid, t in sorted(threads, key=lambda x: x[1].seq):
        st = p.s if pid == p.pid else p.s.procs[pid].state
        p.s.seq += 1
        st.threads[t.tid] = replace(t, wait="", fd=-1, timeout=-1, seq=p.s.seq)


def wake_host_waiters(p: Process, others: list[tuple[int, Thread]], runnable: bool,
                      want: tuple[str, int, int, int]) -> bool:
    """The scheduler is about to choose (kernel.HOST_WAITS): threads parked on host
    descriptors (a blocking socket read, a poll/select/epoll with host fds) are asked of
    the host, one recorded poll, and the ready ones are woken (they make their call
    again). The poll waits on the host only when nothing else could run: with no timed
    wait, until something is ready; when the first timed wait to expire is such a poll,
    for its timeout (then it expires, as on Linux after that time); else not at all."""
    signalled = signal_waiters(p, others)
    if signalled:  # (the host is asked at the next choice)
        wake(p, signalled)
        return True
    waiting = [(pid, t, w) for pid, t in others if (w := _host_waits(p, pid, t))]
    timers = [(pid, t, fs) for pid, t in others if (fs := _timer_waits(p, pid, t))]
    if not waiting and not timers:
        return False
    due, timer_ms = _timers_due(p, timers) if timers else ([], -1)
    if due:
        wake(p, due)
        return True
    kind, _, _, timeout = want
    timed = [(pid, t) for pid, t in others if t.timeout >= 0]
    wait_ms = 0
    if not runnable and kind != "yield" and not (kind in ("futex", "pipe") and timeout >= 0):
        if not timed:
            wait_ms = -1
        else:
            first = min(timed, key=lambda x: (x[1].timeout, x[1].seq))[1]
            if any(t.tid == first.tid for _, t, _ in waiting):
                wait_ms = min((first.timeout + 999_999) // 1_000_000, 0x7FFFFFFF)
        if timer_ms >= 0:  # a parked timerfd wait expires first
            wait_ms = timer_ms if wait_ms < 0 else min(wait_ms, timer_ms)
    if not waiting:
        if wait_ms > 0:
            try:
                p.host.sleep(wait_ms * 1_000_000)  # as nanosleep: a replay does not wait
            except OSError as exc:  # Ctrl-C: the session stops; they try again later
                if not interrupted(exc):
                    raise
                wake(p, [(pid, t) for pid, t, _ in timers])
                return True
        due, _ = _timers_due(p, timers)
        wake(p, due)
        return bool(due)
    events: dict[int, int] = {}
    for _, _, w in waiting:
        for hfd, ev in w:
            events[hfd] = events.get(hfd, 0) | ev | POLLERR | POLLHUP
    fds = tuple(sorted(events))
    try:
        answers = p.host.poll(tuple((h, events[h]) for h in fds), wait_ms)
    except OSError as exc:  # Ctrl-C: the session stops; every one tries again later
        if not interrupted(exc):
            raise
        answers = tuple(POLLIN for _ in fds)
    ready = {h for h, r in zip(fds, answers, strict=True) if r}
    woken = [(pid, t) for pid, t, w in waiting if any(h in ready for h, _ in w)]
    if timers and wait_ms:
        due, _ = _timers_due(p, timers)
        woken += [x for x in due if all(x[1].tid != t.tid for _, t in woken)]
    wake(p, woken)
    return bool(woken)


kernel.HOST_WAITS = wake_host_waiters


def _wait(p: Process, q: _Query, timeout_ms: int, key_fd: int) -> bool:
    """Nothing was ready: wait as the module doc says. False: the caller waits in the
    scheduler (the handler returns None: it runs again when woken, or returns 0 when its
    timeout expires); True: ``q`` holds the final answer."""
    if timeout_ms == 0:
        return True
    if q.timer_ms >= 0:
        return _wait_timer(p, q, timeout_ms, key_fd)
    if p.s.threads and _others_can_run(p):
        if q.host:  # the scheduler asks the host about them (wake_host_waiters)
            _register_host_set(p, q, key_fd)
        _register_signals(p, q, key_fd)
        p.wait_io(key_fd, timeout_ms * 1_000_000 if timeout_ms > 0 else -1)
        return False
    if q.host:
        try:
            q.ask(timeout_ms)
        except OSError as exc:
            if not interrupted(exc):
                raise
            restart(p)  # Ctrl-C: made again when the guest resumes
            return False
        return True
    if p.s.threads:  # only guest files; every other thread blocked: nothing can change them
        if timeout_ms < 0:
            _register_signals(p, q, key_fd)  # (unless a timed wait ends and signals)
            p.wait_io(key_fd)  # a deadlock unless a timed wait elsewhere expires first
            return False
        return True
    if timeout_ms > 0:
        try:
            p.host.sleep(timeout_ms * 1_000_000)
        except OSError as exc:
            if not interrupted(exc):
                raise
            restart(p)
            return False
    return True


def _wait_timer(p: Process, q: _Query, timeout_ms: int, key_fd: int) -> bool:
    """Nothing ready but a timerfd will expire. Other threads can run: the caller parks,
    its host fds and timers registered, and the scheduler's hook wakes it (it asks the
    host and reads the clocks whenever it chooses; with nothing else to run it waits for
    the first of them). Else: wait on the host (its fds, or a sleep as nanosleep's) until
    the timer or the timeout, whichever is first, and ask again. A replay does not wait
    (the clock reads are recorded)."""
    if p.s.threads and _others_can_run(p):
        if q.host:
            _register_host_set(p, q, key_fd)
        register_timers(p, key_fd, [q.fds[i] for i, f, _ in q.events if f.kind == "timerfd"])
        _register_signals(p, q, key_fd)
        p.wait_io(key_fd, timeout_ms * 1_000_000 if timeout_ms > 0 else -1)
        return False
    left = timeout_ms
    while q.timer_ms >= 0 and not q.ready:
        step = q.timer_ms if left < 0 else min(left, q.timer_ms)
        try:
            if q.host:
                q.ask(step)
            else:
                p.host.sleep(step * 1_000_000)
        except OSError as exc:
            if not interrupted(exc):
                raise
            restart(p)  # Ctrl-C: made again (with its whole timeout) when resumed
            return False
        q.refresh()
        if left >= 0:
            left -= step
            if left <= 0:
                return True
    if q.ready:
        return True
    return _wait(p, q, left, -1)


def _read_pollfds(p: Process, fds: int, nfds: int) -> list[tuple[int, int]]:
    if nfds > MAX_POLLFDS:
        raise SyscallError(errno.EINVAL)
    raw = p.mem.read(fds, 8 * nfds) if nfds else b""
    return [struct.unpack_from("<ih", raw, 8 * i) for i in range(nfds)]


def _write_revents(p: Process, fds: int, revents: list[int]) -> None:
    for i, r in enumerate(revents):
        p.mem.write(fds + 8 * i + 6, struct.pack("<H", r & 0xFFFF))


def _poll(p: Process, fds: int, nfds: int, timeout_ms: int) -> int | None:
    entries = _read_pollfds(p, fds, nfds)
    q = _Query(p, [(fd, ev & 0xFFFF) for fd, ev in entries])
    q.ask(0)
    if not q.ready and not _wait(p, q, timeout_ms, entries[0][0] if entries else -1):
        _write_revents(p, fds, [0] * nfds)  # what a timeout in the scheduler leaves
        return None
    _write_revents(p, fds, q.revents)
    return q.ready


def _timespec_ms(p: Process, ptr: int, usec: bool = False) -> int:
    """A timeout (timespec, or timeval with ``usec``) as milliseconds rounded up; -1: none."""
    if not ptr:
        return -1
    sec, frac = struct.unpack("<qq", p.mem.read(ptr, 16)) if usec else p.read_timespec(ptr)
    limit = 1_000_000 if usec else 1_000_000_000
    if sec < 0 or not 0 <= frac < limit:
        raise SyscallError(errno.EINVAL)
    ns = frac * 1000 if usec else frac
    return min(sec * 1000 + (ns + 999_999) // 1_000_000, 0x7FFFFFFF)


@syscall("poll")
def sys_poll(p: Process, fds: Ptr, nfds: U32, timeout: I32) -> int | None:
    return _poll(p, fds, nfds, timeout if timeout >= 0 else -1)


@syscall("ppoll")
def sys_ppoll(p: Process, fds: Ptr, nfds: U32, tmo: Ptr, sigmask: Ptr, size: U64) -> int | None:
    if nfds == 0 and not tmo:  # a pure wait for a signal: aarch64 glibc's pause()
        if sigmask and size != 8:
            return -errno.EINVAL
        mask = struct.unpack("<Q", p.mem.read(sigmask, 8))[0] if sigmask else p.s.sigmask
        return p.wait_for_signal(mask & ~UNBLOCKABLE & abi.MASK64)
    # The signal mask: signals are not delivered during the wait here, so it changes nothing.
    return _poll(p, fds, nfds, _timespec_ms(p, tmo))


# -- select ----------------------------------------------------------------------------------
def _select(p: Process, nfds: int, sets: tuple[int, int, int], timeout_ms: int) -> int | None:
    if nfds < 0:
        return -errno.EINVAL
    nfds = min(nfds, p.s.rlimits[abi.RLIMIT_NOFILE][1], FD_SETSIZE * 64)
    nbytes = (nfds + 63) // 64 * 8
    bits = [int.from_bytes(p.mem.read(ptr, nbytes), "little") if ptr and nbytes else 0
            for ptr in sets]
    wanted = bits[0] | bits[1] | bits[2]
    entries: list[tuple[int, int]] = []
    fd = 0
    while wanted >> fd:
        if wanted >> fd & 1:
            if fd not in p.s.fds:
                return -errno.EBADF
            events = ((_SEL_IN if bits[0] >> fd & 1 else 0)
                      | (_SEL_OUT if bits[1] >> fd & 1 else 0)
                      | (_SEL_EX if bits[2] >> fd & 1 else 0))
            entries.append((fd, events))
        fd += 1
    q = _Query(p, entries)
    q.ask(0)

    def results() -> list[int]:
        out = [0, 0, 0]
        for (fd, events), r in zip(entries, q.revents, strict=True):
            for k, cls in enumerate((_SEL_IN, _SEL_OUT, _SEL_EX)):
                if r & cls & events:
                    out[k] |= 1 << fd
        return out

    found = results()
    if not any(found) and not _wait(p, q, timeout_ms, entries[0][0] if entries else -1):
        return None  # (a timeout in the scheduler leaves the sets as they were)
    found = results()
    for ptr, value in zip(sets, found, strict=True):
        if ptr and nbytes:
            p.mem.write(ptr, value.to_bytes(nbytes, "little"))
    return sum(bin(v).count("1") for v in found)


@syscall("select")
def sys_select(p: Process, nfds: I32, rd: Ptr, wr: Ptr, ex: Ptr, tmo: Ptr) -> int | None:
    timeout = _timespec_ms(p, tmo, usec=True)
    n = _select(p, nfds, (rd, wr, ex), timeout)
    if n == 0 and tmo:
        p.mem.write(tmo, bytes(16))  # Linux leaves the time not slept: none
    return n


@syscall("pselect6")
def sys_pselect6(p: Process, nfds: I32, rd: Ptr, wr: Ptr, ex: Ptr, tmo: Ptr,
                 sig: Ptr) -> int | None:
    if sig:
        p.mem.read(sig, 16)  # {const sigset_t *, size_t}: EFAULT if unreadable
    timeout = _timespec_ms(p, tmo)
    n = _select(p, nfds, (rd, wr, ex), timeout)
    if n == 0 and tmo:
        p.mem.write(tmo, bytes(16))
    return n


syscall("arm:pselect6_time64")(sys_pselect6)  # (32-bit ARM: pselect6 itself is time32)


@syscall("arm:_newselect")
def sys_newselect(p: Process, nfds: I32, rd: Ptr, wr: Ptr, ex: Ptr, tmo: Ptr) -> int | None:
    """32-bit ARM's select: a struct timeval of two 32-bit longs."""
    timeout = -1
    if tmo:
        sec, usec = struct.unpack("<ii", p.mem.read(tmo, 8))
        if sec < 0 or not 0 <= usec < 1_000_000:
            return -errno.EINVAL
        timeout = min(sec * 1000 + (usec + 999) // 1000, 0x7FFFFFFF)
    n = _select(p, nfds, (rd, wr, ex), timeout)
    if n == 0 and tmo:
        p.mem.write(tmo, bytes(8))
    return n


# fdevents' blocking timerfd read parks through this module (no import back: no cycle).
fdevents.PARKING = sys.modules[__name__]
