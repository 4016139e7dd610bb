"""Focused tests of the syscall layer, driven one syscall at a time on a real machine."""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from linux_helpers import SysCaller
from syxdbg_plugins.linux import KernelState, LinuxKernel, abi, get_kernel
from syxdbg_plugins.linux.syscalls import DISPATCH, HANDLERS, supported

import syxdbg
from syxdbg.machine import Perm

ARCH_TOOLCHAINS = ("gcc", "aarch64")
AT_FDCWD = -100
O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC = 0, 1, 2, 0o100, 0o1000
PAGE = 4096

Make = Callable[[str], SysCaller]


def _open(sc: SysCaller, path: Path | str, flags: int = O_RDONLY, mode: int = 0o644) -> int:
    return sc("openat", AT_FDCWD, sc.cstr(str(path)), flags, mode)


# --------------------------------------------------------------------------- tables
def test_tables_and_dispatch_are_consistent() -> None:
    for arch in ("x86_64", "aarch64"):
        names = supported(arch)
        for must in ("read", "write", "openat", "mmap", "brk", "exit_group", "newfstatat",
                     "statx", "getdents64", "clock_gettime", "rt_sigaction", "futex"):
            assert must in names, (arch, must)
        assert all(h.name in HANDLERS for h in DISPATCH[arch].values())
    assert "arch_prctl" in supported("x86_64") and "arch_prctl" not in supported("aarch64")
    assert "open" in supported("x86_64") and "open" not in supported("aarch64")
    # Arguments are converted as the handler's annotations say (Fd is a signed int).
    assert HANDLERS["openat"].converters[0](0xFFFFFF9C) == AT_FDCWD
    assert HANDLERS["lseek"].converters[1]((1 << 64) - 2) == -2


# --------------------------------------------------------------------------- stat layouts
@pytest.mark.parametrize("toolchain", ARCH_TOOLCHAINS)
def test_stat_offsets_match_the_c_library(toolchain: str, build_probe: Callable,
                                          run_native: Callable) -> None:
    exe = build_probe("statlayout", toolchain)
    out = run_native(exe).stdout.decode().split("\n")
    got = dict(line.split() for line in out if line)
    arch = "x86_64" if toolchain == "gcc" else "aarch64"
    size = int(got.pop("size"))
    rename = {"st_atim.tv_sec": "st_atime", "st_atim.tv_nsec": "st_atime_nsec",
              "st_mtim.tv_sec": "st_mtime", "st_mtim.tv_nsec": "st_mtime_nsec",
              "st_ctim.tv_sec": "st_ctime", "st_ctim.tv_nsec": "st_ctime_nsec"}
    offsets = {rename.get(k, k): int(v) for k, v in got.items()}
    assert offsets == abi.STAT_OFFSETS[arch]
    assert size == abi.STAT_SIZE[arch] == {"x86_64": 144, "aarch64": 128}[arch]


@pytest.mark.parametrize("toolchain", ARCH_TOOLCHAINS)
def test_fstat_and_newfstatat_write_the_arch_layout(toolchain: str, syscaller: Make,
                                                    tmp_path: Path) -> None:
    sc = syscaller(toolchain)
    f = tmp_path / "f.bin"
    f.write_bytes(b"z" * 1234)
    os.utime(f, ns=(1_600_000_000_123_456_789, 1_700_000_000_987_654_321))
    st = os.stat(f)
    fd = _open(sc, f)
    assert fd == 3
    off = abi.STAT_OFFSETS[sc.arch]
    size = abi.STAT_SIZE[sc.arch]
    sc.mem.write(sc.at(0x100), b"\xaa" * 0x300)
    assert sc("fstat", fd, sc.at(0x100)) == 0
    assert sc("newfstatat", AT_FDCWD, sc.cstr(str(f)), sc.at(0x200), 0) == 0
    for base in (0x100, 0x200):
        raw = sc.read(base, size)

        def field(name: str, fmt: str = "<q", raw: bytes = raw) -> int:
            return int(struct.unpack_from(fmt, raw, off[name])[0])

        assert field("st_size") == 1234
        assert field("st_ino", "<Q") == st.st_ino
        assert field("st_mode", "<I") == st.st_mode
        nlink_fmt = "<Q" if sc.arch == "x86_64" else "<I"
        assert field("st_nlink", nlink_fmt) == st.st_nlink
        assert field("st_uid", "<I") == st.st_uid
        assert field("st_mtime") == 1_700_000_000
        assert field("st_mtime_nsec") == 987_654_321
        assert field("st_atime") == 1_600_000_000
        assert field("st_atime_nsec") == 123_456_789
        blk_fmt = "<q" if sc.arch == "x86_64" else "<i"
        assert field("st_blksize", blk_fmt) == st.st_blksize
        assert sc.read(base + size, 1) == b"\xaa"  # nothing written past the struct
    # AT_EMPTY_PATH stats the fd itself.
    assert sc("newfstatat", fd, sc.cstr(""), sc.at(0x300), abi.AT_EMPTY_PATH) == 0
    assert sc.read(0x300, size) == sc.read(0x100, size)
    assert sc("newfstatat", AT_FDCWD, sc.cstr(str(tmp_path / "nope")), sc.at(0x300), 0) \
        == -errno.ENOENT


@pytest.mark.parametrize("toolchain", ARCH_TOOLCHAINS)
def test_statx_layout(toolchain: str, syscaller: Make, tmp_path: Path) -> None:
    sc = syscaller(toolchain)
    f = tmp_path / "x"
    f.write_bytes(b"12345")
    os.utime(f, ns=(5_000_000_001, 7_000_000_003))
    st = os.stat(f)
    assert sc("statx", AT_FDCWD, sc.cstr(str(f)), 0, 0xFFF, sc.at(0)) == 0
    raw = sc.read(0, 256)
    mask, _blksize = struct.unpack_from("<II", raw, 0)
    assert mask & 0x7FF == 0x7FF
    assert struct.unpack_from("<H", raw, 28)[0] == st.st_mode
    assert struct.unpack_from("<Q", raw, 32)[0] == st.st_ino
    assert struct.unpack_from("<Q", raw, 40)[0] == 5
    assert struct.unpack_from("<qI", raw, 64) == (5, 1)  # atime
    assert struct.unpack_from("<qI", raw, 112) == (7, 3)  # mtime
    assert struct.unpack_from("<II", raw, 136) == (os.major(st.st_dev), os.minor(st.st_dev))


# --------------------------------------------------------------------------- memory
@pytest.mark.parametrize("toolchain", ARCH_TOOLCHAINS)
def test_brk_grows_and_shrinks(toolchain: str, syscaller: Make) -> None:
    sc = syscaller(toolchain)
    start = sc.session.image.brk
    assert sc("brk", 0) == start
    assert sc("brk", start - PAGE) == start  # below the start: unchanged
    top = start + 3 * PAGE + 5
    assert sc("brk", top) == top
    assert sc.kernel.s.brk == top
    assert sc.mem.is_mapped(start, 4 * PAGE)
    region = sc.mem.find(start + 3 * PAGE)
    assert region is not None and region.perms == Perm.RW
    sc.mem.write(top - 1, b"!")
    assert sc("brk", start + PAGE) == start + PAGE
    assert sc.mem.is_mapped(start, PAGE) and not sc.mem.is_mapped(start + PAGE, 1)
    assert [(m.start, m.end, m.name) for m in sc.kernel.s.mappings
            if m.name == "[heap]"] == [(start, start + PAGE, "[heap]")]
    # Growing into something mapped fails (returns the old break).
    sc.mem.map(start + 4 * PAGE, PAGE, Perm.R, "blocker")
    assert sc("brk", start + 8 * PAGE) == start + PAGE
    assert sc("brk", start + 4 * PAGE) == start + 4 * PAGE


@pytest.mark.parametrize("toolchain", ARCH_TOOLCHAINS)
def test_mmap_munmap_mprotect_mremap_bookkeeping(toolchain: str, syscaller: Make) -> None:
    sc = syscaller(toolchain)
    base = sc.machine.arch.mmap_base
    a = sc("mmap", 0, 8 * PAGE, 3, 0x22, -1, 0)
    assert a % PAGE == 0 and a + 8 * PAGE <= base and a < sc.scratch  # top-down
    assert any(m.start == a and m.end == a + 8 * PAGE for m in sc.kernel.s.mappings)
    assert sc.mem.read(a, 8 * PAGE) == bytes(8 * PAGE)
    # munmap in the middle splits the mapping
    assert sc("munmap", a + 2 * PAGE, 2 * PAGE) == 0
    assert not sc.mem.is_mapped(a + 2 * PAGE, 1) and sc.mem.is_mapped(a + 4 * PAGE, 4 * PAGE)
    spans = [(m.start, m.end) for m in sc.kernel.s.mappings if a <= m.start < a + 8 * PAGE]
    assert spans == [(a, a + 2 * PAGE), (a + 4 * PAGE, a + 8 * PAGE)]
    assert sc("munmap", a + 1, PAGE) == -errno.EINVAL
    # mprotect
    assert sc("mprotect", a + 4 * PAGE, PAGE, 1) == 0
    region = sc.mem.find(a + 4 * PAGE)
    assert region is not None and region.perms == Perm.R
    assert [m.prot for m in sc.kernel.s.mappings if m.start == a + 4 * PAGE] == [1]
    assert sc("mprotect", a + 2 * PAGE, PAGE, 1) == -errno.ENOMEM
    # MAP_FIXED over a hole and part of a mapping
    assert sc("mmap", a + PAGE, 2 * PAGE, 3, 0x32, -1, 0) == a + PAGE
    assert sc.mem.is_mapped(a, 3 * PAGE)
    # MAP_FIXED_NOREPLACE refuses an occupied range
    assert sc("mmap", a, PAGE, 3, 0x100022, -1, 0) == -errno.EEXIST
    # mremap: grow in place when the pages above are free
    x = sc("mmap", 0, 4 * PAGE, 3, 0x22, -1, 0)
    assert sc("munmap", x + PAGE, 3 * PAGE) == 0
    sc.mem.write(x, b"in place")
    assert sc("mremap", x, PAGE, 3 * PAGE, 0, 0) == x
    assert sc.mem.read(x, 8) == b"in place" and sc.mem.is_mapped(x, 3 * PAGE)
    assert any(m.start == x + PAGE and m.end == x + 3 * PAGE for m in sc.kernel.s.mappings)
    # ...shrink...
    assert sc("mremap", x, 3 * PAGE, PAGE, 0, 0) == x
    assert not sc.mem.is_mapped(x + PAGE, 1)
    assert not any(m.start < x + 3 * PAGE and x + PAGE < m.end for m in sc.kernel.s.mappings)
    # ...and move when blocked (only with MREMAP_MAYMOVE)
    low = sc("mmap", 0, PAGE, 3, 0x22, -1, 0)
    assert sc("mmap", low + PAGE, PAGE, 3, 0x100022, -1, 0) in (low + PAGE, -errno.EEXIST)
    sc.mem.write(low, b"moved")
    assert sc("mremap", low, PAGE, 3 * PAGE, 0, 0) == -errno.ENOMEM
    moved = sc("mremap", low, PAGE, 3 * PAGE, 1, 0)
    assert moved > 0 and moved != low and not sc.mem.is_mapped(low, 1)
    assert sc.mem.read(moved, 5) == b"moved" and sc.mem.is_mapped(moved, 3 * PAGE)
    assert any(m.start == moved and m.end == moved + 3 * PAGE for m in sc.kernel.s.mappings)
    assert not any(m.start <= low < m.end for m in sc.kernel.s.mappings)
    assert sc("mremap", 0xDEAD0000, PAGE, 2 * PAGE, 1, 0) == -errno.EFAULT
    assert sc("mmap", 0, 0, 3, 0x22, -1, 0) == -errno.EINVAL


@pytest.mark.parametrize("toolchain", ARCH_TOOLCHAINS)
def test_mmap_file_private_copies_the_file(toolchain: str, syscaller: Make,
                                           tmp_path: Path) -> None:
    sc = syscaller(toolchain)
    f = tmp_path / "data"
    f.write_bytes(b"A" * PAGE + b"second page" + b"B" * 100)
    fd = _open(sc, f)
    m = sc("mmap", 0, 2 * PAGE, 1, 0x02, fd, PAGE)
    assert m > 0
    assert sc.mem.read(m, 12) == b"second pageB"
    assert sc.mem.read(m + 111, PAGE) == bytes(PAGE)  # past EOF: zeros
    assert sc("mmap", 0, PAGE, 1, 0x02, fd, 1) == -errno.EINVAL  # unaligned offset
    assert sc("mmap", 0, PAGE, 1, 0x02, 77, 0) == -errno.EBADF
    wfd = _open(sc, tmp_path / "w", O_WRONLY | O_CREAT)
    assert sc("mmap", 0, PAGE, 1, 0x02, wfd, 0) == -errno.EACCES


# --------------------------------------------------------------------------- fd table
@pytest.mark.parametrize("toolchain", ARCH_TOOLCHAINS)
def test_fd_table_dup_close_lseek(toolchain: str, syscaller: Make, tmp_path: Path) -> None:
    sc = syscaller(toolchain)
    f = tmp_path / "f"
    f.write_bytes(b"0123456789")
    fd = _open(sc, f)
    assert fd == 3
    assert sc("dup", fd) == 4
    assert sc("dup3", fd, 9, 0o2000000) == 9
    assert sc.kernel.s.fds[9].cloexec
    assert sc("fcntl", 9, abi.F_GETFD, 0) == abi.FD_CLOEXEC
    assert sc("fcntl", fd, abi.F_DUPFD_CLOEXEC, 20) == 20
    assert sc("lseek", 4, 3, os.SEEK_SET) == 3
    assert sc("read", 9, sc.at(0), 2) == 2 and sc.read(0, 2) == b"34"
    assert sc("lseek", fd, 0, os.SEEK_CUR) == 5  # one shared offset
    assert sc("lseek", fd, -2, os.SEEK_END) == 8
    assert sc("lseek", fd, -100, os.SEEK_SET) == -errno.EINVAL
    assert sc("close", 3) == 0
    assert sc("close", 3) == -errno.EBADF
    assert sc("read", 3, sc.at(0), 1) == -errno.EBADF
    assert sc("read", 4, sc.at(0), 10) == 2  # the description lives on in fd 4
    assert _open(sc, f) == 3  # lowest free number is reused
    assert sc("fcntl", 3, abi.F_GETFL, 0) & 3 == O_RDONLY
    if sc.arch == "x86_64":
        assert sc("dup2", 3, 3) == 3
    assert sc("dup3", 3, 3, 0) == -errno.EINVAL
    assert sc("write", 3, sc.at(0), 1) == -errno.EBADF  # read-only on the host too
    assert sc("close", 1) == 0  # closing guest stdout leaves the host's alone
    os.fstat(1)
    assert sc("write", 1, sc.at(0), 1) == -errno.EBADF
    for guest_fd in (3, 4, 9, 20):
        assert sc("close", guest_fd) == 0
    assert sorted(sc.kernel.s.fds) == [0, 2]


@pytest.mark.parametrize("toolchain", ARCH_TOOLCHAINS)
def test_open_flags_are_translated_per_arch(toolchain: str, syscaller: Make,
                                            tmp_path: Path) -> None:
    sc = syscaller(toolchain)
    f = tmp_path / "regular"
    f.write_bytes(b"x")
    o_directory = 0o200000 if sc.arch == "x86_64" else 0o40000
    o_nofollow = 0o400000 if sc.arch == "x86_64" else 0o100000
    assert _open(sc, f, o_directory) == -errno.ENOTDIR
    assert _open(sc, tmp_path, o_directory) >= 3
    (tmp_path / "link").symlink_to(f)
    assert _open(sc, tmp_path / "link", o_nofollow) == -errno.ELOOP
    fd = _open(sc, tmp_path / "new", O_RDWR | O_CREAT | O_TRUNC | 0o2000, 0o600)  # O_APPEND
    assert sc("fcntl", fd, abi.F_GETFL, 0) & 0o2003 == 0o2002
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o600
    assert _open(sc, tmp_path / "missing") == -errno.ENOENT


@pytest.mark.parametrize("toolchain", ARCH_TOOLCHAINS)
def test_getdents64_lists_a_directory(toolchain: str, syscaller: Make, tmp_path: Path) -> None:
    sc = syscaller(toolchain)
    for name in ("alpha", "beta", "gamma.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    o_directory = 0o200000 if sc.arch == "x86_64" else 0o40000
    fd = _open(sc, tmp_path, o_directory)

    def listing() -> dict[str, int]:
        out: dict[str, int] = {}
        while True:
            n = sc("getdents64", fd, sc.at(0), 64)  # tiny buffer: several calls
            assert n >= 0
            if n == 0:
                return out
            raw = sc.read(0, n)
            pos = 0
            while pos < n:
                _ino, _off, reclen, dtype = struct.unpack_from("<QqHB", raw, pos)
                name = raw[pos + 19:pos + reclen].split(b"\0")[0].decode()
                out[name] = dtype
                pos += reclen

    first = listing()
    assert first == {".": 4, "..": 4, "alpha": 8, "beta": 8, "gamma.txt": 8, "sub": 4}
    assert sc("lseek", fd, 0, os.SEEK_SET) == 0
    assert listing() == first
    assert sc("getdents64", fd, sc.at(0), 8) == 0  # at the end
    assert sc("lseek", fd, 0, os.SEEK_SET) == 0
    assert sc("getdents64", fd, sc.at(0), 8) == -errno.EINVAL  # too small for one entry
    assert sc("getdents64", 1, sc.at(0), 64) == -errno.ENOTDIR


@pytest.mark.parametrize("toolchain", ARCH_TOOLCHAINS)
def test_cwd_readlink_access_unlink(toolchain: str, syscaller: Make, tmp_path: Path) -> None:
    sc = syscaller(toolchain)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "file").write_bytes(b"content")
    assert sc("chdir", sc.cstr(str(tmp_path / "d"))) == 0
    n = sc("getcwd", sc.at(0), 4096)
    assert sc.read(0, n) == os.fsencode(os.path.realpath(tmp_path / "d")) + b"\0"
    assert sc("getcwd", sc.at(0), 3) == -errno.ERANGE
    assert sc("faccessat", AT_FDCWD, sc.cstr("file"), os.R_OK) == 0
    assert sc("faccessat", AT_FDCWD, sc.cstr("nope"), os.F_OK) == -errno.ENOENT
    assert _open(sc, "file") >= 3  # relative to the emulated cwd, not the host's
    n = sc("readlinkat", AT_FDCWD, sc.cstr("/proc/self/exe"), sc.at(0), 4096)
    assert sc.read(0, n) == os.fsencode(os.path.realpath(sc.session.image.path))
    assert sc("readlinkat", AT_FDCWD, sc.cstr("/proc/self/exe"), sc.at(0), 4) == 4
    assert sc("unlinkat", AT_FDCWD, sc.cstr("file"), 0) == 0
    assert not (tmp_path / "d" / "file").exists()
    assert sc("unlinkat", AT_FDCWD, sc.cstr("file"), 0) == -errno.ENOENT
    assert sc("chdir", sc.cstr("..")) == 0
    assert sc("unlinkat", AT_FDCWD, sc.cstr("d"), abi.AT_REMOVEDIR) == 0
    assert sc("chdir", sc.cstr("d")) == -errno.ENOENT


# --------------------------------------------------------------------------- misc calls
@pytest.mark.parametrize("toolchain", ARCH_TOOLCHAINS)
def test_uname_time_random_ids(toolchain: str, syscaller: Make) -> None:
    sc = syscaller(toolchain)
    assert sc("uname", sc.at(0)) == 0
    fields = [sc.read(65 * i, 65).split(b"\0")[0].decode() for i in range(6)]
    assert fields[0] == "Linux" and fields[4] == sc.arch and fields[2] == os.uname().release
    assert sc("clock_gettime", 1, sc.at(0)) == 0
    sec, nsec = struct.unpack("<qq", sc.read(0, 16))
    assert 0 <= nsec < 10**9 and sec >= 0
    assert sc("clock_gettime", 12345, sc.at(0)) == -errno.EINVAL
    assert sc("getrandom", sc.at(0), 32, 0) == 32
    assert sc("getrandom", sc.at(0), 32, 0x100) == -errno.EINVAL
    assert sc("getpid") == sc("gettid") == os.getpid()
    assert sc("getuid") == os.getuid()
    assert sc("ioctl", 0, abi.TCGETS, sc.at(0)) in (0, -errno.ENOTTY, -errno.EBADF)
    assert sc("prlimit64", 0, abi.RLIMIT_STACK, 0, sc.at(0)) == 0
    assert struct.unpack("<QQ", sc.read(0, 16)) == (sc.machine.arch.stack_size, abi.RLIM_INFINITY)
    assert sc("rseq", 0, 0, 0, 0) == -errno.ENOSYS
    assert sc("futex", sc.at(0x40), 0x80, 1, 0) == -errno.EAGAIN  # value is 0, not 1
    assert sc("futex", sc.at(0x40), 0x81, 1, 0) == 0  # FUTEX_WAKE


def test_arch_prctl_sets_fs_base(syscaller: Make) -> None:
    sc = syscaller("gcc")
    assert sc("arch_prctl", abi.ARCH_SET_FS, 0x1234000) == 0
    assert sc.machine.regs["fs_base"] == 0x1234000
    assert sc("arch_prctl", abi.ARCH_GET_FS, sc.at(0)) == 0
    assert struct.unpack("<Q", sc.read(0, 8))[0] == 0x1234000
    assert sc("arch_prctl", 0x3001, 0) == -errno.EINVAL


@pytest.mark.parametrize("toolchain", ARCH_TOOLCHAINS)
def test_ioctl_on_a_file_is_enotty(toolchain: str, syscaller: Make, tmp_path: Path) -> None:
    sc = syscaller(toolchain)
    f = tmp_path / "f"
    f.write_bytes(b"")
    fd = _open(sc, f)
    assert sc("ioctl", fd, abi.TCGETS, sc.at(0)) == -errno.ENOTTY
    assert sc("ioctl", fd, abi.TIOCGWINSZ, sc.at(0)) == -errno.ENOTTY


@pytest.mark.parametrize("toolchain", ARCH_TOOLCHAINS)
def test_signal_state(toolchain: str, syscaller: Make) -> None:
    sc = syscaller(toolchain)
    act = struct.pack("<QQQQ", 1, 0x04000000, 0x401000, 0)  # SIG_IGN
    sc.mem.write(sc.at(0), act)
    assert sc("rt_sigaction", 10, sc.at(0), 0, 8) == 0
    assert sc("rt_sigaction", 10, 0, sc.at(0x40), 8) == 0
    assert sc.read(0x40, 32) == act
    assert sc("rt_sigaction", 9, sc.at(0), 0, 8) == -errno.EINVAL
    assert sc("rt_sigaction", 10, sc.at(0), 0, 4) == -errno.EINVAL
    sc.mem.write(sc.at(0x80), struct.pack("<Q", 1 << 5))
    assert sc("rt_sigprocmask", 0, sc.at(0x80), sc.at(0x88), 8) == 0  # block SIGABRT
    assert sc.kernel.s.sigmask == 1 << 5
    assert sc("tgkill", sc("getpid"), sc("getpid"), 6) == 0
    assert sc.kernel.s.sigpending == 1 << 5  # pending, not delivered yet
    assert sc("kill", 1, 15) == -errno.EPERM
    assert sc("sigaltstack", 0, sc.at(0xA0)) == 0
    assert struct.unpack("<QiiQ", sc.read(0xA0, 24))[1] == abi.SS_DISABLE


def test_abort_ends_the_run_killed_by_sigabrt(build_probe: Callable, tmp_path: Path) -> None:
    exe = build_probe("sysprobe", "gcc")
    (tmp_path / "s").mkdir()
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        with syxdbg.open(str(exe), ["s", "abort"], env={}) as session:
            kernel = get_kernel(session)
            assert kernel is not None
            real_write = kernel.host.write

            def quiet_write(fd: int, data: bytes) -> int:  # keep the probe's output quiet
                return len(data) if fd in (1, 2) else real_write(fd, data)

            kernel.host.write = quiet_write
            event = session.run()
    finally:
        os.chdir(old)
    assert event.reason == "killed"
    assert getattr(event, "signal", None) == 6


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("toolchain", ARCH_TOOLCHAINS)
def test_bad_pointers_give_efault(toolchain: str, syscaller: Make, tmp_path: Path) -> None:
    sc = syscaller(toolchain)
    bad = 0xDEAD0000
    f = tmp_path / "f"
    f.write_bytes(b"abcdef")
    fd = _open(sc, f)
    assert sc("read", fd, bad, 4) == -errno.EFAULT
    assert sc("read", fd, sc.at(0), 4) == 4 and sc.read(0, 4) == b"abcd"  # nothing consumed
    assert sc("write", 1, bad, 4) == -errno.EFAULT
    assert sc("openat", AT_FDCWD, bad, 0, 0) == -errno.EFAULT
    assert sc("openat", AT_FDCWD, 0, 0, 0) == -errno.EFAULT
    assert sc("fstat", fd, bad) == -errno.EFAULT
    assert sc("newfstatat", AT_FDCWD, bad, sc.at(0), 0) == -errno.EFAULT
    assert sc("clock_gettime", 0, bad) == -errno.EFAULT
    assert sc("getcwd", bad, 4096) == -errno.EFAULT
    assert sc("uname", bad) == -errno.EFAULT
    assert sc("writev", 1, bad, 2) == -errno.EFAULT
    assert sc("getrandom", bad, 8, 0) == -errno.EFAULT
    assert sc("rt_sigaction", 10, bad, 0, 8) == -errno.EFAULT
    # A buffer running off the end of the mapping: a short read, as far as it is mapped.
    end = sc.scratch + 0x10000
    assert sc("pread64", fd, end - 2, 6, 0) == 2


@pytest.mark.parametrize("toolchain", ARCH_TOOLCHAINS)
def test_unknown_syscall_warns_once(toolchain: str, syscaller: Make,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    sc = syscaller(toolchain)
    capsys.readouterr()
    nr = sc.numbers["io_uring_setup"]
    assert sc("io_uring_setup", 1, 0) == -errno.ENOSYS
    assert sc("io_uring_setup", 1, 0) == -errno.ENOSYS
    regs = sc.machine.regs
    regs[sc.machine.arch.syscall.number] = 4000  # no such syscall at all
    sc.kernel.handle_syscall(sc.machine)
    assert regs[sc.machine.arch.syscall.ret] == (-errno.ENOSYS) & ((1 << 64) - 1)
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"syxdbg: warning: unsupported syscall io_uring_setup ({nr}) returns -ENOSYS",
        "syxdbg: warning: unsupported syscall unknown (4000) returns -ENOSYS",
    ]
    # The warned set is part of the state: a restore does not warn again.
    saved = sc.kernel.save_state()
    sc.kernel.load_state(saved)
    assert sc("io_uring_setup", 1, 0) == -errno.ENOSYS
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- state
@pytest.mark.parametrize("toolchain", ARCH_TOOLCHAINS)
def test_save_load_round_trip(toolchain: str, syscaller: Make, tmp_path: Path) -> None:
    sc = syscaller(toolchain)
    assert sc.session.states.get("linux") is get_kernel(sc.session)
    f = tmp_path / "data"
    f.write_bytes(bytes(range(100)))
    fd = _open(sc, f)
    assert sc("read", fd, sc.at(0), 10) == 10
    brk0 = sc("brk", 0)
    saved = sc.session.states.save()
    state = saved["linux"]
    assert isinstance(state, KernelState)
    first = (sc("read", fd, sc.at(0), 5), sc.read(0, 5))
    assert first == (5, bytes(range(10, 15)))
    assert sc("brk", brk0 + 5 * PAGE) == brk0 + 5 * PAGE
    assert sc("dup3", fd, 7, 0) == 7
    assert sc("chdir", sc.cstr(str(tmp_path))) == 0
    assert sc("close", fd) == 0
    f.unlink()  # the closed description is revived from the retired pool, not by path
    sc.session.states.load(saved)
    assert sc.kernel.s.brk == brk0
    assert 7 not in sc.kernel.s.fds and fd in sc.kernel.s.fds
    assert sc.kernel.s.cwd == state.cwd
    assert (sc("read", fd, sc.at(0), 5), sc.read(0, 5)) == first
    # Saving again gives an equal, independent value.
    assert sc.kernel.save_state().fds == state.fds
    sc.kernel.s.fds.clear()
    assert state.fds and dict(state.fds)[fd].file > 0


@pytest.mark.parametrize("toolchain", ARCH_TOOLCHAINS)
def test_load_state_reopens_by_path(toolchain: str, syscaller: Make, tmp_path: Path) -> None:
    sc = syscaller(toolchain)
    f = tmp_path / "data"
    f.write_bytes(b"abcdefghij")
    fd = _open(sc, f)
    assert sc("lseek", fd, 6, os.SEEK_SET) == 6
    state = sc.kernel.save_state()
    # A brand new kernel (as after a process restart) loads the state: files are reopened.
    other = LinuxKernel(sc.machine, dispatch=DISPATCH[sc.arch])
    try:
        other.load_state(state)
        hfd = other.process.host_fd(fd)
        assert os.read(hfd, 4) == b"ghij"
    finally:
        other.close()


def test_sessions_do_not_share_kernels(build_program: Callable[..., Path],
                                       tmp_path: Path) -> None:
    exe = str(build_program("hello", "gcc"))
    f = tmp_path / "f"
    f.write_bytes(b"x")
    s1 = syxdbg.open(exe, env={})
    s2 = syxdbg.open(exe, env={})
    try:
        k1, k2 = get_kernel(s1), get_kernel(s2)
        assert isinstance(k1, LinuxKernel) and isinstance(k2, LinuxKernel) and k1 is not k2
        sc1 = SysCaller(s1)
        fd = _open(sc1, f)
        hfd = k1.process.host_fd(fd)
        assert fd not in k2.s.fds
    finally:
        s1.close()
    with pytest.raises(OSError):
        os.fstat(hfd)  # closed by syxdbg_unconfigure
    assert get_kernel(s1) is None and get_kernel(s2) is k2
    s2.close()


def test_raw_blobs_get_no_kernel(tmp_path: Path) -> None:
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\x90" * 16)
    with syxdbg.open(str(blob), raw=True, arch="x86_64", base=0x10000) as session:
        assert get_kernel(session) is None
        assert "linux" not in session.states
