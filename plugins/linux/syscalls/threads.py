"""Threads: clone/clone3 (threads only), exit vs exit_group, futex, set_tid_address,
set_robust_list, gettid, sched_yield, affinity (one CPU), membarrier.

A handler never switches threads itself: it asks the process (``p.block``,
``p.yield_cpu``, ``p.exit_thread``) and the kernel switches after the system call
(``LinuxKernel._schedule``, docs/linux.md, Threads).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import struct

from .. import abi
from ..kernel import Process
from ..preempt import PENDING_KEY
from ..registry import I32, U32, U64, Ptr, SyscallError, syscall


def _thread_clone(p: Process, flags: int, stack: int, parent_tid: int, child_tid: int,
                  tls: int, exit_signal: int = abi.SIGCHLD) -> int:
    if not flags & abi.CLONE_THREAD:
        # fork, vfork (posix_spawn) and other new processes (kernel.Process.fork).
        if flags & (abi.CLONE_SIGHAND | abi.CLONE_FILES | abi.CLONE_FS) or (
                flags & abi.CLONE_VM and not flags & abi.CLONE_VFORK):
            p.warn_once(-1000, f"syxdbg: warning: clone flags {flags:#x} (a process sharing "
                               "its parent's memory, files or handlers) are not supported; "
                               "it returns -EINVAL\n")
            return -errno.EINVAL
        pid = p.fork(flags, stack, tls if flags & abi.CLONE_SETTLS else None, parent_tid,
                     child_tid, exit_signal)
        p.arm_timer()  # the running process's slice can end now (preempt.py)
        return pid
    required = abi.CLONE_THREAD_REQUIRED
    if flags & required != required or flags & ~(required | abi.CLONE_THREAD_OPTIONAL):
        p.warn_once(-1001, f"syxdbg: warning: clone flags {flags:#x} are not supported "
                           "(only threads: CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|"
                           "CLONE_THREAD and optional SYSVSEM, SETTLS, PARENT_SETTID, "
                           "CHILD_SETTID, CHILD_CLEARTID); it returns -EINVAL\n")
        return -errno.EINVAL
    if len(p.s.threads) + 1 >= p.s.rlimits[abi.RLIMIT_NPROC][0]:
        return -errno.EAGAIN  # as Linux at RLIMIT_NPROC (a fork bomb of threads)
    # Check the pointers before anything changes: a bad one fails the clone (EFAULT).
    for bit, ptr in ((abi.CLONE_PARENT_SETTID, parent_tid), (abi.CLONE_CHILD_SETTID, child_tid)):
        if flags & bit:
            p.mem.read(ptr, 4)
    tid = p.spawn_thread(stack, tls if flags & abi.CLONE_SETTLS else None,
                         child_tid if flags & abi.CLONE_CHILD_CLEARTID else 0)
    for bit, ptr in ((abi.CLONE_PARENT_SETTID, parent_tid), (abi.CLONE_CHILD_SETTID, child_tid)):
        if flags & bit:
            p.mem.write(ptr, struct.pack("<i", tid))
    name = given_name(p, p.tid)
    if name is not None:  # a new thread has its creator's name (Linux copies comm)
        set_thread_name(p, tid, name)
    p.arm_timer()  # the running thread's slice can end now (preempt.py)
    return tid


@syscall("clone")
def sys_clone(p: Process, flags: U64, stack: Ptr, parent_tid: Ptr, a4: U64, a5: U64) -> int:
    # x86_64: (flags, stack, parent_tid, child_tid, tls); aarch64 (and the generic ABI):
    # (flags, stack, parent_tid, tls, child_tid).
    child_tid, tls = (a4, a5) if p.arch == "x86_64" else (a5, a4)
    # The low byte is the exit signal (SIGCHLD for fork); Linux ignores it for threads.
    return _thread_clone(p, flags & ~0xFF, stack, parent_tid, child_tid, tls, flags & 0xFF)


#: struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size,
#: tls (then set_tid, set_tid_size, cgroup, which threads do not use).
_CLONE_ARGS = struct.Struct("<8Q")
CLONE_ARGS_SIZE_VER0 = 64


@syscall("clone3")
def sys_clone3(p: Process, args: Ptr, size: U64) -> int:
    if size < CLONE_ARGS_SIZE_VER0 or size > 4096:
        return -errno.EINVAL
    raw = p.mem.read(args, size)
    if any(raw[CLONE_ARGS_SIZE_VER0:]):
        # set_tid / cgroup: not for threads.
        p.warn_once(-1002, "syxdbg: warning: clone3 with set_tid or cgroup is not "
                           "supported; it returns -EINVAL\n")
        return -errno.EINVAL
    flags, _pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls = \
        _CLONE_ARGS.unpack(raw[:CLONE_ARGS_SIZE_VER0])
    if flags & abi.CLONE_VM and not flags & abi.CLONE_VFORK and (exit_signal or
                                                                 bool(stack) != bool(stack_size)):
        return -errno.EINVAL
    top = stack + stack_size if stack else 0
    return _thread_clone(p, flags, top, parent_tid, child_tid, tls, exit_signal & 0xFF)


# -- time passing for timed waits ------------------------------------------------------------
def sleep_passes(p: Process, ns: int) -> None:
    """The calling thread slept ``ns`` (nanosleep, clock_nanosleep): the other threads' timed
    futex waits run down by as much, and those it used up expire (-ETIMEDOUT), as they would
    have natively meanwhile. Without it a timed wait expires only when no thread can run,
    which never comes while another thread keeps sleeping and waking (Go's sysmon sleeps
    20 us at a time while a goroutine's timer waits on a futex with a timeout). Virtual
    time: the guest's own sleep lengths decide, not the host clock, so a replay and reverse
    execution expire the same waits at the same positions. States saved before (no
    ``misc["preempt"]``, preempt.py) keep timeouts for when nothing can run."""
    from .. import preempt

    s = p.s
    if ns <= 0 or not s.threads or not s.misc.get(preempt.MISC_KEY):
        return
    for t in sorted(s.threads.values(), key=lambda t: t.seq):
        if t.wait not in ("futex", "pipe") or t.timeout < 0:
            continue
        if t.timeout > ns:
            s.threads[t.tid] = dataclasses.replace(t, timeout=t.timeout - ns)
            continue
        s.seq += 1
        if t.wait == "futex":
            s.threads[t.tid] = dataclasses.replace(t, wait="", futex=0, timeout=-1,
                                                   seq=s.seq, result=-errno.ETIMEDOUT)
            continue
        # An I/O wait (poll, select, epoll_wait: Go's netpoll waits for its timers there)
        # parked at its system call instruction to make the call again: past it now,
        # returning 0 (nothing ready), as LinuxKernel._schedule expires one.
        pc = _PC[p.arch]
        regs = dict(t.regs)
        back = 2 if p.arch == "x86_64" or (p.arch == "arm" and regs.get("cpsr", 0) & 0x20) \
            else 4  # syscall, a Thumb svc: 2 bytes; svc, ecall: 4
        regs[pc] = regs[pc] + back
        s.threads[t.tid] = dataclasses.replace(t, wait="", fd=-1, timeout=-1, seq=s.seq,
                                               result=0, regs=tuple(regs.items()))


#: The program counter's name in the register table, per architecture.
_PC = {"x86_64": "rip", "aarch64": "pc", "arm": "pc", "riscv64": "pc"}


# -- signals to another thread ----------------------------------------------------------------
#: A thread's own pending signals (a tgkill/tkill aimed at it while it was not running) live
#: in ``ProcessState.misc`` under this prefix and its tid, as a signal bit set.


def signal_thread(p: Process, tid: int, sig: int) -> None:
    """``sig`` (which has a guest handler) sent to ``tid``, a thread that is not running:
    pending on that thread, its handler runs in it when the scheduler gives it the CPU
    (preempt.deliver_pending). A thread waiting for it (a futex wait, sigsuspend, a
    parked read, poll or wait4) that does not block ``sig`` is woken as
    Process.signal_process wakes one: a futex wait or sigsuspend returns -EINTR; a parked
    call returns -EINTR, or with SA_RESTART is made again after the handler."""
    s = p.s
    bit = 1 << (sig - 1)
    key = f"{PENDING_KEY}{tid}"
    s.misc[key] = s.misc.get(key, 0) | bit
    t = s.threads.get(tid)
    if t is None:
        return
    woken = p.woken_by(t, sig, p.sigaction(sig))  # as a thread of another process is
    if woken is not None:
        s.threads[tid] = woken


# -- thread names (prctl PR_SET_NAME/PR_GET_NAME, /proc/self/task/TID/comm) ---------------
#: A thread's name lives in ``ProcessState.misc`` under this prefix and its tid, as an
#: integer (the name's bytes, little-endian: names hold no NUL), only once it was given
#: one (a state saved before names existed has none: every thread is the program's name).
NAME_KEY = "comm:"
#: TASK_COMM_LEN - 1: the longest name.
NAME_MAX = 15


def given_name(p: Process, tid: int) -> bytes | None:
    """The name thread ``tid`` was given (prctl, a comm write, or its creator's), if any."""
    value = p.s.misc.get(f"{NAME_KEY}{tid}")
    if value is None:
        return None
    return value.to_bytes((value.bit_length() + 7) // 8, "little")


def thread_name(p: Process, tid: int) -> bytes:
    """What Linux's comm of ``tid`` is: its given name, else the program's file name."""
    name = given_name(p, tid)
    return name if name is not None else os.path.basename(p.image_path)[:NAME_MAX]


def set_thread_name(p: Process, tid: int, name: bytes) -> None:
    """Name thread ``tid`` (at most 15 bytes kept, up to a NUL, as set_task_comm)."""
    name = name.split(b"\0", 1)[0][:NAME_MAX]
    p.s.misc[f"{NAME_KEY}{tid}"] = int.from_bytes(name, "little")


def forget_thread_name(p: Process, tid: int) -> None:
    p.s.misc.pop(f"{NAME_KEY}{tid}", None)


def comm_tid(p: Process, path: bytes) -> int:
    """The thread whose ``comm`` emulated procfs path ``path`` is: ``/proc/PID/task/TID/comm``
    names TID, ``/proc/PID/comm`` the main thread (procfs.py resolves self and
    thread-self to these)."""
    parts = path.split(b"/")
    if len(parts) >= 6 and parts[-3] == b"task" and parts[-2].isdigit():
        return int(parts[-2])
    return p.pid


def write_comm(p: Process, path: bytes, data: bytes) -> int:
    """A write to a ``comm`` file (glibc's and musl's pthread_setname_np of another
    thread): names the thread, as Linux's comm_write (the whole count is consumed)."""
    tid = comm_tid(p, path)
    if not p.has_thread(tid):
        raise SyscallError(errno.ESRCH)
    set_thread_name(p, tid, data)
    return len(data)


@syscall("exit")
def sys_exit(p: Process, status: I32) -> None:
    if p.s.threads:  # (the last thread's exit is the process's: its name stays)
        forget_thread_name(p, p.tid)
        p.s.misc.pop(f"{PENDING_KEY}{p.tid}", None)
    p.exit_thread(status)


@syscall("exit_group")
def sys_exit_group(p: Process, status: I32) -> None:
    p.exit(status)


@syscall("gettid")
def sys_gettid(p: Process) -> int:
    return p.tid


@syscall("set_tid_address")
def sys_set_tid_address(p: Process, tidptr: Ptr) -> int:
    p.s.tid_address = tidptr
    return p.tid


@syscall("set_robust_list")
def sys_set_robust_list(p: Process, head: Ptr, length: U64) -> int:
    if length != 24:
        return -errno.EINVAL
    p.s.robust_list = (head, length)
    return 0


@syscall("get_robust_list")
def sys_get_robust_list(p: Process, pid: I32, head_ptr: Ptr, len_ptr: Ptr) -> int:
    if pid and not p.has_thread(pid):
        return -errno.ESRCH
    if pid and pid != p.tid:
        head, length = p.s.threads[pid].robust_list
    else:
        head, length = p.s.robust_list
    p.mem.write(head_ptr, struct.pack("<Q", head))
    p.mem.write(len_ptr, struct.pack("<Q", length or 24))
    return 0


def _timeout_ns(p: Process, ptr: int, absolute: bool, op: int) -> int:
    """A futex timeout as relative ns (-1: none; 0: already expired)."""
    if not ptr:
        return -1
    sec, nsec = p.read_timespec(ptr)
    if sec < 0 or not 0 <= nsec < 1_000_000_000:
        raise _Invalid
    ns = sec * 1_000_000_000 + nsec
    if absolute:
        clock = 0 if op & abi.FUTEX_CLOCK_REALTIME else 1
        ns -= p.host.clock(clock)
    return max(ns, 0)


class _Invalid(Exception):
    pass


def _wake_op(p: Process, uaddr: int, uaddr2: int, val: int, val2: int, val3: int) -> int:
    op = (val3 >> 28) & 7
    cmp = (val3 >> 24) & 15
    oparg = (val3 >> 12) & 0xFFF
    cmparg = val3 & 0xFFF
    if val3 & (8 << 28):  # FUTEX_OP_OPARG_SHIFT
        oparg = 1 << (oparg & 31)
    old = struct.unpack("<I", p.mem.read(uaddr2, 4))[0]
    if op == 0:
        new = oparg
    elif op == 1:
        new = old + oparg
    elif op == 2:
        new = old | oparg
    elif op == 3:
        new = old & ~oparg
    elif op == 4:
        new = old ^ oparg
    else:
        return -errno.ENOSYS
    p.mem.write(uaddr2, struct.pack("<I", new & 0xFFFFFFFF))
    woken = p.futex_wake(uaddr, val)
    sold = old - (1 << 32) if old & (1 << 31) else old
    tests = {0: sold == cmparg, 1: sold != cmparg, 2: sold < cmparg, 3: sold <= cmparg,
             4: sold > cmparg, 5: sold >= cmparg}
    if cmp not in tests:
        return -errno.ENOSYS
    if tests[cmp]:
        woken += p.futex_wake(uaddr2, val2)
    return woken


@syscall("futex")
def sys_futex(p: Process, uaddr: Ptr, op: I32, val: U32, timeout: Ptr, uaddr2: Ptr,
              val3: U32) -> int | None:
    cmd = op & abi.FUTEX_CMD_MASK
    if uaddr % 4:
        return -errno.EINVAL
    val2 = timeout & 0xFFFFFFFF  # the "timeout" argument is a count for these commands
    try:
        if cmd in (abi.FUTEX_WAIT, abi.FUTEX_WAIT_BITSET):
            bitset = val3 if cmd == abi.FUTEX_WAIT_BITSET else abi.FUTEX_BITSET_MATCH_ANY
            if bitset == 0:
                return -errno.EINVAL
            current = struct.unpack("<I", p.mem.read(uaddr, 4))[0]
            ns = _timeout_ns(p, timeout, cmd == abi.FUTEX_WAIT_BITSET, op)
            if current != val:
                return -errno.EAGAIN
            if ns == 0:
                return -errno.ETIMEDOUT
            p.block(uaddr, bitset, ns)
            return None  # the result comes when it is woken (0) or times out
    except _Invalid:
        return -errno.EINVAL
    if cmd in (abi.FUTEX_WAKE, abi.FUTEX_WAKE_BITSET):
        bitset = val3 if cmd == abi.FUTEX_WAKE_BITSET else abi.FUTEX_BITSET_MATCH_ANY
        if bitset == 0:
            return -errno.EINVAL
        return p.futex_wake(uaddr, val, bitset)
    if cmd in (abi.FUTEX_REQUEUE, abi.FUTEX_CMP_REQUEUE):
        if uaddr2 % 4 or val > 0x7FFFFFFF or val2 > 0x7FFFFFFF:
            return -errno.EINVAL
        if cmd == abi.FUTEX_CMP_REQUEUE and \
                struct.unpack("<I", p.mem.read(uaddr, 4))[0] != val3:
            return -errno.EAGAIN
        woken = p.futex_wake(uaddr, val)
        return woken + p.futex_requeue(uaddr, uaddr2, val2)
    if cmd == abi.FUTEX_WAKE_OP:
        if uaddr2 % 4:
            return -errno.EINVAL
        return _wake_op(p, uaddr, uaddr2, val, val2, val3)
    # PI futexes (FUTEX_LOCK_PI...) and FUTEX_WAIT_REQUEUE_PI: not emulated.
    p.warn_once(-1100 - cmd, f"syxdbg: warning: futex operation {cmd} (PI futexes) is not "
                             "supported; it returns -ENOSYS\n")
    return -errno.ENOSYS


@syscall("sched_yield")
def sys_sched_yield(p: Process) -> int:
    p.yield_cpu()
    return 0


@syscall("sched_getaffinity")
def sys_sched_getaffinity(p: Process, pid: I32, size: U32, mask: Ptr) -> int:
    if pid and not p.has_thread(pid):
        return -errno.ESRCH
    if size < 8 or size % 8:
        return -errno.EINVAL
    # The host's CPU count (a recorded input), so nproc and thread pools size as natively;
    # the threads still take turns on the one emulated CPU.
    cpus = max(1, min(p.host.cpu_count(), size * 8))
    nbytes = (cpus + 63) // 64 * 8
    p.mem.write(mask, ((1 << cpus) - 1).to_bytes(nbytes, "little"))
    return nbytes


@syscall("sched_setaffinity")
def sys_sched_setaffinity(p: Process, pid: I32, size: U32, mask: Ptr) -> int:
    """One emulated CPU: a mask must include CPU 0 (the only one) and changes nothing."""
    if pid and not p.has_thread(pid):
        return -errno.ESRCH
    if size == 0:
        return -errno.EINVAL
    first = p.mem.read(mask, 1)[0]
    return 0 if first & 1 else -errno.EINVAL


#: membarrier commands answered: QUERY (0) lists them; every barrier is a no-op on one CPU
#: running one thread at a time. GLOBAL, GLOBAL_EXPEDITED, REGISTER_GLOBAL_EXPEDITED,
#: PRIVATE_EXPEDITED, REGISTER_PRIVATE_EXPEDITED.
_MEMBARRIER_CMDS = 1 | 2 | 4 | 8 | 16


@syscall("membarrier")
def sys_membarrier(p: Process, cmd: I32, flags: U32, cpu_id: I32) -> int:
    if cmd == 0:
        return _MEMBARRIER_CMDS
    if flags or cmd < 0 or cmd & ~_MEMBARRIER_CMDS or cmd & (cmd - 1):
        return -errno.EINVAL
    return 0


