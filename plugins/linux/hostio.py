"""The ONE boundary between the emulated Linux kernel and the host.

Every value the syscall layer takes from the host (bytes read from files and stdin, stat
results, directory listings, clock readings, random bytes, uname, ids, the initial cwd, tty
state) and every side effect it has on the host (writes to host fds, file creation, unlink,
rename, mkdir, sleeping) goes through a :class:`HostIO` method. Nothing else in
``syxdbg_plugins.linux`` calls ``os``/``time``/``fcntl`` on the host.

Record/replay plugs in here: a recording HostIO logs each input result at the frontier
(keyed by the instruction position of the syscall) and a replaying one returns the logged
results behind it and suppresses the side effects (``write`` returns the logged count
without writing, ``unlink`` does nothing, ...). Methods raise :class:`OSError` exactly as
the ``os`` functions do; the kernel turns it into ``-errno``.

Classification used by the EventLog (see ``INPUTS`` / ``EFFECTS``): an *input* returns
host data the guest observes; an *effect* changes the host; some are both (``open`` with
``O_CREAT`` creates a file and returns an fd; ``write`` returns how much was written).

:class:`RecordingHostIO` is that recording/replaying HostIO. The kernel brackets every syscall
with :meth:`HostIO.enter_syscall` / :meth:`HostIO.leave_syscall`; only calls made inside a
syscall go through the log. Calls outside (the kernel's own ``save_state``/``load_state``
repositioning host files at checkpoints, teardown) always go straight to the host.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import select
import stat
import struct
import threading
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from syxdbg.sigint import blocking_call, wait_host

if TYPE_CHECKING:
    from syxdbg.eventlog import EventLog

#: Methods whose results are nondeterministic host inputs (record at the frontier).
INPUTS = frozenset({
    "read", "pread", "lseek", "open", "fstat", "stat", "access", "readlink", "listdir",
    "clock", "clock_res", "random", "uname", "ids", "getcwd", "realpath", "ioctl_read",
    "get_status_flags", "sysinfo", "pipe", "write", "pwrite", "statfs", "xattr", "readable",
    "poll", "groups", "cpu_count", "rlimit",
    "socket", "socketpair", "accept", "recv", "send", "sockopt", "sockname", "connect",
    "sendmsg", "recvmsg", "connect_nowait",
})
#: Methods with host side effects (suppress while re-executing behind the frontier).
EFFECTS = frozenset({
    "write", "pwrite", "open", "close", "unlink", "rmdir", "mkdir", "rename", "ftruncate",
    "fsync", "set_status_flags", "sleep", "pipe", "warn", "symlink", "link", "chmod", "utime",
    "chown", "mknod", "fallocate", "sync",
    "socket", "socketpair", "bind", "listen", "accept", "connect", "send", "shutdown",
    "setsockopt", "sendmsg", "recvmsg", "connect_nowait",
})


_SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437}.get(os.uname().machine)
_RESOLVE_NO_MAGICLINKS = 0x02
_openat2_missing = _SYS_OPENAT2 is None
_libc: ctypes.CDLL | None = None


def _open_no_magiclinks(path: bytes, flags: int, mode: int) -> int:
    """openat2(AT_FDCWD, path, {flags, mode, RESOLVE_NO_MAGICLINKS}) (Linux >= 5.6), or
    os.open on older hosts (the kernel's procfs device check still applies there)."""
    global _openat2_missing, _libc
    if not _openat2_missing:
        libc = _libc = _libc or ctypes.CDLL(None, use_errno=True)
        creating = flags & os.O_CREAT or flags & os.O_TMPFILE == os.O_TMPFILE
        how = struct.pack("<QQQ", flags & 0xFFFFFFFF, mode if creating else 0,
                          _RESOLVE_NO_MAGICLINKS)
        fd = libc.syscall(_SYS_OPENAT2, -100, ctypes.c_char_p(path), ctypes.c_char_p(how),
                          ctypes.c_size_t(len(how)))
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err != errno.ENOSYS:
            raise OSError(err, os.strerror(err), path)
        _openat2_missing = True
    return os.open(path, flags, mode)


#: Programs execve read lately, by (path, inode, size, mtime): see HostIO.read_program.
_PROGRAMS: dict[tuple[bytes, int, int, int], bytes] = {}

class HostIO:
    """Direct host access (the live, non-recording implementation)."""

    #: True for a HostIO that must never reach the host (replaying a recording file).
    detached = False

    @property
    def replaying(self) -> bool:
        """True while host calls are served from a recording (never for direct access)."""
        return False

    # -- syscall bracketing (record/replay) ----------------------------------------------
    def enter_syscall(self, position: int) -> None:
        """The kernel starts handling a syscall retired at machine ``position``."""

    def leave_syscall(self) -> None:
        """The kernel is done with the current syscall."""

    def warn(self, text: str, stream: IO[str]) -> None:
        """Write a warning for the user (an effect: shown once, not again on replay)."""
        stream.write(text)
        stream.flush()

    # -- file descriptors ----------------------------------------------------------------
    def open(self, path: bytes, flags: int, mode: int) -> int:
        """os.open, but never through a "magic link" (``/proc/<pid>/fd/N``, ``exe``,
        ``cwd``... reached by a symlink): those are the debugger's, not the guest's."""
        return _open_no_magiclinks(path, flags, mode)

    def close(self, fd: int) -> None:
        os.close(fd)

    def read(self, fd: int, n: int) -> bytes:
        if n and threading.current_thread() is not threading.main_thread() \
                and not _ready_now(fd, select.POLLIN):
            # A terminal or a pipe with nothing to read, in gdb's or the DAP server's
            # worker thread, which no SIGINT reaches: wait where their interrupt ends the
            # wait, with EINTR, before anything is read. (In the main thread Ctrl-C
            # interrupts the read itself.)
            wait_host(((fd, select.POLLIN),), -1)
        with blocking_call():  # a terminal or a pipe may wait: Ctrl-C gives EINTR
            return os.read(fd, n)

    def pread(self, fd: int, n: int, offset: int) -> bytes:
        return os.pread(fd, n, offset)

    def write(self, fd: int, data: bytes) -> int:
        return os.write(fd, data)

    def pwrite(self, fd: int, data: bytes, offset: int) -> int:
        return os.pwrite(fd, data, offset)

    def lseek(self, fd: int, offset: int, whence: int) -> int:
        return os.lseek(fd, offset, whence)

    def ftruncate(self, fd: int, length: int) -> None:
        os.ftruncate(fd, length)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def pipe(self) -> tuple[int, int]:
        return os.pipe2(os.O_CLOEXEC)

    def get_status_flags(self, fd: int) -> int:
        return fcntl.fcntl(fd, fcntl.F_GETFL)

    def readable(self, fd: int) -> bool:
        """Whether a read of ``fd`` would not block now (data, end of file or an error)."""
        return bool(select.select([fd], [], [], 0)[0])

    def write_nowait(self, fd: int, data: bytes) -> int:
        """Write to pipe ``fd`` without blocking: the bytes written (all or nothing for
        at most PIPE_BUF bytes, as Linux's O_NONBLOCK pipe writes), -1 if there is no room."""
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        if not flags & os.O_NONBLOCK:
            fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        try:
            return os.write(fd, data)
        except BlockingIOError:
            return -1
        finally:
            if not flags & os.O_NONBLOCK:
                fcntl.fcntl(fd, fcntl.F_SETFL, flags)

    def poll(self, fds: tuple[tuple[int, int], ...], timeout_ms: int) -> tuple[int, ...]:
        """poll(2) of host fds with (host) poll events: their revents, in order."""
        if timeout_ms:  # a wait: an interrupt (Ctrl-C, gdb's) ends it with EINTR
            ready = wait_host(fds, timeout_ms)
        else:
            poller = select.poll()
            for fd, events in fds:
                poller.register(fd, events)
            ready = dict(poller.poll(0))
        return tuple(ready.get(fd, 0) for fd, _ in fds)

    def set_status_flags(self, fd: int, flags: int) -> None:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)

    def ioctl_read(self, fd: int, request: int, size: int) -> bytes:
        """An ioctl that fills a ``size``-byte struct (TCGETS, TIOCGWINSZ)."""
        return bytes(fcntl.ioctl(fd, request, bytes(size)))

    # -- metadata and the file system ----------------------------------------------------
    def fstat(self, fd: int) -> os.stat_result:
        return os.fstat(fd)

    def stat(self, path: bytes, follow_symlinks: bool = True) -> os.stat_result:
        return os.stat(path, follow_symlinks=follow_symlinks)

    def access(self, path: bytes, mode: int, follow_symlinks: bool = True) -> bool:
        """Raises OSError if ``path`` cannot be looked up; False if the access is denied."""
        os.stat(path, follow_symlinks=follow_symlinks)
        return os.access(path, mode, follow_symlinks=follow_symlinks)

    def readlink(self, path: bytes) -> bytes:
        return os.readlink(path)

    def statfs(self, target: bytes | int) -> bytes:
        """The host's ``struct statfs`` (120 bytes, the same layout on x86_64 and aarch64)
        of the file system holding a path or host fd."""
        global _libc
        libc = _libc = _libc or ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(_STATFS_SIZE)
        if isinstance(target, int):
            r = libc.fstatfs(ctypes.c_int(target), buf)
        else:
            r = libc.statfs(ctypes.c_char_p(target), buf)
        if r != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return buf.raw

    def xattr(self, target: bytes | int, name: bytes | None, follow: bool) -> bytes:
        """The value of extended attribute ``name`` of a path or host fd, or (``name`` None)
        its attribute names, each NUL-terminated, as listxattr gives them."""
        if name is None:
            names = os.listxattr(target, follow_symlinks=follow)
            return b"".join(os.fsencode(n) + b"\0" for n in names)
        return os.getxattr(target, name, follow_symlinks=follow)

    def listdir(self, fd: int) -> list[tuple[bytes, int, int]]:
        """(name, inode, st_mode type bits or 0) of a directory's entries, '.' and '..' first."""
        out: list[tuple[bytes, int, int]] = []
        st = os.fstat(fd)
        out.append((b".", st.st_ino, st.st_mode))
        try:
            parent = os.stat(b"..", dir_fd=fd)
            out.append((b"..", parent.st_ino, parent.st_mode))
        except OSError:
            out.append((b"..", st.st_ino, st.st_mode))
        with os.scandir(os.dup(fd)) as it:  # scandir closes the fd it was given
            for entry in it:
                try:
                    mode = entry.stat(follow_symlinks=False).st_mode
                except OSError:
                    mode = 0
                out.append((os.fsencode(entry.name), entry.inode(), mode))
        return out

    def unlink(self, path: bytes) -> None:
        os.unlink(path)

    def rmdir(self, path: bytes) -> None:
        os.rmdir(path)

    def mkdir(self, path: bytes, mode: int) -> None:
        os.mkdir(path, mode)

    def rename(self, src: bytes, dst: bytes) -> None:
        os.rename(src, dst)

    def symlink(self, target: bytes, path: bytes) -> None:
        os.symlink(target, path)

    def link(self, src: bytes, dst: bytes, follow: bool) -> None:
        os.link(src, dst, follow_symlinks=follow)

    def chmod(self, target: bytes | int, mode: int, follow: bool = True) -> None:
        os.chmod(target, mode, follow_symlinks=follow)

    def utime(self, target: bytes | int, times: tuple[tuple[int, int], tuple[int, int]] | None,
              follow: bool = True) -> None:
        """utimensat: ``times`` are (seconds, nanoseconds) of access and modification, each
        possibly UTIME_NOW or UTIME_OMIT in the nanoseconds; None: both now."""
        now = time.time_ns()
        if times is None:
            os.utime(target, ns=(now, now), follow_symlinks=follow)
            return
        if all(ns == _UTIME_OMIT for _, ns in times):
            os.stat(target, follow_symlinks=follow)  # still an error for a bad path
            return
        old = os.stat(target, follow_symlinks=follow) if any(
            ns == _UTIME_OMIT for _, ns in times) else None
        values = []
        for i, (sec, ns) in enumerate(times):
            if ns == _UTIME_NOW:
                values.append(now)
            elif ns == _UTIME_OMIT:
                assert old is not None
                values.append(old.st_atime_ns if i == 0 else old.st_mtime_ns)
            else:
                values.append(sec * 1_000_000_000 + ns)
        os.utime(target, ns=(values[0], values[1]), follow_symlinks=follow)

    def chown(self, target: bytes | int, uid: int, gid: int, follow: bool = True) -> None:
        os.chown(target, uid, gid, follow_symlinks=follow)

    def mknod(self, path: bytes, mode: int, device: int) -> None:
        os.mknod(path, mode, device)

    def fallocate(self, fd: int, mode: int, offset: int, length: int) -> None:
        global _libc
        libc = _libc = _libc or ctypes.CDLL(None, use_errno=True)
        if libc.fallocate(ctypes.c_int(fd), ctypes.c_int(mode), ctypes.c_int64(offset),
                          ctypes.c_int64(length)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    def sync(self, fd: int | None) -> None:
        """sync() (``fd`` None) or syncfs(fd)."""
        if fd is None:
            os.sync()
            return
        global _libc
        libc = _libc = _libc or ctypes.CDLL(None, use_errno=True)
        if libc.syncfs(ctypes.c_int(fd)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    def realpath(self, path: bytes) -> bytes:
        return os.path.realpath(path)

    # -- sockets (raw sockaddr bytes: the guest's layout is the host's, both Linux) ----------
    def socket(self, family: int, kind: int, proto: int) -> int:
        return _check(_lib().socket(family, kind | os.O_CLOEXEC, proto))

    def socketpair(self, family: int, kind: int, proto: int) -> tuple[int, int]:
        fds = (ctypes.c_int * 2)()
        _check(_lib().socketpair(family, kind | os.O_CLOEXEC, proto, fds))
        return int(fds[0]), int(fds[1])

    def bind(self, fd: int, addr: bytes) -> None:
        _check(_lib().bind(fd, ctypes.c_char_p(addr), len(addr)))

    def listen(self, fd: int, backlog: int) -> None:
        _check(_lib().listen(fd, backlog))

    def accept(self, fd: int, flags: int) -> tuple[int, bytes]:
        buf = ctypes.create_string_buffer(128)
        size = ctypes.c_uint32(128)
        with blocking_call():
            r = _check(_lib().accept4(fd, buf, ctypes.byref(size), flags | os.O_CLOEXEC))
        return r, buf.raw[:size.value]

    def connect(self, fd: int, addr: bytes) -> None:
        with blocking_call():
            _check(_lib().connect(fd, ctypes.c_char_p(addr), len(addr)))

    def connect_nowait(self, fd: int, addr: bytes) -> None:
        """connect(2) of a blocking socket as if it were non-blocking: done (or the
        connection's error), or EINPROGRESS/EALREADY while it goes on (a blocking connect
        waits for POLLOUT and asks again: then done, or its error, as Linux's restarted
        connect). AF_UNIX gives EAGAIN when the listener's queue is full."""
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        try:
            _check(_lib().connect(fd, ctypes.c_char_p(addr), len(addr)))
        finally:
            fcntl.fcntl(fd, fcntl.F_SETFL, flags)

    def send(self, fd: int, data: bytes, flags: int, addr: bytes | None) -> int:
        return _check(_lib().sendto(fd, ctypes.c_char_p(data), ctypes.c_size_t(len(data)),
                                    flags | _MSG_NOSIGNAL, ctypes.c_char_p(addr) if addr
                                    else None, len(addr) if addr else 0))

    def recv(self, fd: int, n: int, flags: int) -> tuple[bytes, bytes]:
        """(data, sender address) of one recvfrom."""
        buf = ctypes.create_string_buffer(max(n, 1))
        addr = ctypes.create_string_buffer(128)
        size = ctypes.c_uint32(128)
        with blocking_call():
            r = _check(_lib().recvfrom(fd, buf, ctypes.c_size_t(n), flags, addr,
                                       ctypes.byref(size)))
        return buf.raw[:r], addr.raw[:size.value]

    def shutdown(self, fd: int, how: int) -> None:
        _check(_lib().shutdown(fd, how))

    def sendmsg(self, fd: int, data: bytes, flags: int, addr: bytes | None,
                fds: tuple[int, ...]) -> int:
        """sendmsg with ``fds`` as SCM_RIGHTS ancillary data (host fds)."""
        import array
        import socket
        sock = socket.socket(fileno=fd)
        try:
            anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
            if addr:
                raise OSError(errno.EOPNOTSUPP, "SCM_RIGHTS with an address")
            return sock.sendmsg([data], anc, flags | _MSG_NOSIGNAL)
        finally:
            sock.detach()

    def recvmsg(self, fd: int, n: int, flags: int,
                maxfds: int) -> tuple[bytes, bytes, tuple[int, ...], int, int]:
        """One recvmsg(2) with room for ``maxfds`` SCM_RIGHTS descriptors: (data, sender
        address, received host fds (close-on-exec), msg_flags, the result: more than
        ``len(data)`` for a datagram truncated with MSG_TRUNC)."""
        buf = ctypes.create_string_buffer(max(n, 1))
        addr = ctypes.create_string_buffer(128)
        space = (16 + 4 * maxfds + 7) & ~7 if maxfds else 0
        control = ctypes.create_string_buffer(max(space, 1))
        iov = _IOVec(ctypes.cast(buf, ctypes.c_void_p), n)
        msg = _MsgHdr(ctypes.cast(addr, ctypes.c_void_p), 128, ctypes.pointer(iov), 1,
                      ctypes.cast(control, ctypes.c_void_p) if space else None, space, 0)
        with blocking_call():
            r = _check(_lib().recvmsg(fd, ctypes.byref(msg), flags | _MSG_CMSG_CLOEXEC))
        fds: list[int] = []
        raw = control.raw[:msg.controllen]
        pos = 0
        while pos + 16 <= len(raw):
            length, level, kind = struct.unpack_from("<QiI", raw, pos)
            if length < 16:
                break
            if (level, kind) == (1, 1):  # SOL_SOCKET, SCM_RIGHTS
                body = raw[pos + 16:pos + length]
                fds += [struct.unpack_from("<i", body, i)[0]
                        for i in range(0, len(body) // 4 * 4, 4)]
            pos += (length + 7) & ~7
        return buf.raw[:min(r, n)], addr.raw[:msg.namelen], tuple(fds), msg.flags, r

    def setsockopt(self, fd: int, level: int, name: int, value: bytes) -> None:
        _check(_lib().setsockopt(fd, level, name, ctypes.c_char_p(value), len(value)))

    def sockopt(self, fd: int, level: int, name: int, size: int) -> bytes:
        buf = ctypes.create_string_buffer(max(size, 1))
        n = ctypes.c_uint32(size)
        _check(_lib().getsockopt(fd, level, name, buf, ctypes.byref(n)))
        return buf.raw[:n.value]

    def sockname(self, fd: int, peer: bool) -> bytes:
        buf = ctypes.create_string_buffer(128)
        size = ctypes.c_uint32(128)
        call = _lib().getpeername if peer else _lib().getsockname
        _check(call(fd, buf, ctypes.byref(size)))
        return buf.raw[:size.value]

    def getcwd(self) -> bytes:
        return os.getcwdb()

    def memory_total(self) -> int:
        """Bytes of physical memory of the host (0 if unknown): the default memory limit."""
        try:
            return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            return 0

    def proc_device(self) -> int:
        """st_dev of the host's procfs (-1 if none): files on it are the debugger's."""
        try:
            return os.stat(b"/proc").st_dev
        except OSError:
            return -1

    # -- time, randomness, identity ------------------------------------------------------
    def clock(self, clockid: int) -> int:
        """Nanoseconds of host clock ``clockid`` (CLOCK_REALTIME, CLOCK_MONOTONIC...)."""
        return time.clock_gettime_ns(clockid)

    def clock_res(self, clockid: int) -> int:
        return round(time.clock_getres(clockid) * 1e9)

    def sleep(self, ns: int) -> None:
        """Sleep ``ns`` nanoseconds; an interrupt (Ctrl-C, gdb's) ends it with EINTR."""
        end = time.monotonic_ns() + ns
        while (left := end - time.monotonic_ns()) >= 1_000_000:
            wait_host((), left // 1_000_000)
        if left > 0:  # (less than a millisecond: poll's unit; not worth interrupting)
            time.sleep(left / 1e9)

    def random(self, n: int) -> bytes:
        return os.urandom(n)

    def read_program(self, path: bytes) -> bytes:
        """The whole content of the regular file ``path`` (execve reads the program it
        loads). The same unchanged file gives the same bytes object, so an event log that
        holds many execs of one program holds its bytes once."""
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EACCES, "not a regular file")
        key = (path, st.st_ino, st.st_size, st.st_mtime_ns)
        data = _PROGRAMS.get(key)
        if data is None:
            with open(path, "rb") as f:
                data = f.read()
            if len(_PROGRAMS) >= 16:
                _PROGRAMS.pop(next(iter(_PROGRAMS)))
            _PROGRAMS[key] = data
        return data

    def uname(self) -> tuple[str, str, str, str, str]:
        """sysname, nodename, release, version, machine of the host."""
        u = os.uname()
        return u.sysname, u.nodename, u.release, u.version, u.machine

    def ids(self) -> tuple[int, int, int, int, int, int]:
        """pid, ppid, uid, euid, gid, egid of the syxdbg process (the guest's identity)."""
        return os.getpid(), os.getppid(), os.getuid(), os.geteuid(), os.getgid(), os.getegid()

    def groups(self) -> tuple[int, ...]:
        """The supplementary group ids of the syxdbg process (the guest's)."""
        return tuple(os.getgroups())

    def cpu_count(self) -> int:
        """How many CPUs syxdbg may run on (its affinity mask): what the guest is told."""
        return len(os.sched_getaffinity(0))

    def rlimit(self, resource: int) -> tuple[int, int]:
        """The host's (soft, hard) limit of ``resource`` (RLIM_INFINITY as 2**64 - 1)."""
        import resource as resource_mod
        soft, hard = resource_mod.getrlimit(resource)
        inf = resource_mod.RLIM_INFINITY
        return tuple(  # type: ignore[return-value]
            (1 << 64) - 1 if v == inf or v < 0 else v for v in (soft, hard))

    def sysinfo(self) -> tuple[int, int, int, int]:
        """uptime seconds, total RAM, free RAM (bytes) and number of processes."""
        page = os.sysconf("SC_PAGE_SIZE")
        total = os.sysconf("SC_PHYS_PAGES") * page
        free = os.sysconf("SC_AVPHYS_PAGES") * page
        return int(time.clock_gettime(time.CLOCK_BOOTTIME)), total, free, 1


_UTIME_NOW, _UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2
_MSG_NOSIGNAL = 0x4000  # EPIPE is turned into the guest's SIGPIPE by the kernel
_MSG_CMSG_CLOEXEC = 0x40000000


class _IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.POINTER(_IOVec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


def _ready_now(fd: int, events: int) -> bool:
    """Whether host ``fd`` is ready for ``events`` (or in error) now, without waiting."""
    poller = select.poll()
    poller.register(fd, events)
    return bool(poller.poll(0))


def _lib() -> ctypes.CDLL:
    global _libc
    _libc = _libc or ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(r: int) -> int:
    if r < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(r)
_STATFS_SIZE = 120  # struct statfs of 64-bit Linux (x86_64 and asm-generic)
_SEEKABLE_MIN_FD = 3  # host fds 0-2 are the inherited stdio: never repositioned


class RecordingHostIO(HostIO):
    """A HostIO that records at the frontier and replays behind it (see the module doc).

    ``inner`` does the real host access. Inside a syscall each call goes through
    ``log.call``: recorded when the log's cursor is at its end, replayed otherwise. Replayed
    calls have no host side effects; the only host operations they perform keep the file
    offsets of the kernel's own host fds where live execution left them (a replayed ``read``
    of 10 bytes moves the host offset by 10, a replayed ``lseek`` seeks), so reaching the
    frontier, or writing in the past, continues live with the right offsets.
    """

    SOURCE = "linux"

    def __init__(self, inner: HostIO, log: EventLog) -> None:
        self.inner = inner
        self.log = log
        self._position: int | None = None

    @property
    def replaying(self) -> bool:
        return self.log.replaying

    @property
    def detached(self) -> bool:  # type: ignore[override]
        return self.inner.detached

    def enter_syscall(self, position: int) -> None:
        self._position = position

    def leave_syscall(self) -> None:
        self._position = None

    def _call(self, name: str, args: tuple[Any, ...], live: Callable[[], Any]) -> tuple[Any, bool]:
        if self._position is None:
            return live(), False
        return self.log.call(self._position, self.SOURCE, name, args, live)

    def _shadow_seek(self, fd: int, offset: int, whence: int) -> None:
        if fd >= _SEEKABLE_MIN_FD:
            with contextlib.suppress(OSError):
                self.inner.lseek(fd, offset, whence)

    # -- file descriptors ----------------------------------------------------------------
    def open(self, path: bytes, flags: int, mode: int) -> int:
        fd, replayed = self._call("open", (path, flags, mode),
                                  lambda: self.inner.open(path, flags, mode))
        if replayed:
            self._revive(fd, path, flags)
        return int(fd)

    def _revive(self, fd: int, path: bytes, flags: int) -> None:
        """Make host ``fd`` an open description of ``path`` at offset 0, as a live open."""
        try:
            self.inner.fstat(fd)
        except OSError:
            try:
                tmp = self.inner.open(path, flags & ~(os.O_CREAT | os.O_EXCL | os.O_TRUNC), 0)
            except OSError:
                return
            if tmp != fd:
                with contextlib.suppress(OSError):
                    os.dup2(tmp, fd, inheritable=False)
                self.inner.close(tmp)
        self._shadow_seek(fd, 0, os.SEEK_SET)

    def close(self, fd: int) -> None:
        self._call("close", (fd,), lambda: self.inner.close(fd))

    def readable(self, fd: int) -> bool:
        return bool(self._call("readable", (fd,), lambda: self.inner.readable(fd))[0])

    def write_nowait(self, fd: int, data: bytes) -> int:
        return int(self._call("write_nowait", (fd, data),
                              lambda: self.inner.write_nowait(fd, data))[0])

    def poll(self, fds: tuple[tuple[int, int], ...], timeout_ms: int) -> tuple[int, ...]:
        result = self._call("poll", (fds, timeout_ms), lambda: self.inner.poll(fds, timeout_ms))
        return tuple(int(r) for r in result[0])

    def read(self, fd: int, n: int) -> bytes:
        data, replayed = self._call("read", (fd, n), lambda: self.inner.read(fd, n))
        if replayed:
            self._shadow_seek(fd, len(data), os.SEEK_CUR)
        return bytes(data)

    def pread(self, fd: int, n: int, offset: int) -> bytes:
        data, _ = self._call("pread", (fd, n, offset), lambda: self.inner.pread(fd, n, offset))
        return bytes(data)

    def write(self, fd: int, data: bytes) -> int:
        n, replayed = self._call("write", (fd, data), lambda: self.inner.write(fd, data))
        if replayed:
            self._shadow_seek(fd, n, os.SEEK_CUR)
        return int(n)

    def pwrite(self, fd: int, data: bytes, offset: int) -> int:
        n, _ = self._call("pwrite", (fd, data, offset),
                          lambda: self.inner.pwrite(fd, data, offset))
        return int(n)

    def lseek(self, fd: int, offset: int, whence: int) -> int:
        pos, replayed = self._call("lseek", (fd, offset, whence),
                                   lambda: self.inner.lseek(fd, offset, whence))
        if replayed:
            self._shadow_seek(fd, pos, os.SEEK_SET)
        return int(pos)

    def ftruncate(self, fd: int, length: int) -> None:
        self._call("ftruncate", (fd, length), lambda: self.inner.ftruncate(fd, length))

    def fsync(self, fd: int) -> None:
        self._call("fsync", (fd,), lambda: self.inner.fsync(fd))

    def pipe(self) -> tuple[int, int]:
        r, _ = self._call("pipe", (), self.inner.pipe)
        return int(r[0]), int(r[1])

    def get_status_flags(self, fd: int) -> int:
        r, _ = self._call("get_status_flags", (fd,), lambda: self.inner.get_status_flags(fd))
        return int(r)

    def set_status_flags(self, fd: int, flags: int) -> None:
        self._call("set_status_flags", (fd, flags),
                   lambda: self.inner.set_status_flags(fd, flags))

    def ioctl_read(self, fd: int, request: int, size: int) -> bytes:
        r, _ = self._call("ioctl_read", (fd, request, size),
                          lambda: self.inner.ioctl_read(fd, request, size))
        return bytes(r)

    # -- metadata and the file system ----------------------------------------------------
    def fstat(self, fd: int) -> os.stat_result:
        r, _ = self._call("fstat", (fd,), lambda: self.inner.fstat(fd))
        return r

    def stat(self, path: bytes, follow_symlinks: bool = True) -> os.stat_result:
        r, _ = self._call("stat", (path, follow_symlinks),
                          lambda: self.inner.stat(path, follow_symlinks))
        return r

    def access(self, path: bytes, mode: int, follow_symlinks: bool = True) -> bool:
        r, _ = self._call("access", (path, mode, follow_symlinks),
                          lambda: self.inner.access(path, mode, follow_symlinks))
        return bool(r)

    def readlink(self, path: bytes) -> bytes:
        r, _ = self._call("readlink", (path,), lambda: self.inner.readlink(path))
        return bytes(r)

    def statfs(self, target: bytes | int) -> bytes:
        r, _ = self._call("statfs", (target,), lambda: self.inner.statfs(target))
        return bytes(r)

    def xattr(self, target: bytes | int, name: bytes | None, follow: bool) -> bytes:
        r, _ = self._call("xattr", (target, name, follow),
                          lambda: self.inner.xattr(target, name, follow))
        return bytes(r)

    def listdir(self, fd: int) -> list[tuple[bytes, int, int]]:
        r, _ = self._call("listdir", (fd,), lambda: tuple(self.inner.listdir(fd)))
        return list(r)

    def unlink(self, path: bytes) -> None:
        self._call("unlink", (path,), lambda: self.inner.unlink(path))

    def rmdir(self, path: bytes) -> None:
        self._call("rmdir", (path,), lambda: self.inner.rmdir(path))

    def mkdir(self, path: bytes, mode: int) -> None:
        self._call("mkdir", (path, mode), lambda: self.inner.mkdir(path, mode))

    def rename(self, src: bytes, dst: bytes) -> None:
        self._call("rename", (src, dst), lambda: self.inner.rename(src, dst))

    def symlink(self, target: bytes, path: bytes) -> None:
        self._call("symlink", (target, path), lambda: self.inner.symlink(target, path))

    def link(self, src: bytes, dst: bytes, follow: bool) -> None:
        self._call("link", (src, dst, follow), lambda: self.inner.link(src, dst, follow))

    def chmod(self, target: bytes | int, mode: int, follow: bool = True) -> None:
        self._call("chmod", (target, mode, follow),
                   lambda: self.inner.chmod(target, mode, follow))

    def utime(self, target: bytes | int, times: tuple[tuple[int, int], tuple[int, int]] | None,
              follow: bool = True) -> None:
        self._call("utime", (target, times, follow),
                   lambda: self.inner.utime(target, times, follow))

    def chown(self, target: bytes | int, uid: int, gid: int, follow: bool = True) -> None:
        self._call("chown", (target, uid, gid, follow),
                   lambda: self.inner.chown(target, uid, gid, follow))

    def mknod(self, path: bytes, mode: int, device: int) -> None:
        self._call("mknod", (path, mode, device), lambda: self.inner.mknod(path, mode, device))

    def fallocate(self, fd: int, mode: int, offset: int, length: int) -> None:
        self._call("fallocate", (fd, mode, offset, length),
                   lambda: self.inner.fallocate(fd, mode, offset, length))

    def sync(self, fd: int | None) -> None:
        self._call("sync", (fd,), lambda: self.inner.sync(fd))

    def socket(self, family: int, kind: int, proto: int) -> int:
        r, _ = self._call("socket", (family, kind, proto),
                          lambda: self.inner.socket(family, kind, proto))
        return int(r)

    def socketpair(self, family: int, kind: int, proto: int) -> tuple[int, int]:
        r, _ = self._call("socketpair", (family, kind, proto),
                          lambda: self.inner.socketpair(family, kind, proto))
        return int(r[0]), int(r[1])

    def bind(self, fd: int, addr: bytes) -> None:
        self._call("bind", (fd, addr), lambda: self.inner.bind(fd, addr))

    def listen(self, fd: int, backlog: int) -> None:
        self._call("listen", (fd, backlog), lambda: self.inner.listen(fd, backlog))

    def accept(self, fd: int, flags: int) -> tuple[int, bytes]:
        r, _ = self._call("accept", (fd, flags), lambda: self.inner.accept(fd, flags))
        return int(r[0]), bytes(r[1])

    def connect(self, fd: int, addr: bytes) -> None:
        self._call("connect", (fd, addr), lambda: self.inner.connect(fd, addr))

    def connect_nowait(self, fd: int, addr: bytes) -> None:
        self._call("connect_nowait", (fd, addr), lambda: self.inner.connect_nowait(fd, addr))

    def send(self, fd: int, data: bytes, flags: int, addr: bytes | None) -> int:
        r, _ = self._call("send", (fd, data, flags, addr),
                          lambda: self.inner.send(fd, data, flags, addr))
        return int(r)

    def recv(self, fd: int, n: int, flags: int) -> tuple[bytes, bytes]:
        r, _ = self._call("recv", (fd, n, flags), lambda: self.inner.recv(fd, n, flags))
        return bytes(r[0]), bytes(r[1])

    def shutdown(self, fd: int, how: int) -> None:
        self._call("shutdown", (fd, how), lambda: self.inner.shutdown(fd, how))

    def sendmsg(self, fd: int, data: bytes, flags: int, addr: bytes | None,
                fds: tuple[int, ...]) -> int:
        r, _ = self._call("sendmsg", (fd, data, flags, addr, fds),
                          lambda: self.inner.sendmsg(fd, data, flags, addr, fds))
        return int(r)

    def recvmsg(self, fd: int, n: int, flags: int,
                maxfds: int) -> tuple[bytes, bytes, tuple[int, ...], int, int]:
        r, _ = self._call("recvmsg", (fd, n, flags, maxfds),
                          lambda: self.inner.recvmsg(fd, n, flags, maxfds))
        return bytes(r[0]), bytes(r[1]), tuple(int(x) for x in r[2]), int(r[3]), int(r[4])

    def setsockopt(self, fd: int, level: int, name: int, value: bytes) -> None:
        self._call("setsockopt", (fd, level, name, value),
                   lambda: self.inner.setsockopt(fd, level, name, value))

    def sockopt(self, fd: int, level: int, name: int, size: int) -> bytes:
        r, _ = self._call("sockopt", (fd, level, name, size),
                          lambda: self.inner.sockopt(fd, level, name, size))
        return bytes(r)

    def sockname(self, fd: int, peer: bool) -> bytes:
        r, _ = self._call("sockname", (fd, peer), lambda: self.inner.sockname(fd, peer))
        return bytes(r)

    def realpath(self, path: bytes) -> bytes:
        r, _ = self._call("realpath", (path,), lambda: self.inner.realpath(path))
        return bytes(r)

    def getcwd(self) -> bytes:
        r, _ = self._call("getcwd", (), self.inner.getcwd)
        return bytes(r)

    def proc_device(self) -> int:
        return self.inner.proc_device()  # asked once, outside syscalls (kernel state)

    def memory_total(self) -> int:
        return self.inner.memory_total()  # asked once, outside syscalls (kernel state)

    # -- time, randomness, identity ------------------------------------------------------
    def clock(self, clockid: int) -> int:
        r, _ = self._call("clock", (clockid,), lambda: self.inner.clock(clockid))
        return int(r)

    def clock_res(self, clockid: int) -> int:
        r, _ = self._call("clock_res", (clockid,), lambda: self.inner.clock_res(clockid))
        return int(r)

    def sleep(self, ns: int) -> None:
        self._call("sleep", (ns,), lambda: self.inner.sleep(ns))

    def random(self, n: int) -> bytes:
        r, _ = self._call("random", (n,), lambda: self.inner.random(n))
        return bytes(r)

    def read_program(self, path: bytes) -> bytes:
        r, _ = self._call("read_program", (path,), lambda: self.inner.read_program(path))
        return r if isinstance(r, bytes) else bytes(r)

    def uname(self) -> tuple[str, str, str, str, str]:
        r, _ = self._call("uname", (), self.inner.uname)
        return r

    def ids(self) -> tuple[int, int, int, int, int, int]:
        r, _ = self._call("ids", (), self.inner.ids)
        return r

    def sysinfo(self) -> tuple[int, int, int, int]:
        r, _ = self._call("sysinfo", (), self.inner.sysinfo)
        return r

    def groups(self) -> tuple[int, ...]:
        r, _ = self._call("groups", (), self.inner.groups)
        return tuple(int(g) for g in r)

    def cpu_count(self) -> int:
        r, _ = self._call("cpu_count", (), self.inner.cpu_count)
        return int(r)

    def rlimit(self, resource: int) -> tuple[int, int]:
        r, _ = self._call("rlimit", (resource,), lambda: self.inner.rlimit(resource))
        return int(r[0]), int(r[1])

    def warn(self, text: str, stream: IO[str]) -> None:
        self._call("warn", (text,), lambda: self.inner.warn(text, stream))


def _refused() -> OSError:
    return OSError(errno.EIO, "no host access while replaying a recording")


class DetachedHostIO(HostIO):
    """The host of a replayed recording: there is none.

    Every call made by the guest is served from the recording's event log before it gets
    here; what reaches this object is the kernel's own bookkeeping (repositioning and
    closing host fds at checkpoints and teardown, which becomes a no-op) or a call the
    recording does not have, which fails with ``EIO`` instead of touching this machine's
    files, terminal or clock. The kernel's initial values (cwd, ids, stdio) are placeholders
    until the recording's initial checkpoint replaces them.
    """

    detached = True

    def open(self, path: bytes, flags: int, mode: int) -> int:
        raise _refused()

    def read(self, fd: int, n: int) -> bytes:
        raise _refused()

    def pread(self, fd: int, n: int, offset: int) -> bytes:
        raise _refused()

    def write(self, fd: int, data: bytes) -> int:
        raise _refused()

    def pwrite(self, fd: int, data: bytes, offset: int) -> int:
        raise _refused()

    def lseek(self, fd: int, offset: int, whence: int) -> int:
        raise _refused()

    def ftruncate(self, fd: int, length: int) -> None:
        raise _refused()

    def fsync(self, fd: int) -> None:
        raise _refused()

    def pipe(self) -> tuple[int, int]:
        raise _refused()

    def readable(self, fd: int) -> bool:
        raise _refused()

    def write_nowait(self, fd: int, data: bytes) -> int:
        raise _refused()

    def poll(self, fds: tuple[tuple[int, int], ...], timeout_ms: int) -> tuple[int, ...]:
        raise _refused()

    def get_status_flags(self, fd: int) -> int:
        raise _refused()

    def set_status_flags(self, fd: int, flags: int) -> None:
        raise _refused()

    def ioctl_read(self, fd: int, request: int, size: int) -> bytes:
        raise _refused()

    def fstat(self, fd: int) -> os.stat_result:
        raise _refused()

    def stat(self, path: bytes, follow_symlinks: bool = True) -> os.stat_result:
        raise _refused()

    def access(self, path: bytes, mode: int, follow_symlinks: bool = True) -> bool:
        raise _refused()

    def readlink(self, path: bytes) -> bytes:
        raise _refused()

    def statfs(self, target: bytes | int) -> bytes:
        raise _refused()

    def xattr(self, target: bytes | int, name: bytes | None, follow: bool) -> bytes:
        raise _refused()

    def listdir(self, fd: int) -> list[tuple[bytes, int, int]]:
        raise _refused()

    def unlink(self, path: bytes) -> None:
        raise _refused()

    def rmdir(self, path: bytes) -> None:
        raise _refused()

    def mkdir(self, path: bytes, mode: int) -> None:
        raise _refused()

    def rename(self, src: bytes, dst: bytes) -> None:
        raise _refused()

    def symlink(self, target: bytes, path: bytes) -> None:
        raise _refused()

    def link(self, src: bytes, dst: bytes, follow: bool) -> None:
        raise _refused()

    def chmod(self, target: bytes | int, mode: int, follow: bool = True) -> None:
        raise _refused()

    def utime(self, target: bytes | int, times: tuple[tuple[int, int], tuple[int, int]] | None,
              follow: bool = True) -> None:
        raise _refused()

    def chown(self, target: bytes | int, uid: int, gid: int, follow: bool = True) -> None:
        raise _refused()

    def mknod(self, path: bytes, mode: int, device: int) -> None:
        raise _refused()

    def fallocate(self, fd: int, mode: int, offset: int, length: int) -> None:
        raise _refused()

    def sync(self, fd: int | None) -> None:
        raise _refused()

    def groups(self) -> tuple[int, ...]:
        raise _refused()

    def socket(self, family: int, kind: int, proto: int) -> int:
        raise _refused()

    def socketpair(self, family: int, kind: int, proto: int) -> tuple[int, int]:
        raise _refused()

    def bind(self, fd: int, addr: bytes) -> None:
        raise _refused()

    def listen(self, fd: int, backlog: int) -> None:
        raise _refused()

    def accept(self, fd: int, flags: int) -> tuple[int, bytes]:
        raise _refused()

    def connect(self, fd: int, addr: bytes) -> None:
        raise _refused()

    def connect_nowait(self, fd: int, addr: bytes) -> None:
        raise _refused()

    def send(self, fd: int, data: bytes, flags: int, addr: bytes | None) -> int:
        raise _refused()

    def recv(self, fd: int, n: int, flags: int) -> tuple[bytes, bytes]:
        raise _refused()

    def shutdown(self, fd: int, how: int) -> None:
        raise _refused()

    def sendmsg(self, fd: int, data: bytes, flags: int, addr: bytes | None,
                fds: tuple[int, ...]) -> int:
        raise _refused()

    def recvmsg(self, fd: int, n: int, flags: int,
                maxfds: int) -> tuple[bytes, bytes, tuple[int, ...], int, int]:
        raise _refused()

    def setsockopt(self, fd: int, level: int, name: int, value: bytes) -> None:
        raise _refused()

    def sockopt(self, fd: int, level: int, name: int, size: int) -> bytes:
        raise _refused()

    def sockname(self, fd: int, peer: bool) -> bytes:
        raise _refused()

    def cpu_count(self) -> int:
        raise _refused()

    def rlimit(self, resource: int) -> tuple[int, int]:
        raise _refused()

    def clock(self, clockid: int) -> int:
        raise _refused()

    def clock_res(self, clockid: int) -> int:
        raise _refused()

    def random(self, n: int) -> bytes:
        raise _refused()

    def read_program(self, path: bytes) -> bytes:
        raise _refused()

    def sysinfo(self) -> tuple[int, int, int, int]:
        raise _refused()

    def uname(self) -> tuple[str, str, str, str, str]:
        raise _refused()

    def close(self, fd: int) -> None:
        """Host fds of a replay are numbers from the recording, not this process's."""

    def sleep(self, ns: int) -> None:
        """Replays do not wait."""

    def warn(self, text: str, stream: IO[str]) -> None:
        """Warnings were shown when the program was recorded."""

    def realpath(self, path: bytes) -> bytes:
        return path

    def getcwd(self) -> bytes:
        return b"/"

    def proc_device(self) -> int:
        return -1

    def memory_total(self) -> int:
        return 0  # the recording's limit comes with its initial state

    def ids(self) -> tuple[int, int, int, int, int, int]:
        return (1, 0, 0, 0, 0, 0)
