"""Hostile paths under /proc and /dev/fd never reach the debugger process (issue 20).

A guest program's ``/proc/self`` used to be syxdbg's own (its cmdline, maps, memory and
descriptors). Random paths built from /proc's vocabulary (self, thread-self, the guest pid,
other pids, fd numbers, ``..``, links) are opened read-only and read-write, read and
readlink'ed through the real kernel of a real session: whatever opens must be emulated, or
a host file that is not on the host's procfs (unless it is one of the system-wide files
the guest may read), and nothing read may name the debugger.
"""

from __future__ import annotations

import errno
import os
import struct
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import progs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from syxdbg_plugins.linux import get_kernel, procfs
from syxdbg_plugins.linux.tables import SYSCALL_TABLES

import syxdbg

MASK64 = (1 << 64) - 1
#: Strings that would betray the host process (its interpreter, its command line).
MARKERS = (os.fsencode(sys.executable), b"pytest", b"hypothesis", b"libunicorn")


class Guest:
    """Syscalls by name on a real session's kernel, with a scratch page for paths."""

    def __init__(self, session: syxdbg.Session) -> None:
        self.machine = session.machine
        kernel = get_kernel(session)
        assert kernel is not None
        self.kernel = kernel
        self.numbers = {n: nr for nr, n in SYSCALL_TABLES[self.machine.arch.name].items()}
        abi = self.machine.arch.syscall
        self._nr, self._args, self._ret = abi.number, abi.args, abi.ret
        self.scratch = self("mmap", 0, 0x10000, 3, 0x22, -1, 0)
        assert self.scratch > 0

    def __call__(self, name: str, *args: int) -> int:
        regs = self.machine.regs
        regs[self._nr] = self.numbers[name]
        for reg, value in zip(self._args, args, strict=False):
            regs[reg] = value & MASK64
        self.kernel.handle_syscall(self.machine)
        ret = regs[self._ret]
        return ret - (1 << 64) if ret & (1 << 63) else ret

    def path(self, p: bytes) -> int:
        self.machine.mem.write(self.scratch, p + b"\0")
        return self.scratch


@pytest.fixture(scope="module")
def guest(build_program: Callable[..., Path]) -> Iterator[Guest]:
    session = syxdbg.open(str(build_program("hello", "gcc")), [], env=dict(progs.DEFAULT_ENV))
    try:
        yield Guest(session)
    finally:
        session.close()


def _segments(g: Guest) -> list[str]:
    pid = g.kernel.process.pid
    return ["self", "thread-self", str(pid), str(os.getppid()), "1", "..", ".", "", "fd",
            "0", "1", "2", "3", "4", "5", "mem", "maps", "task", "exe", "cwd", "root",
            "environ", "cmdline", "mounts", "net", "status", "fdinfo", "stat", "auxv",
            "sys", "kernel", "cpuinfo", str(pid + 1)]


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_path_under_proc_reaches_the_debugger(guest: Guest, data: st.DataObject) -> None:
    head = data.draw(st.sampled_from(["/proc", "/dev/fd", "/dev", "/proc/self/cwd/../.."]))
    tail = data.draw(st.lists(st.sampled_from(_segments(guest)), max_size=5))
    path = "/".join([head, *tail]).encode()
    proc_dev = os.stat("/proc").st_dev
    allowed_host = procfs.normalize(path).split(b"/")[2:3] in (
        [name] for name in procfs.HOST_FILES)
    for flags in (os.O_RDONLY, os.O_RDWR):
        fd = guest("openat", -100, guest.path(path), flags, 0)
        if fd < 0:
            assert -fd in (errno.ENOENT, errno.EACCES, errno.ENOTDIR, errno.EISDIR,
                           errno.ELOOP, errno.EPERM, errno.EINVAL, errno.EROFS, errno.EIO,
                           errno.ENXIO), (path, fd)
            continue
        try:
            f = guest.kernel.process.file(fd)
            if f.kind not in procfs.EMULATED_KINDS and f.host_fd > 2 and not allowed_host:
                assert os.fstat(f.host_fd).st_dev != proc_dev, path
            if f.kind != "procmem":
                n = guest("read", fd, guest.scratch + 0x1000, 0x8000)
                if n > 0:
                    got = guest.machine.mem.read(guest.scratch + 0x1000, n)
                    assert not any(m in got for m in MARKERS), (path, got[:200])
        finally:
            guest("close", fd)
    n = guest("readlinkat", -100, guest.path(path), guest.scratch + 0x1000, 4096)
    if n > 0:
        got = guest.machine.mem.read(guest.scratch + 0x1000, n)
        assert not any(m in got for m in MARKERS), (path, got)


def test_proc_self_mem_outside_guest_memory_is_eio(guest: Guest) -> None:
    fd = guest("openat", -100, guest.path(b"/proc/self/mem"), os.O_RDWR, 0)
    assert fd >= 0
    try:
        # An address of the host process (this very Python's heap) means nothing here.
        host_addr = id(guest) & ~0xFFF
        for addr in (0, 0x1000, host_addr, (1 << 63) - 4096):
            if guest.machine.mem.is_mapped(addr, 8):
                continue
            assert guest("pread64", fd, guest.scratch + 0x1000, 8, addr) == -errno.EIO
            guest.machine.mem.write(guest.scratch + 0x1000, struct.pack("<Q", 1))
            assert guest("pwrite64", fd, guest.scratch + 0x1000, 8, addr) == -errno.EIO
    finally:
        guest("close", fd)
