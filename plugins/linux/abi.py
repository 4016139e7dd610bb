"""The Linux user ABI as the guest sees it: constants, flag translation and struct layouts.

Everything here is pure data and pure functions (no host access). Struct layouts follow the
kernel's UAPI headers of each architecture:

* ``struct stat``: x86_64 has its own 144-byte layout (``arch/x86/include/uapi/asm/stat.h``);
  aarch64 uses the 128-byte ``asm-generic/stat.h`` one.
* ``struct statx`` (256 bytes), ``struct utsname`` (6 x 65 bytes), ``struct sysinfo``
  (112 bytes), ``struct linux_dirent64`` and ``struct timespec`` are the same on both.
"""

from __future__ import annotations

import os
import stat as stat_mod
import struct
from dataclasses import dataclass

MASK64 = (1 << 64) - 1

# -- *at() and friends -------------------------------------------------------------------
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_REMOVEDIR = 0x200
AT_EACCESS = 0x200
AT_SYMLINK_FOLLOW = 0x400
AT_NO_AUTOMOUNT = 0x800
AT_EMPTY_PATH = 0x1000
#: utimensat's special nanosecond values.
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2

# -- mmap ----------------------------------------------------------------------------------
PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE = 0x01, 0x02, 0x03
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_FIXED_NOREPLACE = 0x100000
MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP = 1, 2, 4

# -- fcntl ---------------------------------------------------------------------------------
F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL = 0, 1, 2, 3, 4
F_GETLK, F_SETLK, F_SETLKW = 5, 6, 7
F_DUPFD_CLOEXEC = 1030
FD_CLOEXEC = 1

# -- ioctl (asm-generic values, also x86_64's) ---------------------------------------------
TCGETS, TCSETS, TCSETSW, TCSETSF = 0x5401, 0x5402, 0x5403, 0x5404
TIOCGWINSZ, TIOCSWINSZ = 0x5413, 0x5414
TIOCGPGRP = 0x540F
FIONREAD = 0x541B
TERMIOS_SIZE = 36  # struct termios (kernel): 4 x u32 flags, c_line, c_cc[19]
WINSIZE_SIZE = 8

# -- arch_prctl (x86_64) -------------------------------------------------------------------
ARCH_SET_GS, ARCH_SET_FS, ARCH_GET_FS, ARCH_GET_GS = 0x1001, 0x1002, 0x1003, 0x1004

# -- signals -------------------------------------------------------------------------------
SIG_DFL, SIG_IGN = 0, 1
SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK = 0, 1, 2
NSIG = 64
SIGKILL, SIGSTOP = 9, 19
SIGPIPE, SIGCHLD = 13, 17
SIGHUP, SIGCONT, SIGTSTP, SIGTTIN, SIGTTOU = 1, 18, 20, 21, 22
#: Signals whose default action stops the process (all but SIGSTOP only outside an
#: orphaned process group) and their bits.
STOP_SIGNALS = frozenset({SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU})
STOP_MASK = sum(1 << (sig - 1) for sig in STOP_SIGNALS)
#: Writes to a pipe of at most this many bytes are atomic.
PIPE_BUF = 4096
#: wait4 options and waitid's.
WNOHANG, WUNTRACED, WEXITED, WCONTINUED, WNOWAIT = 1, 2, 4, 8, 0x01000000
#: waitid id types and si_code values of SIGCHLD.
P_ALL, P_PID, P_PGID, P_PIDFD = 0, 1, 2, 3
CLD_EXITED, CLD_KILLED, CLD_DUMPED, CLD_STOPPED, CLD_CONTINUED = 1, 2, 3, 5, 6
#: A wait status of a continued child (WIFCONTINUED), and of one stopped by ``sig``:
#: ``sig << 8 | WSTOPPED_LOW`` (WIFSTOPPED).
WAIT_CONTINUED, WSTOPPED_LOW = 0xFFFF, 0x7F
SS_DISABLE = 2
SIGACTION_SIZE = 32  # handler, flags, restorer, mask: both arches define SA_RESTORER
SIGALTSTACK_SIZE = 24
#: Signals whose default action is to be ignored, or to stop or continue the process (which
#: the kernel does before it looks at this set): CHLD CONT STOP TSTP TTIN TTOU URG WINCH.
DEFAULT_IGNORED = frozenset({17, 18, 19, 20, 21, 22, 23, 28})

# -- futex ---------------------------------------------------------------------------------
FUTEX_WAIT, FUTEX_WAKE, FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET = 0, 1, 9, 10
FUTEX_CMD_MASK = 0x7F
#: O_NONBLOCK in the guest's file status flags (the same on x86_64 and aarch64).
O_NONBLOCK = 0o4000
FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP = 3, 4, 5
FUTEX_CLOCK_REALTIME = 256
FUTEX_WAITERS, FUTEX_OWNER_DIED, FUTEX_TID_MASK = 0x80000000, 0x40000000, 0x3FFFFFFF
FUTEX_BITSET_MATCH_ANY = 0xFFFFFFFF
#: Most robust list entries walked at a thread's exit (Linux's ROBUST_LIST_LIMIT).
ROBUST_LIST_LIMIT = 2048

# clone flags
CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND = 0x100, 0x200, 0x400, 0x800
CLONE_PIDFD, CLONE_PTRACE, CLONE_VFORK, CLONE_PARENT = 0x1000, 0x2000, 0x4000, 0x8000
CLONE_THREAD, CLONE_NEWNS, CLONE_SYSVSEM, CLONE_SETTLS = 0x10000, 0x20000, 0x40000, 0x80000
CLONE_PARENT_SETTID, CLONE_CHILD_CLEARTID, CLONE_DETACHED = 0x100000, 0x200000, 0x400000
CLONE_UNTRACED, CLONE_CHILD_SETTID = 0x800000, 0x1000000
#: What a thread needs (glibc's and musl's pthread_create, Go, Rust std).
CLONE_THREAD_REQUIRED = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD
#: What a thread may add.
CLONE_THREAD_OPTIONAL = (CLONE_SYSVSEM | CLONE_SETTLS | CLONE_PARENT_SETTID
                         | CLONE_CHILD_CLEARTID | CLONE_CHILD_SETTID | CLONE_DETACHED
                         | CLONE_UNTRACED)

# -- resource limits -----------------------------------------------------------------------
RLIM_INFINITY = MASK64
RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_DATA, RLIMIT_STACK, RLIMIT_CORE = 0, 1, 2, 3, 4
RLIMIT_NOFILE, RLIMIT_NPROC = 7, 6
RLIMIT_NLIMITS = 16

# -- getrandom -----------------------------------------------------------------------------
GRND_NONBLOCK, GRND_RANDOM, GRND_INSECURE = 1, 2, 4

# -- clocks (the ids the host's time.clock_gettime_ns understands on Linux) ------------------
VALID_CLOCKS = frozenset({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11})
CLOCK_REALTIME = 0
TIMER_ABSTIME = 1

# -- directory entries ---------------------------------------------------------------------
DT_UNKNOWN, DT_FIFO, DT_CHR, DT_DIR, DT_BLK, DT_REG, DT_LNK, DT_SOCK = 0, 1, 2, 4, 6, 8, 10, 12


def dtype_of_mode(mode: int) -> int:
    for test, dt in ((stat_mod.S_ISREG, DT_REG), (stat_mod.S_ISDIR, DT_DIR),
                     (stat_mod.S_ISLNK, DT_LNK), (stat_mod.S_ISCHR, DT_CHR),
                     (stat_mod.S_ISBLK, DT_BLK), (stat_mod.S_ISFIFO, DT_FIFO),
                     (stat_mod.S_ISSOCK, DT_SOCK)):
        if test(mode):
            return dt
    return DT_UNKNOWN


# -- open(2) flags: guest values differ between x86_64 and aarch64 ----------------------------
@dataclass(frozen=True)
class OpenFlag:
    name: str
    x86_64: int
    aarch64: int
    host: int


def _host(name: str) -> int:
    return int(getattr(os, name, 0))


#: Flags whose bit is the same on both architectures plus the four that move on aarch64.
OPEN_FLAGS: tuple[OpenFlag, ...] = (
    OpenFlag("O_WRONLY", 0o1, 0o1, os.O_WRONLY),
    OpenFlag("O_RDWR", 0o2, 0o2, os.O_RDWR),
    OpenFlag("O_CREAT", 0o100, 0o100, os.O_CREAT),
    OpenFlag("O_EXCL", 0o200, 0o200, os.O_EXCL),
    OpenFlag("O_NOCTTY", 0o400, 0o400, _host("O_NOCTTY")),
    OpenFlag("O_TRUNC", 0o1000, 0o1000, os.O_TRUNC),
    OpenFlag("O_APPEND", 0o2000, 0o2000, os.O_APPEND),
    OpenFlag("O_NONBLOCK", 0o4000, 0o4000, _host("O_NONBLOCK")),
    OpenFlag("O_DSYNC", 0o10000, 0o10000, _host("O_DSYNC")),
    OpenFlag("O_ASYNC", 0o20000, 0o20000, _host("O_ASYNC")),
    OpenFlag("O_DIRECT", 0o40000, 0o200000, _host("O_DIRECT")),
    OpenFlag("O_LARGEFILE", 0o100000, 0o400000, _host("O_LARGEFILE")),
    OpenFlag("O_DIRECTORY", 0o200000, 0o40000, _host("O_DIRECTORY")),
    OpenFlag("O_NOFOLLOW", 0o400000, 0o100000, _host("O_NOFOLLOW")),
    OpenFlag("O_NOATIME", 0o1000000, 0o1000000, _host("O_NOATIME")),
    OpenFlag("O_CLOEXEC", 0o2000000, 0o2000000, _host("O_CLOEXEC")),
    OpenFlag("__O_SYNC", 0o4000000, 0o4000000, _host("O_SYNC") & ~_host("O_DSYNC")),
    OpenFlag("O_PATH", 0o10000000, 0o10000000, _host("O_PATH")),
    OpenFlag("__O_TMPFILE", 0o20000000, 0o20000000,
             _host("O_TMPFILE") & ~_host("O_DIRECTORY")),
)
O_ACCMODE = 3


#: Architectures whose open(2) flags are another's: arm has aarch64's four moved bits
#: (arch/arm/include/uapi/asm/fcntl.h), riscv64 the asm-generic values x86_64 has too.
_FLAG_LAYOUT = {"arm": "aarch64", "riscv64": "x86_64"}


def guest_flag(arch: str, name: str) -> int:
    arch = _FLAG_LAYOUT.get(arch, arch)
    for f in OPEN_FLAGS:
        if f.name == name:
            return int(getattr(f, arch))
    raise KeyError(name)


def open_flags_to_host(arch: str, flags: int) -> int:
    """Translate guest open(2) flags to the host's (unknown bits are dropped)."""
    arch = _FLAG_LAYOUT.get(arch, arch)
    out = 0
    for f in OPEN_FLAGS:
        if flags & getattr(f, arch):
            out |= f.host
    return out


def open_flags_from_host(arch: str, flags: int) -> int:
    """Translate host file status flags (fcntl F_GETFL) to the guest's values."""
    arch = _FLAG_LAYOUT.get(arch, arch)
    out = 0
    for f in OPEN_FLAGS:
        if f.host and flags & f.host == f.host:
            out |= getattr(f, arch)
    return out


# -- struct packing --------------------------------------------------------------------------
_STAT_X86_64 = struct.Struct("<QQQIIIIQqqqqQqQqQ24x")
_STAT_GENERIC = struct.Struct("<QQIIIIQ8xqi4xqqQqQqQ8x")
#: 32-bit ARM's ``struct stat64`` (arch/arm/include/uapi/asm/stat.h): dev, pad, 32-bit ino,
#: mode, nlink, uid, gid, rdev, pad, size, blksize, blocks, 32-bit times, 64-bit ino.
_STAT64_ARM = struct.Struct("<Q4xIIIIIQ4x4xqI4xQIIIIIIQ")
STAT_SIZE = {"x86_64": _STAT_X86_64.size, "aarch64": _STAT_GENERIC.size,
             "riscv64": _STAT_GENERIC.size, "arm": _STAT64_ARM.size}
assert _STAT_X86_64.size == 144 and _STAT_GENERIC.size == 128 and _STAT64_ARM.size == 104

#: Field offsets of struct stat, for documentation and tests.
STAT_OFFSETS: dict[str, dict[str, int]] = {
    "x86_64": {"st_dev": 0, "st_ino": 8, "st_nlink": 16, "st_mode": 24, "st_uid": 28,
               "st_gid": 32, "st_rdev": 40, "st_size": 48, "st_blksize": 56, "st_blocks": 64,
               "st_atime": 72, "st_atime_nsec": 80, "st_mtime": 88, "st_mtime_nsec": 96,
               "st_ctime": 104, "st_ctime_nsec": 112},
    "aarch64": {"st_dev": 0, "st_ino": 8, "st_mode": 16, "st_nlink": 20, "st_uid": 24,
                "st_gid": 28, "st_rdev": 32, "st_size": 48, "st_blksize": 56, "st_blocks": 64,
                "st_atime": 72, "st_atime_nsec": 80, "st_mtime": 88, "st_mtime_nsec": 96,
                "st_ctime": 104, "st_ctime_nsec": 112},
}


def _split_ns(ns: int) -> tuple[int, int]:
    return ns // 1_000_000_000, ns % 1_000_000_000


def pack_stat(arch: str, st: os.stat_result) -> bytes:
    """``struct stat`` in ``arch``'s kernel layout from a host stat result."""
    a, an = _split_ns(st.st_atime_ns)
    m, mn = _split_ns(st.st_mtime_ns)
    c, cn = _split_ns(st.st_ctime_ns)
    blksize = getattr(st, "st_blksize", 4096)
    blocks = getattr(st, "st_blocks", (st.st_size + 511) // 512)
    rdev = getattr(st, "st_rdev", 0)
    if arch == "arm":
        return _STAT64_ARM.pack(st.st_dev & MASK64, st.st_ino & 0xFFFFFFFF, st.st_mode,
                                st.st_nlink & 0xFFFFFFFF, st.st_uid, st.st_gid, rdev,
                                st.st_size, blksize, blocks, a & 0xFFFFFFFF, an,
                                m & 0xFFFFFFFF, mn, c & 0xFFFFFFFF, cn, st.st_ino & MASK64)
    if arch == "x86_64":
        return _STAT_X86_64.pack(st.st_dev & MASK64, st.st_ino & MASK64, st.st_nlink,
                                 st.st_mode, st.st_uid, st.st_gid, 0, rdev, st.st_size,
                                 blksize, blocks, a, an, m, mn, c, cn)
    return _STAT_GENERIC.pack(st.st_dev & MASK64, st.st_ino & MASK64, st.st_mode,
                              st.st_nlink & 0xFFFFFFFF, st.st_uid, st.st_gid, rdev,
                              st.st_size, blksize, blocks, a, an, m, mn, c, cn)


STATX_BASIC_STATS = 0x7FF
_STATX_HEAD = struct.Struct("<IIQIIIH2xQQQQ")
_STATX_TS = struct.Struct("<qI4x")
_STATX_TAIL = struct.Struct("<IIIIQ")
STATX_SIZE = 256


def pack_statx(st: os.stat_result) -> bytes:
    """``struct statx`` (arch independent) with the basic stats (no birth time)."""
    blksize = getattr(st, "st_blksize", 4096)
    blocks = getattr(st, "st_blocks", (st.st_size + 511) // 512)
    rdev = getattr(st, "st_rdev", 0)
    out = bytearray(_STATX_HEAD.pack(STATX_BASIC_STATS, blksize, 0, st.st_nlink, st.st_uid,
                                     st.st_gid, st.st_mode & 0xFFFF, st.st_ino & MASK64,
                                     st.st_size, blocks, 0))
    for ns in (st.st_atime_ns, 0, st.st_ctime_ns, st.st_mtime_ns):  # atime btime ctime mtime
        out += _STATX_TS.pack(*_split_ns(ns))
    out += _STATX_TAIL.pack(os.major(rdev), os.minor(rdev), os.major(st.st_dev),
                            os.minor(st.st_dev), 0)
    return bytes(out.ljust(STATX_SIZE, b"\0"))


def pack_timespec(ns: int) -> bytes:
    return struct.pack("<qq", *_split_ns(ns))


def unpack_timespec(data: bytes) -> int:
    sec, nsec = struct.unpack("<qq", data)
    return sec * 1_000_000_000 + nsec


def pack_timeval(ns: int) -> bytes:
    sec, nsec = _split_ns(ns)
    return struct.pack("<qq", sec, nsec // 1000)


UTSNAME_FIELD = 65


def pack_utsname(fields: tuple[str, str, str, str, str, str]) -> bytes:
    """sysname, nodename, release, version, machine, domainname."""
    return b"".join(f.encode()[: UTSNAME_FIELD - 1].ljust(UTSNAME_FIELD, b"\0") for f in fields)


_SYSINFO = struct.Struct("<q3Q6QHH4xQQI")
SYSINFO_SIZE = 112


def pack_sysinfo(uptime: int, totalram: int, freeram: int, procs: int) -> bytes:
    data = _SYSINFO.pack(uptime, 0, 0, 0, totalram, freeram, 0, 0, 0, 0, procs, 0, 0, 0, 1)
    return data.ljust(SYSINFO_SIZE, b"\0")


#: ``struct sysinfo`` with 4-byte longs (32-bit ARM): 64 bytes.
_SYSINFO32 = struct.Struct("<i3I6IHH2II")
SYSINFO32_SIZE = 64


def pack_sysinfo32(uptime: int, totalram: int, freeram: int, procs: int) -> bytes:
    """The 32-bit ``struct sysinfo``: memory sizes in ``mem_unit`` units, which grows (as
    the kernel does it) until the total fits in 32 bits."""
    unit = 1
    while totalram // unit > 0xFFFFFFFF:
        unit *= 2
    data = _SYSINFO32.pack(uptime, 0, 0, 0, totalram // unit, freeram // unit, 0, 0, 0, 0,
                           procs, 0, 0, 0, unit)
    return data.ljust(SYSINFO32_SIZE, b"\0")


def pack_dirent64(ino: int, off: int, dtype: int, name: bytes) -> bytes:
    """One ``struct linux_dirent64`` record, padded to 8 bytes."""
    reclen = (19 + len(name) + 1 + 7) & ~7
    head = struct.pack("<QqHB", ino & MASK64, off, reclen, dtype)
    return (head + name + b"\0").ljust(reclen, b"\0")
