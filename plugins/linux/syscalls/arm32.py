"""32-bit ARM (EABI) system calls whose ABI differs from the 64-bit ones.

Registered as ``arm:NAME``: the dispatch table of the ``arm`` machine prefers such a
handler to the generic ``NAME`` one. Three kinds:

* the same call under a 32-bit name (``getuid32``, ``fcntl64``, ``clock_gettime64``,
  ``fstatat64``...): the generic handler, bound to the ARM name (``struct stat64`` is
  ``abi.pack_stat("arm", ...)``; the ``*_time64`` calls take the 64-bit ``timespec``);
* 32-bit layouts: ``struct iovec``, ``struct rlimit``, ``struct sysinfo`` with 4-byte
  longs; 64-bit arguments passed in an even/odd register pair (``pread64``, ``_llseek``,
  ``ftruncate64``); ``mmap2``'s offset in pages; a 32-bit ``off_t`` (``lseek``);
* the ARM private calls: ``set_tls`` (TPIDRURO, which ``__kuser_get_tls`` and ``mrc p15``
  read), ``get_tls``, ``cacheflush`` (Unicorn keeps translations coherent with stores, so
  only the range check remains).
"""

from __future__ import annotations

import errno
import struct

from .. import abi
from ..kernel import Process
from ..registry import HANDLERS, I32, U32, Fd, Ptr, syscall
from . import files, memory

PREFIX = "arm:"

#: ARM name -> generic handler with the same arguments and structures.
_SAME_AS = {
    "getuid32": "getuid", "geteuid32": "geteuid", "getgid32": "getgid",
    "getegid32": "getegid", "fcntl64": "fcntl", "clock_gettime64": "clock_gettime",
    "clock_getres_time64": "clock_getres", "clock_nanosleep_time64": "clock_nanosleep",
    "futex_time64": "futex", "ppoll_time64": "ppoll", "utimensat_time64": "utimensat",
    "fstat64": "fstat", "stat64": "stat", "lstat64": "lstat", "fstatat64": "newfstatat",
}
for _arm_name, _generic in _SAME_AS.items():
    if _generic in HANDLERS:
        syscall(PREFIX + _arm_name)(HANDLERS[_generic].fn)


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & (1 << 31) else v


def _pair(lo: int, hi: int) -> int:
    """A 64-bit argument from its two registers (EABI: low word first), signed."""
    v = (lo & 0xFFFFFFFF) | (hi & 0xFFFFFFFF) << 32
    return v - (1 << 64) if v & (1 << 63) else v


def _iovecs32(p: Process, iov: int, iovcnt: int) -> list[tuple[int, int]]:
    if iovcnt < 0 or iovcnt > 1024:
        raise files.SyscallError(errno.EINVAL)
    raw = p.mem.read(iov, 8 * iovcnt)
    return [struct.unpack_from("<II", raw, 8 * i) for i in range(iovcnt)]


@syscall(PREFIX + "readv")
def sys_readv(p: Process, fd: Fd, iov: Ptr, iovcnt: I32) -> int | None:
    """One ``read`` per vector, stopping at a short one (the bytes land where a single
    ``readv`` puts them)."""
    total = 0
    for base, length in _iovecs32(p, iov, iovcnt):
        if not length:
            continue
        got = files.sys_read(p, fd, base, length)
        if got is None:
            return None if total == 0 else total
        if got < 0:
            return got if total == 0 else total
        total += got
        if got < length:
            break
    return total


@syscall(PREFIX + "writev")
def sys_writev(p: Process, fd: Fd, iov: Ptr, iovcnt: I32) -> int | None:
    total = 0
    for base, length in _iovecs32(p, iov, iovcnt):
        if not length:
            continue
        put = files.sys_write(p, fd, base, length)
        if put is None:  # a full pipe: wait and write again, unless some went already
            if total:
                p._want = None
                return total
            return None
        if put < 0:
            return put if total == 0 else total
        total += put
        if put < length:
            break
    return total


@syscall(PREFIX + "lseek")
def sys_lseek(p: Process, fd: Fd, offset: U32, whence: I32) -> int:
    return files.sys_lseek(p, fd, _s32(offset), whence)


@syscall(PREFIX + "_llseek")
def sys_llseek(p: Process, fd: Fd, high: U32, low: U32, result: Ptr, whence: I32) -> int:
    """``_llseek(fd, offset_high, offset_low, loff_t *result, whence)``."""
    pos = files.sys_lseek(p, fd, _pair(low, high), whence)
    if pos < 0:
        return pos
    p.mem.write(result, struct.pack("<q", pos))
    return 0


@syscall(PREFIX + "pread64")
def sys_pread64(p: Process, fd: Fd, buf: Ptr, count: U32, _pad: U32, lo: U32,
                hi: U32) -> int:
    return files.sys_pread64(p, fd, buf, count, _pair(lo, hi))


@syscall(PREFIX + "pwrite64")
def sys_pwrite64(p: Process, fd: Fd, buf: Ptr, count: U32, _pad: U32, lo: U32,
                 hi: U32) -> int:
    return files.sys_pwrite64(p, fd, buf, count, _pair(lo, hi))


@syscall(PREFIX + "ftruncate64")
def sys_ftruncate64(p: Process, fd: Fd, _pad: U32, lo: U32, hi: U32) -> int:
    return files.sys_ftruncate(p, fd, _pair(lo, hi))


@syscall(PREFIX + "mmap2")
def sys_mmap2(p: Process, addr: Ptr, length: U32, prot: I32, flags: I32, fd: Fd,
              pgoffset: U32) -> int:
    """``mmap`` with the file offset in 4096-byte units."""
    return memory.sys_mmap(p, addr, length, prot, flags, fd, pgoffset * 4096)


_RLIM32_INFINITY = 0xFFFFFFFF


def _rlim32(v: int) -> int:
    return _RLIM32_INFINITY if v >= _RLIM32_INFINITY else v


def _rlim64(v: int) -> int:
    return abi.RLIM_INFINITY if v == _RLIM32_INFINITY else v


@syscall(PREFIX + "ugetrlimit", PREFIX + "getrlimit")
def sys_ugetrlimit(p: Process, resource: U32, rlim: Ptr) -> int:
    """``struct rlimit`` of two 32-bit values (RLIM_INFINITY is ~0UL)."""
    if not 0 <= resource < abi.RLIMIT_NLIMITS:
        return -errno.EINVAL
    cur, top = p.s.rlimits[resource]
    p.mem.write(rlim, struct.pack("<II", _rlim32(cur), _rlim32(top)))
    return 0


@syscall(PREFIX + "setrlimit")
def sys_setrlimit(p: Process, resource: U32, rlim: Ptr) -> int:
    if not 0 <= resource < abi.RLIMIT_NLIMITS:
        return -errno.EINVAL
    cur, top = (_rlim64(v) for v in struct.unpack("<II", p.mem.read(rlim, 8)))
    if cur > top:
        return -errno.EINVAL
    p.s.rlimits[resource] = (cur, top)
    return 0


@syscall(PREFIX + "sysinfo")
def sys_sysinfo(p: Process, info: Ptr) -> int:
    p.mem.write(info, abi.pack_sysinfo32(*p.host.sysinfo()))
    return 0


@syscall(PREFIX + "uname")
def sys_uname(p: Process, buf: Ptr) -> int:
    """As the generic one, with the machine an ARMv7 kernel reports."""
    _sysname, node, release, version, _machine = p.host.uname()
    p.mem.write(buf, abi.pack_utsname(("Linux", node, release, version, "armv7l", "(none)")))
    return 0


@syscall(PREFIX + "set_tls")
def sys_set_tls(p: Process, value: U32) -> int:
    p.set_thread_register("tpidruro", value)
    return 0


@syscall(PREFIX + "get_tls")
def sys_get_tls(p: Process) -> int:
    return p.thread_register("tpidruro")


@syscall(PREFIX + "cacheflush")
def sys_cacheflush(p: Process, start: U32, end: U32, flags: U32) -> int:
    if flags or end < start:
        return -errno.EINVAL
    if end > start and not p.mem.is_mapped(start, end - start):
        return -errno.EFAULT
    return 0
