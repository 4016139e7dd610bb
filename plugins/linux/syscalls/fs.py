"""The file system namespace: the stat family, directory listings, access, unlink, mkdir,
rename, the cwd, readlink and umask.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
import struct

from syxdbg.machine.memory import PAGE

from .. import abi, procfs
from ..kernel import Process
from ..registry import I32, U32, U64, Fd, Ptr, SyscallError, syscall


def _stat_path(p: Process, dirfd: int, path_ptr: int, flags: int) -> os.stat_result:
    if flags & ~(abi.AT_SYMLINK_NOFOLLOW | abi.AT_EMPTY_PATH | abi.AT_NO_AUTOMOUNT | 0x6000):
        raise SyscallError(errno.EINVAL)
    path = p.read_path(path_ptr)
    if not path and flags & abi.AT_EMPTY_PATH:
        if dirfd == abi.AT_FDCWD:
            return p.host.stat(p.s.cwd)
        return fstat_fd(p, dirfd)
    follow = not flags & abi.AT_SYMLINK_NOFOLLOW
    node = procfs.find(p, dirfd, path, follow=follow)
    if node.kind == "fd":
        return fstat_fd(p, int(node.data))
    if node.kind != "host":
        return procfs.stat_of(p, node)
    st = p.host.stat(node.target, follow_symlinks=follow)
    procfs.check_host_stat(p, node, st)
    return st


def fstat_fd(p: Process, fd: int) -> os.stat_result:
    """fstat of guest ``fd`` (emulated /proc files have emulated results)."""
    f = p.file(fd)
    if f.kind in procfs.EMULATED_KINDS:
        return procfs.stat_of_file(p, f)
    return p.host.fstat(p.host_fd(fd))


@syscall("fstat")
def sys_fstat(p: Process, fd: Fd, buf: Ptr) -> int:
    p.mem.write(buf, abi.pack_stat(p.arch, fstat_fd(p, fd)))
    return 0


@syscall("newfstatat")
def sys_newfstatat(p: Process, dirfd: Fd, path: Ptr, buf: Ptr, flags: I32) -> int:
    p.mem.write(buf, abi.pack_stat(p.arch, _stat_path(p, dirfd, path, flags)))
    return 0


@syscall("stat")
def sys_stat(p: Process, path: Ptr, buf: Ptr) -> int:
    return sys_newfstatat(p, abi.AT_FDCWD, path, buf, 0)


@syscall("lstat")
def sys_lstat(p: Process, path: Ptr, buf: Ptr) -> int:
    return sys_newfstatat(p, abi.AT_FDCWD, path, buf, abi.AT_SYMLINK_NOFOLLOW)


@syscall("statx")
def sys_statx(p: Process, dirfd: Fd, path: Ptr, flags: I32, mask: U32, buf: Ptr) -> int:
    p.mem.write(buf, abi.pack_statx(_stat_path(p, dirfd, path, flags)))
    return 0


@syscall("getdents64")
def sys_getdents64(p: Process, fd: Fd, dirp: Ptr, count: U32) -> int:
    f = p.file(fd)
    if f.kind == "procdir":
        hfd = -1
    else:
        hfd = p.host_fd(fd)
        if f.kind != "dir":
            return -errno.ENOTDIR
    if f.dir_entries is None:
        f.dir_entries = tuple(p.host.listdir(hfd))
    out = bytearray()
    pos = f.dir_pos
    while pos < len(f.dir_entries):
        name, ino, mode = f.dir_entries[pos]
        rec = abi.pack_dirent64(ino, pos + 1, abi.dtype_of_mode(mode), name)
        if len(out) + len(rec) > count:
            if not out:
                return -errno.EINVAL
            break
        out += rec
        pos += 1
    if out:
        p.mem.write(dirp, bytes(out))
    f.dir_pos = pos
    return len(out)


# --------------------------------------------------------------------------- namespace
def _access(p: Process, dirfd: int, path_ptr: int, mode: int, flags: int) -> int:
    if mode & ~7 or flags & ~(abi.AT_EACCESS | abi.AT_SYMLINK_NOFOLLOW | abi.AT_EMPTY_PATH):
        return -errno.EINVAL
    node = procfs.find(p, dirfd, p.read_path(path_ptr),
                       follow=not flags & abi.AT_SYMLINK_NOFOLLOW)
    if node.kind != "host":
        granted = procfs.stat_of(p, node).st_mode if node.kind != "fd" else 0o700
        return 0 if (granted >> 6) & mode == mode else -errno.EACCES
    path = node.target
    ok = p.host.access(path, mode, follow_symlinks=not flags & abi.AT_SYMLINK_NOFOLLOW)
    return 0 if ok else -errno.EACCES


@syscall("access")
def sys_access(p: Process, path: Ptr, mode: I32) -> int:
    return _access(p, abi.AT_FDCWD, path, mode, 0)


@syscall("faccessat")
def sys_faccessat(p: Process, dirfd: Fd, path: Ptr, mode: I32) -> int:
    return _access(p, dirfd, path, mode, 0)


@syscall("faccessat2")
def sys_faccessat2(p: Process, dirfd: Fd, path: Ptr, mode: I32, flags: I32) -> int:
    return _access(p, dirfd, path, mode, flags)


@syscall("unlink")
def sys_unlink(p: Process, path: Ptr) -> int:
    p.host.unlink(procfs.host_path(p, abi.AT_FDCWD, p.read_path(path), follow=False))
    return 0


@syscall("unlinkat")
def sys_unlinkat(p: Process, dirfd: Fd, path: Ptr, flags: I32) -> int:
    if flags & ~abi.AT_REMOVEDIR:
        return -errno.EINVAL
    target = procfs.host_path(p, dirfd, p.read_path(path), follow=False)
    if flags & abi.AT_REMOVEDIR:
        p.host.rmdir(target)
    else:
        p.host.unlink(target)
    return 0


@syscall("rmdir")
def sys_rmdir(p: Process, path: Ptr) -> int:
    p.host.rmdir(procfs.host_path(p, abi.AT_FDCWD, p.read_path(path), follow=False))
    return 0


@syscall("mkdirat")
def sys_mkdirat(p: Process, dirfd: Fd, path: Ptr, mode: U32) -> int:
    p.host.mkdir(procfs.host_path(p, dirfd, p.read_path(path), follow=False),
                 mode & ~p.s.umask & 0o7777)
    return 0


@syscall("mkdir")
def sys_mkdir(p: Process, path: Ptr, mode: U32) -> int:
    return sys_mkdirat(p, abi.AT_FDCWD, path, mode)


@syscall("renameat2")
def sys_renameat2(p: Process, olddirfd: Fd, oldpath: Ptr, newdirfd: Fd, newpath: Ptr,
                  flags: U32) -> int:
    if flags:
        return -errno.EINVAL
    p.host.rename(procfs.host_path(p, olddirfd, p.read_path(oldpath), follow=False),
                  procfs.host_path(p, newdirfd, p.read_path(newpath), follow=False))
    return 0


@syscall("renameat")
def sys_renameat(p: Process, olddirfd: Fd, oldpath: Ptr, newdirfd: Fd, newpath: Ptr) -> int:
    return sys_renameat2(p, olddirfd, oldpath, newdirfd, newpath, 0)


@syscall("rename")
def sys_rename(p: Process, oldpath: Ptr, newpath: Ptr) -> int:
    return sys_renameat2(p, abi.AT_FDCWD, oldpath, abi.AT_FDCWD, newpath, 0)


@syscall("getcwd")
def sys_getcwd(p: Process, buf: Ptr, size: U64) -> int:
    data = p.s.cwd + b"\0"
    if size < len(data):
        return -errno.ERANGE
    p.mem.write(buf, data)
    return len(data)


def _set_cwd(p: Process, path: bytes) -> int:
    """chdir to absolute guest ``path``."""
    node = procfs.find_absolute(p, path)
    if node.kind == "dir":  # an emulated /proc directory: the cwd is its guest path
        p.s.cwd = node.path
        return 0
    if node.kind != "host":
        return -errno.ENOTDIR
    path = node.target
    st = p.host.stat(path)
    procfs.check_host_stat(p, node, st)
    if not stat_mod.S_ISDIR(st.st_mode):
        return -errno.ENOTDIR
    p.s.cwd = p.host.realpath(path)
    return 0


@syscall("chdir")
def sys_chdir(p: Process, path: Ptr) -> int:
    return _set_cwd(p, p.resolve(abi.AT_FDCWD, p.read_path(path)))


@syscall("fchdir")
def sys_fchdir(p: Process, fd: Fd) -> int:
    f = p.file(fd)
    if f.kind not in ("dir", "procdir") or f.path is None:
        return -errno.ENOTDIR
    return _set_cwd(p, f.path)


def _readlink(p: Process, dirfd: int, path_ptr: int, buf: int, size: int) -> int:
    if size <= 0:
        return -errno.EINVAL
    node = procfs.find(p, dirfd, p.read_path(path_ptr), follow=False)
    if node.kind == "link":
        target = node.target
    elif node.kind == "host":
        target = p.host.readlink(node.target)
    else:
        return -errno.EINVAL  # not a symbolic link
    data = target[:size]
    p.mem.write(buf, data)
    return len(data)


@syscall("readlink")
def sys_readlink(p: Process, path: Ptr, buf: Ptr, size: I32) -> int:
    return _readlink(p, abi.AT_FDCWD, path, buf, size)


@syscall("readlinkat")
def sys_readlinkat(p: Process, dirfd: Fd, path: Ptr, buf: Ptr, size: I32) -> int:
    return _readlink(p, dirfd, path, buf, size)


@syscall("umask")
def sys_umask(p: Process, mask: U32) -> int:
    old = p.s.umask
    p.s.umask = mask & 0o777
    return old


# -- file system statistics and extended attributes -----------------------------------------
def _statfs_target(p: Process, node: procfs.Node) -> bytes:
    """The host path whose file system answers for ``node`` (procfs for emulated nodes)."""
    return node.target if node.kind == "host" else b"/proc"


@syscall("statfs")
def sys_statfs(p: Process, path: Ptr, buf: Ptr) -> int:
    node = procfs.find(p, abi.AT_FDCWD, p.read_path(path))
    p.mem.write(buf, p.host.statfs(_statfs_target(p, node)))
    return 0


@syscall("fstatfs")
def sys_fstatfs(p: Process, fd: Fd, buf: Ptr) -> int:
    f = p.file(fd)
    if f.kind in procfs.EMULATED_KINDS:
        data = p.host.statfs(b"/proc")
    elif f.kind == "pipe":
        return _pipefs(p, buf)
    else:
        data = p.host.statfs(p.host_fd(fd))
    p.mem.write(buf, data)
    return 0


def _pipefs(p: Process, buf: int) -> int:
    """statfs of a pipe: Linux's pipefs (PIPEFS_MAGIC, 4096-byte blocks, nothing else)."""
    p.mem.write(buf, struct.pack("<qq", 0x50495045, PAGE).ljust(120, b"\0"))
    return 0


def _xattr_name(p: Process, ptr: int) -> bytes:
    name = p.mem.read_cstring(ptr, 256)
    if not name or len(name) > 255:
        raise SyscallError(errno.ERANGE)
    return name


def _xattr_result(p: Process, data: bytes, buf: int, size: int) -> int:
    if size == 0:
        return len(data)
    if len(data) > size:
        return -errno.ERANGE
    p.mem.write(buf, data)
    return len(data)


def _xattr_path(p: Process, path: int, name: bytes | None, buf: int, size: int,
                follow: bool) -> int:
    node = procfs.find(p, abi.AT_FDCWD, p.read_path(path), follow=follow)
    if node.kind != "host":  # emulated /proc nodes have no extended attributes
        return -errno.ENODATA if name is not None else 0
    return _xattr_result(p, p.host.xattr(node.target, name, follow), buf, size)


def _xattr_fd(p: Process, fd: int, name: bytes | None, buf: int, size: int) -> int:
    f = p.file(fd)
    if f.kind in procfs.EMULATED_KINDS or f.kind == "pipe":
        return -errno.ENODATA if name is not None else 0
    return _xattr_result(p, p.host.xattr(p.host_fd(fd), name, True), buf, size)


@syscall("getxattr")
def sys_getxattr(p: Process, path: Ptr, name: Ptr, buf: Ptr, size: U64) -> int:
    return _xattr_path(p, path, _xattr_name(p, name), buf, size, True)


@syscall("lgetxattr")
def sys_lgetxattr(p: Process, path: Ptr, name: Ptr, buf: Ptr, size: U64) -> int:
    return _xattr_path(p, path, _xattr_name(p, name), buf, size, False)


@syscall("fgetxattr")
def sys_fgetxattr(p: Process, fd: Fd, name: Ptr, buf: Ptr, size: U64) -> int:
    return _xattr_fd(p, fd, _xattr_name(p, name), buf, size)


@syscall("listxattr")
def sys_listxattr(p: Process, path: Ptr, buf: Ptr, size: U64) -> int:
    return _xattr_path(p, path, None, buf, size, True)


@syscall("llistxattr")
def sys_llistxattr(p: Process, path: Ptr, buf: Ptr, size: U64) -> int:
    return _xattr_path(p, path, None, buf, size, False)


@syscall("flistxattr")
def sys_flistxattr(p: Process, fd: Fd, buf: Ptr, size: U64) -> int:
    return _xattr_fd(p, fd, None, buf, size)


# -- links, permissions and times -----------------------------------------------------------
@syscall("symlinkat")
def sys_symlinkat(p: Process, target: Ptr, dirfd: Fd, path: Ptr) -> int:
    # The target is the link's contents, stored as given (never redirected).
    p.host.symlink(p.read_path(target), procfs.host_path(p, dirfd, p.read_path(path),
                                                         follow=False))
    return 0


@syscall("symlink")
def sys_symlink(p: Process, target: Ptr, path: Ptr) -> int:
    return sys_symlinkat(p, target, abi.AT_FDCWD, path)


@syscall("linkat")
def sys_linkat(p: Process, olddirfd: Fd, oldpath: Ptr, newdirfd: Fd, newpath: Ptr,
               flags: I32) -> int:
    if flags & ~(abi.AT_SYMLINK_FOLLOW | abi.AT_EMPTY_PATH):
        return -errno.EINVAL
    follow = bool(flags & abi.AT_SYMLINK_FOLLOW)
    p.host.link(procfs.host_path(p, olddirfd, p.read_path(oldpath), follow=follow),
                procfs.host_path(p, newdirfd, p.read_path(newpath), follow=False), follow)
    return 0


@syscall("link")
def sys_link(p: Process, oldpath: Ptr, newpath: Ptr) -> int:
    return sys_linkat(p, abi.AT_FDCWD, oldpath, abi.AT_FDCWD, newpath, 0)


def _host_target(p: Process, fd: int) -> int:
    """The host fd of guest ``fd`` for metadata changes (EPERM on emulated /proc files)."""
    f = p.file(fd)
    if f.kind in procfs.EMULATED_KINDS:
        raise SyscallError(errno.EPERM)
    return p.host_fd(fd)


@syscall("fchmodat")
def sys_fchmodat(p: Process, dirfd: Fd, path: Ptr, mode: U32) -> int:
    node = procfs.find(p, dirfd, p.read_path(path))
    if node.kind == "fd":
        p.host.chmod(_host_target(p, int(node.data)), mode & 0o7777)
        return 0
    if node.kind != "host":
        return -errno.EPERM
    p.host.chmod(node.target, mode & 0o7777)
    return 0


@syscall("chmod")
def sys_chmod(p: Process, path: Ptr, mode: U32) -> int:
    return sys_fchmodat(p, abi.AT_FDCWD, path, mode)


@syscall("fchmod")
def sys_fchmod(p: Process, fd: Fd, mode: U32) -> int:
    p.host.chmod(_host_target(p, fd), mode & 0o7777)
    return 0


@syscall("utimensat")
def sys_utimensat(p: Process, dirfd: Fd, path: Ptr, times: Ptr, flags: I32) -> int:
    if flags & ~(abi.AT_SYMLINK_NOFOLLOW | abi.AT_EMPTY_PATH):
        return -errno.EINVAL
    value = None
    if times:
        (a_sec, a_ns), (m_sec, m_ns) = (p.read_timespec(times),
                                        p.read_timespec(times + p.timespec_size))
        for ns in (a_ns, m_ns):
            if not 0 <= ns < 1_000_000_000 and ns not in (abi.UTIME_NOW, abi.UTIME_OMIT):
                return -errno.EINVAL
        value = ((a_sec, a_ns), (m_sec, m_ns))
    follow = not flags & abi.AT_SYMLINK_NOFOLLOW
    if path == 0:  # futimens(fd, times): glibc passes a NULL path
        p.host.utime(_host_target(p, dirfd), value)
        return 0
    raw = p.read_path(path)
    if not raw and flags & abi.AT_EMPTY_PATH:
        p.host.utime(_host_target(p, dirfd), value)
        return 0
    node = procfs.find(p, dirfd, raw, follow=follow)
    if node.kind == "fd":
        p.host.utime(_host_target(p, int(node.data)), value)
        return 0
    if node.kind != "host":
        return -errno.EPERM
    p.host.utime(node.target, value, follow)
    return 0


@syscall("utimes")
def sys_utimes(p: Process, path: Ptr, times: Ptr) -> int:
    return _utimes(p, abi.AT_FDCWD, path, times)


@syscall("futimesat")
def sys_futimesat(p: Process, dirfd: Fd, path: Ptr, times: Ptr) -> int:
    return _utimes(p, dirfd, path, times)


def _utimes(p: Process, dirfd: int, path: int, times: int) -> int:
    """utimes/futimesat: two struct timeval (microseconds), or NULL for now."""
    value = None
    if times:
        a_sec, a_us, m_sec, m_us = struct.unpack("<qqqq", p.mem.read(times, 32))
        if not (0 <= a_us < 1_000_000 and 0 <= m_us < 1_000_000):
            return -errno.EINVAL
        value = ((a_sec, a_us * 1000), (m_sec, m_us * 1000))
    return _set_times(p, dirfd, path, value)


@syscall("utime")
def sys_utime(p: Process, path: Ptr, times: Ptr) -> int:
    """utime: struct utimbuf (two time_t, whole seconds), or NULL for now."""
    value = None
    if times:
        a_sec, m_sec = struct.unpack("<qq", p.mem.read(times, 16))
        value = ((a_sec, 0), (m_sec, 0))
    return _set_times(p, abi.AT_FDCWD, path, value)


def _set_times(p: Process, dirfd: int, path: int, value: tuple[tuple[int, int],
                                                                tuple[int, int]] | None) -> int:
    node = procfs.find(p, dirfd, p.read_path(path))
    if node.kind == "fd":
        p.host.utime(_host_target(p, int(node.data)), value)
        return 0
    if node.kind != "host":
        return -errno.EPERM
    p.host.utime(node.target, value)
    return 0


# -- ownership --------------------------------------------------------------------------------
def _id(v: int) -> int:
    """A uid/gid argument: (u32)-1 leaves it unchanged (os.chown's -1)."""
    return -1 if v & 0xFFFFFFFF == 0xFFFFFFFF else v & 0xFFFFFFFF


@syscall("fchownat")
def sys_fchownat(p: Process, dirfd: Fd, path: Ptr, uid: U32, gid: U32, flags: I32) -> int:
    if flags & ~(abi.AT_SYMLINK_NOFOLLOW | abi.AT_EMPTY_PATH):
        return -errno.EINVAL
    raw = p.read_path(path)
    if not raw and flags & abi.AT_EMPTY_PATH:
        if dirfd == abi.AT_FDCWD:
            p.host.chown(p.s.cwd, _id(uid), _id(gid))
        else:
            p.host.chown(_host_target(p, dirfd), _id(uid), _id(gid))
        return 0
    follow = not flags & abi.AT_SYMLINK_NOFOLLOW
    node = procfs.find(p, dirfd, raw, follow=follow)
    if node.kind == "fd":
        p.host.chown(_host_target(p, int(node.data)), _id(uid), _id(gid))
        return 0
    if node.kind != "host":
        return -errno.EPERM
    p.host.chown(node.target, _id(uid), _id(gid), follow)
    return 0


@syscall("chown")
def sys_chown(p: Process, path: Ptr, uid: U32, gid: U32) -> int:
    return sys_fchownat(p, abi.AT_FDCWD, path, uid, gid, 0)


@syscall("lchown")
def sys_lchown(p: Process, path: Ptr, uid: U32, gid: U32) -> int:
    return sys_fchownat(p, abi.AT_FDCWD, path, uid, gid, abi.AT_SYMLINK_NOFOLLOW)


@syscall("fchown")
def sys_fchown(p: Process, fd: Fd, uid: U32, gid: U32) -> int:
    p.host.chown(_host_target(p, fd), _id(uid), _id(gid))
    return 0


# -- special files ----------------------------------------------------------------------------
@syscall("mknodat")
def sys_mknodat(p: Process, dirfd: Fd, path: Ptr, mode: U32, dev: U64) -> int:
    """FIFOs (mkfifo), regular files, sockets; devices as the host allows them (EPERM
    without CAP_MKNOD). The umask applies."""
    kind = mode & 0o170000  # S_IFMT
    if kind == 0:
        kind = stat_mod.S_IFREG
    if kind not in (stat_mod.S_IFREG, stat_mod.S_IFIFO, stat_mod.S_IFSOCK, stat_mod.S_IFCHR,
                    stat_mod.S_IFBLK):
        return -errno.EINVAL
    target = procfs.host_path(p, dirfd, p.read_path(path), follow=False)
    # The guest's dev_t (new_encode_dev) is the host's: both are Linux.
    p.host.mknod(target, kind | (mode & 0o7777 & ~p.s.umask), dev & 0xFFFFFFFF)
    return 0


@syscall("mknod")
def sys_mknod(p: Process, path: Ptr, mode: U32, dev: U64) -> int:
    return sys_mknodat(p, abi.AT_FDCWD, path, mode, dev)


@syscall("fchmodat2")
def sys_fchmodat2(p: Process, dirfd: Fd, path: Ptr, mode: U32, flags: I32) -> int:
    if flags & ~(abi.AT_SYMLINK_NOFOLLOW | abi.AT_EMPTY_PATH):
        return -errno.EINVAL
    raw = p.read_path(path)
    if not raw and flags & abi.AT_EMPTY_PATH:
        p.host.chmod(_host_target(p, dirfd), mode & 0o7777)
        return 0
    if flags & abi.AT_SYMLINK_NOFOLLOW:
        node = procfs.find(p, dirfd, raw, follow=False)
        if node.kind != "host":
            return -errno.EPERM
        st = p.host.stat(node.target, follow_symlinks=False)
        if stat_mod.S_ISLNK(st.st_mode):
            return -errno.EOPNOTSUPP  # as Linux: a symlink's mode cannot change
        p.host.chmod(node.target, mode & 0o7777)
        return 0
    return sys_fchmodat(p, dirfd, path, mode)
