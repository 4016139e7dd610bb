"""Clocks, sleeping, randomness and system facts (uname, sysinfo, getrusage).

Sleeping (nanosleep, clock_nanosleep) really sleeps on the host (through HostIO.sleep, which
a replaying HostIO skips), so guest clocks advance as the program expects.
"""

from __future__ import annotations

import errno
import struct

from .. import abi
from ..kernel import Process
from ..registry import I32, U32, U64, Ptr, SyscallError, syscall
from .threads import sleep_passes


@syscall("clock_gettime")
def sys_clock_gettime(p: Process, clockid: I32, tp: Ptr) -> int:
    if clockid not in abi.VALID_CLOCKS:
        return -errno.EINVAL
    p.mem.write(tp, p.pack_timespec(p.host.clock(clockid)))
    return 0


@syscall("clock_getres")
def sys_clock_getres(p: Process, clockid: I32, res: Ptr) -> int:
    if clockid not in abi.VALID_CLOCKS:
        return -errno.EINVAL
    if res:
        p.mem.write(res, p.pack_timespec(p.host.clock_res(clockid)))
    return 0


@syscall("gettimeofday")
def sys_gettimeofday(p: Process, tv: Ptr, tz: Ptr) -> int:
    if tv:
        p.mem.write(tv, p.pack_timeval(p.host.clock(abi.CLOCK_REALTIME)))
    if tz:
        p.mem.write(tz, bytes(8))
    return 0


@syscall("time")
def sys_time(p: Process, tloc: Ptr) -> int:
    now = p.host.clock(abi.CLOCK_REALTIME) // 1_000_000_000
    if tloc:
        p.mem.write(tloc, struct.pack("<q", now))
    return now


#: The longest host sleep (about 68 years): a longer request sleeps that long instead of
#: overflowing the host's time_t.
MAX_SLEEP_NS = (2**31 - 1) * 1_000_000_000


def _read_timespec(p: Process, ptr: int) -> int:
    sec, nsec = p.read_timespec(ptr)
    if sec < 0 or not 0 <= nsec < 1_000_000_000:
        raise SyscallError(errno.EINVAL)
    return sec * 1_000_000_000 + nsec


@syscall("nanosleep")
def sys_nanosleep(p: Process, req: Ptr, rem: Ptr) -> int:
    ns = _read_timespec(p, req)
    p.host.sleep(min(ns, MAX_SLEEP_NS))
    p.yield_cpu()
    sleep_passes(p, ns)  # (other threads' timed waits run down: syscalls/threads.py)
    return 0


@syscall("clock_nanosleep")
def sys_clock_nanosleep(p: Process, clockid: I32, flags: I32, req: Ptr, rem: Ptr) -> int:
    if clockid not in abi.VALID_CLOCKS or clockid in (2, 3):
        return -errno.EINVAL
    ns = _read_timespec(p, req)
    if flags & abi.TIMER_ABSTIME:
        ns -= p.host.clock(clockid)
    p.host.sleep(min(ns, MAX_SLEEP_NS))
    p.yield_cpu()
    sleep_passes(p, ns)
    return 0


@syscall("getrandom")
def sys_getrandom(p: Process, buf: Ptr, length: U64, flags: U32) -> int:
    if flags & ~(abi.GRND_NONBLOCK | abi.GRND_RANDOM | abi.GRND_INSECURE):
        return -errno.EINVAL
    n = min(length, 33554431)
    if n == 0:
        return 0
    n = p.writable_extent(buf, n)
    p.mem.write(buf, p.host.random(n))
    return n


@syscall("uname")
def sys_uname(p: Process, buf: Ptr) -> int:
    _sysname, node, release, version, _machine = p.host.uname()
    p.mem.write(buf, abi.pack_utsname(("Linux", node, release, version, p.arch, "(none)")))
    return 0


@syscall("sysinfo")
def sys_sysinfo(p: Process, info: Ptr) -> int:
    p.mem.write(info, abi.pack_sysinfo(*p.host.sysinfo()))
    return 0


@syscall("getrusage")
def sys_getrusage(p: Process, who: I32, usage: Ptr) -> int:
    if who not in (0, -1, 1):
        return -errno.EINVAL
    p.mem.write(usage, bytes(144))
    return 0
