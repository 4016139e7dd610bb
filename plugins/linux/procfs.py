"""``/proc`` as the guest sees it: its own process, made from guest state, never syxdbg's.

Natively ``/proc/self`` is the process that opens it; under emulation the host process is
syxdbg, so passing those paths to the host would hand the guest the debugger's command
line, memory map, memory (``/proc/self/mem``) and descriptors. Every path under ``/proc`` is
therefore looked up here first (lexically, after ``.``/``..`` are folded), and the policy is:

* ``/proc/self``, ``/proc/thread-self``, ``/proc/<guest pid>`` (and ``task/<tid>`` below
  it for each live thread; thread-self is the caller's) are the guest's process
  directory, emulated from guest state only:
  ``maps`` (the guest's memory map, the program named by its path), ``mem`` (read/write
  over guest memory with pread/pwrite/lseek semantics), ``cmdline``, ``environ`` and
  ``auxv`` (read from guest memory where exec put them), ``exe`` (link to the program),
  ``cwd``, ``root``, ``fd/`` (links naming what the guest opened), ``comm``, ``stat``,
  ``statm``, ``status``, ``task/``. Anything else in it does not exist (ENOENT).
* Other numeric directories (``/proc/1``, the host's processes) do not exist: the guest is
  alone in its pid namespace.
* A few system-wide files (:data:`HOST_FILES`: cpuinfo, meminfo, ``sys/``...) are the
  host's, read through HostIO like any file (recorded). Every other ``/proc`` entry
  (``/proc/mounts``, ``/proc/net``, which are links into ``self``...) does not exist.
* ``/dev/fd/N``, ``/dev/stdin``, ``/dev/stdout``, ``/dev/stderr`` (links to
  ``/proc/self/fd/...`` on the host) are looked up as the guest's ``/proc/self/fd/N``.

Contents depend on guest state alone (memory, the kernel's state), so a replay reproduces
them without the host. The opened file keeps the contents of the moment of ``open``
(natively they are generated at the first read). A host file reached by another way (a
symlink into ``/proc``) is refused at open by the kernel (its device is procfs's).
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
import struct
from dataclasses import dataclass

from syxdbg.machine.memory import PAGE

from .abi import AT_FDCWD
from .kernel import OpenFile, Process
from .registry import SyscallError

#: System-wide /proc files (and trees) the guest reads from the host, as natively.
HOST_FILES = frozenset({
    b"cpuinfo", b"meminfo", b"uptime", b"version", b"loadavg", b"filesystems", b"stat",
    b"sys", b"cmdline", b"devices", b"swaps", b"zoneinfo", b"vmstat", b"crypto",
})
#: Files of the emulated process directory.
PROCESS_FILES = (b"auxv", b"cmdline", b"comm", b"cwd", b"environ", b"exe", b"fd", b"maps",
                 b"mem", b"mountinfo", b"mounts", b"root", b"stat", b"statm", b"status",
                 b"task")
#: Files of the process directory whose contents are the host's (syxdbg's mount namespace is
#: the guest's): read through HostIO when looked up (recorded and replayed like any file),
#: served as emulated files, so no guest fd is ever on the host's procfs (df, mount).
_HOST_PROCESS_FILES = (b"mounts", b"mountinfo")
_LINKS = (b"cwd", b"exe", b"root")


@dataclass(frozen=True)
class Node:
    """What a /proc path is: ``kind`` is "file" (``data``), "mem", "dir" (``entries``),
    "link" (``target``) or "host" (``target`` is the host path to use)."""

    kind: str
    path: bytes
    data: bytes = b""
    entries: tuple[tuple[bytes, int, int], ...] = ()
    target: bytes = b""
    #: A "host" node named through /proc on purpose (HOST_FILES): procfs there is expected.
    procfs_ok: bool = False


#: Host symlinks into /proc that paths commonly go through, substituted while a path is
#: walked (as the kernel follows them), so that ``/dev/fd/../exe`` is ``/proc/self/exe``.
_KNOWN_LINKS = {
    (b"dev", b"fd"): [b"proc", b"self", b"fd"],
    (b"dev", b"stdin"): [b"proc", b"self", b"fd", b"0"],
    (b"dev", b"stdout"): [b"proc", b"self", b"fd", b"1"],
    (b"dev", b"stderr"): [b"proc", b"self", b"fd", b"2"],
    (b"proc", b"mounts"): [b"proc", b"self", b"mounts"],
    (b"proc", b"net"): [b"proc", b"self", b"net"],
}


def normalize(path: bytes) -> bytes:
    """``path`` (absolute) with ``.``, ``..`` and repeated slashes folded, following the
    host's well-known links into /proc (:data:`_KNOWN_LINKS`) as they are met."""
    out: list[bytes] = []
    for part in path.split(b"/"):
        if part in (b"", b"."):
            continue
        if part == b"..":
            if out:
                out.pop()
            continue
        out.append(part)
        if len(out) == 2:
            out = list(_KNOWN_LINKS.get((out[0], out[1]), out))
    return b"/" + b"/".join(out)


def is_proc_path(path: bytes) -> bool:
    """True if ``path`` (absolute, as resolved by the kernel) must be looked up here."""
    n = normalize(path)
    return n == b"/proc" or n.startswith(b"/proc/")


def lookup(p: Process, path: bytes, *, follow: bool = True) -> Node:
    """The node at ``path`` (absolute, a /proc or /dev/fd path); ENOENT if there is none.

    ``follow``: a final link component is followed (open, stat) or returned (lstat,
    readlink). Links in the middle of the path are always followed."""
    n = normalize(path)
    rest = n.split(b"/")[2:]
    if not rest:
        return Node("dir", b"/proc", entries=_proc_root_entries(p))
    head = rest[0]
    pid = b"%d" % p.pid
    if head in (b"self", pid, b"thread-self"):
        tid = b"%d" % p.tid
        if head != pid and len(rest) == 1 and not follow:
            target = pid if head == b"self" else pid + b"/task/" + tid
            return Node("link", n, target=target)
        tail = rest[1:]
        if head == b"thread-self":
            tail = [b"task", tid, *tail]
        return _process_node(p, b"/proc/" + pid, tail, follow)
    if head in HOST_FILES:
        return Node("host", n, target=n, procfs_ok=True)
    raise SyscallError(errno.ENOENT)


def find_absolute(p: Process, path: bytes, follow: bool = True, *,
                  sysroot: bool = False) -> Node:
    """Where absolute guest ``path`` leads: an emulated node, or a "host" node (looked up
    in the sysroot first when ``sysroot``: the path was absolute for the guest)."""
    if is_proc_path(path):
        return lookup(p, path, follow=follow)
    return Node("host", path, target=p.in_sysroot(path) if sysroot else path)


def find(p: Process, dirfd: int, path: bytes, *, follow: bool = True) -> Node:
    """Where guest ``path`` (relative to ``dirfd``) leads (see :func:`find_absolute`)."""
    if dirfd != AT_FDCWD and not path.startswith(b"/"):
        f = p.file(dirfd)
        if f.kind == "procdir" and f.path is not None:
            return find_absolute(p, f.path + b"/" + path, follow)
    return find_absolute(p, p.resolve(dirfd, path), follow, sysroot=path.startswith(b"/"))


def host_path(p: Process, dirfd: int, path: bytes, *, follow: bool = True) -> bytes:
    """The host path of guest ``path`` for calls that only act on host files (unlink,
    mkdir, rename...): an emulated /proc node is EACCES."""
    node = find(p, dirfd, path, follow=follow)
    if node.kind != "host":
        raise SyscallError(errno.EACCES)
    return node.target


def _proc_root_entries(p: Process) -> tuple[tuple[bytes, int, int], ...]:
    pid = b"%d" % p.pid
    names = [(b"self", stat_mod.S_IFLNK), (b"thread-self", stat_mod.S_IFLNK),
             (pid, stat_mod.S_IFDIR)]
    names += [(name, stat_mod.S_IFDIR if name == b"sys" else stat_mod.S_IFREG)
              for name in sorted(HOST_FILES)]
    return _entries(names)


def _entries(names: list[tuple[bytes, int]]) -> tuple[tuple[bytes, int, int], ...]:
    out = [(b".", 1, stat_mod.S_IFDIR), (b"..", 1, stat_mod.S_IFDIR)]
    out += [(name, i + 2, mode) for i, (name, mode) in enumerate(names)]
    return tuple(out)


def _process_node(p: Process, base: bytes, tail: list[bytes], follow: bool) -> Node:
    # A thread's directory shows the process's files (per-thread values are not emulated).
    while len(tail) >= 2 and tail[0] == b"task" and tail[1].isdigit() and \
            tail[1] == b"%d" % int(tail[1]) and p.has_thread(int(tail[1])):
        base += b"/task/" + tail[1]
        tail = tail[2:]
    if not tail:
        return Node("dir", base, entries=_entries(
            [(name, stat_mod.S_IFLNK if name in _LINKS else
              stat_mod.S_IFDIR if name in (b"fd", b"task") else stat_mod.S_IFREG)
             for name in PROCESS_FILES]))
    name, more = tail[0], tail[1:]
    here = base + b"/" + name
    if name == b"task":
        if more:
            raise SyscallError(errno.ENOENT)
        return Node("dir", here, entries=_entries(
            [(b"%d" % tid, stat_mod.S_IFDIR) for tid in p.thread_ids()]))
    if name == b"fd":
        if not more:
            return Node("dir", here, entries=_entries(
                [(b"%d" % fd, stat_mod.S_IFLNK) for fd in sorted(p.s.fds)]))
        if len(more) != 1 or not more[0].isdigit() or int(more[0]) not in p.s.fds:
            raise SyscallError(errno.ENOENT)
        fd = int(more[0])
        return _link(p, here + b"/" + more[0], fd_target(p, fd), follow, fd=fd)
    if name in _LINKS:
        target = {b"exe": p.image_path, b"cwd": p.s.cwd, b"root": b"/"}[name]
        if more:  # a directory link in the middle of a path: continue from its target
            if name == b"exe":
                raise SyscallError(errno.ENOTDIR)
            return find_absolute(p, os.path.join(target, *more), follow)
        return _link(p, here, target, follow)
    if more:
        raise SyscallError(errno.ENOTDIR if name in PROCESS_FILES else errno.ENOENT)
    if name == b"mem":
        return Node("mem", here)
    if name in _HOST_PROCESS_FILES:
        return Node("file", here, data=_host_contents(p, b"/proc/self/" + name))
    if name == b"comm":  # the task directory's thread's name (syscalls/threads.py)
        from .syscalls.threads import comm_tid, thread_name

        return Node("file", here, data=thread_name(p, comm_tid(p, here)) + b"\n")
    maker = _FILES.get(name)
    if maker is None:
        raise SyscallError(errno.ENOENT)
    return Node("file", here, data=maker(p))


def _host_contents(p: Process, path: bytes) -> bytes:
    hfd = p.host.open(path, os.O_RDONLY | os.O_CLOEXEC, 0)
    try:
        parts = []
        while chunk := p.host.read(hfd, 1 << 16):
            parts.append(chunk)
        return b"".join(parts)
    finally:
        p.host.close(hfd)


def _link(p: Process, here: bytes, target: bytes, follow: bool, fd: int | None = None) -> Node:
    if not follow:
        return Node("link", here, target=target)
    if fd is not None:
        return Node("fd", here, target=target, data=b"%d" % fd)
    return Node("host", here, target=target)


def fd_target(p: Process, fd: int) -> bytes:
    """What ``readlink("/proc/self/fd/N")`` names for guest fd ``fd``."""
    f = p.file(fd)
    if f.kind in ("file", "dir") and f.path is not None:
        return p.guest_path(f.path)
    if f.kind in ("proc", "procmem", "procdir") and f.path is not None:
        return f.path
    if f.kind == "pipe":
        return b"pipe:[%d]" % f.id
    # The inherited stdio: what the host fd is (a tty, a file, a pipe), through HostIO.
    try:
        return p.host.readlink(b"/proc/self/fd/%d" % f.host_fd)
    except OSError:
        return b"pipe:[%d]" % f.id


# ----------------------------------------------------------------- file contents
def _read_guest(p: Process, start: int, end: int) -> bytes:
    if not start or end <= start:
        return b""
    return p.mem.read_partial(start, end - start)


def _cmdline(p: Process) -> bytes:
    a0, a1, *_ = p.s.exec_layout
    return _read_guest(p, a0, a1)


def _environ(p: Process) -> bytes:
    _, _, e0, e1, *_ = p.s.exec_layout
    return _read_guest(p, e0, e1)


def _auxv(p: Process) -> bytes:
    *_, at, size = p.s.exec_layout
    return _read_guest(p, at, at + size)


def _comm(p: Process) -> bytes:
    return os.path.basename(p.image_path)[:15] + b"\n"


def regions(p: Process) -> list[tuple[int, int, str, str]]:
    """The guest's memory map as (start, end, perms "rwxp", name), adjacent pieces with
    the same permissions and name merged (as Linux merges VMAs), so that how syxdbg splits
    its regions never shows."""
    out: list[tuple[int, int, str, str]] = []
    shared = {(m.start, m.end) for m in p.s.mappings if m.flags & 3 == 1}
    for r in p.mem.regions():
        perms = int(r.perms)
        text = ("r" if perms & 1 else "-") + ("w" if perms & 2 else "-") + \
            ("x" if perms & 4 else "-") + ("s" if (r.start, r.end) in shared else "p")
        name = r.name
        if out and out[-1][1] == r.start and out[-1][2] == text and out[-1][3] == name:
            out[-1] = (out[-1][0], r.end, text, name)
        else:
            out.append((r.start, r.end, text, name))
    return out


def _display_name(p: Process, name: str) -> bytes:
    image = os.path.basename(p.image_path).decode(errors="replace")
    if name == image:
        return p.image_path
    if name in ("[anon]", ""):
        return b""
    return name.encode()


def _maps(p: Process) -> bytes:
    lines = []
    offsets = {m.start: m.offset for m in p.s.mappings}
    for start, end, perms, name in regions(p):
        shown = _display_name(p, name)
        off = offsets.get(start, 0) if shown and not shown.startswith(b"[") else 0
        line = b"%08x-%08x %s %08x 00:00 0" % (start, end, perms.encode(), off)
        lines.append(line + (b" " * (73 - len(line)) + shown if shown else b"") + b"\n")
    return b"".join(lines)


def _vm_size(p: Process) -> int:
    return sum(end - start for start, end, _, _ in regions(p))


def _stat(p: Process) -> bytes:
    pid, ppid = p.s.ids[0], p.s.ids[1]
    comm = os.path.basename(p.image_path)[:15]
    vsize = _vm_size(p)
    stack = next((start for start, _, _, name in regions(p) if name == "[stack]"), 0)
    fields: list[int | bytes] = [pid, b"(" + comm + b")", b"R", ppid, pid, pid, 0, -1, 0x400000,
              0, 0, 0, 0, 0, 0, 0, 0, 20, 0, 1, 0, 0, vsize, vsize // PAGE,
              (1 << 64) - 1, 0, 0, stack, 0, 0, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0, 0, 0,
              0, 0, 0, 0, 0, 0, 0, 0]
    return b" ".join(f if isinstance(f, bytes) else b"%d" % f for f in fields) + b"\n"


def _statm(p: Process) -> bytes:
    pages = _vm_size(p) // PAGE
    return b"%d %d 0 0 0 %d 0\n" % (pages, pages, pages)


def _status(p: Process) -> bytes:
    s = p.s
    pid, ppid, uid, euid, gid, egid = s.ids
    kb = _vm_size(p) // 1024
    ignored = caught = 0
    for sig, action in s.sigactions.items():
        handler = struct.unpack_from("<Q", action)[0] if len(action) >= 8 else 0
        if handler == 1:
            ignored |= 1 << (sig - 1)
        elif handler != 0:
            caught |= 1 << (sig - 1)
    comm = os.path.basename(p.image_path)[:15].decode(errors="replace")
    rows = [
        ("Name", comm), ("Umask", f"{s.umask:04o}"), ("State", "R (running)"),
        ("Tgid", pid), ("Ngid", 0), ("Pid", pid), ("PPid", ppid), ("TracerPid", 0),
        ("Uid", f"{uid}\t{euid}\t{euid}\t{euid}"), ("Gid", f"{gid}\t{egid}\t{egid}\t{egid}"),
        ("FDSize", 64), ("Groups", ""), ("VmPeak", f"{kb:8d} kB"), ("VmSize", f"{kb:8d} kB"),
        ("VmRSS", f"{kb:8d} kB"), ("Threads", 1),
        ("SigPnd", f"{0:016x}"), ("ShdPnd", f"{s.sigpending:016x}"),
        ("SigBlk", f"{s.sigmask:016x}"), ("SigIgn", f"{ignored:016x}"),
        ("SigCgt", f"{caught:016x}"),
    ]
    return "".join(f"{k}:\t{v}\n" for k, v in rows).encode()


_FILES = {
    b"auxv": _auxv, b"cmdline": _cmdline, b"comm": _comm, b"environ": _environ,
    b"maps": _maps, b"stat": _stat, b"statm": _statm, b"status": _status,
}


# ----------------------------------------------------------------- open files
#: OpenFile kinds of emulated files: no host fd behind them.
EMULATED_KINDS = frozenset({"proc", "procmem", "procdir"})


def open_node(p: Process, node: Node, flags: int) -> OpenFile | None:
    """A new open description for emulated ``node`` (None: ``node`` is a host path or
    an fd link, the caller opens it). ``flags`` are the guest's open flags."""
    write = flags & 3 != 0
    if node.kind == "mem":
        return p.new_file("procmem", node.path, flags, -1, owned=False)
    if node.kind == "file":
        if write and not node.path.endswith(b"/comm"):  # (comm names the thread)
            raise SyscallError(errno.EACCES)
        return p.new_file("proc", node.path, flags, -1, owned=False, data=node.data)
    if node.kind == "dir":
        if write:
            raise SyscallError(errno.EISDIR)
        f = p.new_file("procdir", node.path, flags, -1, owned=False)
        f.dir_entries = node.entries
        return f
    if node.kind == "link":
        raise SyscallError(errno.ELOOP)  # O_NOFOLLOW on a link
    return None


def check_host_stat(p: Process, node: Node, st: os.stat_result) -> None:
    """Refuse a host file on the host's procfs reached other than through HOST_FILES (a
    symlink such as /dev/fd/N's target or one the user made): it is the debugger's."""
    if not node.procfs_ok and p.s.host_proc_dev >= 0 and st.st_dev == p.s.host_proc_dev:
        raise SyscallError(errno.EACCES)


def stat_of_file(p: Process, f: OpenFile) -> os.stat_result:
    """fstat of an emulated open file."""
    kind = {"procmem": "mem", "procdir": "dir"}.get(f.kind, "file")
    return stat_of(p, Node(kind, f.path or b"/proc"))


# ----------------------------------------------------------------- stat results
def stat_of(p: Process, node: Node) -> os.stat_result:
    """A stat result for an emulated node (owned by the guest's user, procfs-like)."""
    uid, gid = p.s.ids[3], p.s.ids[5]
    if node.kind == "dir":
        mode, nlink, size = stat_mod.S_IFDIR | 0o555, 2, 0
    elif node.kind in ("link", "fd"):
        mode, nlink, size = stat_mod.S_IFLNK | 0o777, 1, len(node.target)
    elif node.kind == "mem":
        mode, nlink, size = stat_mod.S_IFREG | 0o600, 1, 0
    else:
        mode, nlink, size = stat_mod.S_IFREG | 0o444, 1, 0
    ino = sum(node.path) + len(node.path) * 4099  # stable per path, not a host inode
    return os.stat_result((mode, ino, PROC_DEV, nlink, uid, gid, size, 0, 0, 0,
                           0.0, 0.0, 0.0, 0, 0, 0, 1024, 0, 0))


#: The st_dev of emulated /proc nodes (procfs is device 0:22 on common hosts; any fixed
#: value keeps results independent of the host).
PROC_DEV = 22


__all__ = ["EMULATED_KINDS", "HOST_FILES", "Node", "check_host_stat", "open_node",
           "stat_of_file", "fd_target", "find", "find_absolute", "host_path",
           "is_proc_path", "lookup", "normalize", "regions", "stat_of"]
