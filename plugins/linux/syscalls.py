"""One handler function per Linux system call, bound by name to both architectures.

A handler is ``def sys_NAME(k: LinuxKernel, arg: TYPE, ...) -> int | None``. Its parameters
after the kernel are the syscall arguments in order; their annotations say how to convert
the raw 64-bit register (introspected ONCE, by :func:`syscall`, at import time):

========  ===================================================
``U64``   unsigned 64-bit (sizes, flags, raw values)
``Ptr``   a guest address
``I64``   signed 64-bit (offsets)
``I32``   signed 32-bit (ints: signal numbers, clock ids...)
``U32``   unsigned 32-bit (modes, flags declared ``unsigned int``)
``Fd``    a file descriptor / dirfd (signed 32-bit, so AT_FDCWD is -100)
========  ===================================================

The return value is the syscall result: ``>= 0`` or ``-errno`` (or None when nothing must
be written back, e.g. exit). Raising :class:`SyscallError`, an ``OSError`` from the host,
a ``MemoryAccessError`` (-> EFAULT) or ``MemoryMapError`` (-> ENOMEM) also works.

Sleeping (nanosleep, clock_nanosleep) really sleeps on the host (through HostIO.sleep, which
a replaying HostIO skips), so guest clocks advance as the program expects.
"""

from __future__ import annotations

import errno
import inspect
import os
import stat as stat_mod
import struct
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from syxdbg.machine.memory import PAGE, Perm, page_round_up

from . import abi
from .tables import SYSCALL_TABLES

if TYPE_CHECKING:
    from .kernel import LinuxKernel

# Argument kinds. For type checkers they are plain ints; the registration reads the
# annotation's *name* (handlers' modules use ``from __future__ import annotations``).
U64: TypeAlias = int
Ptr: TypeAlias = int
I64: TypeAlias = int
I32: TypeAlias = int
U32: TypeAlias = int
Fd: TypeAlias = int


class SyscallError(Exception):
    """Raised by handlers: the syscall returns ``-errno``."""

    def __init__(self, err: int) -> None:
        super().__init__(errno.errorcode.get(err, str(err)))
        self.errno = err


def _i64(v: int) -> int:
    return v - (1 << 64) if v & (1 << 63) else v


def _i32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & (1 << 31) else v


def _u32(v: int) -> int:
    return v & 0xFFFFFFFF


def _u64(v: int) -> int:
    return v


_CONVERTERS: dict[str, Callable[[int], int]] = {
    "U64": _u64, "Ptr": _u64, "int": _u64, "I64": _i64, "I32": _i32, "Fd": _i32, "U32": _u32,
}

HandlerFn = Callable[..., "int | None"]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Handler:
    name: str
    fn: HandlerFn
    converters: tuple[Callable[[int], int], ...]


_handlers: dict[str, Handler] = {}


def syscall(*names: str) -> Callable[[F], F]:
    """Register the decorated function as the handler of the syscalls ``names``."""

    def deco(fn: F) -> F:
        params = list(inspect.signature(fn).parameters.values())[1:]
        if len(params) > 6:
            raise TypeError(f"{fn.__name__}: a syscall has at most 6 arguments")
        convs = []
        for p in params:
            ann = p.annotation
            if not isinstance(ann, str) or ann not in _CONVERTERS:
                raise TypeError(f"{fn.__name__}: argument {p.name} needs a U64/Ptr/I64/I32/"
                                f"U32/Fd annotation, not {ann!r}")
            convs.append(_CONVERTERS[ann])
        for name in names:
            if name in _handlers:
                raise ValueError(f"syscall {name} has two handlers")
            _handlers[name] = Handler(name, fn, tuple(convs))
        return fn

    return deco


def _err(code: int) -> SyscallError:
    return SyscallError(code)


# =========================================================================== file I/O
MAX_RW_COUNT = 0x7FFFF000


def _sigpipe(k: LinuxKernel, exc: OSError) -> None:
    if exc.errno == errno.EPIPE:
        k.deliver(13)  # SIGPIPE


@syscall("read")
def sys_read(k: LinuxKernel, fd: Fd, buf: Ptr, count: U64) -> int:
    f = k.file(fd)
    hfd = k.host_fd(fd)
    if f.kind == "dir":
        return -errno.EISDIR
    n = k.writable_extent(buf, min(count, MAX_RW_COUNT))
    data = k.host.read(hfd, n)
    k.mem.write(buf, data)
    return len(data)


@syscall("write")
def sys_write(k: LinuxKernel, fd: Fd, buf: Ptr, count: U64) -> int:
    hfd = k.host_fd(fd)
    data = k.mem.read(buf, min(count, MAX_RW_COUNT))
    try:
        return k.host.write(hfd, data)
    except OSError as exc:
        _sigpipe(k, exc)
        raise


@syscall("pread64")
def sys_pread64(k: LinuxKernel, fd: Fd, buf: Ptr, count: U64, offset: I64) -> int:
    hfd = k.host_fd(fd)
    if offset < 0:
        return -errno.EINVAL
    n = k.writable_extent(buf, min(count, MAX_RW_COUNT))
    data = k.host.pread(hfd, n, offset)
    k.mem.write(buf, data)
    return len(data)


@syscall("pwrite64")
def sys_pwrite64(k: LinuxKernel, fd: Fd, buf: Ptr, count: U64, offset: I64) -> int:
    hfd = k.host_fd(fd)
    if offset < 0:
        return -errno.EINVAL
    data = k.mem.read(buf, min(count, MAX_RW_COUNT))
    return k.host.pwrite(hfd, data, offset)


def _iovecs(k: LinuxKernel, iov: int, iovcnt: int) -> list[tuple[int, int]]:
    if iovcnt < 0 or iovcnt > 1024:
        raise _err(errno.EINVAL)
    raw = k.mem.read(iov, 16 * iovcnt)
    return [struct.unpack_from("<QQ", raw, 16 * i) for i in range(iovcnt)]


@syscall("readv")
def sys_readv(k: LinuxKernel, fd: Fd, iov: Ptr, iovcnt: I32) -> int:
    hfd = k.host_fd(fd)
    vecs = _iovecs(k, iov, iovcnt)
    for base, length in vecs:
        if length and not k.mem.is_mapped(base, length):
            return -errno.EFAULT
    total = min(sum(length for _, length in vecs), MAX_RW_COUNT)
    data = k.host.read(hfd, total)
    pos = 0
    for base, length in vecs:
        if pos >= len(data):
            break
        chunk = data[pos:pos + length]
        k.mem.write(base, chunk)
        pos += len(chunk)
    return len(data)


@syscall("writev")
def sys_writev(k: LinuxKernel, fd: Fd, iov: Ptr, iovcnt: I32) -> int:
    hfd = k.host_fd(fd)
    vecs = _iovecs(k, iov, iovcnt)
    data = b"".join(k.mem.read(base, length) for base, length in vecs if length)
    if not data:
        return 0
    try:
        return k.host.write(hfd, data[:MAX_RW_COUNT])
    except OSError as exc:
        _sigpipe(k, exc)
        raise


def _open(k: LinuxKernel, dirfd: int, path_ptr: int, flags: int, mode: int) -> int:
    path = k.resolve(dirfd, k.read_path(path_ptr))
    arch = k.arch
    hflags = abi.open_flags_to_host(arch, flags) | os.O_CLOEXEC
    if flags & abi.guest_flag(arch, "O_CREAT") or \
            flags & abi.guest_flag(arch, "__O_TMPFILE") == abi.guest_flag(arch, "__O_TMPFILE"):
        mode &= ~k.s.umask & 0o7777
    fd_num = k.lowest_free_fd()
    hfd = k.host.open(path, hflags, mode)
    try:
        st = k.host.fstat(hfd)
    except OSError:
        k.host.close(hfd)
        raise
    kind = "dir" if stat_mod.S_ISDIR(st.st_mode) else (
        "pipe" if stat_mod.S_ISFIFO(st.st_mode) else "file")
    drop = sum(abi.guest_flag(arch, n) for n in ("O_CREAT", "O_EXCL", "O_NOCTTY", "O_TRUNC",
                                                   "O_CLOEXEC"))
    f = k._new_file(kind, path, flags & ~drop, hfd)
    return k.install_fd(f, cloexec=bool(flags & abi.guest_flag(arch, "O_CLOEXEC")), fd=fd_num)


@syscall("openat")
def sys_openat(k: LinuxKernel, dirfd: Fd, path: Ptr, flags: I32, mode: U32) -> int:
    return _open(k, dirfd, path, flags, mode)


@syscall("open")
def sys_open(k: LinuxKernel, path: Ptr, flags: I32, mode: U32) -> int:
    return _open(k, abi.AT_FDCWD, path, flags, mode)


@syscall("creat")
def sys_creat(k: LinuxKernel, path: Ptr, mode: U32) -> int:
    flags = 0o1 | abi.guest_flag(k.arch, "O_CREAT") | abi.guest_flag(k.arch, "O_TRUNC")
    return _open(k, abi.AT_FDCWD, path, flags, mode)


@syscall("close")
def sys_close(k: LinuxKernel, fd: Fd) -> int:
    k.close_fd(fd)
    return 0


@syscall("close_range")
def sys_close_range(k: LinuxKernel, first: U32, last: U32, flags: U32) -> int:
    if first > last:
        return -errno.EINVAL
    for fd in [fd for fd in k.s.fds if first <= fd <= last]:
        if flags & 4:  # CLOSE_RANGE_CLOEXEC
            k.s.fds[fd] = type(k.s.fds[fd])(k.s.fds[fd].file, True)
        else:
            k.close_fd(fd)
    return 0


@syscall("lseek")
def sys_lseek(k: LinuxKernel, fd: Fd, offset: I64, whence: I32) -> int:
    f = k.file(fd)
    hfd = k.host_fd(fd)
    if whence not in (0, 1, 2, 3, 4):
        return -errno.EINVAL
    if f.kind == "dir":
        if whence == os.SEEK_SET and offset >= 0:
            f.dir_pos = offset
            return offset
        return -errno.EINVAL
    return k.host.lseek(hfd, offset, whence)


@syscall("ftruncate")
def sys_ftruncate(k: LinuxKernel, fd: Fd, length: I64) -> int:
    if length < 0:
        return -errno.EINVAL
    k.host.ftruncate(k.host_fd(fd), length)
    return 0


@syscall("fsync", "fdatasync")
def sys_fsync(k: LinuxKernel, fd: Fd) -> int:
    k.host.fsync(k.host_fd(fd))
    return 0


# --------------------------------------------------------------------------- stat family
def _stat_path(k: LinuxKernel, dirfd: int, path_ptr: int, flags: int) -> os.stat_result:
    if flags & ~(abi.AT_SYMLINK_NOFOLLOW | abi.AT_EMPTY_PATH | abi.AT_NO_AUTOMOUNT | 0x6000):
        raise _err(errno.EINVAL)
    path = k.read_path(path_ptr)
    if not path and flags & abi.AT_EMPTY_PATH:
        if dirfd == abi.AT_FDCWD:
            return k.host.stat(k.s.cwd)
        return k.host.fstat(k.host_fd(dirfd))
    return k.host.stat(k.resolve(dirfd, path),
                       follow_symlinks=not flags & abi.AT_SYMLINK_NOFOLLOW)


@syscall("fstat")
def sys_fstat(k: LinuxKernel, fd: Fd, buf: Ptr) -> int:
    k.mem.write(buf, abi.pack_stat(k.arch, k.host.fstat(k.host_fd(fd))))
    return 0


@syscall("newfstatat")
def sys_newfstatat(k: LinuxKernel, dirfd: Fd, path: Ptr, buf: Ptr, flags: I32) -> int:
    k.mem.write(buf, abi.pack_stat(k.arch, _stat_path(k, dirfd, path, flags)))
    return 0


@syscall("stat")
def sys_stat(k: LinuxKernel, path: Ptr, buf: Ptr) -> int:
    return sys_newfstatat(k, abi.AT_FDCWD, path, buf, 0)


@syscall("lstat")
def sys_lstat(k: LinuxKernel, path: Ptr, buf: Ptr) -> int:
    return sys_newfstatat(k, abi.AT_FDCWD, path, buf, abi.AT_SYMLINK_NOFOLLOW)


@syscall("statx")
def sys_statx(k: LinuxKernel, dirfd: Fd, path: Ptr, flags: I32, mask: U32, buf: Ptr) -> int:
    k.mem.write(buf, abi.pack_statx(_stat_path(k, dirfd, path, flags)))
    return 0


@syscall("getdents64")
def sys_getdents64(k: LinuxKernel, fd: Fd, dirp: Ptr, count: U32) -> int:
    f = k.file(fd)
    hfd = k.host_fd(fd)
    if f.kind != "dir":
        return -errno.ENOTDIR
    if f.dir_entries is None:
        f.dir_entries = tuple(k.host.listdir(hfd))
    out = bytearray()
    pos = f.dir_pos
    while pos < len(f.dir_entries):
        name, ino, mode = f.dir_entries[pos]
        rec = abi.pack_dirent64(ino, pos + 1, abi.dtype_of_mode(mode), name)
        if len(out) + len(rec) > count:
            if not out:
                return -errno.EINVAL
            break
        out += rec
        pos += 1
    if out:
        k.mem.write(dirp, bytes(out))
    f.dir_pos = pos
    return len(out)


# --------------------------------------------------------------------------- namespace
def _access(k: LinuxKernel, dirfd: int, path_ptr: int, mode: int, flags: int) -> int:
    if mode & ~7 or flags & ~(abi.AT_EACCESS | abi.AT_SYMLINK_NOFOLLOW | abi.AT_EMPTY_PATH):
        return -errno.EINVAL
    path = k.resolve(dirfd, k.read_path(path_ptr))
    ok = k.host.access(path, mode, follow_symlinks=not flags & abi.AT_SYMLINK_NOFOLLOW)
    return 0 if ok else -errno.EACCES


@syscall("access")
def sys_access(k: LinuxKernel, path: Ptr, mode: I32) -> int:
    return _access(k, abi.AT_FDCWD, path, mode, 0)


@syscall("faccessat")
def sys_faccessat(k: LinuxKernel, dirfd: Fd, path: Ptr, mode: I32) -> int:
    return _access(k, dirfd, path, mode, 0)


@syscall("faccessat2")
def sys_faccessat2(k: LinuxKernel, dirfd: Fd, path: Ptr, mode: I32, flags: I32) -> int:
    return _access(k, dirfd, path, mode, flags)


@syscall("unlink")
def sys_unlink(k: LinuxKernel, path: Ptr) -> int:
    k.host.unlink(k.resolve(abi.AT_FDCWD, k.read_path(path)))
    return 0


@syscall("unlinkat")
def sys_unlinkat(k: LinuxKernel, dirfd: Fd, path: Ptr, flags: I32) -> int:
    if flags & ~abi.AT_REMOVEDIR:
        return -errno.EINVAL
    target = k.resolve(dirfd, k.read_path(path))
    if flags & abi.AT_REMOVEDIR:
        k.host.rmdir(target)
    else:
        k.host.unlink(target)
    return 0


@syscall("rmdir")
def sys_rmdir(k: LinuxKernel, path: Ptr) -> int:
    k.host.rmdir(k.resolve(abi.AT_FDCWD, k.read_path(path)))
    return 0


@syscall("mkdirat")
def sys_mkdirat(k: LinuxKernel, dirfd: Fd, path: Ptr, mode: U32) -> int:
    k.host.mkdir(k.resolve(dirfd, k.read_path(path)), mode & ~k.s.umask & 0o7777)
    return 0


@syscall("mkdir")
def sys_mkdir(k: LinuxKernel, path: Ptr, mode: U32) -> int:
    return sys_mkdirat(k, abi.AT_FDCWD, path, mode)


@syscall("renameat2")
def sys_renameat2(k: LinuxKernel, olddirfd: Fd, oldpath: Ptr, newdirfd: Fd, newpath: Ptr,
                  flags: U32) -> int:
    if flags:
        return -errno.EINVAL
    k.host.rename(k.resolve(olddirfd, k.read_path(oldpath)),
                  k.resolve(newdirfd, k.read_path(newpath)))
    return 0


@syscall("renameat")
def sys_renameat(k: LinuxKernel, olddirfd: Fd, oldpath: Ptr, newdirfd: Fd, newpath: Ptr) -> int:
    return sys_renameat2(k, olddirfd, oldpath, newdirfd, newpath, 0)


@syscall("rename")
def sys_rename(k: LinuxKernel, oldpath: Ptr, newpath: Ptr) -> int:
    return sys_renameat2(k, abi.AT_FDCWD, oldpath, abi.AT_FDCWD, newpath, 0)


@syscall("getcwd")
def sys_getcwd(k: LinuxKernel, buf: Ptr, size: U64) -> int:
    data = k.s.cwd + b"\0"
    if size < len(data):
        return -errno.ERANGE
    k.mem.write(buf, data)
    return len(data)


def _set_cwd(k: LinuxKernel, path: bytes) -> int:
    st = k.host.stat(path)
    if not stat_mod.S_ISDIR(st.st_mode):
        return -errno.ENOTDIR
    k.s.cwd = k.host.realpath(path)
    return 0


@syscall("chdir")
def sys_chdir(k: LinuxKernel, path: Ptr) -> int:
    return _set_cwd(k, k.resolve(abi.AT_FDCWD, k.read_path(path)))


@syscall("fchdir")
def sys_fchdir(k: LinuxKernel, fd: Fd) -> int:
    f = k.file(fd)
    if f.kind != "dir" or f.path is None:
        return -errno.ENOTDIR
    return _set_cwd(k, f.path)


def _readlink(k: LinuxKernel, dirfd: int, path_ptr: int, buf: int, size: int) -> int:
    if size <= 0:
        return -errno.EINVAL
    path = k.read_path(path_ptr)
    if path in (b"/proc/self/exe", b"/proc/%d/exe" % k.s.ids[0]):
        target = k.image_path
    else:
        target = k.host.readlink(k.resolve(dirfd, path))
    data = target[:size]
    k.mem.write(buf, data)
    return len(data)


@syscall("readlink")
def sys_readlink(k: LinuxKernel, path: Ptr, buf: Ptr, size: I32) -> int:
    return _readlink(k, abi.AT_FDCWD, path, buf, size)


@syscall("readlinkat")
def sys_readlinkat(k: LinuxKernel, dirfd: Fd, path: Ptr, buf: Ptr, size: I32) -> int:
    return _readlink(k, dirfd, path, buf, size)


@syscall("umask")
def sys_umask(k: LinuxKernel, mask: U32) -> int:
    old = k.s.umask
    k.s.umask = mask & 0o777
    return old


# --------------------------------------------------------------------------- fd table
@syscall("dup")
def sys_dup(k: LinuxKernel, fd: Fd) -> int:
    return k.dup_fd(fd, None, False)


@syscall("dup2")
def sys_dup2(k: LinuxKernel, old: Fd, new: Fd) -> int:
    if new < 0 or new >= k.s.rlimits[abi.RLIMIT_NOFILE][0]:
        k.file(old)
        return -errno.EBADF
    return k.dup_fd(old, new, False)


@syscall("dup3")
def sys_dup3(k: LinuxKernel, old: Fd, new: Fd, flags: I32) -> int:
    cloexec_flag = abi.guest_flag(k.arch, "O_CLOEXEC")
    if old == new or flags & ~cloexec_flag:
        return -errno.EINVAL
    if new < 0 or new >= k.s.rlimits[abi.RLIMIT_NOFILE][0]:
        return -errno.EBADF
    return k.dup_fd(old, new, bool(flags & cloexec_flag))


_SETFL_NAMES = ("O_APPEND", "O_NONBLOCK", "O_ASYNC", "O_DIRECT", "O_NOATIME")


@syscall("fcntl")
def sys_fcntl(k: LinuxKernel, fd: Fd, cmd: I32, arg: U64) -> int:
    f = k.file(fd)
    entry = k.s.fds[fd]
    if cmd in (abi.F_DUPFD, abi.F_DUPFD_CLOEXEC):
        if _i64(arg) < 0 or arg >= k.s.rlimits[abi.RLIMIT_NOFILE][0]:
            return -errno.EINVAL
        return k.dup_fd(fd, None, cmd == abi.F_DUPFD_CLOEXEC, minimum=arg)
    if cmd == abi.F_GETFD:
        return abi.FD_CLOEXEC if entry.cloexec else 0
    if cmd == abi.F_SETFD:
        k.s.fds[fd] = type(entry)(entry.file, bool(arg & abi.FD_CLOEXEC))
        return 0
    if cmd == abi.F_GETFL:
        return f.flags
    if cmd == abi.F_SETFL:
        changeable = sum(abi.guest_flag(k.arch, n) for n in _SETFL_NAMES)
        new = (f.flags & ~changeable) | (arg & changeable)
        hfd = k.host_fd(fd)
        host_flags = k.host.get_status_flags(hfd)
        host_changeable = abi.open_flags_to_host(k.arch, changeable)
        k.host.set_status_flags(hfd, (host_flags & ~host_changeable)
                                | abi.open_flags_to_host(k.arch, new & changeable))
        f.flags = new
        return 0
    if cmd in (abi.F_GETLK, abi.F_SETLK, abi.F_SETLKW, 36, 37, 38):  # + OFD locks
        return 0  # one process: every lock is granted (F_GETLK leaves the struct as is)
    return -errno.EINVAL


def _pipe(k: LinuxKernel, fds: int, flags: int) -> int:
    cloexec = abi.guest_flag(k.arch, "O_CLOEXEC")
    nonblock = abi.guest_flag(k.arch, "O_NONBLOCK")
    if flags & ~(cloexec | nonblock | abi.guest_flag(k.arch, "O_DIRECT")):
        return -errno.EINVAL
    if not k.mem.is_mapped(fds, 8):
        return -errno.EFAULT
    r, w = k.host.pipe()
    if flags & nonblock:
        for hfd in (r, w):
            k.host.set_status_flags(hfd, k.host.get_status_flags(hfd) | os.O_NONBLOCK)
    status = flags & nonblock
    rf = k.install_fd(k._new_file("pipe", None, status, r), cloexec=bool(flags & cloexec))
    wf = k.install_fd(k._new_file("pipe", None, status | 1, w), cloexec=bool(flags & cloexec))
    k.mem.write(fds, struct.pack("<ii", rf, wf))
    return 0


@syscall("pipe2")
def sys_pipe2(k: LinuxKernel, fds: Ptr, flags: I32) -> int:
    return _pipe(k, fds, flags)


@syscall("pipe")
def sys_pipe(k: LinuxKernel, fds: Ptr) -> int:
    return _pipe(k, fds, 0)


@syscall("ioctl")
def sys_ioctl(k: LinuxKernel, fd: Fd, request: U32, arg: Ptr) -> int:
    f = k.file(fd)
    hfd = k.host_fd(fd)
    if request == 0x5451:  # FIOCLEX
        k.s.fds[fd] = type(k.s.fds[fd])(k.s.fds[fd].file, True)
        return 0
    if request == 0x5450:  # FIONCLEX
        k.s.fds[fd] = type(k.s.fds[fd])(k.s.fds[fd].file, False)
        return 0
    if f.kind == "dir":
        return -errno.ENOTTY
    if request == abi.TCGETS:
        k.mem.write(arg, k.host.ioctl_read(hfd, abi.TCGETS, abi.TERMIOS_SIZE))
        return 0
    if request == abi.TIOCGWINSZ:
        k.mem.write(arg, k.host.ioctl_read(hfd, abi.TIOCGWINSZ, abi.WINSIZE_SIZE))
        return 0
    if request in (abi.TCSETS, abi.TCSETSW, abi.TCSETSF, abi.TIOCSWINSZ):
        # Accepted on a tty but not applied: the host terminal belongs to syxdbg.
        k.host.ioctl_read(hfd, abi.TCGETS, abi.TERMIOS_SIZE)  # ENOTTY if not a tty
        k.mem.read(arg, abi.TERMIOS_SIZE if request != abi.TIOCSWINSZ else abi.WINSIZE_SIZE)
        return 0
    return -errno.ENOTTY


# =========================================================================== memory
@syscall("brk")
def sys_brk(k: LinuxKernel, addr: Ptr) -> int:
    s = k.s
    if addr == 0 or addr < s.brk_start:
        return s.brk
    old_top = page_round_up(s.brk)
    new_top = page_round_up(addr)
    if new_top > old_top:
        if k._overlaps(old_top, new_top - old_top):
            return s.brk
        k.mem.map(old_top, new_top - old_top, Perm.RW, "[heap]")
        k.add_mapping(old_top, new_top, abi.PROT_READ | abi.PROT_WRITE,
                      abi.MAP_PRIVATE | abi.MAP_ANONYMOUS, "[heap]")
    elif new_top < old_top:
        k.mem.unmap(new_top, old_top - new_top)
        k.remove_mappings(new_top, old_top)
    s.brk = addr
    return addr


@syscall("mmap")
def sys_mmap(k: LinuxKernel, addr: Ptr, length: U64, prot: I32, flags: I32, fd: Fd,
             offset: U64) -> int:
    if length == 0 or offset % PAGE or length > (1 << 48):
        return -errno.EINVAL
    if flags & 3 not in (abi.MAP_SHARED, abi.MAP_PRIVATE, abi.MAP_SHARED_VALIDATE):
        return -errno.EINVAL
    size = page_round_up(length)
    anon = bool(flags & abi.MAP_ANONYMOUS)
    name = "[anon]"
    hfd = -1
    if not anon:
        f = k.file(fd)
        hfd = k.host_fd(fd)
        if f.kind != "file":
            return -errno.ENODEV if f.kind == "dir" else -errno.EACCES
        if f.flags & abi.O_ACCMODE == 1:  # O_WRONLY
            return -errno.EACCES
        name = os.path.basename(f.path or b"").decode(errors="replace")
    fixed = flags & (abi.MAP_FIXED | abi.MAP_FIXED_NOREPLACE)
    if fixed:
        if addr % PAGE:
            return -errno.EINVAL
        if flags & abi.MAP_FIXED_NOREPLACE and not flags & abi.MAP_FIXED and \
                k._overlaps(addr, size):
            return -errno.EEXIST
        k.mem.unmap(addr, size)
        k.mem.map(addr, size, Perm(prot & 7), name)
    else:
        addr = k.map_fresh(size, prot, name, hint=addr & ~(PAGE - 1))
    if not anon:
        data = k.host.pread(hfd, size, offset)
        if data:
            k.mem.write(addr, data)
    k.add_mapping(addr, addr + size, prot & 7, flags, name)
    return addr


@syscall("munmap")
def sys_munmap(k: LinuxKernel, addr: Ptr, length: U64) -> int:
    if addr % PAGE or length == 0 or addr + length > (1 << 64):
        return -errno.EINVAL
    size = page_round_up(length)
    k.mem.unmap(addr, size)
    k.remove_mappings(addr, addr + size)
    return 0


@syscall("mprotect")
def sys_mprotect(k: LinuxKernel, addr: Ptr, length: U64, prot: I32) -> int:
    if addr % PAGE or prot & ~0x7 & ~0x3000000:  # PROT_GROWSDOWN/UP accepted
        return -errno.EINVAL
    size = page_round_up(length)
    if size == 0:
        return 0
    if not k.mem.is_mapped(addr, size):
        return -errno.ENOMEM
    k.mem.protect(addr, size, Perm(prot & 7))
    k.remove_mappings(addr, addr + size, lambda m: type(m)(m.start, m.end, prot & 7, m.flags,
                                                          m.name))
    return 0


@syscall("mremap")
def sys_mremap(k: LinuxKernel, old: Ptr, old_size: U64, new_size: U64, flags: I32,
               new_addr: Ptr) -> int:
    if old % PAGE or flags & ~7:
        return -errno.EINVAL
    if flags & (abi.MREMAP_FIXED | abi.MREMAP_DONTUNMAP) and not flags & abi.MREMAP_MAYMOVE:
        return -errno.EINVAL
    old_size = page_round_up(old_size)
    new_size = page_round_up(new_size)
    if new_size == 0 or old_size == 0:
        return -errno.EINVAL
    if not k.mem.is_mapped(old, old_size):
        return -errno.EFAULT
    region = k.mem.find(old)
    assert region is not None
    perms, name = region.perms, region.name
    info = next((m for m in k.s.mappings if m.start <= old < m.end), None)
    mflags = info.flags if info else abi.MAP_PRIVATE | abi.MAP_ANONYMOUS

    def move(target: int) -> int:
        data = k.mem.read(old, min(old_size, new_size))
        if flags & abi.MREMAP_FIXED:
            k.mem.unmap(target, new_size)
            k.remove_mappings(target, target + new_size)
        k.mem.map(target, new_size, perms, name)
        k.mem.write(target, data)
        if not flags & abi.MREMAP_DONTUNMAP:
            k.mem.unmap(old, old_size)
            k.remove_mappings(old, old + old_size)
        k.add_mapping(target, target + new_size, int(perms), mflags, name)
        return target

    if flags & abi.MREMAP_FIXED:
        if new_addr % PAGE or (new_addr < old + old_size and old < new_addr + new_size):
            return -errno.EINVAL
        return move(new_addr)
    if new_size <= old_size:
        if new_size < old_size:
            k.mem.unmap(old + new_size, old_size - new_size)
            k.remove_mappings(old + new_size, old + old_size)
        return old
    grow = new_size - old_size
    if not k._overlaps(old + old_size, grow) and old + new_size <= (1 << 48):
        k.mem.map(old + old_size, grow, perms, name)
        k.add_mapping(old + old_size, old + new_size, int(perms), mflags, name)
        return old
    if flags & abi.MREMAP_MAYMOVE:
        return move(k.mem.find_free(new_size, below=k.mmap_base))
    return -errno.ENOMEM


@syscall("madvise")
def sys_madvise(k: LinuxKernel, addr: Ptr, length: U64, advice: I32) -> int:
    if addr % PAGE:
        return -errno.EINVAL
    size = page_round_up(length)
    if advice == 4 and size:  # MADV_DONTNEED: private anonymous pages read back as zeros
        if not k.mem.is_mapped(addr, size):
            return -errno.ENOMEM
        k.mem.write(addr, bytes(size))
    return 0


# =========================================================================== time & co
@syscall("clock_gettime")
def sys_clock_gettime(k: LinuxKernel, clockid: I32, tp: Ptr) -> int:
    if clockid not in abi.VALID_CLOCKS:
        return -errno.EINVAL
    k.mem.write(tp, abi.pack_timespec(k.host.clock(clockid)))
    return 0


@syscall("clock_getres")
def sys_clock_getres(k: LinuxKernel, clockid: I32, res: Ptr) -> int:
    if clockid not in abi.VALID_CLOCKS:
        return -errno.EINVAL
    if res:
        k.mem.write(res, abi.pack_timespec(k.host.clock_res(clockid)))
    return 0


@syscall("gettimeofday")
def sys_gettimeofday(k: LinuxKernel, tv: Ptr, tz: Ptr) -> int:
    if tv:
        k.mem.write(tv, abi.pack_timeval(k.host.clock(abi.CLOCK_REALTIME)))
    if tz:
        k.mem.write(tz, bytes(8))
    return 0


@syscall("time")
def sys_time(k: LinuxKernel, tloc: Ptr) -> int:
    now = k.host.clock(abi.CLOCK_REALTIME) // 1_000_000_000
    if tloc:
        k.mem.write(tloc, struct.pack("<q", now))
    return now


def _read_timespec(k: LinuxKernel, ptr: int) -> int:
    sec, nsec = struct.unpack("<qq", k.mem.read(ptr, 16))
    if sec < 0 or not 0 <= nsec < 1_000_000_000:
        raise _err(errno.EINVAL)
    return sec * 1_000_000_000 + nsec


@syscall("nanosleep")
def sys_nanosleep(k: LinuxKernel, req: Ptr, rem: Ptr) -> int:
    k.host.sleep(_read_timespec(k, req))
    return 0


@syscall("clock_nanosleep")
def sys_clock_nanosleep(k: LinuxKernel, clockid: I32, flags: I32, req: Ptr, rem: Ptr) -> int:
    if clockid not in abi.VALID_CLOCKS or clockid in (2, 3):
        return -errno.EINVAL
    ns = _read_timespec(k, req)
    if flags & abi.TIMER_ABSTIME:
        ns -= k.host.clock(clockid)
    k.host.sleep(ns)
    return 0


@syscall("getrandom")
def sys_getrandom(k: LinuxKernel, buf: Ptr, length: U64, flags: U32) -> int:
    if flags & ~(abi.GRND_NONBLOCK | abi.GRND_RANDOM | abi.GRND_INSECURE):
        return -errno.EINVAL
    n = min(length, 33554431)
    if n == 0:
        return 0
    n = k.writable_extent(buf, n)
    k.mem.write(buf, k.host.random(n))
    return n


@syscall("uname")
def sys_uname(k: LinuxKernel, buf: Ptr) -> int:
    _sysname, node, release, version, _machine = k.host.uname()
    k.mem.write(buf, abi.pack_utsname(("Linux", node, release, version, k.arch, "(none)")))
    return 0


@syscall("sysinfo")
def sys_sysinfo(k: LinuxKernel, info: Ptr) -> int:
    k.mem.write(info, abi.pack_sysinfo(*k.host.sysinfo()))
    return 0


@syscall("getrusage")
def sys_getrusage(k: LinuxKernel, who: I32, usage: Ptr) -> int:
    if who not in (0, -1, 1):
        return -errno.EINVAL
    k.mem.write(usage, bytes(144))
    return 0


# =========================================================================== process
@syscall("getpid", "gettid", "getpgrp", "getsid")
def sys_getpid(k: LinuxKernel) -> int:
    return k.s.ids[0]


@syscall("getpgid")
def sys_getpgid(k: LinuxKernel, pid: I32) -> int:
    return k.s.ids[0] if pid in (0, k.s.ids[0]) else -errno.ESRCH


@syscall("getppid")
def sys_getppid(k: LinuxKernel) -> int:
    return k.s.ids[1]


@syscall("getuid")
def sys_getuid(k: LinuxKernel) -> int:
    return k.s.ids[2]


@syscall("geteuid")
def sys_geteuid(k: LinuxKernel) -> int:
    return k.s.ids[3]


@syscall("getgid")
def sys_getgid(k: LinuxKernel) -> int:
    return k.s.ids[4]


@syscall("getegid")
def sys_getegid(k: LinuxKernel) -> int:
    return k.s.ids[5]


@syscall("exit", "exit_group")
def sys_exit_group(k: LinuxKernel, status: I32) -> None:
    k.machine.request_exit(status & 0xFF)


@syscall("arch_prctl")
def sys_arch_prctl(k: LinuxKernel, code: I32, addr: Ptr) -> int:
    regs = k.machine.regs
    if code == abi.ARCH_SET_FS:
        regs["fs_base"] = addr
    elif code == abi.ARCH_SET_GS:
        regs["gs_base"] = addr
    elif code == abi.ARCH_GET_FS:
        k.mem.write(addr, struct.pack("<Q", regs["fs_base"]))
    elif code == abi.ARCH_GET_GS:
        k.mem.write(addr, struct.pack("<Q", regs["gs_base"]))
    else:
        return -errno.EINVAL  # CET (0x3001...) and the rest: not supported, as on old kernels
    return 0


@syscall("set_tid_address")
def sys_set_tid_address(k: LinuxKernel, tidptr: Ptr) -> int:
    k.s.tid_address = tidptr
    return k.s.ids[0]


@syscall("set_robust_list")
def sys_set_robust_list(k: LinuxKernel, head: Ptr, length: U64) -> int:
    if length != 24:
        return -errno.EINVAL
    k.s.robust_list = (head, length)
    return 0


@syscall("rseq")
def sys_rseq(k: LinuxKernel) -> int:
    # As qemu-user: glibc (and musl) treat ENOSYS as "no rseq" and carry on.
    return -errno.ENOSYS


@syscall("prctl")
def sys_prctl(k: LinuxKernel, option: I32, arg2: U64) -> int:
    if option == 15:  # PR_SET_NAME
        k.mem.read_cstring(arg2, 16)
        return 0
    if option == 16:  # PR_GET_NAME
        k.mem.write(arg2, os.path.basename(k.image_path)[:15].ljust(16, b"\0"))
        return 0
    return -errno.EINVAL


def _rlimit(k: LinuxKernel, resource: int, new: int, old: int) -> int:
    if not 0 <= resource < abi.RLIMIT_NLIMITS:
        return -errno.EINVAL
    cur = k.s.rlimits[resource]
    value = None
    if new:
        value = struct.unpack("<QQ", k.mem.read(new, 16))
        if value[0] > value[1]:
            return -errno.EINVAL
    if old:
        k.mem.write(old, struct.pack("<QQ", *cur))
    if value is not None:
        k.s.rlimits[resource] = (value[0], value[1])
    return 0


@syscall("prlimit64")
def sys_prlimit64(k: LinuxKernel, pid: I32, resource: U32, new: Ptr, old: Ptr) -> int:
    if pid not in (0, k.s.ids[0]):
        return -errno.ESRCH
    return _rlimit(k, resource, new, old)


@syscall("getrlimit")
def sys_getrlimit(k: LinuxKernel, resource: U32, rlim: Ptr) -> int:
    return _rlimit(k, resource, 0, rlim)


@syscall("setrlimit")
def sys_setrlimit(k: LinuxKernel, resource: U32, rlim: Ptr) -> int:
    return _rlimit(k, resource, rlim, 0)


@syscall("futex")
def sys_futex(k: LinuxKernel, uaddr: Ptr, op: I32, val: U32, timeout: Ptr) -> int:
    cmd = op & abi.FUTEX_CMD_MASK
    if cmd in (abi.FUTEX_WAIT, abi.FUTEX_WAIT_BITSET):
        current = struct.unpack("<I", k.mem.read(uaddr, 4))[0]
        if current != val:
            return -errno.EAGAIN
        # One thread: nobody can wake us. Time out if asked to, else report an interruption.
        return -errno.ETIMEDOUT if timeout else -errno.EINTR
    if cmd in (abi.FUTEX_WAKE, abi.FUTEX_WAKE_BITSET):
        k.mem.read(uaddr, 4)
        return 0
    return -errno.ENOSYS


@syscall("sched_yield")
def sys_sched_yield(k: LinuxKernel) -> int:
    return 0


@syscall("sched_getaffinity")
def sys_sched_getaffinity(k: LinuxKernel, pid: I32, size: U32, mask: Ptr) -> int:
    if size < 8 or size % 8:
        return -errno.EINVAL
    k.mem.write(mask, struct.pack("<Q", 1))
    return 8


# --------------------------------------------------------------------------- signals
def _check_signal(sig: int) -> None:
    if not 1 <= sig <= abi.NSIG:
        raise _err(errno.EINVAL)


@syscall("rt_sigaction")
def sys_rt_sigaction(k: LinuxKernel, sig: I32, act: Ptr, oact: Ptr, sigsetsize: U64) -> int:
    if sigsetsize != 8:
        return -errno.EINVAL
    _check_signal(sig)
    if act and sig in (abi.SIGKILL, abi.SIGSTOP):
        return -errno.EINVAL
    new = k.mem.read(act, abi.SIGACTION_SIZE) if act else None
    if oact:
        k.mem.write(oact, k.s.sigactions.get(sig, bytes(abi.SIGACTION_SIZE)))
    if new is not None:
        k.s.sigactions[sig] = new
        if int.from_bytes(new[:8], "little") == abi.SIG_IGN:
            k.s.sigpending &= ~(1 << (sig - 1))
    return 0


_UNBLOCKABLE = (1 << (abi.SIGKILL - 1)) | (1 << (abi.SIGSTOP - 1))


@syscall("rt_sigprocmask")
def sys_rt_sigprocmask(k: LinuxKernel, how: I32, set_: Ptr, oset: Ptr, sigsetsize: U64) -> int:
    if sigsetsize != 8:
        return -errno.EINVAL
    old = k.s.sigmask
    new = old
    if set_:
        value = struct.unpack("<Q", k.mem.read(set_, 8))[0]
        if how == abi.SIG_BLOCK:
            new = old | value
        elif how == abi.SIG_UNBLOCK:
            new = old & ~value
        elif how == abi.SIG_SETMASK:
            new = value
        else:
            return -errno.EINVAL
    if oset:
        k.mem.write(oset, struct.pack("<Q", old))
    k.s.sigmask = new & ~_UNBLOCKABLE & abi.MASK64
    if k.s.sigpending:
        k.deliver_pending()
    return 0


@syscall("sigaltstack")
def sys_sigaltstack(k: LinuxKernel, ss: Ptr, old_ss: Ptr) -> int:
    new = k.mem.read(ss, abi.SIGALTSTACK_SIZE) if ss else None
    if old_ss:
        k.mem.write(old_ss, k.s.altstack or struct.pack("<QiiQ", 0, abi.SS_DISABLE, 0, 0))
    if new is not None:
        k.s.altstack = new
    return 0


def _signal_self(k: LinuxKernel, sig: int) -> int:
    if not 0 <= sig <= abi.NSIG:
        return -errno.EINVAL
    if sig:
        k.deliver(sig)
    return 0


@syscall("kill")
def sys_kill(k: LinuxKernel, pid: I32, sig: I32) -> int:
    me = k.s.ids[0]
    if pid in (me, 0, -1, -me):
        return _signal_self(k, sig)
    return -errno.EPERM  # other processes are out of the guest's reach


@syscall("tgkill")
def sys_tgkill(k: LinuxKernel, tgid: I32, tid: I32, sig: I32) -> int:
    if tgid <= 0 or tid <= 0:
        return -errno.EINVAL
    if tgid != k.s.ids[0] or tid != k.s.ids[0]:
        return -errno.ESRCH
    return _signal_self(k, sig)


@syscall("tkill")
def sys_tkill(k: LinuxKernel, tid: I32, sig: I32) -> int:
    if tid <= 0:
        return -errno.EINVAL
    if tid != k.s.ids[0]:
        return -errno.ESRCH
    return _signal_self(k, sig)


# =========================================================================== dispatch
HANDLERS: MappingProxyType[str, Handler] = MappingProxyType(_handlers)
#: arch name -> {syscall number: handler}; immutable, built once at import.
DISPATCH: MappingProxyType[str, MappingProxyType[int, Handler]] = MappingProxyType({
    arch: MappingProxyType({nr: HANDLERS[name] for nr, name in table.items()
                            if name in HANDLERS})
    for arch, table in SYSCALL_TABLES.items()
})


def supported(arch: str) -> list[str]:
    """Names of the syscalls handled on ``arch``."""
    return sorted({h.name for h in DISPATCH[arch].values()} & set(SYSCALL_TABLES[arch].values()))


__all__ = ["DISPATCH", "HANDLERS", "Handler", "SyscallError", "supported", "syscall"]
