"""Files a command writes for whoever asked: full paths for the local user, a jail for
remote clients.

``coverage FILE`` and ``trace FILE`` run in the shell (the local user, who may write any
file they can) and through gdb's ``monitor`` (any client that can reach the stub, which may
be another user, or a replay served with ``--port`` where memory writes are refused). A
remote client must not choose the server's files, so for every front end but the shell:

* FILE is relative to the output directory, ``session.options["output_dir"]`` (made
  absolute; the server's current directory when the option is absent);
* absolute paths and ``..`` components are refused, and every directory on the way is opened
  with ``O_NOFOLLOW`` relative to the previous one, so no symbolic link leads out;
* the file is created with ``O_EXCL``: an existing file (or a symbolic link, or a FIFO) is
  never replaced, unless ``session.options["output_overwrite"]`` is true, and even then only
  a regular file is truncated;
* if the command fails, a file it created is removed again.

Both plugins open their output through :func:`output_file` (the trace plugin imports it
from here).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, BinaryIO

from syxdbg.commands import CommandError

if TYPE_CHECKING:
    from syxdbg.commands import Context

__all__ = ["LOCAL_FRONTENDS", "OUTPUT_DIR", "OUTPUT_OVERWRITE", "output_file", "remote"]

#: Session options (set by the CLI's ``--output-dir`` and ``--allow-overwrite``).
OUTPUT_DIR = "output_dir"
OUTPUT_OVERWRITE = "output_overwrite"
#: Command registry front ends whose commands come from the local user. Every other front
#: end (gdb's ``monitor``, any future protocol server) is treated as a remote client.
LOCAL_FRONTENDS = frozenset({"shell"})

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_OLD_FLAGS = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def remote(ctx: Context) -> bool:
    """True unless the command comes from the local user (the shell): gdb's ``monitor``
    and any front end not known to be local."""
    return ctx.frontend not in LOCAL_FRONTENDS


@contextmanager
def output_file(ctx: Context, path: str) -> Iterator[BinaryIO]:
    """Open ``path`` for writing, for the command's user (see the module docstring).

    Raises :class:`CommandError` (one line) when the file may not or cannot be written.
    """
    if not remote(ctx):
        try:
            f = open(path, "wb")  # noqa: SIM115 - a context manager below
        except OSError as exc:
            raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from None
        with f:
            yield f
        return
    dirfd, name = _jail_dir(ctx, path)
    try:
        fd, created = _open_in(dirfd, name, path,
                               bool(ctx.session.options.get(OUTPUT_OVERWRITE)))
        done = False
        try:
            with os.fdopen(fd, "wb") as f:
                yield f
            done = True
        finally:
            if created and not done:
                with suppress(OSError):
                    os.unlink(name, dir_fd=dirfd)
    finally:
        os.close(dirfd)


def _jail_dir(ctx: Context, path: str) -> tuple[int, str]:
    """The open directory (under the output directory) that will hold ``path``, and the
    file's name in it."""
    if not path or "\0" in path:
        raise CommandError("a file name is needed")
    if os.path.isabs(path) or path.startswith("~"):
        raise CommandError(f"cannot write {path}: a remote client writes only under the "
                           f"server's output directory (give a relative name)")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise CommandError(f"cannot write {path}: '..' is not allowed in a remote "
                           f"client's file name")
    if not parts:
        raise CommandError(f"cannot write {path}: not a file name")
    top = os.path.abspath(os.fspath(ctx.session.options.get(OUTPUT_DIR) or os.getcwd()))
    try:
        dirfd = os.open(top, _DIR_FLAGS)
    except OSError as exc:
        raise CommandError(f"cannot write {path}: the output directory is unusable "
                           f"({exc.strerror or exc})") from None
    for part in parts[:-1]:
        try:
            nfd = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dirfd)
        except OSError as exc:
            os.close(dirfd)
            why = ("a symbolic link or not a directory" if exc.errno in (errno.ELOOP, errno.ENOTDIR)
                   else exc.strerror or str(exc))
            raise CommandError(f"cannot write {path}: {part}: {why}") from None
        os.close(dirfd)
        dirfd = nfd
    return dirfd, parts[-1]


def _open_in(dirfd: int, name: str, path: str, overwrite: bool) -> tuple[int, bool]:
    """(fd, created): a new file, or with ``overwrite`` an existing regular file emptied."""
    try:
        return os.open(name, _NEW_FLAGS, 0o644, dir_fd=dirfd), True
    except FileExistsError:
        if not overwrite:
            raise CommandError(f"cannot write {path}: it already exists (the server does not "
                               f"replace files for remote clients unless started with "
                               f"--allow-overwrite)") from None
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        fd = os.open(name, _OLD_FLAGS, dir_fd=dirfd)
    except OSError as exc:
        why = "it is a symbolic link" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
        raise CommandError(f"cannot write {path}: {why}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CommandError(f"cannot write {path}: not a regular file")
    os.ftruncate(fd, 0)
    return fd, False
