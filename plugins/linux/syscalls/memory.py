"""The address space: brk, mmap, munmap, mprotect, mremap, madvise.

Growing the address space is charged against the process's memory limit
(:meth:`~..kernel.Process.charge`): ENOMEM from mmap/mremap, an unmoved break from brk.
"""

from __future__ import annotations

import errno
import os
from dataclasses import replace

from syxdbg.errors import MemoryMapError
from syxdbg.machine.memory import PAGE, Perm, page_round_up

from .. import abi
from ..kernel import Process
from ..registry import I32, U64, Fd, Ptr, SyscallError, syscall


@syscall("brk")
def sys_brk(p: Process, addr: Ptr) -> int:
    s = p.s
    if addr == 0 or addr < s.brk_start:
        return s.brk
    old_top = page_round_up(s.brk)
    new_top = page_round_up(addr)
    if new_top > old_top:
        # Linux's brk never fails: a break it cannot move to stays where it was.
        if p.overlaps(old_top, new_top - old_top):
            return s.brk
        try:
            p.charge(new_top - old_top)
            p.mem.map(old_top, new_top - old_top, Perm.RW, "[heap]")
        except (SyscallError, MemoryMapError):
            return s.brk
        p.add_mapping(old_top, new_top, abi.PROT_READ | abi.PROT_WRITE,
                      abi.MAP_PRIVATE | abi.MAP_ANONYMOUS, "[heap]")
    elif new_top < old_top:
        p.mem.unmap(new_top, old_top - new_top)
        p.remove_mappings(new_top, old_top)
    s.brk = addr
    return addr


@syscall("mmap")
def sys_mmap(p: Process, addr: Ptr, length: U64, prot: I32, flags: I32, fd: Fd,
             offset: U64) -> int:
    if length == 0 or offset % PAGE or length > (1 << 48):
        return -errno.EINVAL
    if flags & 3 not in (abi.MAP_SHARED, abi.MAP_PRIVATE, abi.MAP_SHARED_VALIDATE):
        return -errno.EINVAL
    size = page_round_up(length)
    anon = bool(flags & abi.MAP_ANONYMOUS)
    name = "[anon]"
    hfd = -1
    file_id: int | None = None
    if not anon:
        f = p.file(fd)
        if f.kind != "file":
            return -errno.ENODEV if f.kind in ("dir", "proc", "procmem", "procdir") \
                else -errno.EACCES
        hfd = p.host_fd(fd)
        if f.flags & abi.O_ACCMODE == 1:  # O_WRONLY
            return -errno.EACCES
        # Named by its guest path, as /proc/self/maps shows it.
        name = os.fsdecode(p.guest_path(f.path or b""))
        file_id = f.id
    fixed = flags & (abi.MAP_FIXED | abi.MAP_FIXED_NOREPLACE)
    reused = None
    if fixed and file_id is not None and not flags & abi.MAP_FIXED_NOREPLACE:
        reused = p.clean_copy(addr, size, file_id, offset)
    if fixed:
        if addr % PAGE:
            return -errno.EINVAL
        p.charge(size - p.mapped_in(addr, size))
        if flags & abi.MAP_FIXED_NOREPLACE and not flags & abi.MAP_FIXED and \
                p.overlaps(addr, size):
            return -errno.EEXIST
        p.mem.unmap(addr, size)
        p.mem.map(addr, size, Perm(prot & 7), name)
    else:
        p.charge(size)
        addr = p.map_fresh(size, prot, name, hint=addr & ~(PAGE - 1))
    if not anon:
        data = reused if reused is not None else p.host.pread(hfd, size, offset)
        if data:
            p.mem.write(addr, data)
    # A private copy that cannot be written is still the file's bytes (a shared one too:
    # writes are not written back, so it cannot change either).
    clean = file_id if file_id is not None and not prot & abi.PROT_WRITE else None
    p.add_mapping(addr, addr + size, prot & 7, flags, name, offset=0 if anon else offset,
                  clean=clean)
    return addr


@syscall("munmap")
def sys_munmap(p: Process, addr: Ptr, length: U64) -> int:
    if addr % PAGE or length == 0 or addr + length > (1 << 64):
        return -errno.EINVAL
    size = page_round_up(length)
    p.mem.unmap(addr, size)
    p.remove_mappings(addr, addr + size)
    return 0


@syscall("mprotect")
def sys_mprotect(p: Process, addr: Ptr, length: U64, prot: I32) -> int:
    if addr % PAGE or prot & ~0x7 & ~0x3000000:  # PROT_GROWSDOWN/UP accepted
        return -errno.EINVAL
    size = page_round_up(length)
    if size == 0:
        return 0
    if not p.mem.is_mapped(addr, size):
        return -errno.ENOMEM
    p.mem.protect(addr, size, Perm(prot & 7))
    p.remove_mappings(addr, addr + size, lambda m: replace(
        m, prot=prot & 7, clean=None if prot & abi.PROT_WRITE else m.clean))
    return 0


@syscall("mremap")
def sys_mremap(p: Process, old: Ptr, old_size: U64, new_size: U64, flags: I32,
               new_addr: Ptr) -> int:
    if old % PAGE or flags & ~7:
        return -errno.EINVAL
    if flags & (abi.MREMAP_FIXED | abi.MREMAP_DONTUNMAP) and not flags & abi.MREMAP_MAYMOVE:
        return -errno.EINVAL
    old_size = page_round_up(old_size)
    new_size = page_round_up(new_size)
    if new_size == 0 or old_size == 0:
        return -errno.EINVAL
    if not p.mem.is_mapped(old, old_size):
        return -errno.EFAULT
    region = p.mem.find(old)
    assert region is not None
    perms, name = region.perms, region.name
    info = next((m for m in p.s.mappings if m.start <= old < m.end), None)
    mflags = info.flags if info else abi.MAP_PRIVATE | abi.MAP_ANONYMOUS

    def move(target: int) -> int:
        kept = old_size if flags & abi.MREMAP_DONTUNMAP else 0
        replaced = p.mapped_in(target, new_size) if flags & abi.MREMAP_FIXED else 0
        p.charge(new_size - old_size + kept - replaced)
        data = p.mem.read(old, min(old_size, new_size))
        if flags & abi.MREMAP_FIXED:
            p.mem.unmap(target, new_size)
            p.remove_mappings(target, target + new_size)
        p.mem.map(target, new_size, perms, name)
        p.mem.write(target, data)
        if not flags & abi.MREMAP_DONTUNMAP:
            p.mem.unmap(old, old_size)
            p.remove_mappings(old, old + old_size)
        p.add_mapping(target, target + new_size, int(perms), mflags, name,
                      offset=info.offset if info else 0)  # moved: no longer "clean"
        return target

    if flags & abi.MREMAP_FIXED:
        if new_addr % PAGE or (new_addr < old + old_size and old < new_addr + new_size):
            return -errno.EINVAL
        return move(new_addr)
    if new_size <= old_size:
        if new_size < old_size:
            p.mem.unmap(old + new_size, old_size - new_size)
            p.remove_mappings(old + new_size, old + old_size)
        return old
    grow = new_size - old_size
    if not p.overlaps(old + old_size, grow) and old + new_size <= (1 << 48):
        p.charge(grow)
        p.mem.map(old + old_size, grow, perms, name)
        p.add_mapping(old + old_size, old + new_size, int(perms), mflags, name,
                      offset=info.offset + old_size if info else 0)
        return old
    if flags & abi.MREMAP_MAYMOVE:
        return move(p.mem.find_free(new_size, below=p.mmap_base))
    return -errno.ENOMEM


@syscall("madvise")
def sys_madvise(p: Process, addr: Ptr, length: U64, advice: I32) -> int:
    if addr % PAGE:
        return -errno.EINVAL
    size = page_round_up(length)
    if advice == 4 and size:  # MADV_DONTNEED: private anonymous pages read back as zeros
        if not p.mem.is_mapped(addr, size):
            return -errno.ENOMEM
        p.mem.write(addr, bytes(size))
        p.soil(addr, size)
    return 0
