"""The system call handlers, one module per area, and the dispatch table built from them.

========== ============================================================================
``files``  file descriptors and their I/O, open/close, the fd table, pipes, ioctl
``poll``   readiness: poll, ppoll, select, pselect6
``fdevents`` eventfd, timerfd, signalfd (emulated files)
``net``    sockets (AF_UNIX, AF_INET, AF_INET6 as host sockets, every byte recorded)
``fs``     the namespace: stat family, getdents, access, unlink/mkdir/rename, cwd, readlink
``memory`` brk, mmap, munmap, mprotect, mremap, madvise
``time``   clocks, sleeping, getrandom, uname, sysinfo, getrusage
``process`` ids, arch_prctl, prctl, rlimits, getcpu
``threads`` clone/clone3, exit/exit_group, futex, tid address, robust lists, sched_yield,
           affinity, membarrier
``signals`` sigaction, sigprocmask, sigaltstack, kill/tkill/tgkill
========== ============================================================================

Handlers are declared with :func:`~..registry.syscall` and receive a
:class:`~..kernel.Process`; importing this package registers them all, then
:data:`DISPATCH` maps each architecture's syscall numbers to them, once.
"""

from __future__ import annotations

from types import MappingProxyType

from ..registry import HANDLERS, Handler, SyscallError, syscall
from ..tables import SYSCALL_TABLES
from . import (  # noqa: F401
    fdevents,
    files,
    fs,
    memory,
    net,
    poll,
    process,
    signals,
    threads,
    time,
)

# isort: off
from . import arm32  # noqa: E402,F401 - last: binds generic handlers to their ARM names
# isort: on

#: arch name -> {syscall number: handler}; immutable, built once at import. A handler
#: registered as ``ARCH:NAME`` (arm32: the 32-bit ARM layouts) wins on that architecture.
DISPATCH: MappingProxyType[str, MappingProxyType[int, Handler]] = MappingProxyType({
    arch: MappingProxyType({nr: HANDLERS.get(f"{arch}:{name}") or HANDLERS[name]
                            for nr, name in table.items()
                            if name in HANDLERS or f"{arch}:{name}" in HANDLERS})
    for arch, table in SYSCALL_TABLES.items()
})


def supported(arch: str) -> list[str]:
    """Names of the syscalls handled on ``arch``."""
    return sorted({h.name.rpartition(":")[2] for h in DISPATCH[arch].values()}
                  & set(SYSCALL_TABLES[arch].values()))


__all__ = ["DISPATCH", "HANDLERS", "Handler", "SyscallError", "supported", "syscall"]
