"""Ctrl-C while the main thread is inside Unicorn.

Python runs signal handlers only between bytecodes, never while the main thread is inside a
C call such as ``emu_start``. :func:`sigint_calls` routes SIGINT through the signal wakeup fd
to a watcher thread that calls a thread-safe ``interrupt`` function instead.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


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
    old_handler = signal.signal(signal.SIGINT, lambda *_: None)

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
