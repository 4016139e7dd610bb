#!/usr/bin/env python3
"""Requests per second of a guest server (issue 16): the C echo server of the test suite
(``tests/linux/programs/echoserver.c``, waiting with epoll and EPOLLONESHOT re-armed each
time, recv and send on a TCP_NODELAY socket) natively, under ``syxdbg run`` and under
``syxdbg record``, driven by a client here over loopback.

A request is one round trip on one connection: the client sends 64 bytes and waits for
the 64 echoed bytes before the next. The rate is counted from the first request to the
last (the emulator's start-up is not in it); each runner gets ``--reps`` connections of
``--requests`` round trips, the median rate is reported, and the ratios against native.
Per round trip the server makes 4 system calls (epoll_wait, epoll_ctl, recv, send); under
``record`` each of them is logged (the bytes received, readiness).

Usage: python benchmarks/net.py [--requests N] [--reps R] [--quick]
(``--quick``: 200 requests, one connection: a smoke test that the benchmark still runs)
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "tests" / "linux" / "programs" / "echoserver.c"
MESSAGE = b"request: 64 bytes of lower case text, echoed in upper case  ...\n"


def _rates(cmd: list[str], requests: int, reps: int) -> list[float]:
    """Start the server for ``reps`` clients, read its port, run the round trips; the
    requests per second of each connection."""
    p = subprocess.Popen([*cmd, str(reps), "epoll"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert p.stdout is not None
    p.stdout.readline()  # the socketpair line
    port = int(p.stdout.readline().split()[1])
    want = MESSAGE.upper()
    rates = []
    for _ in range(reps):
        with socket.create_connection(("127.0.0.1", port), timeout=120) as c:
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            t0 = time.perf_counter()
            for _ in range(requests):
                c.sendall(MESSAGE)
                got = b""
                while len(got) < len(want):
                    data = c.recv(4096)
                    if not data:
                        raise RuntimeError("the server closed the connection")
                    got += data
                if got != want:
                    raise RuntimeError(f"bad echo {got!r}")
            rates.append(requests / (time.perf_counter() - t0))
            c.shutdown(socket.SHUT_WR)
            while c.recv(4096):
                pass
    p.stdout.read()
    if p.wait(timeout=120) != 0:
        raise RuntimeError(p.stderr.read().decode() if p.stderr else "server failed")
    return rates


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=5000, help="round trips per connection")
    ap.add_argument("--reps", type=int, default=3, help="connections per runner")
    ap.add_argument("--quick", action="store_true", help="200 requests, one connection")
    ns = ap.parse_args()
    requests = 200 if ns.quick else ns.requests
    reps = 1 if ns.quick else max(1, ns.reps)
    gcc = shutil.which("gcc")
    if gcc is None:
        print("echo server requests per second (skipped): gcc is not installed")
        return 0
    with tempfile.TemporaryDirectory(prefix="syxdbg-net-") as tmp:
        exe = Path(tmp) / "echoserver"
        subprocess.run([gcc, "-O1", "-static", "-o", str(exe), str(SOURCE)], check=True)
        syx = [sys.executable, "-m", "syxdbg"]
        runners = {
            "native": [str(exe)],
            "syxdbg run": [*syx, "run", str(exe)],
            "syxdbg record": [*syx, "record", "-q", "-o", str(Path(tmp) / "echo.syxrec"),
                              str(exe)],
        }
        rate = {name: statistics.median(_rates(cmd, requests, reps))
                for name, cmd in runners.items()}
    print(f"echo server over loopback: {requests} round trips of {len(MESSAGE)} bytes per "
          f"connection, {reps} connection(s), median requests/s")
    print(f"{'runner':<16}{'requests/s':>12}{'ratio to native':>18}")
    for name, r in rate.items():
        print(f"{name:<16}{r:>12,.0f}{r / rate['native']:>17.3f}x")
    print(f"ratio run/native: {rate['syxdbg run'] / rate['native']:.3f}x, "
          f"record/native: {rate['syxdbg record'] / rate['native']:.3f}x, "
          f"record/run: {rate['syxdbg record'] / rate['syxdbg run']:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
