"""Process identity and control: ids, thread pointer, prctl, resource limits, getcpu
(threads, exit, futex and scheduling are in ``threads``).
"""

from __future__ import annotations

import errno
import os
import struct

from .. import abi
from ..kernel import Process
from ..registry import I32, U32, U64, Ptr, syscall


@syscall("getpid", "getpgrp", "getsid")
def sys_getpid(p: Process) -> int:
    return p.s.ids[0]


@syscall("getpgid")
def sys_getpgid(p: Process, pid: I32) -> int:
    return p.s.ids[0] if pid in (0, p.s.ids[0]) else -errno.ESRCH


@syscall("getppid")
def sys_getppid(p: Process) -> int:
    return p.s.ids[1]


@syscall("getuid")
def sys_getuid(p: Process) -> int:
    return p.s.ids[2]


@syscall("geteuid")
def sys_geteuid(p: Process) -> int:
    return p.s.ids[3]


@syscall("getgid")
def sys_getgid(p: Process) -> int:
    return p.s.ids[4]


@syscall("getegid")
def sys_getegid(p: Process) -> int:
    return p.s.ids[5]


@syscall("arch_prctl")
def sys_arch_prctl(p: Process, code: I32, addr: Ptr) -> int:
    if code == abi.ARCH_SET_FS:
        p.set_thread_register("fs_base", addr)
    elif code == abi.ARCH_SET_GS:
        p.set_thread_register("gs_base", addr)
    elif code == abi.ARCH_GET_FS:
        p.mem.write(addr, struct.pack("<Q", p.thread_register("fs_base")))
    elif code == abi.ARCH_GET_GS:
        p.mem.write(addr, struct.pack("<Q", p.thread_register("gs_base")))
    else:
        return -errno.EINVAL  # CET (0x3001...) and the rest: not supported, as on old kernels
    return 0


@syscall("rseq")
def sys_rseq(p: Process) -> int:
    # As qemu-user: glibc (and musl) treat ENOSYS as "no rseq" and carry on.
    return -errno.ENOSYS


@syscall("prctl")
def sys_prctl(p: Process, option: I32, arg2: U64) -> int:
    if option == 15:  # PR_SET_NAME
        p.mem.read_cstring(arg2, 16)
        return 0
    if option == 16:  # PR_GET_NAME
        p.mem.write(arg2, os.path.basename(p.image_path)[:15].ljust(16, b"\0"))
        return 0
    return -errno.EINVAL


def _rlimit(p: Process, resource: int, new: int, old: int) -> int:
    if not 0 <= resource < abi.RLIMIT_NLIMITS:
        return -errno.EINVAL
    cur = p.s.rlimits[resource]
    value = None
    if new:
        value = struct.unpack("<QQ", p.mem.read(new, 16))
        if value[0] > value[1]:
            return -errno.EINVAL
    if old:
        p.mem.write(old, struct.pack("<QQ", *cur))
    if value is not None:
        p.s.rlimits[resource] = (value[0], value[1])
    return 0


@syscall("prlimit64")
def sys_prlimit64(p: Process, pid: I32, resource: U32, new: Ptr, old: Ptr) -> int:
    if pid not in (0, p.s.ids[0]):
        return -errno.ESRCH
    return _rlimit(p, resource, new, old)


@syscall("getrlimit")
def sys_getrlimit(p: Process, resource: U32, rlim: Ptr) -> int:
    return _rlimit(p, resource, 0, rlim)


@syscall("setrlimit")
def sys_setrlimit(p: Process, resource: U32, rlim: Ptr) -> int:
    return _rlimit(p, resource, rlim, 0)


@syscall("getcpu")
def sys_getcpu(p: Process, cpu: Ptr, node: Ptr, cache: Ptr) -> int:
    """One emulated CPU on one NUMA node: both are 0 (glibc's sched_getcpu without a vDSO)."""
    for ptr in (cpu, node):
        if ptr:
            p.mem.write(ptr, bytes(4))
    return 0
