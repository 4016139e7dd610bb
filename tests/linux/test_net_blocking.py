"""Blocking socket calls that wait for the host (issue 16): Ctrl-C while the guest waits in
accept or recv stops ``syxdbg run`` and gdb's ``syxdbg serve`` cleanly, the interrupted call
is made again when the guest resumes (nothing lost, nothing twice, replayed the same way);
a blocking connect to a listener that accepts late and a send into a full buffer let the
other threads run, finish when the host side moves, and replay without the network.

Programs: ``programs/netblock.c`` built by the suite; the host side is this test, over
loopback with ports chosen by the kernel (port 0), and every wait is on output, never a
sleep.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import progs
import pytest

SYXDBG = [sys.executable, "-m", "syxdbg"]
TOOLCHAINS = ["gcc", "musl", "aarch64"]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "gdb"))
from rsp import RspClient, le, parse_stop  # noqa: E402

#: gdb's register number of the pc, and the bytes of the system call instruction.
PC = {"x86_64": 0x10, "aarch64": 0x20}
SYSCALL = {"x86_64": b"\x0f\x05", "aarch64": b"\x01\x00\x00\xd4"}


def _native(exe: Path) -> list[str]:
    qemu = progs.qemu_for(exe)
    return [qemu, str(exe)] if qemu else [str(exe)]


def _port_line(stream: object) -> int:
    """Read lines until ``port N``: N."""
    while True:
        line = stream.readline()  # type: ignore[attr-defined]
        assert line, "the server ended before printing its port"
        if line.startswith(b"port "):
            return int(line.split()[1])


# -- Ctrl-C: syxdbg run ----------------------------------------------------------------------
@pytest.mark.parametrize("where", ["accept", "recv", "read"])
def test_sigint_while_the_server_waits(build_probe: Callable[[str, str], Path],
                                       where: str) -> None:
    """SIGINT to ``syxdbg run`` of a server waiting in accept (after it printed its port),
    or in recv/read (after it printed ``accepted`` for the test's client): status 130 and
    the one-line report, at once."""
    exe = build_probe("netblock", "gcc")
    args = ["serve", "read"] if where == "read" else ["serve"]
    p = subprocess.Popen([*SYXDBG, "run", str(exe), *args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    client = None
    try:
        assert p.stdout is not None and p.stderr is not None
        port = _port_line(p.stdout)
        if where != "accept":
            client = socket.create_connection(("127.0.0.1", port), timeout=60)
            assert p.stdout.readline() == b"accepted\n"
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=60) == 130
        assert b"syxdbg: interrupted at pc" in p.stderr.read()
    finally:
        if client is not None:
            client.close()
        p.kill()
        p.wait()


# -- Ctrl-C: gdb's interrupt to syxdbg serve --------------------------------------------------
@contextmanager
def _served(exe: Path, args: list[str]) -> Iterator[tuple[subprocess.Popen[bytes], RspClient]]:
    p = subprocess.Popen([*SYXDBG, "serve", "--port", "0", str(exe), *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    try:
        assert p.stderr is not None
        line = p.stderr.readline().decode()
        m = re.match(r"syxdbg: listening on 127\.0\.0\.1:(\d+)$", line.strip())
        assert m, line
        rsp = RspClient(int(m.group(1)), timeout=120)
        try:
            yield p, rsp
        finally:
            rsp.sock.close()
    finally:
        p.kill()
        p.wait()


def _interrupt_in_syscall(rsp: RspClient, arch: str) -> int:
    """gdb's Ctrl-C (``\\x03``) while the guest runs: the stop (SIGINT) is at a system call
    instruction, where a call waiting on the host is made again. (If the interrupt lands
    before the guest reached its wait, it continues and is interrupted again.) The pc."""
    for _ in range(50):
        rsp.send_raw(b"\x03")
        stop = rsp.reply()
        sig, fields = parse_stop(stop)
        assert sig == 2, stop
        pc = le(fields[f"{PC[arch]:x}"])
        code = bytes.fromhex(rsp.ask(b"m%x,%x" % (pc, len(SYSCALL[arch]))).decode())
        if code == SYSCALL[arch]:
            return pc
        rsp.send(b"vCont;c")
    raise AssertionError("never stopped in the waiting system call")


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_gdb_interrupt_while_the_guest_waits_in_recv(build_probe: Callable[[str, str], Path],
                                                     toolchain: str) -> None:
    """``syxdbg serve`` of the echo server: gdb continues, the test's client connects, the
    guest waits in recv; gdb's interrupt (RSP 0x03) stops it there (SIGINT, pc at the
    system call), gdb continues, the client's bytes are echoed once and the server reports
    them exactly; going back to the start and forward again replays the interrupted call
    the same way (the end of history again, no second output)."""
    exe = build_probe("netblock", toolchain)
    arch = "aarch64" if toolchain == "aarch64" else "x86_64"
    with _served(exe, ["serve"]) as (p, rsp):
        assert p.stdout is not None
        rsp.send(b"vCont;c")
        port = _port_line(p.stdout)
        with socket.create_connection(("127.0.0.1", port), timeout=120) as client:
            assert p.stdout.readline() == b"accepted\n"
            pc = _interrupt_in_syscall(rsp, arch)
            rsp.send(b"vCont;c")
            client.sendall(b"hello, world")
            got = b""
            while len(got) < 12:
                got += client.recv(64)
            assert got == b"hello, world"
            client.shutdown(socket.SHUT_WR)  # the server's recv gives 0: it reports, exits
            stop = rsp.reply()
            assert stop.startswith(b"T05replaylog:end"), stop
        assert p.stdout.readline() == b"server got 12 bytes: hello, world\n"
        # Back to the start and forward again: the recorded interrupt is replayed.
        assert rsp.ask(b"bc").startswith(b"T05replaylog:begin")
        assert rsp.ask(b"vCont;c").startswith(b"T05replaylog:end")
        assert pc
        rsp.send(b"k")
        assert p.wait(timeout=60) == 0
        assert b"server got" not in p.stdout.read()  # (a replay writes nothing)
