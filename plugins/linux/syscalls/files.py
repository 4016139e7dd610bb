"""File descriptors and their I/O: read/write and friends, open/close, lseek, the fd
table (dup, fcntl), pipes and ioctl.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
import struct

from .. import abi, procfs
from ..kernel import OpenFile, Process
from ..registry import I32, I64, U32, U64, Fd, Ptr, SyscallError, i64, syscall
from . import fdevents, net, poll

MAX_RW_COUNT = 0x7FFFF000


def _sigpipe(p: Process, exc: OSError) -> None:
    if exc.errno == errno.EPIPE:
        p.deliver(13)  # SIGPIPE


# -- emulated files (procfs): contents from guest state, offset in dir_pos
def _emulated(f: OpenFile) -> bool:
    return f.kind in procfs.EMULATED_KINDS


def _emu_read(p: Process, f: OpenFile, n: int, offset: int) -> bytes:
    if f.kind == "procdir":
        raise SyscallError(errno.EISDIR)
    if f.flags & abi.O_ACCMODE == 1:  # O_WRONLY
        raise SyscallError(errno.EBADF)
    if f.kind == "proc":
        return (f.data or b"")[offset:offset + n]
    # /proc/self/mem: guest memory at address ``offset``, up to the first unmapped byte.
    if n == 0:
        return b""
    data = p.mem.read_partial(offset, n) if offset < 1 << 64 else b""
    if not data:
        raise SyscallError(errno.EIO)
    return data


def _emu_write(p: Process, f: OpenFile, data: bytes, offset: int) -> int:
    if f.kind == "proc" and f.flags & abi.O_ACCMODE and (f.path or b"").endswith(b"/comm"):
        from .threads import write_comm  # pthread_setname_np of another thread

        return write_comm(p, f.path or b"", data)
    if f.flags & abi.O_ACCMODE == 0 or f.kind != "procmem":  # O_RDONLY, or not mem
        raise SyscallError(errno.EBADF if f.kind != "procdir" else errno.EISDIR)
    if not data:
        return 0
    n = len(data)
    try:
        n = p.writable_extent(offset, n)
    except SyscallError:
        raise SyscallError(errno.EIO) from None
    # As the kernel's FOLL_FORCE: the write ignores the page protections.
    p.mem.write(offset, data[:n])
    p.soil(offset, n)
    return n


def _emu_seek(f: OpenFile, offset: int, whence: int) -> int:
    if f.kind == "procmem":  # any 64-bit address is a valid offset (mem_lseek)
        if whence == os.SEEK_SET:
            f.dir_pos = offset & abi.MASK64
        elif whence == os.SEEK_CUR:
            f.dir_pos = (f.dir_pos + offset) & abi.MASK64
        else:
            raise SyscallError(errno.EINVAL)
        return f.dir_pos
    base = {os.SEEK_SET: 0, os.SEEK_CUR: f.dir_pos,
            os.SEEK_END: len(f.data or b"") if f.kind == "proc" else None}.get(whence)
    if base is None or base + offset < 0:
        raise SyscallError(errno.EINVAL)
    f.dir_pos = base + offset
    return f.dir_pos


def _eof_into_bad_pointer(p: Process, fd: int, f: OpenFile, offset: int | None) -> int:
    """read/pread into an unmapped buffer: Linux copies nothing at end of file and returns
    0; with data to copy it is EFAULT (files and emulated files; pipes: always EFAULT)."""
    if _emulated(f):
        data = _emu_read(p, f, 1, f.dir_pos if offset is None else offset)
        return 0 if not data else -errno.EFAULT
    hfd = p.host_fd(fd)
    if f.kind == "file":
        pos = p.host.lseek(hfd, 0, os.SEEK_CUR) if offset is None else offset
        return 0 if pos >= p.host.fstat(hfd).st_size else -errno.EFAULT
    if f.kind == "dir":
        return -errno.EISDIR
    # A guest pipe whose write end the guest closed and that holds no more data is at its
    # end (0); other pipes and ttys: whether they are at their end cannot be known without
    # reading (or blocking), so this stays EFAULT where Linux returns 0 at end of input.
    if f.kind == "pipe" and p.s.pipe_checks and p.pipe_writer_closed(f) \
            and not p.host.readable(hfd):
        return 0
    return -errno.EFAULT


@syscall("read")
def sys_read(p: Process, fd: Fd, buf: Ptr, count: U64) -> int | None:
    f = p.file(fd)
    if f.kind in fdevents.KINDS:  # eventfd, timerfd, signalfd
        return fdevents.READERS[f.kind](p, f, fd, buf, count)
    if count and not p.mem.is_mapped(buf, 1):
        return _eof_into_bad_pointer(p, fd, f, None)
    if _emulated(f):
        n = p.writable_extent(buf, min(count, MAX_RW_COUNT))
        data = _emu_read(p, f, n, f.dir_pos)
        p.mem.write(buf, data)
        f.dir_pos += len(data)
        return len(data)
    hfd = p.host_fd(fd)
    if f.kind == "dir":
        return -errno.EISDIR
    if f.kind == "socket":  # recv's bookkeeping (edge-triggered epoll): syscalls/net.py
        return net.sock_read(p, f, fd, buf, count)
    n = p.writable_extent(buf, min(count, MAX_RW_COUNT))
    how = p.pipe_read(f, fd)
    if how != "read":
        return 0 if how == "eof" else None  # None: another thread runs; read again later
    try:
        data = p.host.read(hfd, n)
    except OSError as exc:
        if not poll.interrupted(exc):
            raise
        # Ctrl-C or a debugger's interrupt ended the wait for a terminal or a pipe before
        # anything was read: the call is made again when the guest resumes (no EINTR).
        poll.restart(p)
        return None
    p.mem.write(buf, data)
    return len(data)


@syscall("write")
def sys_write(p: Process, fd: Fd, buf: Ptr, count: U64) -> int | None:
    f = p.file(fd)
    if f.kind in fdevents.KINDS:
        return fdevents.WRITERS[f.kind](p, f, fd, buf, count)
    if _emulated(f):
        n = _emu_write(p, f, p.mem.read(buf, min(count, MAX_RW_COUNT)), f.dir_pos)
        f.dir_pos += n
        return n
    hfd = p.host_fd(fd)
    data = p.mem.read(buf, min(count, MAX_RW_COUNT))
    if p.is_guest_pipe_writer(f):
        return p.pipe_write(f, fd, data)  # None: a full pipe; write again later
    if f.kind == "socket":  # a full send buffer waits as send does: syscalls/net.py
        return net.sock_write(p, f, fd, buf, data)
    try:
        return p.host.write(hfd, data)
    except OSError as exc:
        _sigpipe(p, exc)
        raise


@syscall("pread64")
def sys_pread64(p: Process, fd: Fd, buf: Ptr, count: U64, offset: I64) -> int:
    f = p.file(fd)
    if offset < 0:
        return -errno.EINVAL
    if count and not p.mem.is_mapped(buf, 1):
        return _eof_into_bad_pointer(p, fd, f, offset)
    if _emulated(f):
        data = _emu_read(p, f, p.writable_extent(buf, min(count, MAX_RW_COUNT)), offset)
        p.mem.write(buf, data)
        return len(data)
    hfd = p.host_fd(fd)
    n = p.writable_extent(buf, min(count, MAX_RW_COUNT))
    data = p.host.pread(hfd, n, offset)
    p.mem.write(buf, data)
    return len(data)


@syscall("pwrite64")
def sys_pwrite64(p: Process, fd: Fd, buf: Ptr, count: U64, offset: I64) -> int:
    f = p.file(fd)
    if offset < 0:
        return -errno.EINVAL
    data = p.mem.read(buf, min(count, MAX_RW_COUNT))
    if _emulated(f):
        return _emu_write(p, f, data, offset)
    hfd = p.host_fd(fd)
    return p.host.pwrite(hfd, data, offset)


def _iovecs(p: Process, iov: int, iovcnt: int) -> list[tuple[int, int]]:
    if iovcnt < 0 or iovcnt > 1024:
        raise SyscallError(errno.EINVAL)
    raw = p.mem.read(iov, 16 * iovcnt)
    return [struct.unpack_from("<QQ", raw, 16 * i) for i in range(iovcnt)]


@syscall("readv")
def sys_readv(p: Process, fd: Fd, iov: Ptr, iovcnt: I32) -> int | None:
    f = p.file(fd)
    hfd = -1 if _emulated(f) else p.host_fd(fd)
    vecs = _iovecs(p, iov, iovcnt)
    for base, length in vecs:
        if length and not p.mem.is_mapped(base, length):
            return -errno.EFAULT
    total = min(sum(length for _, length in vecs), MAX_RW_COUNT)
    if _emulated(f):
        data = _emu_read(p, f, total, f.dir_pos)
        f.dir_pos += len(data)
    elif (how := p.pipe_read(f, fd)) != "read":
        return 0 if how == "eof" else None  # None: another thread runs; read again later
    else:
        data = p.host.read(hfd, total)
    pos = 0
    for base, length in vecs:
        if pos >= len(data):
            break
        chunk = data[pos:pos + length]
        p.mem.write(base, chunk)
        pos += len(chunk)
    return len(data)


@syscall("writev")
def sys_writev(p: Process, fd: Fd, iov: Ptr, iovcnt: I32) -> int | None:
    f = p.file(fd)
    hfd = -1 if _emulated(f) else p.host_fd(fd)
    vecs = _iovecs(p, iov, iovcnt)
    # Like Linux, stop at the first byte that cannot be read: what came before it is
    # written; EFAULT only if that is nothing.
    parts = []
    for base, length in vecs:
        if not length:
            continue
        chunk = p.mem.read_partial(base, length)
        parts.append(chunk)
        if len(chunk) < length:
            break
    data = b"".join(parts)
    if not data:
        return -errno.EFAULT if any(length for _, length in vecs) else 0
    if _emulated(f):
        n = _emu_write(p, f, data[:MAX_RW_COUNT], f.dir_pos)
        f.dir_pos += n
        return n
    if p.is_guest_pipe_writer(f):
        return p.pipe_write(f, fd, data[:MAX_RW_COUNT])  # None: full; write again later
    try:
        return p.host.write(hfd, data[:MAX_RW_COUNT])
    except OSError as exc:
        _sigpipe(p, exc)
        raise


def _open(p: Process, dirfd: int, path_ptr: int, flags: int, mode: int) -> int:
    arch = p.arch
    cloexec = bool(flags & abi.guest_flag(arch, "O_CLOEXEC"))
    node = procfs.find(p, dirfd, p.read_path(path_ptr),
                       follow=not flags & abi.guest_flag(arch, "O_NOFOLLOW"))
    if node.kind == "fd":  # /proc/self/fd/N, /dev/stdin...: reopen what fd N is
        old = p.file(int(node.data))
        if old.kind in ("file", "dir") and old.path is not None:
            node = procfs.Node("host", old.path, target=old.path)
        elif _emulated(old):
            f = p.new_file(old.kind, old.path, flags & 3, -1, owned=False, data=old.data)
            f.dir_entries = old.dir_entries
            return p.install_fd(f, cloexec=cloexec)
        else:  # stdio and pipes: the same description (Linux opens the same pipe/tty anew)
            return p.dup_fd(int(node.data), None, cloexec)
    emulated = procfs.open_node(p, node, flags)
    if emulated is not None:
        try:
            return p.install_fd(emulated, cloexec=cloexec)
        except SyscallError:
            p.s.files.pop(emulated.id, None)
            raise
    path = node.target
    hflags = abi.open_flags_to_host(arch, flags) | os.O_CLOEXEC
    if flags & abi.guest_flag(arch, "O_CREAT") or \
            flags & abi.guest_flag(arch, "__O_TMPFILE") == abi.guest_flag(arch, "__O_TMPFILE"):
        mode &= ~p.s.umask & 0o7777
    fd_num = p.lowest_free_fd()
    hfd = p.host.open(path, hflags, mode)
    try:
        st = p.host.fstat(hfd)
        procfs.check_host_stat(p, node, st)
    except (OSError, SyscallError):
        p.host.close(hfd)
        raise
    kind = "dir" if stat_mod.S_ISDIR(st.st_mode) else (
        "pipe" if stat_mod.S_ISFIFO(st.st_mode) else "file")
    drop = sum(abi.guest_flag(arch, n) for n in ("O_CREAT", "O_EXCL", "O_NOCTTY", "O_TRUNC",
                                                   "O_CLOEXEC"))
    f = p.new_file(kind, path, flags & ~drop, hfd)
    return p.install_fd(f, cloexec=cloexec, fd=fd_num)


@syscall("openat")
def sys_openat(p: Process, dirfd: Fd, path: Ptr, flags: I32, mode: U32) -> int:
    return _open(p, dirfd, path, flags, mode)


@syscall("open")
def sys_open(p: Process, path: Ptr, flags: I32, mode: U32) -> int:
    return _open(p, abi.AT_FDCWD, path, flags, mode)


@syscall("creat")
def sys_creat(p: Process, path: Ptr, mode: U32) -> int:
    flags = 0o1 | abi.guest_flag(p.arch, "O_CREAT") | abi.guest_flag(p.arch, "O_TRUNC")
    return _open(p, abi.AT_FDCWD, path, flags, mode)


@syscall("close")
def sys_close(p: Process, fd: Fd) -> int:
    p.file(fd)
    # (The last fd of a socket in any process shuts the host socket down: Process.close_fd.)
    p.close_fd(fd)
    return 0


@syscall("close_range")
def sys_close_range(p: Process, first: U32, last: U32, flags: U32) -> int:
    if first > last:
        return -errno.EINVAL
    for fd in [fd for fd in p.s.fds if first <= fd <= last]:
        if flags & 4:  # CLOSE_RANGE_CLOEXEC
            p.set_cloexec(fd, True)
        else:
            p.close_fd(fd)
    return 0


@syscall("lseek")
def sys_lseek(p: Process, fd: Fd, offset: I64, whence: I32) -> int:
    f = p.file(fd)
    if whence not in (0, 1, 2, 3, 4):
        return -errno.EINVAL
    if f.kind in ("proc", "procmem"):
        return _emu_seek(f, offset, whence)
    hfd = -1 if f.kind == "procdir" else p.host_fd(fd)
    if f.kind in ("dir", "procdir"):
        if whence == os.SEEK_SET and offset >= 0:
            f.dir_pos = offset
            return offset
        return -errno.EINVAL
    return p.host.lseek(hfd, offset, whence)


@syscall("ftruncate")
def sys_ftruncate(p: Process, fd: Fd, length: I64) -> int:
    if length < 0:
        return -errno.EINVAL
    p.host.ftruncate(p.host_fd(fd), length)
    return 0


@syscall("fsync", "fdatasync")
def sys_fsync(p: Process, fd: Fd) -> int:
    p.host.fsync(p.host_fd(fd))
    return 0


# --------------------------------------------------------------------------- fd table
@syscall("dup")
def sys_dup(p: Process, fd: Fd) -> int:
    return p.dup_fd(fd, None, False)


@syscall("dup2")
def sys_dup2(p: Process, old: Fd, new: Fd) -> int:
    if new < 0 or new >= p.s.rlimits[abi.RLIMIT_NOFILE][0]:
        p.file(old)
        return -errno.EBADF
    return p.dup_fd(old, new, False)


@syscall("dup3")
def sys_dup3(p: Process, old: Fd, new: Fd, flags: I32) -> int:
    cloexec_flag = abi.guest_flag(p.arch, "O_CLOEXEC")
    if old == new or flags & ~cloexec_flag:
        return -errno.EINVAL
    if new < 0 or new >= p.s.rlimits[abi.RLIMIT_NOFILE][0]:
        return -errno.EBADF
    return p.dup_fd(old, new, bool(flags & cloexec_flag))


_SETFL_NAMES = ("O_APPEND", "O_NONBLOCK", "O_ASYNC", "O_DIRECT", "O_NOATIME")


@syscall("fcntl")
def sys_fcntl(p: Process, fd: Fd, cmd: I32, arg: U64) -> int:
    f = p.file(fd)
    entry = p.s.fds[fd]
    if cmd in (abi.F_DUPFD, abi.F_DUPFD_CLOEXEC):
        if i64(arg) < 0 or arg >= p.s.rlimits[abi.RLIMIT_NOFILE][0]:
            return -errno.EINVAL
        return p.dup_fd(fd, None, cmd == abi.F_DUPFD_CLOEXEC, minimum=arg)
    if cmd == abi.F_GETFD:
        return abi.FD_CLOEXEC if entry.cloexec else 0
    if cmd == abi.F_SETFD:
        p.set_cloexec(fd, bool(arg & abi.FD_CLOEXEC))
        return 0
    if cmd == abi.F_GETFL:
        return f.flags
    if cmd == abi.F_SETFL:
        changeable = sum(abi.guest_flag(p.arch, n) for n in _SETFL_NAMES)
        new = (f.flags & ~changeable) | (arg & changeable)
        if _emulated(f) or f.kind in fdevents.KINDS or f.kind == "epoll":
            f.flags = new
            return 0
        hfd = p.host_fd(fd)
        host_flags = p.host.get_status_flags(hfd)
        host_changeable = abi.open_flags_to_host(p.arch, changeable)
        p.host.set_status_flags(hfd, (host_flags & ~host_changeable)
                                | abi.open_flags_to_host(p.arch, new & changeable))
        f.flags = new
        return 0
    if cmd in (abi.F_GETLK, abi.F_SETLK, abi.F_SETLKW, 36, 37, 38):  # + OFD locks
        return 0  # one process: every lock is granted (F_GETLK leaves the struct as is)
    return -errno.EINVAL


def _pipe(p: Process, fds: int, flags: int) -> int:
    cloexec = abi.guest_flag(p.arch, "O_CLOEXEC")
    nonblock = abi.guest_flag(p.arch, "O_NONBLOCK")
    if flags & ~(cloexec | nonblock | abi.guest_flag(p.arch, "O_DIRECT")):
        return -errno.EINVAL
    if not p.mem.is_mapped(fds, 8):
        return -errno.EFAULT
    r, w = p.host.pipe()
    if flags & nonblock:
        for hfd in (r, w):
            p.host.set_status_flags(hfd, p.host.get_status_flags(hfd) | os.O_NONBLOCK)
    status = flags & nonblock
    rf = p.install_fd(p.new_file("pipe", None, status, r), cloexec=bool(flags & cloexec))
    wf = p.install_fd(p.new_file("pipe", None, status | 1, w), cloexec=bool(flags & cloexec))
    p.mem.write(fds, struct.pack("<ii", rf, wf))
    return 0


@syscall("pipe2")
def sys_pipe2(p: Process, fds: Ptr, flags: I32) -> int:
    return _pipe(p, fds, flags)


@syscall("pipe")
def sys_pipe(p: Process, fds: Ptr) -> int:
    return _pipe(p, fds, 0)


@syscall("ioctl")
def sys_ioctl(p: Process, fd: Fd, request: U32, arg: Ptr) -> int:
    f = p.file(fd)
    hfd = -1 if _emulated(f) else p.host_fd(fd)
    if request == 0x5451:  # FIOCLEX
        p.set_cloexec(fd, True)
        return 0
    if request == 0x5450:  # FIONCLEX
        p.set_cloexec(fd, False)
        return 0
    if f.kind == "dir" or _emulated(f):
        return -errno.ENOTTY
    if request == abi.TCGETS:
        p.mem.write(arg, p.host.ioctl_read(hfd, abi.TCGETS, abi.TERMIOS_SIZE))
        return 0
    if request == abi.TIOCGWINSZ:
        p.mem.write(arg, p.host.ioctl_read(hfd, abi.TIOCGWINSZ, abi.WINSIZE_SIZE))
        return 0
    if request in (abi.TCSETS, abi.TCSETSW, abi.TCSETSF, abi.TIOCSWINSZ):
        # Accepted on a tty but not applied: the host terminal belongs to syxdbg.
        p.host.ioctl_read(hfd, abi.TCGETS, abi.TERMIOS_SIZE)  # ENOTTY if not a tty
        p.mem.read(arg, abi.TERMIOS_SIZE if request != abi.TIOCSWINSZ else abi.WINSIZE_SIZE)
        return 0
    return -errno.ENOTTY


@syscall("fadvise64")
def sys_fadvise64(p: Process, fd: Fd, offset: I64, length: I64, advice: I32) -> int:
    """Advice about future reads: nothing to do (data always comes from the host file), but
    the checks are Linux's: EBADF, ESPIPE for a pipe, EINVAL for an unknown advice."""
    f = p.file(fd)
    if f.kind == "pipe":
        return -errno.ESPIPE
    if advice not in range(6) or length < 0:
        return -errno.EINVAL
    return 0


_COPY_CHUNK = 1 << 20


def _read_at(p: Process, hfd: int, n: int, off_ptr: int) -> tuple[bytes, int]:
    """Up to ``n`` bytes of host ``hfd``: at the offset in guest memory at ``off_ptr``
    (pread; EINVAL if negative), or at the file position when ``off_ptr`` is 0. Returns
    the bytes and the offset used (-1: the position)."""
    if not off_ptr:
        return p.host.read(hfd, n), -1
    pos = struct.unpack("<q", p.mem.read(off_ptr, 8))[0]
    if pos < 0:
        raise SyscallError(errno.EINVAL)
    return p.host.pread(hfd, n, pos), pos


def _write_at(p: Process, hfd: int, data: bytes, off_ptr: int) -> int:
    """Write ``data`` to host ``hfd`` at the offset at ``off_ptr`` (pwrite; the offset
    moves past what was written), or at the file position when ``off_ptr`` is 0."""
    if not off_ptr:
        return p.host.write(hfd, data)
    pos = struct.unpack("<q", p.mem.read(off_ptr, 8))[0]
    if pos < 0:
        raise SyscallError(errno.EINVAL)
    written = p.host.pwrite(hfd, data, pos)
    p.mem.write(off_ptr, struct.pack("<q", pos + written))
    return written


def _read_done(p: Process, hfd: int, off_ptr: int, pos: int, read: int, written: int) -> None:
    """After a copy that read ``read`` bytes of host ``hfd`` (at ``pos`` from
    :func:`_read_at`) and wrote ``written`` of them: the offset at ``off_ptr`` moves past
    them, or the file position gives back what was read but not written."""
    if off_ptr:
        p.mem.write(off_ptr, struct.pack("<q", pos + written))
    elif written < read:
        p.host.lseek(hfd, written - read, os.SEEK_CUR)


@syscall("copy_file_range")
def sys_copy_file_range(p: Process, fd_in: Fd, off_in: Ptr, fd_out: Fd, off_out: Ptr,
                        length: U64, flags: U32) -> int:
    """Copy between two regular files as reads and writes through the host boundary (the
    data read is recorded like any read): pointers give explicit offsets, updated after."""
    if flags:
        return -errno.EINVAL
    src, dst = p.file(fd_in), p.file(fd_out)
    if src.kind != "file" or dst.kind != "file":
        return -errno.EINVAL
    if src.flags & abi.O_ACCMODE == 1 or dst.flags & abi.O_ACCMODE == 0:
        return -errno.EBADF
    if dst.flags & 0o2000:  # O_APPEND (the same on both architectures)
        return -errno.EBADF
    # A short copy, as Linux may make: callers loop (cp asks for SSIZE_MAX at once, and a
    # host read allocates its whole count up front).
    n = min(length, _COPY_CHUNK)
    hin, hout = p.host_fd(fd_in), p.host_fd(fd_out)
    data, pos_in = _read_at(p, hin, n, off_in)
    if not data:
        return 0
    written = _write_at(p, hout, data, off_out)
    _read_done(p, hin, off_in, pos_in, len(data), written)
    return written



@syscall("sendfile")
def sys_sendfile(p: Process, out_fd: Fd, in_fd: Fd, offset: Ptr, count: U64) -> int:
    """Copy from a file to any fd as a read and a write through the host boundary (the
    bytes read are recorded like any read); at most 1 MiB per call (callers loop)."""
    src, dst = p.file(in_fd), p.file(out_fd)
    if src.kind not in ("file",) or src.flags & abi.O_ACCMODE == 1:
        return -errno.EINVAL if src.kind != "file" else -errno.EBADF
    if dst.flags & abi.O_ACCMODE == 0 or dst.kind in ("dir", "procdir"):
        return -errno.EBADF
    n = min(count, _COPY_CHUNK)
    hin = p.host_fd(in_fd)
    data, pos = _read_at(p, hin, n, offset)
    if not data:
        return 0
    if _emulated(dst):
        written = _emu_write(p, dst, data, dst.dir_pos)
        dst.dir_pos += written
    else:
        try:
            written = p.host.write(p.host_fd(out_fd), data)
        except OSError as exc:
            _sigpipe(p, exc)
            _read_done(p, hin, offset, pos, len(data), 0)
            raise
    _read_done(p, hin, offset, pos, len(data), written)
    return written


@syscall("fallocate")
def sys_fallocate(p: Process, fd: Fd, mode: I32, offset: I64, length: I64) -> int:
    f = p.file(fd)
    if offset < 0 or length <= 0:
        return -errno.EINVAL
    if f.kind == "pipe":
        return -errno.ESPIPE
    if f.kind != "file":
        return -errno.ENODEV
    if f.flags & abi.O_ACCMODE == 0:
        return -errno.EBADF
    p.host.fallocate(p.host_fd(fd), mode, offset, length)
    return 0


@syscall("sync")
def sys_sync(p: Process) -> int:
    p.host.sync(None)
    return 0


@syscall("syncfs")
def sys_syncfs(p: Process, fd: Fd) -> int:
    f = p.file(fd)
    if _emulated(f):
        return 0
    p.host.sync(p.host_fd(fd))
    return 0


@syscall("sync_file_range")
def sys_sync_file_range(p: Process, fd: Fd, offset: I64, nbytes: I64, flags: U32) -> int:
    """Checked as Linux does; the data reaches the disk at the host's pace (no effect)."""
    f = p.file(fd)
    if flags & ~7 or offset < 0 or nbytes < 0:
        return -errno.EINVAL
    if f.kind == "pipe":
        return -errno.ESPIPE
    return 0


#: splice flags: SPLICE_F_MOVE, SPLICE_F_NONBLOCK, SPLICE_F_MORE, SPLICE_F_GIFT.
_SPLICE_FLAGS, _SPLICE_F_NONBLOCK = 0xF, 2


@syscall("splice")
def sys_splice(p: Process, fd_in: Fd, off_in: Ptr, fd_out: Fd, off_out: Ptr, length: U64,
               flags: U32) -> int | None:
    """Move bytes between a pipe and a file (or another pipe) as a read and a write through
    the host boundary (the bytes read are recorded like any read); at most 1 MiB per call,
    4 KiB into a pipe (callers loop). An empty pipe to read or a full one to write makes
    the caller wait like read/write do; with SPLICE_F_NONBLOCK or O_NONBLOCK it is EAGAIN.
    Sockets and other kinds of file: EINVAL (callers fall back to read and write)."""
    src, dst = p.file(fd_in), p.file(fd_out)
    if flags & ~_SPLICE_FLAGS:
        return -errno.EINVAL
    if src.flags & abi.O_ACCMODE == 1 or dst.flags & abi.O_ACCMODE == 0:
        return -errno.EBADF
    if "pipe" not in (src.kind, dst.kind) or {src.kind, dst.kind} - {"pipe", "file"} \
            or _emulated(src) or _emulated(dst):
        return -errno.EINVAL
    if (off_in and src.kind == "pipe") or (off_out and dst.kind == "pipe"):
        return -errno.ESPIPE
    if src.kind == dst.kind == "pipe" and dst.id == src.id + 1:
        return -errno.EINVAL  # the two ends of one pipe (_pipe makes them one after another)
    if not length:
        return 0
    nonblock = bool(flags & _SPLICE_F_NONBLOCK)
    hin, hout = p.host_fd(fd_in), p.host_fd(fd_out)
    n = min(length, _COPY_CHUNK)
    if src.kind == "pipe":
        if nonblock and not p.host.readable(hin):
            return 0 if p.pipe_writer_closed(src) else -errno.EAGAIN
        how = p.pipe_read(src, fd_in)
        if how != "read":
            return 0 if how == "eof" else None  # None: the caller waits, then calls again
    if dst.kind == "pipe":
        # Room for a page: what Linux's pipe poll calls writable (one free buffer).
        if not p.host.poll(((hout, 4),), 0)[0] & 4:  # POLLOUT
            if nonblock or dst.flags & abi.O_NONBLOCK:
                return -errno.EAGAIN
            p.wait_io(fd_out)  # woken when a thread reads or closes a file
            return None
        n = min(n, abi.PIPE_BUF)
    data, pos_in = _read_at(p, hin, n, off_in)
    if not data:
        return 0
    if dst.kind == "pipe":
        sent = p.pipe_write(dst, fd_out, data) if p.is_guest_pipe_writer(dst) \
            else p.host.write(hout, data)
        written = len(data) if sent is None else sent  # (it had room: see above)
    else:
        written = _write_at(p, hout, data, off_out)
    if src.kind == "file":
        _read_done(p, hin, off_in, pos_in, len(data), written)
    return written
