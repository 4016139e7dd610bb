"""Ctrl-C while the main thread is inside Unicorn, or waiting for the host.

Python runs signal handlers only between bytecodes, never while the main thread is inside a
C call such as ``emu_start``. :func:`sigint_calls` routes SIGINT through the signal wakeup fd
to a watcher thread that calls a thread-safe ``interrupt`` function instead.

A guest system call can also block in the host (``read`` from a terminal or a pipe,
``nanosleep``). Python retries a system call interrupted by a signal whose handler returns
(PEP 475), so such a wait would outlast Ctrl-C. Host calls that may block run inside
:func:`blocking_call`; while one does, the SIGINT handler raises ``InterruptedError``
(``EINTR``) out of it, and the syscall layer hands the guest ``-EINTR``, as a kernel does.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_blocking = 0  # depth of blocking_call() in the main thread


def _on_sigint(signum: int, frame: object) -> None:
    if _blocking and threading.current_thread() is threading.main_thread():
        raise InterruptedError(errno.EINTR, "interrupted by Ctrl-C")


@contextmanager
def blocking_call() -> Iterator[None]:
    """Around a host call that may wait indefinitely: Ctrl-C (under :func:`sigint_calls`)
    makes it fail with ``InterruptedError`` instead of being retried."""
    global _blocking
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _blocking += 1
    try:
        yield
    finally:
        _blocking -= 1


@contextmanager
def sigint_calls(interrupt: Callable[[], None]) -> Iterator[None]:
    """While inside, SIGINT calls ``interrupt()`` (from a watcher thread) instead of raising
    KeyboardInterrupt. Outside the main thread it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    rsock, wsock = socket.socketpair()
    wsock.setblocking(False)
    try:
        old_fd = signal.set_wakeup_fd(wsock.fileno(), warn_on_full_buffer=False)
    except ValueError:  # not the main interpreter thread after all
        rsock.close()
        wsock.close()
        yield
        return
    old_handler = signal.signal(signal.SIGINT, _on_sigint)

    def watch() -> None:
        while True:
            data = rsock.recv(64)
            if not data or b"\xff" in data:
                return
            if signal.SIGINT.value.to_bytes(1, "little") in data:
                interrupt()

    t = threading.Thread(target=watch, name="syxdbg-sigint", daemon=True)
    t.start()
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old_handler)
        signal.set_wakeup_fd(old_fd)
        os.write(wsock.fileno(), b"\xff")
        t.join()
        rsock.close()
        wsock.close()
