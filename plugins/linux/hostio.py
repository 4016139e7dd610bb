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

Classification used by a future EventLog (see ``INPUTS`` / ``EFFECTS``): an *input* returns
host data the guest observes; an *effect* changes the host; some are both (``open`` with
``O_CREAT`` creates a file and returns an fd; ``write`` returns how much was written).
"""

from __future__ import annotations

import fcntl
import os
import time

#: Methods whose results are nondeterministic host inputs (record at the frontier).
INPUTS = frozenset({
    "read", "pread", "lseek", "open", "fstat", "stat", "access", "readlink", "listdir",
    "clock", "clock_res", "random", "uname", "ids", "getcwd", "realpath", "ioctl_read",
    "get_status_flags", "sysinfo", "pipe", "write", "pwrite",
})
#: Methods with host side effects (suppress while re-executing behind the frontier).
EFFECTS = frozenset({
    "write", "pwrite", "open", "close", "unlink", "rmdir", "mkdir", "rename", "ftruncate",
    "fsync", "set_status_flags", "sleep", "pipe",
})


class HostIO:
    """Direct host access (the live, non-recording implementation)."""

    # -- file descriptors ----------------------------------------------------------------
    def open(self, path: bytes, flags: int, mode: int) -> int:
        return os.open(path, flags, mode)

    def close(self, fd: int) -> None:
        os.close(fd)

    def read(self, fd: int, n: int) -> bytes:
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

    def realpath(self, path: bytes) -> bytes:
        return os.path.realpath(path)

    def getcwd(self) -> bytes:
        return os.getcwdb()

    # -- time, randomness, identity ------------------------------------------------------
    def clock(self, clockid: int) -> int:
        """Nanoseconds of host clock ``clockid`` (CLOCK_REALTIME, CLOCK_MONOTONIC...)."""
        return time.clock_gettime_ns(clockid)

    def clock_res(self, clockid: int) -> int:
        return round(time.clock_getres(clockid) * 1e9)

    def sleep(self, ns: int) -> None:
        if ns > 0:
            time.sleep(ns / 1e9)

    def random(self, n: int) -> bytes:
        return os.urandom(n)

    def uname(self) -> tuple[str, str, str, str, str]:
        """sysname, nodename, release, version, machine of the host."""
        u = os.uname()
        return u.sysname, u.nodename, u.release, u.version, u.machine

    def ids(self) -> tuple[int, int, int, int, int, int]:
        """pid, ppid, uid, euid, gid, egid of the syxdbg process (the guest's identity)."""
        return os.getpid(), os.getppid(), os.getuid(), os.geteuid(), os.getgid(), os.getegid()

    def sysinfo(self) -> tuple[int, int, int, int]:
        """uptime seconds, total RAM, free RAM (bytes) and number of processes."""
        page = os.sysconf("SC_PAGE_SIZE")
        total = os.sysconf("SC_PHYS_PAGES") * page
        free = os.sysconf("SC_AVPHYS_PAGES") * page
        return int(time.clock_gettime(time.CLOCK_BOOTTIME)), total, free, 1
