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

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
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
PC = {"gcc": 0x10, "aarch64": 0x20, "riscv64": 0x20, "thumb": 0xF, "arm": 0xF}
SYSCALL = {"gcc": b"\x0f\x05", "aarch64": b"\x01\x00\x00\xd4",
           "riscv64": b"\x73\x00\x00\x00", "thumb": b"\x00\xdf",
           "arm": b"\x00\xdf"}  # (an ARM build's glibc makes its calls in a Thumb helper)


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
def _served(exe: Path, args: list[str], stdin: int = subprocess.DEVNULL,
            ) -> Iterator[tuple[subprocess.Popen[bytes], RspClient]]:
    p = subprocess.Popen([*SYXDBG, "serve", "--port", "0", str(exe), *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=stdin)
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


@pytest.mark.parametrize("toolchain", list(SYSCALL))
def test_gdb_interrupt_while_the_guest_waits_in_recv(build_probe: Callable[[str, str], Path],
                                                     toolchain: str) -> None:
    """``syxdbg serve`` of the echo server: gdb continues, the test's client connects, the
    guest waits in recv; gdb's interrupt (RSP 0x03) stops it there (SIGINT, pc at the
    system call), gdb continues, the client's bytes are echoed once and the server reports
    them exactly; going back to the start and forward again replays the interrupted call
    the same way (the end of history again, no second output)."""
    exe = build_probe("netblock", toolchain)
    arch = toolchain
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


def test_gdb_interrupt_while_the_guest_reads_its_stdin() -> None:
    """busybox ``head -n 1`` under ``syxdbg serve`` waits for its standard input (a pipe
    the test holds); gdb's interrupt stops it at the read, which is made again when gdb
    continues: the line the test then writes is printed, and the program does not see
    EINTR ("Interrupted system call")."""
    with _served(Path("/bin/busybox"), ["head", "-n", "1"], stdin=subprocess.PIPE) as (p, rsp):
        assert p.stdin is not None and p.stdout is not None
        rsp.send(b"vCont;c")
        _interrupt_in_syscall(rsp, "gcc")
        rsp.send(b"vCont;c")
        p.stdin.write(b"a line\n")
        p.stdin.close()
        stop = rsp.reply()
        assert stop.startswith(b"T05replaylog:end"), stop
        assert p.stdout.readline() == b"a line\n"
        rsp.send(b"k")
        assert p.wait(timeout=60) == 0
        assert p.stderr is not None and b"Interrupted" not in p.stderr.read()


# -- a blocking connect, a full send buffer --------------------------------------------------
@contextmanager
def _late_host(mode: str) -> Iterator[tuple[int, int, list[bytes]]]:
    """The host side of ``netblock connect|send``: (target port, control port, what the
    host saw). ``connect``: a listener whose queue is full (one connection of the test's
    own waits in it) until "go" comes on the control connection. ``send``: a listener whose
    connection is read only after "go", then to its end; the reply on the control
    connection says how much came (and its crc32)."""
    target = socket.create_server(("127.0.0.1", 0), backlog=0)
    ctl = socket.create_server(("127.0.0.1", 0))
    filler = socket.create_connection(target.getsockname()) if mode == "connect" else None
    seen: list[bytes] = []

    def host() -> None:
        c, _ = ctl.accept()
        with c:
            if mode == "send":
                d, _ = target.accept()
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = c.recv(16)
                assert chunk, "control connection closed early"
                buf += chunk
            seen.append(buf)
            if mode == "connect":
                first, _ = target.accept()  # the filler: now the guest's connect gets in
                late, _ = target.accept()
                seen.append(b"accepted late")
                first.close()
                late.close()
                c.sendall(b"connected\n")
            else:
                total, crc = 0, 0
                with d:
                    while chunk := d.recv(1 << 20):
                        total += len(chunk)
                        crc = zlib.crc32(chunk, crc)
                c.sendall(b"got %d crc %08x\n" % (total, crc))

    t = threading.Thread(target=host, daemon=True)
    t.start()
    try:
        yield target.getsockname()[1], ctl.getsockname()[1], seen
        t.join(timeout=120)
        assert not t.is_alive()
    finally:
        target.close()
        ctl.close()
        if filler is not None:
            filler.close()


def _expected_crc() -> int:
    """crc32 of netblock.c's 32 MiB: byte i is (7 i + i / 4096) mod 256."""
    pattern = bytes((j * 7) & 0xFF for j in range(1 << 12))
    crc = 0
    for base in range(0, 32 << 20, 1 << 12):
        c = (base * 7 + (base >> 12)) & 0xFF
        crc = zlib.crc32(pattern.translate(bytes((k + c) & 0xFF for k in range(256))), crc)
    return crc


def _run_late(cmd: list[str], mode: str) -> bytes:
    with _late_host(mode) as (target, control, seen):
        p = subprocess.run([*cmd, mode, str(target), str(control)], capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=300, check=False)
    assert p.returncode == 0, p.stderr
    assert seen[0] == b"go\n"
    return p.stdout


@pytest.mark.parametrize("toolchain", [*TOOLCHAINS, "arm", "thumb", "riscv64"])
@pytest.mark.parametrize("mode", ["connect", "send"])
def test_blocking_connect_and_full_send_buffer(build_probe: Callable[[str, str], Path],
                                               tmp_path: Path, toolchain: str,
                                               mode: str) -> None:
    """A blocking connect whose listener accepts late, and a 32 MiB blocking send that the
    host reads only later: the main thread waits while a worker thread runs (it tells the
    host to go on: without cooperation, a hang), and the call completes as natively; the
    same under record, and the recording replays with --check once the host is gone."""
    exe = build_probe("netblock", toolchain)
    native = _run_late(_native(exe), mode)
    if mode == "connect":
        assert native == b"blocking connect: 0\nworker: sent go\nhost: connected\n"
    else:
        want = b"blocking send: %d\nworker: sent go\nhost: got %d crc %08x\n" % (
            32 << 20, 32 << 20, _expected_crc())
        assert native == want
    assert _run_late([*SYXDBG, "run", str(exe)], mode) == native
    rec = tmp_path / f"netblock-{mode}.syxrec"
    assert _run_late([*SYXDBG, "record", "-q", "-o", str(rec), str(exe)], mode) == native
    check = subprocess.run([*SYXDBG, "replay", "--check", str(rec)], capture_output=True,
                           timeout=300, check=False)
    assert check.returncode == 0, check.stderr
    assert b"as recorded" in check.stdout + check.stderr


@pytest.mark.parametrize("mode", ["lone-connect", "lone-send"])
def test_sigint_in_a_blocking_connect_or_send(build_probe: Callable[[str, str], Path],
                                              mode: str) -> None:
    """SIGINT to ``syxdbg run`` of a lone thread waiting in a blocking connect (the
    listener's queue is full) or a 64 MiB send (the host never reads): status 130 and the
    one-line report."""
    exe = build_probe("netblock", "gcc")
    target = socket.create_server(("127.0.0.1", 0), backlog=0)
    filler = socket.create_connection(target.getsockname()) if mode == "lone-connect" \
        else None
    p = subprocess.Popen([*SYXDBG, "run", str(exe), mode, str(target.getsockname()[1])],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    try:
        assert p.stdout is not None and p.stderr is not None
        assert p.stdout.readline() == b"waiting\n"
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=60) == 130
        assert b"syxdbg: interrupted at pc" in p.stderr.read()
    finally:
        p.kill()
        p.wait()
        target.close()
        if filler is not None:
            filler.close()


def _waiting_on_the_host(pid: int) -> bool:
    """Whether a thread of process ``pid`` is inside poll(2) or ppoll(2) now (the host
    wait of a guest system call)."""
    numbers = {"aarch64": ("73",)}.get(os.uname().machine, ("7", "271"))
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            if (task / "syscall").read_text().split()[0] in numbers:
                return True
    return False


#: Where each build's recv makes its system call (32-bit ARM glibc: a helper).
RECV_SYSCALL = {"gcc": b"<recv+", "riscv64": b"<recv+", "arm": b"<__libc_do_syscall+",
                "thumb": b"<__libc_do_syscall+"}


@pytest.mark.parametrize("toolchain", list(RECV_SYSCALL))
def test_shell_ctrl_c_while_the_guest_waits_in_recv(build_probe: Callable[[str, str], Path],
                                                    toolchain: str) -> None:
    """The shell (``-ex continue``, twice): once the guest waits in recv (the shell's main
    thread is in its host wait, seen in /proc), Ctrl-C gives ``interrupted at position N:
    ... <recv...>`` (the pc at the system call instruction, 2 bytes for a Thumb svc);
    the next continue makes the call again and the exchange completes once. On x86_64,
    riscv64, 32-bit ARM and Thumb (whose libc calls the recv system call, not recvfrom)."""
    exe = build_probe("netblock", toolchain)
    p = subprocess.Popen([*SYXDBG, "shell", "-ex", "continue", "-ex", "continue", str(exe),
                          "serve"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    try:
        assert p.stdout is not None
        port = _port_line(p.stdout)
        with socket.create_connection(("127.0.0.1", port), timeout=120) as client:
            assert p.stdout.readline() == b"accepted\n"
            deadline = time.monotonic() + 60
            while not _waiting_on_the_host(p.pid):  # (microseconds: no sleep)
                assert time.monotonic() < deadline, "the guest never waited in recv"
            p.send_signal(signal.SIGINT)
            line = p.stdout.readline()
            while b"interrupted at position" not in line:
                assert line, "the shell ended"
                line = p.stdout.readline()
            assert RECV_SYSCALL[toolchain] in line, line
            client.sendall(b"hello, world")
            got = b""
            while len(got) < 12:
                got += client.recv(64)
            assert got == b"hello, world"
            client.shutdown(socket.SHUT_WR)
            out, err = p.communicate(timeout=120)
        assert out.count(b"server got 12 bytes: hello, world\n") == 1, out + err
        assert b"[program exited with status 0" in out
        assert p.returncode == 0, err
    finally:
        p.kill()
        p.wait()


@contextmanager
def _v6_servers() -> Iterator[tuple[int, int]]:
    """A TCP server on [::1] answering ``pong: <what came>`` and a UDP echo server on
    [::1], in threads of the test: their ports."""
    tcp = socket.create_server(("::1", 0), family=socket.AF_INET6)
    udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    udp.bind(("::1", 0))

    def serve() -> None:
        c, _ = tcp.accept()
        with c:
            c.sendall(b"pong: " + c.recv(64))
        data, peer = udp.recvfrom(64)
        udp.sendto(b"echo: " + data, peer)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield tcp.getsockname()[1], udp.getsockname()[1]
        t.join(timeout=120)
    finally:
        tcp.close()
        udp.close()


@pytest.mark.parametrize("toolchain", [*TOOLCHAINS, "arm", "thumb", "riscv64"])
def test_ipv6_tcp_and_udp(build_probe: Callable[[str, str], Path], tmp_path: Path,
                          toolchain: str) -> None:
    """AF_INET6 over ::1: a TCP exchange with a host server and a UDP datagram echoed by the
    host (connect, getsockname/getpeername with sockaddr_in6, send, recv): as natively,
    under run and record; the recording replays with --check once the servers are gone."""
    exe = build_probe("netblock", toolchain)

    def run(cmd: list[str]) -> bytes:
        with _v6_servers() as (tcp, udp):
            p = subprocess.run([*cmd, "v6", str(tcp), str(udp)], capture_output=True,
                               stdin=subprocess.DEVNULL, timeout=300, check=False)
        assert p.returncode == 0, p.stderr
        return p.stdout

    native = run(_native(exe))
    assert native == (b"tcp6: family 10/10 len 28 peer ::1, got pong: v6 ping\n"
                      b"udp6: family 10/10 len 28 peer ::1, got echo: v6 ping\n")
    assert run([*SYXDBG, "run", str(exe)]) == native
    rec = tmp_path / "netblock-v6.syxrec"
    assert run([*SYXDBG, "record", "-q", "-o", str(rec), str(exe)]) == native
    check = subprocess.run([*SYXDBG, "replay", "--check", str(rec)], capture_output=True,
                           timeout=300, check=False)
    assert check.returncode == 0, check.stderr
    assert b"as recorded" in check.stdout + check.stderr


def test_gdb_interrupt_while_threads_wait_on_the_host(
        build_probe: Callable[[str, str], Path]) -> None:
    """threadnet.c under ``syxdbg serve``: once every guest thread waits (the main thread
    in poll for a host client, a worker on a condition variable) and the server's run is
    in its host wait (seen in /proc), gdb's interrupt gives a SIGINT stop; continue, and
    the host client's exchange completes as in a plain run."""
    exe = build_probe("threadnet", "gcc")
    with _served(exe, []) as (p, rsp):
        assert p.stdout is not None
        rsp.send(b"vCont;c")
        port = _port_line(p.stdout)
        deadline = time.monotonic() + 60
        while not _waiting_on_the_host(p.pid):  # (microseconds: no sleep)
            assert time.monotonic() < deadline, "the guest never waited on the host"
        rsp.send_raw(b"\x03")
        sig, _ = parse_stop(rsp.reply())
        assert sig == 2
        rsp.send(b"vCont;c")
        with socket.create_connection(("127.0.0.1", port), timeout=120) as c:
            c.sendall(b"hello from the host")
            answer = b""
            while not answer.endswith(b"host"):
                data = c.recv(200)
                assert data
                answer += data
        assert answer == b"worker saw: hello from the host"
        assert rsp.reply().startswith(b"T05replaylog:end")
        rsp.send(b"k")
        assert p.wait(timeout=60) == 0
        assert p.stdout.read().endswith(b"poll 1, host client said 19 bytes\n")
