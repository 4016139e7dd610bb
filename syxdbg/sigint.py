"""Ctrl-C while the main thread is inside Unicorn, or waiting for the host.

Python runs signal handlers only between bytecodes, never while the main thread is inside a
C call such as ``emu_start``. :func:`sigint_calls` routes SIGINT through the signal wakeup fd
to a watcher thread that calls a thread-safe ``interrupt`` function instead.

A guest system call can also block in the host (``read`` from a terminal or a pipe,
``nanosleep``). Python retries a system call interrupted by a signal whose handler returns
(PEP 475), so such a wait would outlast Ctrl-C. Host calls that may block run inside
:func:`blocking_call`; while one does, the SIGINT handler raises ``InterruptedError``
(``EINTR``) out of it, and the syscall layer hands the guest ``-EINTR``, as a kernel does.

A debugger's own interrupt (gdb's Ctrl-C, an RSP ``\x03``, the shell's or the DAP client's
pause) comes from another thread while the guest's system call waits on the host, where no
signal reaches it. Host waits therefore poll their descriptors together with a wake pipe:
:func:`wake_host_waits` (called by ``Timeline.interrupt`` and the SIGINT watcher) makes the
current or next :func:`wait_host` of every thread fail once with ``InterruptedError``, unless
the thread starts a new motion first (:func:`reset_host_waits`, also at a new
``sigint_calls`` scope): a wait entered a moment after the interrupt does not outlast it,
and a thread of another session, not interrupted, makes its call again once and goes on.
The syscall layer then makes the guest's call again when it resumes (Linux's restart of a
call interrupted by a stop), having consumed nothing.

The command line's start-up (imports, parsing, loading the program) runs under
:func:`install_startup_handler`: the first Ctrl-C raises one ``KeyboardInterrupt`` that
unwinds cleanly (temporary files removed) to a one-line report and status 130; a second
Ctrl-C while that happens exits at once, also with one line and status 130.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from types import FrameType
from typing import Any, NoReturn

#: Exit status after Ctrl-C, as a shell reports a process killed by SIGINT.
STATUS_INTERRUPTED = 128 + signal.SIGINT
#: Test hook: with this set to N, the command line sends itself SIGINT at the N-th Python
#: function call of its start-up, or at the end of start-up if that comes first. Tests use it
#: to interrupt every stage deterministically (no sleeps).
SIGINT_AT_CALL_ENV = "SYXDBG_TEST_SIGINT_AT_CALL"

_interrupted = False  # the start-up handler has raised its KeyboardInterrupt
_reported = False  # the one "interrupted" line has been written
_hook_armed = False

_blocking = 0  # depth of blocking_call() in the main thread
#: Ctrl-C came while the main thread ran Python outside a blocking call (a system call's
#: handler on its way to a host wait): the next blocking_call fails at once instead of
#: waiting past it. Cleared when a run starts (sigint_calls).
_pending = False


def _on_sigint(signum: int, frame: object) -> None:
    global _pending
    if threading.current_thread() is threading.main_thread():
        if _blocking:
            raise InterruptedError(errno.EINTR, "interrupted by Ctrl-C")
        _pending = True


@contextmanager
def blocking_call() -> Iterator[None]:
    """Around a host call that may wait indefinitely: Ctrl-C (under :func:`sigint_calls`)
    makes it fail with ``InterruptedError`` instead of being retried."""
    global _blocking, _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _pending:
        _pending = False
        raise InterruptedError(errno.EINTR, "interrupted by Ctrl-C")
    _blocking += 1
    try:
        yield
    finally:
        _blocking -= 1


# -- host waits -----------------------------------------------------------------------------------
_wake_lock = threading.Lock()
#: Interrupts so far (each :func:`wake_host_waits` adds one).
_wakes = 0
#: Per thread that waits on the host: (its wake pipe, the interrupts it has seen).
_waiters: dict[int, tuple[tuple[int, int], int]] = {}


def _mine() -> tuple[tuple[int, int], int]:
    """The calling thread's wake pipe and the interrupts it has seen (a thread seen for the
    first time has seen every interrupt so far)."""
    me = threading.get_ident()
    entry = _waiters.get(me)
    if entry is None:
        with _wake_lock:
            alive = {t.ident for t in threading.enumerate()}
            for ident in [i for i in _waiters if i not in alive]:  # threads that ended
                for fd in _waiters.pop(ident)[0]:
                    os.close(fd)
            entry = _waiters[me] = (os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC), _wakes)
    return entry


def wake_host_waits() -> None:
    """An interrupt: the host wait of every thread that is in one now, or that enters one
    before its next :func:`reset_host_waits`, fails once. Safe from any thread."""
    global _wakes
    with _wake_lock:
        _wakes += 1
        pipes = [pipe for pipe, _ in _waiters.values()]
    for _, w in pipes:
        with suppress(OSError):  # (full: a wake is already pending)
            os.write(w, b"!")


def _seen(pipe: tuple[int, int]) -> None:
    """The calling thread has seen every interrupt so far: drain its pipe."""
    _waiters[threading.get_ident()] = (pipe, _wakes)
    with suppress(OSError):
        while os.read(pipe[0], 4096):
            pass


def reset_host_waits() -> None:
    """A new motion starts in this thread: earlier interrupts no longer end its waits.
    (Called by every motion: nothing to do, no system call, when none came since this
    thread's last motion; a byte :func:`wake_host_waits` wrote late is drained by
    :func:`wait_host`.)"""
    entry = _waiters.get(threading.get_ident())
    if entry is not None and entry[1] == _wakes:
        return
    _seen(_mine()[0])


def wait_host(fds: Sequence[tuple[int, int]], timeout_ms: int) -> dict[int, int]:
    """poll(2) of ``(fd, events)`` for up to ``timeout_ms`` (-1: no limit): the revents of
    the ready ones. Raises ``InterruptedError`` when an interrupt comes first (Ctrl-C, or
    :func:`wake_host_waits` from any thread), or came since this thread's motion began and
    this thread has not seen it yet."""
    me = threading.get_ident()
    deadline = None if timeout_ms < 0 else time.monotonic() + timeout_ms / 1000
    while True:
        pipe, seen = _mine()
        if seen != _wakes:
            _seen(pipe)
            raise InterruptedError(errno.EINTR, "interrupted")
        poller = select.poll()
        for fd, events in fds:
            poller.register(fd, events)
        poller.register(pipe[0], select.POLLIN)
        left = -1 if deadline is None else max(0, round((deadline - time.monotonic()) * 1000))
        with blocking_call():
            ready = dict(poller.poll(left))
        if _waiters[me][1] != _wakes:
            _seen(pipe)
            raise InterruptedError(errno.EINTR, "interrupted")
        if pipe[0] not in ready:
            return ready
        _seen(pipe)  # a late byte of an interrupt this thread had already seen
        del ready[pipe[0]]
        if ready or (deadline is not None and time.monotonic() >= deadline):
            return ready


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
    global _pending
    _pending = False
    reset_host_waits()
    old_handler = signal.signal(signal.SIGINT, _on_sigint)

    def watch() -> None:
        while True:
            data = rsock.recv(64)
            if not data or b"\xff" in data:
                return
            if signal.SIGINT.value.to_bytes(1, "little") in data:
                wake_host_waits()  # (a wait in another thread: gdb's, the DAP server's)
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


# -- start-up -------------------------------------------------------------------------------------
def report_interrupted() -> None:
    """Write the one line saying that Ctrl-C ended the command (at most once per process)."""
    global _reported
    if _reported:
        return
    _reported = True
    with suppress(OSError):
        os.write(2, b"syxdbg: interrupted\n")


def interrupted_at_start_up() -> bool:
    """Whether Ctrl-C interrupted start-up (its ``KeyboardInterrupt`` was raised)."""
    return _interrupted


def exit_interrupted() -> NoReturn:
    """Leave now, with status 130 and at most one line, running no more Python code."""
    report_interrupted()
    os._exit(STATUS_INTERRUPTED)


def _on_startup_sigint(signum: int, frame: FrameType | None) -> None:
    global _interrupted
    if _interrupted:  # the first one is still unwinding: do not interrupt the cleanup
        exit_interrupted()
    _interrupted = True
    raise KeyboardInterrupt


def install_startup_handler() -> Any:
    """From now on Ctrl-C raises one ``KeyboardInterrupt`` (handled by the caller with
    :func:`report_interrupted`); a second one exits at once. Arms the test hook. Returns
    the previous handler."""
    global _interrupted, _reported
    _interrupted = _reported = False
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.SIG_IGN:  # ignored by whoever started us (a background job)
        signal.signal(signal.SIGINT, _on_startup_sigint)
    _arm_test_hook()
    return previous


def finish_startup_handler(previous: Any = None) -> None:
    """The command is over: disarm the test hook; restore ``previous`` or, if None, make a
    late Ctrl-C (during interpreter shutdown) exit at once with status 130."""
    global _hook_armed
    if _hook_armed:
        _hook_armed = False
        sys.setprofile(None)
    if previous is None:
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            signal.signal(signal.SIGINT, lambda signum, frame: exit_interrupted())
    else:
        signal.signal(signal.SIGINT, previous)


def end_startup_handler() -> None:
    """Back to Python's own Ctrl-C handling (an interactive loop that catches
    ``KeyboardInterrupt`` and goes on, as the shell does)."""
    startup_done()
    signal.signal(signal.SIGINT, signal.default_int_handler)


def startup_done() -> None:
    """Start-up is over; the command's long wait (running, serving) begins.

    A Ctrl-C of start-up whose ``KeyboardInterrupt`` was swallowed (Python only prints one
    raised inside ``__del__``, a weakref callback or a C callback) is raised again here,
    so the command does not go on as if it had not been interrupted. The test hook, if it
    has not fired yet, fires now.
    """
    global _hook_armed
    if _hook_armed:
        _hook_armed = False
        sys.setprofile(None)
        os.kill(os.getpid(), signal.SIGINT)
    if _interrupted and signal.getsignal(signal.SIGINT) is _on_startup_sigint:
        raise KeyboardInterrupt


def _arm_test_hook() -> None:
    global _hook_armed
    text = os.environ.get(SIGINT_AT_CALL_ENV)
    if not text:
        return
    target = int(text)
    calls = 0

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        global _hook_armed
        nonlocal calls
        if event != "call":
            return
        calls += 1
        if calls >= target and _hook_armed:
            _hook_armed = False
            sys.setprofile(None)
            os.kill(os.getpid(), signal.SIGINT)

    _hook_armed = True
    sys.setprofile(profile)
