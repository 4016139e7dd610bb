"""Sockets: socket, socketpair, bind, listen, accept/accept4, connect, send/sendto/sendmsg,
recv/recvfrom/recvmsg, shutdown, get/setsockopt, getsockname/getpeername.

A guest socket is a host socket (kind ``"socket"``), as in a native run: it reaches what
syxdbg's user can reach. Addresses are passed as raw ``sockaddr`` bytes (the guest's layout
is the host's: both are Linux). Every result the guest observes (a new socket's number, an
accepted connection and its peer, every byte received, options read) goes through
``HostIO``, so it is an event-log input: a replay (``DetachedHostIO``) opens no socket and
gets every byte from the recording. Readiness of sockets comes from ``syscalls/poll.py``.

A blocking accept/recv/connect waits on the host (Ctrl-C interrupts it): other guest threads
do not run meanwhile unless the program polls first.
"""

from __future__ import annotations

import errno
import os
import struct

from .. import abi
from ..kernel import OpenFile, Process
from ..registry import I32, U32, U64, Fd, Ptr, SyscallError, syscall

SOCK_TYPE_MASK = 0xF
SOCK_NONBLOCK = 0o4000  # O_NONBLOCK on x86_64, aarch64, arm and riscv64
SOCK_CLOEXEC = 0o2000000
_MAX_ADDR = 128
_MAX_IO = 1 << 20


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


def _accept(p: Process, fd: int, addr: int, size_ptr: int, flags: int) -> int:
    if flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC):
        return -errno.EINVAL
    hfd = _sock(p, fd)
    new, peer = p.host.accept(hfd, 0)
    _addr_out(p, peer, addr, size_ptr)
    return _new_socket(p, new, flags)


@syscall("accept4")
def sys_accept4(p: Process, fd: Fd, addr: Ptr, size: Ptr, flags: I32) -> int:
    return _accept(p, fd, addr, size, flags)


@syscall("accept")
def sys_accept(p: Process, fd: Fd, addr: Ptr, size: Ptr) -> int:
    return _accept(p, fd, addr, size, 0)


@syscall("connect")
def sys_connect(p: Process, fd: Fd, addr: Ptr, size: I32) -> int:
    p.host.connect(_sock(p, fd), _addr_in(p, addr, size))
    return 0


def _send(p: Process, fd: int, data: bytes, flags: int, addr: bytes | None) -> int:
    hfd = _sock(p, fd)
    try:
        return p.host.send(hfd, data, flags & ~0x4000, addr)
    except OSError as exc:
        if exc.errno == errno.EPIPE and not flags & 0x4000:  # MSG_NOSIGNAL
            p.deliver(13)  # SIGPIPE
        raise


@syscall("sendto")
def sys_sendto(p: Process, fd: Fd, buf: Ptr, length: U64, flags: I32, addr: Ptr,
               size: I32) -> int:
    data = p.mem.read(buf, min(length, _MAX_IO))
    return _send(p, fd, data, flags, _addr_in(p, addr, size) if addr else None)


def _msghdr(p: Process, msg: int) -> tuple[bytes, list[tuple[int, int]], int]:
    name, namelen, iov, iovlen, control, controllen, _flags = struct.unpack(
        "<QI4xQQQQi4x", p.mem.read(msg, 56))
    if iovlen > 1024:
        raise SyscallError(errno.EMSGSIZE)
    raw = p.mem.read(iov, 16 * iovlen) if iovlen else b""
    vecs = [struct.unpack_from("<QQ", raw, 16 * i) for i in range(iovlen)]
    addr = _addr_in(p, name, namelen) if name and namelen else b""
    if control and controllen:
        raise SyscallError(errno.EOPNOTSUPP)  # ancillary data (SCM_RIGHTS): not yet
    return addr, vecs, msg


@syscall("sendmsg")
def sys_sendmsg(p: Process, fd: Fd, msg: Ptr, flags: I32) -> int:
    addr, vecs, _ = _msghdr(p, msg)
    data = b"".join(p.mem.read(base, length) for base, length in vecs)
    return _send(p, fd, data[:_MAX_IO], flags, addr or None)


def _recv(p: Process, fd: int, n: int, flags: int) -> tuple[bytes, bytes]:
    return p.host.recv(_sock(p, fd), min(n, _MAX_IO), flags)


@syscall("recvfrom")
def sys_recvfrom(p: Process, fd: Fd, buf: Ptr, length: U64, flags: I32, addr: Ptr,
                 size: Ptr) -> int:
    n = p.writable_extent(buf, min(length, _MAX_IO)) if length else 0
    data, peer = _recv(p, fd, n, flags)
    p.mem.write(buf, data[:n])
    if addr:
        _addr_out(p, peer, addr, size)
    return len(data)


@syscall("recvmsg")
def sys_recvmsg(p: Process, fd: Fd, msg: Ptr, flags: I32) -> int:
    _, vecs, _ = _msghdr(p, msg)
    total = sum(length for _, length in vecs)
    data, peer = _recv(p, fd, total, flags)
    pos = 0
    for base, length in vecs:
        chunk = data[pos:pos + length]
        if not chunk:
            break
        p.mem.write(base, chunk)
        pos += len(chunk)
    name, namelen = struct.unpack("<QI", p.mem.read(msg, 12))
    if name:
        p.mem.write(name, peer[:namelen])
        p.mem.write(msg + 8, struct.pack("<I", len(peer)))
    p.mem.write(msg + 40, bytes(8))  # msg_controllen: no ancillary data
    p.mem.write(msg + 48, struct.pack("<i", 0))  # msg_flags
    return len(data)


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
# its ``data``: (fd, events, user data) packed as "<iIQ", so it is saved and restored with
# the file table. Readiness is poll's (syscalls/poll.py): the same recorded host questions.
_ENTRY = struct.Struct("<iIQ")
EPOLLET, EPOLLONESHOT = 1 << 31, 1 << 30
_EPOLL_CTL_ADD, _EPOLL_CTL_DEL, _EPOLL_CTL_MOD = 1, 2, 3


def _interest(f: OpenFile) -> list[tuple[int, int, int]]:
    raw = f.data or b""
    return [_ENTRY.unpack_from(raw, i) for i in range(0, len(raw), _ENTRY.size)]


def _store(f: OpenFile, entries: list[tuple[int, int, int]]) -> None:
    f.data = b"".join(_ENTRY.pack(*e) for e in entries)


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
    f = p.new_file("epoll", None, 2, -1, owned=False, data=b"")
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
            entries.append((fd, events, data))
        else:
            if have is None:
                return -errno.ENOENT
            entries[have] = (fd, events, data)
    elif op == _EPOLL_CTL_DEL:
        if have is None:
            return -errno.ENOENT
        del entries[have]
    else:
        return -errno.EINVAL
    _store(ep, entries)
    return 0


def _epoll_wait(p: Process, epfd: int, events: int, maxevents: int,
                timeout_ms: int) -> int | None:
    from .poll import POLLNVAL, _Query, _wait

    ep = _epoll(p, epfd)
    if maxevents <= 0 or maxevents > 0x7FFFFFFF // 16:
        return -errno.EINVAL
    entries = [e for e in _interest(ep) if e[0] in p.s.fds]  # closed fds leave the set
    watched = [e for e in entries if e[1] & ~(EPOLLET | EPOLLONESHOT)]
    q = _Query(p, [(fd, ev & 0xFFFF) for fd, ev, _ in watched])
    q.ask(0)

    def ready() -> list[tuple[int, int, int]]:
        return [(fd, r, data) for (fd, _, data), r in zip(watched, q.revents, strict=True)
                if r and not r & POLLNVAL]

    if not ready() and not _wait(p, q, timeout_ms, watched[0][0] if watched else -1):
        return None
    out = ready()[:maxevents]
    size = _event_size(p)
    for i, (_, r, data) in enumerate(out):
        if size == 12:
            p.mem.write(events + 12 * i, struct.pack("<IQ", r, data))
        else:
            p.mem.write(events + 16 * i, struct.pack("<I4xQ", r, data))
    shots = {fd for fd, _, _ in out}
    if any(ev & EPOLLONESHOT and fd in shots for fd, ev, _ in entries):
        _store(ep, [(fd, 0 if ev & EPOLLONESHOT and fd in shots else ev, data)
                    for fd, ev, data in _interest(ep)])
    return len(out)


@syscall("epoll_wait")
def sys_epoll_wait(p: Process, epfd: Fd, events: Ptr, maxevents: I32, timeout: I32) -> int | None:
    return _epoll_wait(p, epfd, events, maxevents, timeout if timeout >= 0 else -1)


@syscall("epoll_pwait")
def sys_epoll_pwait(p: Process, epfd: Fd, events: Ptr, maxevents: I32, timeout: I32,
                    sigmask: Ptr, size: U64) -> int | None:
    return _epoll_wait(p, epfd, events, maxevents, timeout if timeout >= 0 else -1)
