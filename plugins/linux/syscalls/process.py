"""Process identity and control: ids, thread pointer, prctl, resource limits, getcpu
(threads, exit, futex and scheduling are in ``threads``).
"""

from __future__ import annotations

import errno
import os
import struct

from .. import abi
from ..kernel import Process
from ..registry import I32, U32, U64, Fd, Ptr, SyscallError, syscall


@syscall("getpid")
def sys_getpid(p: Process) -> int:
    return p.s.ids[0]


@syscall("getpgrp")
def sys_getpgrp(p: Process) -> int:
    return p.s.pgid or p.s.ids[0]


@syscall("getpgid")
def sys_getpgid(p: Process, pid: I32) -> int:
    st = p.state_of(pid or p.pid)
    if st is None:
        return -errno.ESRCH
    return st.pgid or st.ids[0]


@syscall("getsid")
def sys_getsid(p: Process, pid: I32) -> int:
    st = p.state_of(pid or p.pid)
    if st is None:
        return -errno.ESRCH
    return st.sid or st.ids[0]


@syscall("setpgid")
def sys_setpgid(p: Process, pid: I32, pgid: I32) -> int:
    p.set_pgid(pid, pgid)
    return 0


@syscall("setsid")
def sys_setsid(p: Process) -> int:
    me = p.pid
    if (p.s.pgid or me) == me and len(p.group_members(me)) > 1 or any(
            (st.pgid or st.ids[0]) == me for st in p.all_states() if st.ids[0] != me):
        return -errno.EPERM  # already a group leader of others
    p.s.pgid = p.s.sid = me
    return me


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
    from .threads import set_thread_name, thread_name  # (names are per thread)

    if option == 15:  # PR_SET_NAME
        set_thread_name(p, p.tid, p.mem.read_cstring(arg2, 16))
        return 0
    if option == 16:  # PR_GET_NAME
        p.mem.write(arg2, thread_name(p, p.tid).ljust(16, b"\0"))
        return 0
    if option == 1:  # PR_SET_PDEATHSIG: this signal when the parent ends
        if not 0 <= arg2 <= abi.NSIG:
            return -errno.EINVAL
        p.s.pdeathsig = arg2
        return 0
    if option == 2:  # PR_GET_PDEATHSIG
        p.mem.write(arg2, struct.pack("<i", p.s.pdeathsig))
        return 0
    if option in (36, 37):  # PR_SET/GET_CHILD_SUBREAPER: orphans below come here
        if option == 36:
            p.s.misc["subreaper"] = int(bool(arg2))
            return 0
        p.mem.write(arg2, struct.pack("<i", p.s.misc.get("subreaper", 0)))
        return 0
    if option in (3, 4):  # PR_GET/SET_DUMPABLE (core dumps are not written anyway)
        if option == 3:
            return p.s.misc.get("dumpable", 1)
        if arg2 not in (0, 1):
            return -errno.EINVAL
        p.s.misc["dumpable"] = arg2
        return 0
    if option in (38, 39):  # PR_SET/GET_NO_NEW_PRIVS (sticky; nothing gains privileges)
        if option == 38:
            if arg2 != 1:
                return -errno.EINVAL
            p.s.misc["no_new_privs"] = 1
            return 0
        return p.s.misc.get("no_new_privs", 0)
    return -errno.EINVAL


#: Limits the emulation enforces itself (the stack it mapped, the thread cap): their values
#: are the kernel's; every other limit reads as the host's (a recorded input), once.
_EMULATED_RLIMITS = frozenset({abi.RLIMIT_STACK, 6})  # RLIMIT_NPROC


def _host_rlimit(p: Process, resource: int) -> tuple[int, int]:
    """The current limit, taken from the host the first time it is asked for (unless the
    guest set it before)."""
    fetched = p.s.misc.get("host_rlimits", 0)
    if resource not in _EMULATED_RLIMITS and not fetched >> resource & 1:
        p.s.rlimits[resource] = p.host.rlimit(resource)
        p.s.misc["host_rlimits"] = fetched | 1 << resource
    return p.s.rlimits[resource]


def _rlimit(p: Process, resource: int, new: int, old: int) -> int:
    if not 0 <= resource < abi.RLIMIT_NLIMITS:
        return -errno.EINVAL
    cur = _host_rlimit(p, resource) if old else p.s.rlimits[resource]
    value = None
    if new:
        value = struct.unpack("<QQ", p.mem.read(new, 16))
        if value[0] > value[1]:
            return -errno.EINVAL
    if old:
        p.mem.write(old, struct.pack("<QQ", *cur))
    if value is not None:
        hard = _host_rlimit(p, resource)[1]
        if value[1] > hard and p.s.ids[3] != 0:
            return -errno.EPERM  # raising the hard limit needs CAP_SYS_RESOURCE
        p.s.rlimits[resource] = (value[0], value[1])
        p.s.misc["host_rlimits"] = p.s.misc.get("host_rlimits", 0) | 1 << resource
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


# -- groups, priorities, memory locks ---------------------------------------------------------
@syscall("getgroups")
def sys_getgroups(p: Process, size: I32, groups: Ptr) -> int:
    """The host's supplementary groups of syxdbg (a recorded input)."""
    if size < 0:
        return -errno.EINVAL
    have = p.host.groups()
    if size == 0:
        return len(have)
    if size < len(have):
        return -errno.EINVAL
    p.mem.write(groups, struct.pack(f"<{len(have)}I", *have))
    return len(have)


@syscall("setgroups")
def sys_setgroups(p: Process, size: U64, groups: Ptr) -> int:
    """Checked as Linux checks it (EPERM without privilege); the host's groups never change
    (the guest's identity is syxdbg's)."""
    if size > 65536:
        return -errno.EINVAL
    p.mem.read(groups, 4 * size)
    return 0 if p.s.ids[3] == 0 else -errno.EPERM


_PRIO_PROCESS, _PRIO_PGRP, _PRIO_USER = 0, 1, 2


def _prio_target(p: Process, which: int, who: int) -> int:
    if which not in (_PRIO_PROCESS, _PRIO_PGRP, _PRIO_USER):
        return -errno.EINVAL
    if which == _PRIO_USER:
        return 0 if who in (0, p.s.ids[2]) else -errno.ESRCH
    return 0 if who == 0 or p.has_thread(who) or who == p.s.ids[0] else -errno.ESRCH


@syscall("getpriority")
def sys_getpriority(p: Process, which: I32, who: I32) -> int:
    """20 - nice, as the system call returns it (glibc turns it back into the nice value)."""
    err = _prio_target(p, which, who)
    return err if err else 20 - p.s.misc.get("nice", 0)


@syscall("setpriority")
def sys_setpriority(p: Process, which: I32, who: I32, prio: I32) -> int:
    """The nice value is remembered (the one emulated CPU has no priorities); lowering it
    below the current value needs privilege, as on Linux with RLIMIT_NICE 0."""
    err = _prio_target(p, which, who)
    if err:
        return err
    nice = max(-20, min(19, prio))
    if nice < p.s.misc.get("nice", 0) and p.s.ids[3] != 0:
        return -errno.EACCES
    p.s.misc["nice"] = nice
    return 0


_IOPRIO_WHO = (1, 2, 3)  # IOPRIO_WHO_PROCESS, _PGRP, _USER


@syscall("ioprio_get")
def sys_ioprio_get(p: Process, which: I32, who: I32) -> int:
    if which not in _IOPRIO_WHO:
        return -errno.EINVAL
    return p.s.misc.get("ioprio", 0)  # IOPRIO_CLASS_NONE: follows the nice value


@syscall("ioprio_set")
def sys_ioprio_set(p: Process, which: I32, who: I32, ioprio: I32) -> int:
    if which not in _IOPRIO_WHO:
        return -errno.EINVAL
    cls, data = ioprio >> 13 & 7, ioprio & 0x1FFF
    if cls > 3 or (cls in (1, 2) and data > 7):
        return -errno.EINVAL
    if cls == 1 and p.s.ids[3] != 0:  # IOPRIO_CLASS_RT needs CAP_SYS_ADMIN
        return -errno.EPERM
    p.s.misc["ioprio"] = ioprio & 0xFFFF
    return 0


def _locked_range(p: Process, addr: int, length: int) -> int:
    """mlock/munlock: guest memory is always resident, so a lock changes nothing, but the
    range must be mapped (ENOMEM otherwise, as Linux)."""
    start = addr & ~0xFFF
    end = (addr + length + 0xFFF) & ~0xFFF
    if end < start:
        return -errno.EINVAL
    if end > start and p.mapped_in(start, end - start) != end - start:
        return -errno.ENOMEM
    return 0


@syscall("mlock", "munlock")
def sys_mlock(p: Process, addr: Ptr, length: U64) -> int:
    return _locked_range(p, addr, length)


@syscall("mlock2")
def sys_mlock2(p: Process, addr: Ptr, length: U64, flags: U32) -> int:
    if flags & ~1:  # MLOCK_ONFAULT
        return -errno.EINVAL
    return _locked_range(p, addr, length)


@syscall("mlockall")
def sys_mlockall(p: Process, flags: I32) -> int:
    if not flags or flags & ~7 or flags == 4:  # MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT
        return -errno.EINVAL
    return 0


@syscall("munlockall")
def sys_munlockall(p: Process) -> int:
    return 0


# -- children ----------------------------------------------------------------------------------
#: wait4 options Linux accepts: WNOHANG, WUNTRACED, WCONTINUED, __WNOTHREAD, __WALL, __WCLONE.
_WAIT4_OPTIONS = 1 | 2 | 8 | 0x20000000 | 0x40000000 | 0x80000000


@syscall("wait4")
def sys_wait4(p: Process, pid: I32, status: Ptr, options: I32, rusage: Ptr) -> int | None:
    """A child's end: its pid, its wait status at ``status``; 0 with WNOHANG while none has
    ended; the caller waits otherwise (the call runs again when a child ends)."""
    if options & ~_WAIT4_OPTIONS or pid == -2**31:
        return -errno.EINVAL
    found = p.wait_child(pid, options & (abi.WNOHANG | abi.WUNTRACED | abi.WCONTINUED)
                         | abi.WEXITED)
    if found is None:
        return None
    child, st = found
    if child and status:
        p.mem.write(status, struct.pack("<i", st))
    if child and rusage:
        p.mem.write(rusage, bytes(144 if p.arch != "arm" else 72))
    return child


#: siginfo_t for waitid: si_signo, si_errno, si_code, (pad on 64-bit), pid, uid, status.
_SIGINFO_SIZE = 128


@syscall("waitid")
def sys_waitid(p: Process, idtype: I32, id_: I32, info: Ptr, options: I32,
               rusage: Ptr) -> int | None:
    if idtype not in (abi.P_ALL, abi.P_PID, abi.P_PGID) \
            or not options & (abi.WEXITED | abi.WUNTRACED | abi.WCONTINUED):
        return -errno.EINVAL
    which = -1 if idtype == abi.P_ALL else id_ if idtype == abi.P_PID else -id_
    if idtype == abi.P_PGID and id_ == 0:
        which = 0
    found = p.wait_child(which, options & (abi.WNOHANG | abi.WNOWAIT | abi.WEXITED
                                           | abi.WUNTRACED | abi.WCONTINUED))
    if found is None:
        return None
    child, st = found
    if info:
        if not child:
            p.mem.write(info, bytes(_SIGINFO_SIZE))
        else:
            if st == abi.WAIT_CONTINUED:
                code, value = abi.CLD_CONTINUED, abi.SIGCONT
            elif st & 0xFF == abi.WSTOPPED_LOW:
                code, value = abi.CLD_STOPPED, st >> 8 & 0xFF
            else:
                code, value = ((abi.CLD_EXITED, st >> 8 & 0xFF) if st & 0x7F == 0
                               else (abi.CLD_KILLED, st & 0x7F))
            uid = p.s.ids[2]
            head = struct.pack("<iii", abi.SIGCHLD, 0, code)
            if p.arch != "arm":
                head += bytes(4)
            body = struct.pack("<iIi", child, uid, value)
            p.mem.write(info, (head + body).ljust(_SIGINFO_SIZE, b"\0"))
    if rusage:
        p.mem.write(rusage, bytes(144 if p.arch != "arm" else 72))
    return 0


# -- new processes and programs -----------------------------------------------------------------
@syscall("fork")
def sys_fork(p: Process) -> int:
    return p.fork(0, 0, None, 0, 0, abi.SIGCHLD)


@syscall("vfork")
def sys_vfork(p: Process) -> int:
    return p.fork(abi.CLONE_VM | abi.CLONE_VFORK, 0, None, 0, 0, abi.SIGCHLD)


def _string_array(p: Process, ptr: int) -> list[bytes]:
    """A NULL-terminated array of C strings (argv, envp) in guest memory."""
    if not ptr:
        return []
    word = 8 if p.arch != "arm" else 4
    fmt = "<Q" if word == 8 else "<I"
    out: list[bytes] = []
    while True:
        (item,) = struct.unpack(fmt, p.mem.read(ptr + word * len(out), word))
        if not item:
            return out
        if len(out) >= 0x7FFFFFFF // word:
            raise SyscallError(errno.E2BIG)
        out.append(p.mem.read_cstring(item, 1 << 17))


def _execve(p: Process, dirfd: int, path_ptr: int, argv: int, envp: int, flags: int) -> None:
    path = p.read_path(path_ptr)
    if flags & ~(abi.AT_EMPTY_PATH | abi.AT_SYMLINK_NOFOLLOW):
        raise SyscallError(errno.EINVAL)
    if not path.startswith(b"/") and dirfd != abi.AT_FDCWD:
        base = p.file(dirfd)
        if not path and flags & abi.AT_EMPTY_PATH:
            if base.path is None:
                raise SyscallError(errno.ENOENT)
            path = base.path
        elif base.kind != "dir" or base.path is None:
            raise SyscallError(errno.ENOTDIR)
        else:
            path = os.path.join(base.path, path)
    args, env = _string_array(p, argv), _string_array(p, envp)
    if sum(len(a) + 1 for a in args + env) > 2 * 1024 * 1024:
        raise SyscallError(errno.E2BIG)
    host = p._exec_path(path)
    try:
        st = p.host.stat(host)
    except OSError as exc:
        raise SyscallError(exc.errno or errno.ENOENT) from None
    if not p.host.access(host, os.X_OK):
        raise SyscallError(errno.EACCES)
    if (st.st_mode & 0o170000) != 0o100000:
        raise SyscallError(errno.EACCES)
    p.execve(path, args, env)


@syscall("execve")
def sys_execve(p: Process, path: Ptr, argv: Ptr, envp: Ptr) -> int | None:
    _execve(p, abi.AT_FDCWD, path, argv, envp, 0)
    return None  # the registers are the new program's


@syscall("execveat")
def sys_execveat(p: Process, dirfd: Fd, path: Ptr, argv: Ptr, envp: Ptr,
                 flags: I32) -> int | None:
    _execve(p, dirfd, path, argv, envp, flags)
    return None
