"""The emulated kernel of one guest process: its state, syscall dispatch, save and restore.

:class:`LinuxKernel` owns everything the Linux syscall layer remembers between syscalls:

* the fd table (guest fd -> open file description + close-on-exec flag) and the open file
  descriptions (host fd, path, status flags, directory listing position);
* the program break (``brk_start``/``brk``) and the bookkeeping of mmap'ed ranges;
* cwd, umask, signal dispositions/mask/pending set, sigaltstack, resource limits, the
  process identity (pid, uid... read once from the host) and the set of unsupported
  syscalls already warned about.

:meth:`save_state` returns a :class:`KernelState`, a frozen value sharing nothing mutable with
the kernel; :meth:`load_state` replaces the whole state with one, re-opening (by path) and
re-positioning host files so that reads and seeks after a restore behave as they did at
save time. Host fds of closed descriptions are kept in a small pool so a restore can revive
them even when the file has been unlinked meanwhile. Pipes and the inherited stdio fds are
not repositioned (they cannot be); replaying their data is the EventLog's job.

All host access goes through :attr:`LinuxKernel.host` (a :class:`~.hostio.HostIO`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import IO, TYPE_CHECKING

from syxdbg.errors import MemoryAccessError, MemoryMapError
from syxdbg.machine.memory import PAGE, Perm, page_round_up

from . import abi
from .hostio import HostIO, RecordingHostIO
from .syscalls import DISPATCH, SyscallError
from .tables import SYSCALL_TABLES

if TYPE_CHECKING:
    from syxdbg.eventlog import EventLog
    from syxdbg.machine import Machine
    from syxdbg.machine.registers import RegisterInfo

#: Host fds of closed descriptions kept open for restores (per kernel).
RETIRED_POOL = 32
STDIO = (0, 1, 2)


@dataclass
class OpenFile:
    """A live open file description (shared by dup'ed fds)."""

    id: int
    kind: str  # "std" (inherited host 0/1/2), "file", "dir" or "pipe"
    path: bytes | None  # absolute host path of files and directories
    flags: int  # guest status flags (guest arch values): access mode, O_APPEND, O_NONBLOCK...
    host_fd: int  # -1 when lost (a pipe that could not be revived by a restore)
    owned: bool  # opened by us: closed when the last guest fd goes
    dir_entries: tuple[tuple[bytes, int, int], ...] | None = None
    dir_pos: int = 0


@dataclass(frozen=True)
class FileState:
    """An open file description as saved: offset instead of a live host position."""

    id: int
    kind: str
    path: bytes | None
    flags: int
    host_fd: int
    owned: bool
    offset: int | None
    dir_entries: tuple[tuple[bytes, int, int], ...] | None
    dir_pos: int


@dataclass(frozen=True)
class FdEntry:
    file: int  # OpenFile id
    cloexec: bool = False


@dataclass(frozen=True)
class Mapping:
    """A range created by mmap/mremap (or brk, named ``[heap]``)."""

    start: int
    end: int
    prot: int
    flags: int
    name: str


@dataclass(frozen=True)
class KernelState:
    """Everything :class:`LinuxKernel` remembers; immutable (see save_state)."""

    fds: tuple[tuple[int, FdEntry], ...]
    files: tuple[FileState, ...]
    next_file_id: int
    brk_start: int
    brk: int
    mappings: tuple[Mapping, ...]
    cwd: bytes
    umask: int
    sigactions: tuple[tuple[int, bytes], ...]
    sigmask: int
    sigpending: int
    altstack: bytes
    rlimits: tuple[tuple[int, int, int], ...]
    ids: tuple[int, int, int, int, int, int]
    tid_address: int
    robust_list: tuple[int, int]
    warned: frozenset[int]
    #: The program's host path as the guest sees it (/proc/self/exe, comm).
    image_path: bytes = b""


@dataclass
class _Live:
    """The mutable working copy of the state (one per kernel)."""

    fds: dict[int, FdEntry] = field(default_factory=dict)
    files: dict[int, OpenFile] = field(default_factory=dict)
    next_file_id: int = 1
    brk_start: int = 0
    brk: int = 0
    mappings: list[Mapping] = field(default_factory=list)
    cwd: bytes = b"/"
    umask: int = 0o022
    sigactions: dict[int, bytes] = field(default_factory=dict)
    sigmask: int = 0
    sigpending: int = 0
    altstack: bytes = b""
    rlimits: dict[int, tuple[int, int]] = field(default_factory=dict)
    ids: tuple[int, int, int, int, int, int] = (1, 0, 0, 0, 0, 0)
    tid_address: int = 0
    robust_list: tuple[int, int] = (0, 0)
    warned: set[int] = field(default_factory=set)


def _default_rlimits(stack_size: int) -> dict[int, tuple[int, int]]:
    inf = abi.RLIM_INFINITY
    limits = {r: (inf, inf) for r in range(abi.RLIMIT_NLIMITS)}
    limits[abi.RLIMIT_STACK] = (stack_size, inf)
    limits[abi.RLIMIT_CORE] = (0, inf)
    limits[abi.RLIMIT_NOFILE] = (1024, 4096)
    limits[8] = (8 * 1024 * 1024, 8 * 1024 * 1024)  # RLIMIT_MEMLOCK
    limits[6] = (63_000, 63_000)  # RLIMIT_NPROC
    limits[11] = (63_000, 63_000)  # RLIMIT_SIGPENDING
    limits[12] = (819_200, 819_200)  # RLIMIT_MSGQUEUE
    limits[13] = (0, 0)  # RLIMIT_NICE
    limits[14] = (0, 0)  # RLIMIT_RTPRIO
    return limits


class LinuxKernel:
    """Linux user-mode syscall emulation for one machine. Install with :meth:`install`."""

    def __init__(self, machine: Machine, host: HostIO | None = None, *,
                 warn_stream: IO[str] | None = None) -> None:
        self.machine = machine
        self.mem = machine.mem
        self.arch = machine.arch.name
        self.host = host if host is not None else HostIO()
        #: Where warnings go (None: the current sys.stderr).
        self.warn_stream = warn_stream
        #: Set to a text stream to log every syscall (strace-like), for debugging.
        self.trace: IO[str] | None = None
        abi_ = machine.arch.syscall
        regs = machine.regs
        self._nr_reg: RegisterInfo = regs.info(abi_.number)
        self._arg_regs: tuple[RegisterInfo, ...] = tuple(regs.info(r) for r in abi_.args)
        self._ret_reg: RegisterInfo = regs.info(abi_.ret)
        self._dispatch = DISPATCH[self.arch]
        self._names = SYSCALL_TABLES[self.arch]
        self._retired: OrderedDict[int, int] = OrderedDict()  # file id -> host fd
        self.s = _Live()
        image = machine.image
        self.image_path = (self.host.realpath(os.fsencode(image.path))
                           if image is not None else b"")
        self.s.brk_start = self.s.brk = image.brk if image is not None else 0
        self.s.cwd = self.host.getcwd()
        self.s.ids = self.host.ids()
        self.s.rlimits = _default_rlimits(machine.arch.stack_size)
        self.mmap_base = machine.arch.mmap_base
        for fd in STDIO:
            try:
                flags = abi.open_flags_from_host(self.arch, self.host.get_status_flags(fd))
            except OSError:
                continue  # not open on the host: not open in the guest either
            self.s.fds[fd] = FdEntry(self._new_file("std", None, flags, fd, owned=False).id)

    # -- installation ---------------------------------------------------------------------
    def install(self) -> None:
        self.machine.set_syscall_handler(self.handle_syscall)

    # -- record / replay (syxdbg.eventlog.Recordable) --------------------------------------
    def attach_eventlog(self, log: EventLog) -> None:
        """Route host access made by syscalls through ``log`` (record/replay)."""
        if isinstance(self.host, RecordingHostIO):
            self.host = self.host.inner
        self.host = RecordingHostIO(self.host, log)

    def detach_eventlog(self) -> None:
        if isinstance(self.host, RecordingHostIO):
            self.host = self.host.inner

    def close(self) -> None:
        """Close every host fd this kernel opened (session teardown)."""
        for f in self.s.files.values():
            if f.owned and f.host_fd >= 0:
                self._host_close(f.host_fd)
            f.host_fd = -1
        for hfd in self._retired.values():
            self._host_close(hfd)
        self._retired.clear()
        self.s.files.clear()
        self.s.fds.clear()

    # -- dispatch ---------------------------------------------------------------------------
    def handle_syscall(self, machine: Machine) -> None:
        host = self.host
        # Inside a syscall handler the position is exact: a syscall instruction always ends
        # its translation block, which the block hook counted on entry.
        host.enter_syscall(machine.position)
        try:
            self._handle_syscall(machine)
        finally:
            host.leave_syscall()

    def _handle_syscall(self, machine: Machine) -> None:
        regs = machine.regs
        nr = regs.read_info(self._nr_reg)
        handler = self._dispatch.get(nr)
        if handler is None:
            ret: int | None = self.unsupported(nr)
            args: list[int] = []
        else:
            args = [conv(regs.read_info(r)) for conv, r in zip(handler.converters,
                                                                self._arg_regs, strict=False)]
            try:
                ret = handler.fn(self, *args)
            except SyscallError as exc:
                ret = -exc.errno
            except MemoryAccessError:
                ret = -errno.EFAULT
            except MemoryMapError:
                ret = -errno.ENOMEM
            except OSError as exc:
                ret = -(exc.errno or errno.EIO)
        if self.trace is not None:
            name = self._names.get(nr, f"syscall_{nr}")
            shown = ", ".join(hex(a) if a > 9 or a < -9 else str(a) for a in args)
            self.trace.write(f"[linux] {name}({shown}) = {ret}\n")
        if ret is not None:
            regs.write_info(self._ret_reg, ret & abi.MASK64)

    def unsupported(self, nr: int) -> int:
        if nr not in self.s.warned:
            self.s.warned.add(nr)
            name = self._names.get(nr, "unknown")
            self._warn(f"syxdbg: warning: unsupported syscall {name} ({nr}) returns -ENOSYS\n")
        return -errno.ENOSYS

    def _warn(self, text: str) -> None:
        # Through the host boundary: a replayed syscall does not warn a second time.
        self.host.warn(text, self.warn_stream if self.warn_stream is not None else sys.stderr)

    def syscall_name(self, nr: int) -> str | None:
        return self._names.get(nr)

    # -- files ------------------------------------------------------------------------------
    def _new_file(self, kind: str, path: bytes | None, flags: int, host_fd: int, *,
                  owned: bool = True) -> OpenFile:
        f = OpenFile(self.s.next_file_id, kind, path, flags, host_fd, owned)
        self.s.next_file_id += 1
        if owned and host_fd >= 0 and self._retired:
            # A replayed open returns the host fd the live open got, which a restore may
            # have parked in the retired pool: it is in use again, never close it from there.
            for fid in [fid for fid, h in self._retired.items() if h == host_fd]:
                del self._retired[fid]
        self.s.files[f.id] = f
        return f

    def lowest_free_fd(self, minimum: int = 0) -> int:
        fd = minimum
        while fd in self.s.fds:
            fd += 1
        limit = self.s.rlimits[abi.RLIMIT_NOFILE][0]
        if fd >= limit:
            raise SyscallError(errno.EMFILE)
        return fd

    def install_fd(self, f: OpenFile, *, cloexec: bool = False, fd: int | None = None) -> int:
        num = self.lowest_free_fd() if fd is None else fd
        self.s.fds[num] = FdEntry(f.id, cloexec)
        return num

    def file(self, fd: int) -> OpenFile:
        """The open description behind guest ``fd`` (EBADF if none)."""
        entry = self.s.fds.get(fd)
        if entry is None:
            raise SyscallError(errno.EBADF)
        return self.s.files[entry.file]

    def host_fd(self, fd: int) -> int:
        f = self.file(fd)
        if f.host_fd < 0:
            raise SyscallError(errno.EBADF)
        return f.host_fd

    def close_fd(self, fd: int) -> None:
        entry = self.s.fds.pop(fd, None)
        if entry is None:
            raise SyscallError(errno.EBADF)
        if any(e.file == entry.file for e in self.s.fds.values()):
            return
        f = self.s.files.pop(entry.file)
        if f.owned and f.host_fd >= 0:
            self._retired[f.id] = f.host_fd
            while len(self._retired) > RETIRED_POOL:
                _, hfd = self._retired.popitem(last=False)
                self._host_close(hfd)

    def dup_fd(self, old: int, new: int | None, cloexec: bool, minimum: int = 0) -> int:
        entry = self.s.fds.get(old)
        if entry is None:
            raise SyscallError(errno.EBADF)
        if new is None:
            new = self.lowest_free_fd(minimum)
        elif new in self.s.fds:
            if new == old:
                return new
            self.close_fd(new)
        self.s.fds[new] = FdEntry(entry.file, cloexec)
        return new

    def _host_close(self, hfd: int) -> None:
        with contextlib.suppress(OSError):
            self.host.close(hfd)

    # -- paths --------------------------------------------------------------------------------
    def read_path(self, ptr: int) -> bytes:
        if ptr == 0:
            raise SyscallError(errno.EFAULT)
        path = self.mem.read_cstring(ptr, 4097)
        if len(path) > 4095:
            raise SyscallError(errno.ENAMETOOLONG)
        return path

    def resolve(self, dirfd: int, path: bytes) -> bytes:
        """The host path of guest ``path`` relative to ``dirfd`` (AT_FDCWD: the cwd)."""
        if not path:
            raise SyscallError(errno.ENOENT)
        if path in (b"/proc/self/exe", b"/proc/%d/exe" % self.s.ids[0]):
            return self.image_path
        if path.startswith(b"/"):
            return path
        if dirfd == abi.AT_FDCWD:
            base = self.s.cwd
        else:
            f = self.file(dirfd)
            if f.kind != "dir" or f.path is None:
                raise SyscallError(errno.ENOTDIR)
            base = f.path
        return os.path.join(base, path)

    # -- memory helpers ---------------------------------------------------------------------
    def writable_extent(self, addr: int, size: int) -> int:
        """How many bytes from ``addr`` (at most ``size``) are mapped (EFAULT if none)."""
        if size == 0:
            return 0
        n = 0
        pos = addr
        while n < size:
            r = self.mem.find(pos)
            if r is None:
                break
            step = min(size - n, r.end - pos)
            n += step
            pos += step
        if n == 0:
            raise SyscallError(errno.EFAULT)
        return n

    def add_mapping(self, start: int, end: int, prot: int, flags: int, name: str) -> None:
        self.remove_mappings(start, end)
        self.s.mappings.append(Mapping(start, end, prot, flags, name))
        self.s.mappings.sort(key=lambda m: m.start)

    def remove_mappings(self, start: int, end: int,
                        change: Callable[[Mapping], Mapping | None] | None = None) -> None:
        """Carve ``[start, end)`` out of the bookkeeping (or apply ``change`` to it)."""
        out: list[Mapping] = []
        for m in self.s.mappings:
            if m.end <= start or m.start >= end:
                out.append(m)
                continue
            if m.start < start:
                out.append(replace(m, end=start))
            mid = replace(m, start=max(m.start, start), end=min(m.end, end))
            if change is not None:
                changed = change(mid)
                if changed is not None:
                    out.append(changed)
            if m.end > end:
                out.append(replace(m, start=end))
        out.sort(key=lambda m: m.start)
        self.s.mappings = out

    def map_fresh(self, size: int, prot: int, name: str, hint: int = 0) -> int:
        """Map ``size`` bytes at ``hint`` if free, else top-down below mmap_base."""
        size = page_round_up(size)
        if hint and hint % PAGE == 0 and hint + size <= self.mmap_base and \
                not self._overlaps(hint, size):
            addr = hint
        else:
            addr = self.mem.find_free(size, below=self.mmap_base)
        self.mem.map(addr, size, Perm(prot & 7), name)
        return addr

    def _overlaps(self, addr: int, size: int) -> bool:
        return any(r.start < addr + size and addr < r.end for r in self.mem.regions())

    # -- signals ------------------------------------------------------------------------------
    def deliver(self, sig: int) -> None:
        """A signal is raised at the process: pend it if blocked, else act on it."""
        if self.s.sigmask & (1 << (sig - 1)) and sig not in (abi.SIGKILL, abi.SIGSTOP):
            self.s.sigpending |= 1 << (sig - 1)
            return
        self._act(sig)

    def _act(self, sig: int) -> None:
        action = self.s.sigactions.get(sig)
        handler = int.from_bytes(action[:8], "little") if action else abi.SIG_DFL
        if handler == abi.SIG_IGN and sig not in (abi.SIGKILL, abi.SIGSTOP):
            return
        if handler == abi.SIG_DFL or sig in (abi.SIGKILL, abi.SIGSTOP):
            if sig not in abi.DEFAULT_IGNORED:
                self.machine.request_kill(sig)
            return
        # A guest handler: signal frames are not emulated. Warn once and drop the signal.
        if -sig not in self.s.warned:
            self.s.warned.add(-sig)
            self._warn(f"syxdbg: warning: signal {sig} has a handler; signal delivery "
                       "is not emulated, the signal is discarded\n")

    def deliver_pending(self) -> None:
        ready = self.s.sigpending & ~self.s.sigmask
        for sig in range(1, abi.NSIG + 1):
            if ready & (1 << (sig - 1)):
                self.s.sigpending &= ~(1 << (sig - 1))
                self._act(sig)

    # -- state ------------------------------------------------------------------------------
    def save_state(self) -> KernelState:
        s = self.s
        files = []
        for f in s.files.values():
            offset = None
            if f.kind == "file" and f.host_fd >= 0:
                try:
                    offset = self.host.lseek(f.host_fd, 0, os.SEEK_CUR)
                except OSError:
                    offset = None
            files.append(FileState(f.id, f.kind, f.path, f.flags, f.host_fd, f.owned, offset,
                                   f.dir_entries, f.dir_pos))
        return KernelState(
            fds=tuple(sorted(s.fds.items())),
            files=tuple(files),
            next_file_id=s.next_file_id,
            brk_start=s.brk_start,
            brk=s.brk,
            mappings=tuple(s.mappings),
            cwd=s.cwd,
            umask=s.umask,
            sigactions=tuple(sorted(s.sigactions.items())),
            sigmask=s.sigmask,
            sigpending=s.sigpending,
            altstack=s.altstack,
            rlimits=tuple((r, cur, mx) for r, (cur, mx) in sorted(s.rlimits.items())),
            ids=s.ids,
            tid_address=s.tid_address,
            robust_list=s.robust_list,
            warned=frozenset(s.warned),
            image_path=self.image_path,
        )

    def load_state(self, state: KernelState) -> None:
        old_files = self.s.files
        files: dict[int, OpenFile] = {}
        for fs in state.files:
            host_fd = self._revive(fs, old_files.get(fs.id))
            files[fs.id] = OpenFile(fs.id, fs.kind, fs.path, fs.flags, host_fd, fs.owned,
                                    fs.dir_entries, fs.dir_pos)
        # Host fds no longer referenced go to the retired pool (a later restore may want them).
        for fid, f in old_files.items():
            if fid not in files and f.owned and f.host_fd >= 0:
                self._retired[fid] = f.host_fd
        for fid in files:
            self._retired.pop(fid, None)
        while len(self._retired) > RETIRED_POOL:
            _, hfd = self._retired.popitem(last=False)
            self._host_close(hfd)
        self.s = _Live(
            fds=dict(state.fds),
            files=files,
            next_file_id=state.next_file_id,
            brk_start=state.brk_start,
            brk=state.brk,
            mappings=list(state.mappings),
            cwd=state.cwd,
            umask=state.umask,
            sigactions=dict(state.sigactions),
            sigmask=state.sigmask,
            sigpending=state.sigpending,
            altstack=state.altstack,
            rlimits={r: (cur, mx) for r, cur, mx in state.rlimits},
            ids=state.ids,
            tid_address=state.tid_address,
            robust_list=state.robust_list,
            warned=set(state.warned),
        )
        if state.image_path:
            self.image_path = state.image_path

    def _revive(self, fs: FileState, live: OpenFile | None) -> int:
        """A host fd for saved description ``fs``, positioned at its saved offset."""
        if not fs.owned or self.host.detached:
            return fs.host_fd  # a replay's host fds are the recording's numbers
        if live is not None and live.host_fd >= 0:
            hfd = live.host_fd
        elif fs.id in self._retired:
            hfd = self._retired.pop(fs.id)
        elif fs.path is not None:
            flags = abi.open_flags_to_host(self.arch, fs.flags) & ~(
                os.O_CREAT | os.O_EXCL | os.O_TRUNC)
            try:
                hfd = self.host.open(fs.path, flags | os.O_CLOEXEC, 0)
            except OSError:
                return -1
        else:
            return -1
        if fs.offset is not None:
            with contextlib.suppress(OSError):
                self.host.lseek(hfd, fs.offset, os.SEEK_SET)
        return hfd

