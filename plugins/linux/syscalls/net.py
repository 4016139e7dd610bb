"""Sockets: socket, socketpair, bind, listen, accept/accept4, connect, send/sendto/sendmsg,
recv/recvfrom/recvmsg, shutdown, get/setsockopt, getsockname/getpeername.

A guest socket is a host socket (kind ``"socket"``), as in a native run: it reaches what
syxdbg's user can reach. Addresses are passed as raw ``sockaddr`` bytes (the guest's layout
is the host's: both are Linux). Every result the guest observes (a new socket's number, an
accepted connection and its peer, every byte received, options read) goes through
``HostIO``, so it is an event-log input: a replay (``DetachedHostIO``) opens no socket and
gets every byte from the recording. Readiness of sockets comes from ``syscalls/poll.py``.

A blocking accept, recv, read, connect or send never blocks the host call itself: it waits
for readiness first (_park), parked in the scheduler while other threads run, else on the
host, where Ctrl-C or a debugger's interrupt ends the wait and the call is made again when
the guest resumes (poll.restart).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import struct
from collections.abc import Callable

from .. import abi
from ..kernel import OpenFile, Process
from ..registry import I32, U32, U64, Fd, Ptr, SyscallError, syscall

SOCK_TYPE_MASK = 0xF
SOCK_NONBLOCK = 0o4000  # O_NONBLOCK on x86_64, aarch64, arm and riscv64
SOCK_CLOEXEC = 0o2000000
_MAX_ADDR = 128
_MAX_IO = 1 << 20
_MAX_RW = 0x7FFFF000  # MAX_RW_COUNT: the most one send moves


def _sock(p: Process, fd: int) -> int:
    f = p.file(fd)
    if f.kind != "socket":
        raise SyscallError(errno.ENOTSOCK)
    return p.host_fd(fd)


def _new_socket(p: Process, hfd: int, kind: int) -> int:
    nonblock = kind & SOCK_NONBLOCK
    if nonblock:
        p.host.set_status_flags(hfd, p.host.get_status_flags(hfd) | os.O_NONBLOCK)
    flags = 2 | (abi.guest_flag(p.arch, "O_NONBLOCK") if nonblock else 0)  # O_RDWR
    return p.install_fd(p.new_file("socket", None, flags, hfd),
                        cloexec=bool(kind & SOCK_CLOEXEC))


def _addr_in(p: Process, ptr: int, size: int) -> bytes:
    if size < 0 or size > _MAX_ADDR:
        raise SyscallError(errno.EINVAL)
    return p.mem.read(ptr, size)


def _addr_out(p: Process, addr: bytes, ptr: int, size_ptr: int) -> None:
    """Write a sockaddr the way the kernel does: truncated to the caller's buffer, the
    length pointer set to the real size."""
    if not ptr:
        return
    room = struct.unpack("<I", p.mem.read(size_ptr, 4))[0]
    if room > 0x7FFFFFFF:
        raise SyscallError(errno.EINVAL)
    p.mem.write(ptr, addr[:room])
    p.mem.write(size_ptr, struct.pack("<I", len(addr)))


@syscall("socket")
def sys_socket(p: Process, family: I32, kind: I32, proto: I32) -> int:
    if kind & ~(SOCK_TYPE_MASK | SOCK_NONBLOCK | SOCK_CLOEXEC):
        return -errno.EINVAL
    hfd = p.host.socket(family, kind & SOCK_TYPE_MASK, proto)
    return _new_socket(p, hfd, kind)


@syscall("socketpair")
def sys_socketpair(p: Process, family: I32, kind: I32, proto: I32, sv: Ptr) -> int:
    if kind & ~(SOCK_TYPE_MASK | SOCK_NONBLOCK | SOCK_CLOEXEC):
        return -errno.EINVAL
    p.mem.read(sv, 8)
    a, b = p.host.socketpair(family, kind & SOCK_TYPE_MASK, proto)
    fa, fb = _new_socket(p, a, kind), _new_socket(p, b, kind)
    p.mem.write(sv, struct.pack("<ii", fa, fb))
    return 0


@syscall("bind")
def sys_bind(p: Process, fd: Fd, addr: Ptr, size: I32) -> int:
    p.host.bind(_sock(p, fd), _addr_in(p, addr, size))
    return 0


@syscall("listen")
def sys_listen(p: Process, fd: Fd, backlog: I32) -> int:
    p.host.listen(_sock(p, fd), backlog)
    return 0


def _accept(p: Process, fd: int, addr: int, size_ptr: int, flags: int) -> int | None:
    if flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC):
        return -errno.EINVAL
    hfd = _sock(p, fd)
    if _park(p, fd, 0):
        return None
    _consumed(p, fd, -1)  # an edge-triggered listener is armed again by any accept
    new, peer = p.host.accept(hfd, 0)
    _addr_out(p, peer, addr, size_ptr)
    return _new_socket(p, new, flags)


@syscall("accept4")
def sys_accept4(p: Process, fd: Fd, addr: Ptr, size: Ptr, flags: I32) -> int | None:
    return _accept(p, fd, addr, size, flags)


@syscall("accept")
def sys_accept(p: Process, fd: Fd, addr: Ptr, size: Ptr) -> int | None:
    return _accept(p, fd, addr, size, 0)


@syscall("connect")
def sys_connect(p: Process, fd: Fd, addr: Ptr, size: I32) -> int | None:
    """A non-blocking socket's connect is the host's (EINPROGRESS...). A blocking one
    starts the connection without blocking the host, then waits for POLLOUT as _park does
    (other threads run; Ctrl-C makes it again later) and asks the host again: connected,
    or the connection's error (ECONNREFUSED...), as Linux's restarted connect answers."""
    hfd = _sock(p, fd)
    where = _addr_in(p, addr, size)
    if not _blocking(p, p.file(fd), 0):
        p.host.connect(hfd, where)
        return 0
    try:
        p.host.connect_nowait(hfd, where)
        return 0
    except OSError as exc:
        if exc.errno == errno.EAGAIN:  # AF_UNIX, the listener's queue full: waits
            p.host.connect(hfd, where)
            return 0
        if exc.errno not in (errno.EINPROGRESS, errno.EALREADY):
            raise
    if _park(p, fd, _CONNECTING, POLLOUT, empty=True):
        return None
    p.host.connect_nowait(hfd, where)
    return 0


def _host_send(p: Process, hfd: int, data: bytes, flags: int, addr: bytes | None) -> int:
    try:
        return p.host.send(hfd, data, flags & ~0x4000, addr)
    except OSError as exc:
        if exc.errno == errno.EPIPE and not flags & 0x4000:  # MSG_NOSIGNAL
            p.deliver(13)  # SIGPIPE
        raise


#: ``ProcessState.misc`` keys of a blocking send under way: "sendprog.TID" = the bytes sent
#: so far, "sendprog.TID.call" = which call (a hash of fd, buffer, length and flags); the
#: call is made again when the thread is woken.
_PROGRESS = "sendprog."


def _send(p: Process, fd: int, data: bytes, flags: int, addr: bytes | None,
          where: tuple[int, int] | None = None,
          source: Callable[[int, int], bytes] | None = None) -> int | None:
    """send/sendto/sendmsg/write of ``data`` on socket ``fd``: the count sent; None: the
    caller waits (see _park). ``where`` (an address and a length) names the call, for going
    on after a wait; ``source(offset, n)`` gives more of the bytes than ``data`` holds
    (sendto's buffer beyond the first MiB).

    A blocking socket never blocks the host: what fits is sent (MSG_DONTWAIT), then the call
    waits for room (POLLOUT: other threads run meanwhile; alone, on the host) and goes on,
    until all is sent, as Linux's blocking send. Parked, it is made again when woken and
    continues from what it had sent (kept in ``ProcessState.misc``, part of the state); an
    error after a part was sent returns that part (the error is the next call's)."""
    hfd = _sock(p, fd)
    if where is None or not _blocking(p, p.file(fd), flags):
        return _host_send(p, hfd, data, flags, addr)
    total = where[1] if source is not None else len(data)
    misc = p.s.misc
    key = f"{_PROGRESS}{p.tid}"
    call = hash((fd, where[0], where[1], flags))  # (ints: the same in every run)
    sent = 0
    if key in misc:  # a send of this thread that waited: this one goes on, if it is it
        if misc.pop(key + ".call", None) == call:
            sent = misc[key]
        del misc[key]
    while True:
        chunk = data[sent:sent + _MAX_IO] if source is None or sent + _MAX_IO <= len(data) \
            else source(sent, min(total - sent, _MAX_IO))
        try:
            sent += _host_send(p, hfd, chunk, flags | MSG_DONTWAIT, addr)
        except OSError as exc:
            if exc.errno != errno.EAGAIN:
                if sent:
                    return sent
                raise
        if sent >= total:
            return sent
        misc[key], misc[key + ".call"] = sent, call
        try:
            if _park(p, fd, flags, POLLOUT, empty=True):
                return None  # made again when woken (or resumed after Ctrl-C)
        except SyscallError:  # SO_SNDTIMEO expired: what was sent, or EAGAIN
            del misc[key], misc[key + ".call"]
            if sent:
                return sent
            raise
        del misc[key], misc[key + ".call"]


@syscall("sendto")
def sys_sendto(p: Process, fd: Fd, buf: Ptr, length: U64, flags: I32, addr: Ptr,
               size: I32) -> int | None:
    data = p.mem.read(buf, min(length, _MAX_IO))
    total = min(length, _MAX_RW)
    return _send(p, fd, data, flags, _addr_in(p, addr, size) if addr else None,
                 (buf, total), lambda off, n: p.mem.read(buf + off, n))


@syscall("send")
def sys_send(p: Process, fd: Fd, buf: Ptr, length: U64, flags: I32) -> int | None:
    """32-bit ARM's send(2) (other architectures' libcs call sendto)."""
    return sys_sendto(p, fd, buf, length, flags, 0, 0)


def sock_write(p: Process, f: OpenFile, fd: int, buf: int, data: bytes) -> int | None:
    """write(2) of a socket (from syscalls/files.py): a send with no flags."""
    return _send(p, fd, data, 0, None, (buf, len(data)))


SOL_SOCKET, SCM_RIGHTS, SO_TYPE, SO_RCVTIMEO, SO_SNDTIMEO = 1, 1, 3, 20, 21
POLLOUT = 4
_CONNECTING = 1 << 40  # (a _park flag: the wait finishes a connect)
MSG_PEEK, MSG_TRUNC, MSG_DONTWAIT, MSG_WAITALL = 0x2, 0x20, 0x40, 0x100
_MAX_DATAGRAM = 65536
_CMSG_HDR = struct.Struct("<QiI")  # cmsg_len (size_t), cmsg_level, cmsg_type
_CMSG_HDR32 = struct.Struct("<Iii")  # ... on 32-bit ARM (a 4-byte size_t)


class _Layout:
    """struct msghdr, cmsghdr and mmsghdr of an architecture: 64-bit, or 32-bit ARM's
    (4-byte pointers and size_t, control messages aligned to 4)."""

    def __init__(self, wide: bool) -> None:
        self.msghdr = struct.Struct("<QI4xQQQQi4x" if wide else "<IIIIIIi")
        self.iovec = struct.Struct("<QQ" if wide else "<II")
        self.cmsg = _CMSG_HDR if wide else _CMSG_HDR32
        self.align = 8 if wide else 4
        self.word = "<Q" if wide else "<I"
        # offsets in struct msghdr: msg_namelen, msg_controllen, msg_flags
        self.namelen, self.controllen, self.flags = (8, 40, 48) if wide else (4, 20, 24)
        self.mmsg = 64 if wide else 32  # struct mmsghdr: a msghdr, msg_len (padded)


_LAYOUTS = {True: _Layout(True), False: _Layout(False)}


def _layout(p: Process) -> _Layout:
    return _LAYOUTS[p.arch != "arm"]
MSG_CTRUNC = 0x8
MSG_CMSG_CLOEXEC = 0x40000000
_MAX_RIGHTS = 253  # SCM_MAX_FD


def _msghdr(p: Process, msg: int) -> tuple[bytes, list[tuple[int, int]], int, int]:
    """(address, iovecs, control buffer, its length) of a guest ``struct msghdr``."""
    lay = _layout(p)
    name, namelen, iov, iovlen, control, controllen, _flags = lay.msghdr.unpack(
        p.mem.read(msg, lay.msghdr.size))
    if iovlen > 1024:
        raise SyscallError(errno.EMSGSIZE)
    size = lay.iovec.size
    raw = p.mem.read(iov, size * iovlen) if iovlen else b""
    vecs = [lay.iovec.unpack_from(raw, size * i) for i in range(iovlen)]
    addr = _addr_in(p, name, namelen) if name and namelen else b""
    return addr, vecs, control if controllen else 0, controllen if control else 0


def _rights_out(p: Process, control: int, size: int) -> list[int]:
    """The guest fds of the SCM_RIGHTS messages in a sendmsg's control buffer (EINVAL for
    malformed or other ancillary data, EBADF for a closed fd)."""
    raw = p.mem.read(control, min(size, 4096))
    fds: list[int] = []
    pos = 0
    lay = _layout(p)
    hdr = lay.cmsg
    while pos + hdr.size <= len(raw):
        length, level, kind = hdr.unpack_from(raw, pos)
        if length < hdr.size or pos + length > len(raw):
            raise SyscallError(errno.EINVAL)
        if (level, kind) != (SOL_SOCKET, SCM_RIGHTS):
            raise SyscallError(errno.EINVAL)  # SCM_CREDENTIALS...: not supported
        body = raw[pos + hdr.size:pos + length]
        fds += [struct.unpack_from("<i", body, i)[0] for i in range(0, len(body) // 4 * 4, 4)]
        pos += (length + lay.align - 1) & ~(lay.align - 1)
    if len(fds) > _MAX_RIGHTS:
        raise SyscallError(errno.EINVAL)
    return fds


def _share_pipe(p: Process, f: OpenFile) -> None:
    """An end of a pipe the guest made is sent away: from now on both ends are plain host
    pipes (a path), since the guest's bookkeeping of its own pairs (end of file, EPIPE when
    the other end is gone) cannot follow a descriptor that lives on in another fd."""
    if f.kind != "pipe" or f.path is not None:
        return
    other = p.s.files.get(f.id + 1 if f.flags & 3 == 0 else f.id - 1)
    f.path = b""
    if other is not None and other.kind == "pipe" and other.path is None:
        other.path = b""


@syscall("sendmsg")
def sys_sendmsg(p: Process, fd: Fd, msg: Ptr, flags: I32) -> int | None:
    return _sendmsg(p, fd, msg, flags, park=True)


def _sendmsg(p: Process, fd: int, msg: int, flags: int, *, park: bool) -> int | None:
    addr, vecs, control, controllen = _msghdr(p, msg)
    data = b"".join(p.mem.read(base, length) for base, length in vecs)[:_MAX_IO]
    rights = _rights_out(p, control, controllen) if control else []
    if not rights:
        return _send(p, fd, data, flags, addr or None, (msg, len(data)) if park else None)
    hosts = tuple(p.host_fd(r) for r in rights)  # EBADF for a closed or emulated fd
    for r in rights:
        _share_pipe(p, p.file(r))
    hfd = _sock(p, fd)
    try:
        return p.host.sendmsg(hfd, data, flags & ~0x4000, addr or None, hosts)
    except OSError as exc:
        if exc.errno == errno.EPIPE and not flags & 0x4000:  # MSG_NOSIGNAL
            p.deliver(13)  # SIGPIPE
        raise


def _blocking(p: Process, f: OpenFile, flags: int) -> bool:
    """Whether a call on open file ``f`` with ``flags`` may wait (a blocking socket)."""
    return f.kind == "socket" and f.host_fd >= 0 and not flags & MSG_DONTWAIT \
        and not f.flags & abi.guest_flag(p.arch, "O_NONBLOCK")


def _park(p: Process, fd: int, flags: int, events: int = 1, *, empty: bool = False) -> bool:
    """Before a blocking accept, recv, read, connect or send of socket ``fd`` (``events``:
    POLLIN to read or accept, POLLOUT to send or finish a connect): True when the handler
    returns None instead of making the host call; ``empty``: the host said just now that
    it is not ready.

    Ready (one recorded host poll), or non-blocking: False, the host call goes on.
    Not ready and another thread can run: the caller waits in the scheduler; poll.py's
    wake_host_waiters wakes it when the host says the socket is ready (the scheduler asks
    whenever it chooses), and so does any write or close. No thread can run but others
    wait on the host too: one host poll (recorded) over all of them decides: the caller's
    ready, it goes on; else the ready ones are woken and the caller waits. Alone, it
    waits on the host, for SO_RCVTIMEO/SO_SNDTIMEO if set (then EAGAIN, EINPROGRESS for a
    connect). Every wait on the host ends at Ctrl-C or a debugger's interrupt (EINTR,
    recorded): the call is then made again when the guest resumes (poll.restart), having
    taken nothing."""
    from . import poll
    from .poll import POLLERR, POLLHUP

    f = p.file(fd)
    if not _blocking(p, f, flags):
        return False
    hfd = f.host_fd
    ev = events | POLLERR | POLLHUP
    if not empty and p.host.poll(((hfd, ev),), 0)[0]:
        return False
    timeo = p.host.sockopt(hfd, SOL_SOCKET, SO_SNDTIMEO if events & 4 else SO_RCVTIMEO, 16)
    sec, usec = struct.unpack("<qq", timeo.ljust(16, b"\0"))
    limit = sec * 1000 + (usec + 999) // 1000 if sec or usec else -1
    if (p.s.threads or p.s.procs) and limit < 0:
        others = poll.others_runnable(p)
        waiting = [] if others else poll.host_waiters(p)
        if others or waiting:
            if not others:
                timed = any(t.timeout >= 0 for t in p.s.threads.values()) or any(
                    t.timeout >= 0 for e in p.s.procs.values() for t in e.state.threads.values())
                want = {hfd: ev}
                for _, _, h, e in waiting:
                    want[h] = want.get(h, 0) | e | POLLERR | POLLHUP
                fds = tuple(sorted(want))
                try:
                    answers = p.host.poll(tuple((h, want[h]) for h in fds), 0 if timed else -1)
                except OSError as exc:
                    if not poll.interrupted(exc):
                        raise
                    poll.restart(p)  # Ctrl-C: the session stops; made again when resumed
                    return True
                ready = {h for h, r in zip(fds, answers, strict=True) if r}
                if hfd in ready:
                    return False
                poll.wake(p, [(pid, t) for pid, t, h, _ in waiting if h in ready])
            poll.clear_host_set(p)
            if events & ~1:
                poll.register_host_wait(p, fd, hfd, ev)
            p.wait_io(fd)
            return True
    try:
        ready_now = p.host.poll(((hfd, ev),), limit)[0]
    except OSError as exc:
        if not poll.interrupted(exc):
            raise
        poll.restart(p)
        return True
    if not ready_now:  # the socket's own timeout
        raise SyscallError(errno.EINPROGRESS if events & 4 and flags & _CONNECTING
                           else errno.EAGAIN)
    return False


def _datagram(p: Process, fd: int) -> bool:
    raw = p.host.sockopt(_sock(p, fd), SOL_SOCKET, SO_TYPE, 4)
    return struct.unpack("<i", raw[:4].ljust(4, b"\0"))[0] != 1  # not SOCK_STREAM


def _recv(p: Process, fd: int, n: int, flags: int) -> tuple[bytes, bytes] | None:
    """One host recvfrom: (data, sender); None: the caller waits (see _park).

    A blocking socket is first read with MSG_DONTWAIT (no extra host call when data is
    there); only if that finds nothing does the call wait (_park), then read again."""
    hfd = _sock(p, fd)
    n = min(n, _MAX_IO)
    if _blocking(p, p.file(fd), flags) and not flags & MSG_WAITALL:
        try:
            return p.host.recv(hfd, n, flags | MSG_DONTWAIT)
        except OSError as exc:
            if exc.errno != errno.EAGAIN:
                raise
        if _park(p, fd, flags, empty=True):
            return None
    elif _park(p, fd, flags):
        return None
    try:
        return p.host.recv(hfd, n, flags)
    except OSError as exc:
        if exc.errno == errno.EAGAIN:
            _consumed(p, fd, -1)
        raise


def sock_read(p: Process, f: OpenFile, fd: int, buf: int, count: int) -> int | None:
    """read(2) of a socket (from syscalls/files.py): the host read, and what edge-triggered
    epoll entries of ``fd`` learn from it."""
    n = p.writable_extent(buf, min(count, _MAX_IO)) if count else 0
    got = _recv(p, fd, n, 0)  # (read of a socket is recv with no flags)
    if got is None:
        return None
    data = got[0]
    p.mem.write(buf, data)
    _consumed(p, fd, len(data))
    return len(data)


@syscall("recvfrom")
def sys_recvfrom(p: Process, fd: Fd, buf: Ptr, length: U64, flags: I32, addr: Ptr,
                 size: Ptr) -> int | None:
    n = p.writable_extent(buf, min(length, _MAX_IO)) if length else 0
    ask = n
    if flags & MSG_TRUNC and _datagram(p, fd):
        ask = _MAX_DATAGRAM  # the real length of a longer datagram is the result
    got = _recv(p, fd, ask, flags & ~MSG_TRUNC if ask != n else flags)
    if got is None:
        return None
    data, peer = got
    p.mem.write(buf, data[:n])
    if not flags & MSG_PEEK:  # MSG_PEEK takes nothing
        _consumed(p, fd, len(data))
    if addr:
        _addr_out(p, peer, addr, size)
    return len(data)


@syscall("recv")
def sys_recv(p: Process, fd: Fd, buf: Ptr, length: U64, flags: I32) -> int | None:
    """32-bit ARM's recv(2) (other architectures' libcs call recvfrom)."""
    return sys_recvfrom(p, fd, buf, length, flags, 0, 0)


def _install_received(p: Process, hfd: int, cloexec: bool) -> int:
    """A descriptor received with SCM_RIGHTS as a new guest fd; its kind is asked of the
    host (a recorded fstat)."""
    mode = p.host.fstat(hfd).st_mode
    if stat.S_ISSOCK(mode):
        kind, path = "socket", None
    elif stat.S_ISFIFO(mode):
        kind, path = "pipe", b""  # (a path: not one of the guest's own pipe pairs)
    elif stat.S_ISDIR(mode):
        kind, path = "dir", b""
    else:
        kind, path = "file", b""
    flags = abi.open_flags_from_host(p.arch, p.host.get_status_flags(hfd))
    return p.install_fd(p.new_file(kind, path, flags, hfd), cloexec=cloexec)


def _recvmsg(p: Process, fd: int, msg: int, total: int, flags: int, control: int,
             controllen: int) -> tuple[bytes, bytes, int, int]:
    """recvmsg on the host with room for SCM_RIGHTS: (data, peer, msg_flags, result); the
    control buffer and msg_controllen are written here."""
    lay = _layout(p)
    room = max((controllen - lay.cmsg.size) // 4, 0) if control else 0
    data, peer, hfds, mflags, result = p.host.recvmsg(
        _sock(p, fd), min(total, _MAX_IO), flags & ~MSG_CMSG_CLOEXEC, room)
    cloexec = bool(flags & MSG_CMSG_CLOEXEC)
    guest = [_install_received(p, h, cloexec) for h in hfds[:room]]
    for h in hfds[room:]:  # no room: closed, and the message says so
        with contextlib.suppress(OSError):
            p.host.close(h)
        mflags |= MSG_CTRUNC
    used = 0
    if guest:
        used = lay.cmsg.size + 4 * len(guest)
        p.mem.write(control, lay.cmsg.pack(used, SOL_SOCKET, SCM_RIGHTS)
                    + struct.pack(f"<{len(guest)}i", *guest))
    p.mem.write(msg + lay.controllen, struct.pack(lay.word, used))
    # (Linux leaves MSG_CMSG_CLOEXEC of the call in msg_flags.)
    return data, peer, (mflags & ~MSG_CMSG_CLOEXEC) | (flags & MSG_CMSG_CLOEXEC), result


@syscall("recvmsg")
def sys_recvmsg(p: Process, fd: Fd, msg: Ptr, flags: I32) -> int | None:
    return _recvmsg_call(p, fd, msg, flags, park=True)


def _recvmsg_call(p: Process, fd: int, msg: int, flags: int, *, park: bool) -> int | None:
    _, vecs, control, controllen = _msghdr(p, msg)
    total = sum(length for _, length in vecs)
    first = park and _blocking(p, p.file(fd), flags) and not flags & MSG_WAITALL
    try:
        if first:  # as _recv: MSG_DONTWAIT first, the wait only if nothing is there
            try:
                got = _recvmsg(p, fd, msg, total, flags | MSG_DONTWAIT, control, controllen)
            except OSError as exc:
                if exc.errno != errno.EAGAIN:
                    raise
                if _park(p, fd, flags, empty=True):
                    return None
                got = _recvmsg(p, fd, msg, total, flags, control, controllen)
            data, peer, mflags, result = got
            mflags &= ~MSG_DONTWAIT
        else:
            if park and _park(p, fd, flags):
                return None
            data, peer, mflags, result = _recvmsg(p, fd, msg, total, flags, control,
                                                  controllen)
    except OSError as exc:
        if exc.errno == errno.EAGAIN:
            _consumed(p, fd, -1)
        raise
    if not flags & MSG_PEEK:
        _consumed(p, fd, len(data))
    pos = 0
    for base, length in vecs:
        chunk = data[pos:pos + length]
        if not chunk:
            break
        p.mem.write(base, chunk)
        pos += len(chunk)
    lay = _layout(p)
    name = struct.unpack(lay.word, p.mem.read(msg, struct.calcsize(lay.word)))[0]
    namelen = struct.unpack("<I", p.mem.read(msg + lay.namelen, 4))[0]
    if name:
        p.mem.write(name, peer[:namelen])
        p.mem.write(msg + lay.namelen, struct.pack("<I", len(peer)))
    p.mem.write(msg + lay.flags, struct.pack("<i", mflags))  # msg_flags
    return result


MSG_WAITFORONE = 0x10000


@syscall("sendmmsg")
def sys_sendmmsg(p: Process, fd: Fd, vec: Ptr, vlen: U32, flags: I32) -> int | None:
    lay = _layout(p)
    mm = lay.mmsg  # struct mmsghdr: a msghdr, then msg_len
    sent = 0
    for i in range(min(vlen, 1024)):
        try:
            # The messages after the first never wait (nor block the host): one that does
            # not fit ends the call with the count sent, which callers send again from.
            n = _sendmsg(p, fd, vec + mm * i, flags | (MSG_DONTWAIT if sent else 0),
                         park=not sent)
            if n is None:
                return None  # (the first message: waits for room, made again)
        except (OSError, SyscallError):
            if sent:
                break  # the error is the next call's
            raise
        if n < 0:
            if sent:
                break
            return n
        p.mem.write(vec + mm * i + lay.msghdr.size, struct.pack("<I", n))
        sent += 1
    return sent


@syscall("recvmmsg", "arm:recvmmsg_time64")
def sys_recvmmsg(p: Process, fd: Fd, vec: Ptr, vlen: U32, flags: I32,
                 timeout: Ptr) -> int | None:
    lay = _layout(p)
    mm = lay.mmsg
    got = 0
    for i in range(min(vlen, 1024)):
        try:
            n = _recvmsg_call(p, fd, vec + mm * i, flags & ~MSG_WAITFORONE, park=not got)
            if n is None:
                return None  # (the first message: waits in the scheduler)
        except (OSError, SyscallError):
            if got:
                break
            raise
        if n < 0:
            if got:
                break
            return n
        p.mem.write(vec + mm * i + lay.msghdr.size, struct.pack("<I", n))
        got += 1
        if flags & MSG_WAITFORONE:
            flags |= MSG_DONTWAIT
    return got


@syscall("shutdown")
def sys_shutdown(p: Process, fd: Fd, how: I32) -> int:
    if how not in (0, 1, 2):
        return -errno.EINVAL
    p.host.shutdown(_sock(p, fd), how)
    return 0


@syscall("setsockopt")
def sys_setsockopt(p: Process, fd: Fd, level: I32, name: I32, value: Ptr, size: U32) -> int:
    if size > 256:
        return -errno.EINVAL
    p.host.setsockopt(_sock(p, fd), level, name, p.mem.read(value, size) if size else b"")
    return 0


@syscall("getsockopt")
def sys_getsockopt(p: Process, fd: Fd, level: I32, name: I32, value: Ptr, size: Ptr) -> int:
    room = struct.unpack("<I", p.mem.read(size, 4))[0]
    if room > 0x7FFFFFFF:
        return -errno.EINVAL
    data = p.host.sockopt(_sock(p, fd), level, name, min(room, 256))
    p.mem.write(value, data[:room])
    p.mem.write(size, struct.pack("<I", len(data)))
    return 0


@syscall("getsockname")
def sys_getsockname(p: Process, fd: Fd, addr: Ptr, size: Ptr) -> int:
    _addr_out(p, p.host.sockname(_sock(p, fd), False), addr, size)
    return 0


@syscall("getpeername")
def sys_getpeername(p: Process, fd: Fd, addr: Ptr, size: Ptr) -> int:
    _addr_out(p, p.host.sockname(_sock(p, fd), True), addr, size)
    return 0


# -- epoll -------------------------------------------------------------------------------------
# An epoll instance is an emulated file (kind "epoll", no host fd) whose interest list is
# its ``data``, so it is saved and restored with the file table: _MARK, then per entry
# (fd, events, user data, the events last reported (edge-triggered), the bytes queued when
# they were (-1: unknown)). States saved before edge triggering have (fd, events, data)
# entries and no mark. Readiness is poll's (syscalls/poll.py): the same recorded questions.
_ENTRY = struct.Struct("<iIQIq")
_OLD_ENTRY = struct.Struct("<iIQ")
_MARK = b"\xff\xff\xff\xff"  # (an fd of -1: never the first bytes of an old entry)
EPOLLET, EPOLLONESHOT = 1 << 31, 1 << 30
_EPOLL_CTL_ADD, _EPOLL_CTL_DEL, _EPOLL_CTL_MOD = 1, 2, 3
_FIONREAD = 0x541B  # the host's (x86_64, aarch64)
_POLLIN = 1

Entry = tuple[int, int, int, int, int]


def _interest(f: OpenFile) -> list[Entry]:
    raw = f.data or b""
    if raw.startswith(_MARK):
        return [_ENTRY.unpack_from(raw, i) for i in range(len(_MARK), len(raw), _ENTRY.size)]
    return [(*_OLD_ENTRY.unpack_from(raw, i), 0, -1)
            for i in range(0, len(raw), _OLD_ENTRY.size)]


def _store(f: OpenFile, entries: list[Entry]) -> None:
    f.data = _MARK + b"".join(_ENTRY.pack(*e) for e in entries)


def _consumed(p: Process, fd: int, n: int) -> None:
    """The guest read ``n`` bytes of ``fd`` (-1: it found nothing, EAGAIN, or accepted):
    edge-triggered entries of ``fd`` learn that the bytes left are fewer (a new arrival is
    then an edge), or are armed again when nothing is left or the count is unknown."""
    for f in p.s.files.values():
        if f.kind != "epoll" or not f.data:
            continue
        entries = _interest(f)
        if not any(e[0] == fd and e[1] & EPOLLET for e in entries):
            continue
        out = []
        for e in entries:
            efd, events, data, fired, queued = e
            if efd == fd and events & EPOLLET:
                if n < 0 or queued < 0:
                    fired, queued = 0, (0 if n < 0 else -1)
                else:
                    queued = max(queued - n, 0)
            out.append((efd, events, data, fired, queued))
        _store(f, out)


def _queued(p: Process, fd: int) -> int:
    """Bytes waiting to be read on ``fd`` (host FIONREAD, a recorded input; an eventfd's
    counter), -1 when the file cannot say (a listening socket...)."""
    f = p.file(fd)
    if f.kind == "eventfd":
        return int(struct.unpack_from("<Q", f.data or bytes(8))[0])
    if f.kind not in ("socket", "pipe") or f.host_fd < 0:
        return -1
    try:
        return int(struct.unpack("<i", p.host.ioctl_read(f.host_fd, _FIONREAD, 4))[0])
    except OSError:
        return -1


def _epoll(p: Process, fd: int) -> OpenFile:
    f = p.file(fd)
    if f.kind != "epoll":
        raise SyscallError(errno.EINVAL)
    return f


def _event_size(p: Process) -> int:
    return 12 if p.arch == "x86_64" else 16  # packed on x86_64 only


@syscall("epoll_create1")
def sys_epoll_create1(p: Process, flags: I32) -> int:
    if flags & ~SOCK_CLOEXEC:
        return -errno.EINVAL
    f = p.new_file("epoll", None, 2, -1, owned=False, data=_MARK)
    return p.install_fd(f, cloexec=bool(flags & SOCK_CLOEXEC))


@syscall("epoll_create")
def sys_epoll_create(p: Process, size: I32) -> int:
    return -errno.EINVAL if size <= 0 else sys_epoll_create1(p, 0)


@syscall("epoll_ctl")
def sys_epoll_ctl(p: Process, epfd: Fd, op: I32, fd: Fd, event: Ptr) -> int:
    ep = _epoll(p, epfd)
    target = p.file(fd)
    if fd == epfd:
        return -errno.EINVAL
    if target.kind in ("file", "dir"):
        return -errno.EPERM  # as Linux: regular files and directories cannot be watched
    entries = _interest(ep)
    have = next((i for i, e in enumerate(entries) if e[0] == fd), None)
    if op in (_EPOLL_CTL_ADD, _EPOLL_CTL_MOD):
        raw = p.mem.read(event, _event_size(p))
        events = struct.unpack_from("<I", raw)[0]
        data = struct.unpack_from("<Q", raw, 4 if p.arch == "x86_64" else 8)[0]
        if op == _EPOLL_CTL_ADD:
            if have is not None:
                return -errno.EEXIST
            entries.append((fd, events, data, 0, -1))
        else:
            if have is None:
                return -errno.ENOENT
            entries[have] = (fd, events, data, 0, -1)  # armed again
    elif op == _EPOLL_CTL_DEL:
        if have is None:
            return -errno.ENOENT
        del entries[have]
    else:
        return -errno.EINVAL
    _store(ep, entries)
    return 0


def _edge(p: Process, e: Entry, r: int) -> tuple[bool, Entry]:
    """Whether edge-triggered entry ``e`` with readiness ``r`` now reports, and the entry
    as it is after this wait. It reports when ready and not reported since it was armed
    (EPOLL_CTL_ADD/MOD, a read that found nothing, readiness seen gone), when an event
    not reported before appears, or when more bytes are queued than were left after the
    guest's reads (a new arrival)."""
    fd, events, data, fired, queued = e
    if not r:
        return False, (fd, events, data, 0, 0 if queued >= 0 else -1)
    now = _queued(p, fd) if r & _POLLIN else queued
    if not fired or r & ~fired or (now >= 0 and queued >= 0 and now > queued):
        return True, (fd, events, data, r, now)
    return False, (fd, events, data, fired & r, queued if now < 0 else min(queued, now))


def _epoll_wait(p: Process, epfd: int, events: int, maxevents: int,
                timeout_ms: int) -> int | None:
    from .poll import POLLNVAL, _Query, _wait

    ep = _epoll(p, epfd)
    if maxevents <= 0 or maxevents > 0x7FFFFFFF // 16:
        return -errno.EINVAL
    entries = [e for e in _interest(ep) if e[0] in p.s.fds]  # closed fds leave the set
    watched = [e for e in entries if e[1] & ~(EPOLLET | EPOLLONESHOT)]
    q = _Query(p, [(e[0], e[1] & 0xFFFF) for e in watched])
    q.ask(0)
    after = {e[0]: e for e in entries}

    def ready() -> list[tuple[int, int, int]]:
        out = []
        for e, r in zip(watched, q.revents, strict=True):
            if r & POLLNVAL:
                continue
            if e[1] & EPOLLET:
                fire, after[e[0]] = _edge(p, e, r)
                if not fire:
                    continue
            if r:
                out.append((e[0], r, e[2]))
        return out

    found = ready()
    if not found:
        if not _wait(p, q, timeout_ms, watched[0][0] if watched else -1):
            _store(ep, [after[e[0]] for e in entries])
            return None
        found = ready()
    out = found[:maxevents]
    size = _event_size(p)
    for i, (_, r, data) in enumerate(out):
        if size == 12:
            p.mem.write(events + 12 * i, struct.pack("<IQ", r, data))
        else:
            p.mem.write(events + 16 * i, struct.pack("<I4xQ", r, data))
    shots = {fd for fd, _, _ in out}
    reported = [after[e[0]] for e in entries]
    # An edge-triggered entry reported beyond maxevents was not seen: armed as before.
    reported = [e if e[0] in shots or not e[1] & EPOLLET else
                next(x for x in entries if x[0] == e[0]) for e in reported]
    _store(ep, [(fd, 0 if ev & EPOLLONESHOT and fd in shots else ev, data, fired, queued)
                for fd, ev, data, fired, queued in reported])
    return len(out)


@syscall("epoll_wait")
def sys_epoll_wait(p: Process, epfd: Fd, events: Ptr, maxevents: I32, timeout: I32) -> int | None:
    return _epoll_wait(p, epfd, events, maxevents, timeout if timeout >= 0 else -1)


@syscall("epoll_pwait")
def sys_epoll_pwait(p: Process, epfd: Fd, events: Ptr, maxevents: I32, timeout: I32,
                    sigmask: Ptr, size: U64) -> int | None:
    return _epoll_wait(p, epfd, events, maxevents, timeout if timeout >= 0 else -1)


@syscall("epoll_pwait2")
def sys_epoll_pwait2(p: Process, epfd: Fd, events: Ptr, maxevents: I32, timeout: Ptr,
                     sigmask: Ptr, size: U64) -> int | None:
    from .poll import _timespec_ms
    return _epoll_wait(p, epfd, events, maxevents, _timespec_ms(p, timeout))
