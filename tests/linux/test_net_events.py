"""Event descriptors and the rest of networking (issue 16): eventfd, timerfd, signalfd,
epoll edge-triggered and one-shot, AF_UNIX SCM_RIGHTS, non-blocking connect, UDP, a guest
client of a host server, poll timeouts, and an HTTP server in the guest. Each C program is
built by the suite (glibc, musl, aarch64) and compared with its native run (qemu-user for
aarch64) under the real ``syxdbg run``, ``record`` and ``replay --check``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import progs
import pytest

SYXDBG = [sys.executable, "-m", "syxdbg"]
TOOLCHAINS = ["gcc", "musl", "aarch64"]


def _native(exe: Path) -> list[str]:
    qemu = progs.qemu_for(exe)
    return [qemu, str(exe)] if qemu else [str(exe)]


def _run(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout, check=False)


def _replay_check(rec: Path) -> None:
    check = _run([*SYXDBG, "replay", "--check", str(rec)])
    assert check.returncode == 0, check.stderr
    assert b"as recorded" in check.stdout + check.stderr


def _same_everywhere(exe: Path, args: list[str], tmp_path: Path) -> bytes:
    """Native, ``syxdbg run`` and ``syxdbg record`` give the same stdout and status 0; the
    recording replays with --check. Returns the output."""
    native = _run([*_native(exe), *args])
    assert native.returncode == 0, native.stderr
    run = _run([*SYXDBG, "run", str(exe), *args])
    assert (run.stdout, run.returncode) == (native.stdout, 0), run.stderr
    rec = tmp_path / f"{exe.name}.syxrec"
    recorded = _run([*SYXDBG, "record", "-q", "-o", str(rec), str(exe), *args])
    assert (recorded.stdout, recorded.returncode) == (native.stdout, 0), recorded.stderr
    _replay_check(rec)
    return native.stdout


# -- eventfd, timerfd, signalfd ------------------------------------------------------------------
@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_eventfd_timerfd_signalfd_as_native(build_probe: Callable[[str, str], Path],
                                             tmp_path: Path, toolchain: str) -> None:
    """eventfd (counter, EFD_SEMAPHORE, EAGAIN, EINVAL, poll, a blocking read woken by
    another thread), timerfd (one-shot and periodic, relative and absolute, gettime, poll
    and epoll waits, blocking reads), signalfd (blocked signals read as signalfd_siginfo,
    thread-directed first, poll readiness, mask update): as natively, recorded, replayed."""
    out = _same_everywhere(build_probe("fdevents", toolchain), [], tmp_path)
    assert b"eventfd from thread 8 42" in out
    assert b"timerfd poll wait 1 revents 0x1" in out
    assert b"signalfd read 256: 12 code -6 pid-ok 1, 10 code 0" in out
