"""Event descriptors and the rest of networking (issue 16): eventfd, timerfd, signalfd,
epoll edge-triggered and one-shot, AF_UNIX SCM_RIGHTS, non-blocking connect, UDP, a guest
client of a host server, poll timeouts, and an HTTP server in the guest. Each C program is
built by the suite (glibc, musl, aarch64, arm, thumb, riscv64) and compared with its native
run (qemu-user for the other machines) under the real ``syxdbg run``, ``record`` and
``replay --check``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import progs
import pytest

SYXDBG = [sys.executable, "-m", "syxdbg"]
#: glibc and musl on x86_64, aarch64, 32-bit ARM (ARM and Thumb-2) and riscv64 (qemu-user
#: runs the other machines' native side).
TOOLCHAINS = ["gcc", "musl", "aarch64", "arm", "thumb", "riscv64"]


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


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_signalfd_and_threads_as_native(build_probe: Callable[[str, str], Path],
                                        tmp_path: Path, toolchain: str) -> None:
    """sigfdthreads.c: a signal sent to one thread (tgkill; with a handler it never runs,
    blocked) wakes that thread's blocking signalfd read and poll, and another thread's
    signalfd does not see it; a kill wakes the other thread's poll; a read takes the
    caller's own signals before the process's. As natively, recorded, replayed."""
    out = _same_everywhere(build_probe("sigfdthreads", toolchain), [], tmp_path)
    assert out == (b"worker read 128: sig 10 code -6\n"
                   b"worker poll 1 read 128: sig 10 code -6\n"
                   b"main polls after the worker's signals: 0 0\n"
                   b"main read 256: 12 code -6, 10 code 0\n")


# -- sockets: edge triggering, SCM_RIGHTS, connect, UDP, a host server ----------------------------
@contextmanager
def _host_servers() -> Iterator[tuple[int, int]]:
    """A TCP server (reads a request to its end, answers ``reply: <request>``) and a UDP
    echo server on 127.0.0.1, in threads of the test: their ports."""
    tcp = socket.create_server(("127.0.0.1", 0))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    stop = threading.Event()

    def serve_tcp() -> None:
        tcp.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = tcp.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(60)
                request = b""
                while data := conn.recv(4096):
                    request += data
                conn.sendall(b"reply: " + request)

    def serve_udp() -> None:
        udp.settimeout(0.2)
        while not stop.is_set():
            try:
                data, peer = udp.recvfrom(4096)
            except TimeoutError:
                continue
            udp.sendto(data.upper(), peer)

    threads = [threading.Thread(target=serve_tcp), threading.Thread(target=serve_udp)]
    for t in threads:
        t.start()
    try:
        yield tcp.getsockname()[1], udp.getsockname()[1]
    finally:
        stop.set()
        for t in threads:
            t.join()
        tcp.close()
        udp.close()


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_sockets_as_native_and_replayed_without_network(
        build_probe: Callable[[str, str], Path], tmp_path: Path, toolchain: str) -> None:
    """netprobe.c: epoll EPOLLET (a report per edge: new data, same-size data after a
    drain by recv or read, not again after a partial read), level-triggered, EPOLLONESHOT
    re-armed by EPOLL_CTL_MOD, EPOLLOUT edge; SCM_RIGHTS (a pipe and a file passed over an
    AF_UNIX socketpair, MSG_CMSG_CLOEXEC, MSG_CTRUNC without room); non-blocking connect
    (EINPROGRESS, poll for POLLOUT, SO_ERROR 0; refused: ECONNREFUSED); UDP between two
    guest sockets (MSG_TRUNC, sendmmsg/recvmmsg, a poll that times out, EAGAIN); a guest
    client of a host TCP server and a host UDP server. As natively under run and record;
    the recording replays with --check after the host servers are gone."""
    exe = build_probe("netprobe", toolchain)
    rec = tmp_path / "net.syxrec"
    with _host_servers() as (tcp, udp):
        args = [str(tcp), str(udp)]
        native = _run([*_native(exe), *args])
        assert native.returncode == 0, native.stderr
        run = _run([*SYXDBG, "run", str(exe), *args])
        assert (run.stdout, run.returncode) == (native.stdout, 0), run.stderr
        recorded = _run([*SYXDBG, "record", "-q", "-o", str(rec), str(exe), *args])
        assert (recorded.stdout, recorded.returncode) == (native.stdout, 0), recorded.stderr
    out = native.stdout
    assert b"et partial read 5 then 0\n" in out and b"et same size again 1\n" in out
    assert b"received pipe 16 through the pipe cloexec 1\n" in out
    assert b"connect poll 1 revents 0x4 so_error 0\n" in out
    assert b"host tcp reply 29 reply: request from the guest\n" in out
    assert b"host udp poll 1 reply 8 UDP PING from-server 1\n" in out
    with socket.socket() as probe:  # the server's port is closed now
        assert probe.connect_ex(("127.0.0.1", tcp)) != 0
    _replay_check(rec)


# -- last-write on bytes a system call wrote ------------------------------------------------------
@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_last_write_names_the_system_call(build_probe: Callable[[str, str], Path],
                                          toolchain: str) -> None:
    """``last-write`` on a buffer filled by recv, read of a pipe and recvmsg lands on the
    system call instruction and names the call with its arguments; a byte the program
    stored afterwards is the store's."""
    import syxdbg
    from syxdbg.commands import make_registry

    exe = build_probe("recvbuf", toolchain)
    with syxdbg.open(str(exe), env={}) as s:
        r = make_registry(s)
        sym = s.symbols

        def last_write(where: str) -> str:
            assert "exited with status 0" in r.run_text("run")
            return r.run_text(f"last-write {where}")

        text = last_write("inbox 19")
        assert "written by the system call recvfrom(" in text, text
        assert f"{sym['inbox']:#x}, 0x40, 0, 0, 0)" in text
        position = int(text.split("position ")[1].split()[0])
        assert s.position == position
        text = last_write("piped+1 4")
        assert f", {sym['piped']:#x}, 0x40)" in text and "system call read(" in text
        assert "system call recvmsg(" in last_write("gathered 8")
        text = last_write("piped 1")
        assert "system call" not in text and "recvbuf.c:24" in text


# -- an HTTP server in the guest ------------------------------------------------------------------
def _drive_httpd(cmd: list[str]) -> tuple[list[tuple[int, bytes]], bytes]:
    """Start the server, read its port from its first line, GET three paths as a host
    client (no sleeps: the server's output and the responses pace the test)."""
    import http.client

    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stderr is not None
    port = int(p.stdout.readline().split()[1])
    answers = []
    for path in ("/index.html", "/blob.bin", "/missing"):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request("GET", path)
        r = c.getresponse()
        answers.append((r.status, r.read()))
        c.close()
    rest = p.stdout.read()
    assert p.wait(timeout=120) == 0, p.stderr.read()
    return answers, rest


@pytest.mark.parametrize(("toolchain", "how"), [("gcc", "read"), ("gcc", "sendfile"),
                                                ("musl", "read"), ("aarch64", "read")])
def test_http_server_in_the_guest(build_probe: Callable[[str, str], Path], tmp_path: Path,
                                  toolchain: str, how: str) -> None:
    """httpd.c (epoll edge-triggered over non-blocking sockets, accept4 until EAGAIN, recv
    until EAGAIN, files sent with read+send or sendfile) serves a page, a 300 kB file and
    a 404 to a host HTTP client: the same under syxdbg run and record as natively; the
    recording replays with --check after the server is gone."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "index.html").write_bytes(b"<h1>served from the guest</h1>\n")
    blob = bytes((i * 7 + i // 251) & 0xFF for i in range(300_000))
    (root / "blob.bin").write_bytes(blob)
    exe = build_probe("httpd", toolchain)
    args = [str(root), "3", how]
    native = _drive_httpd([*_native(exe), *args])
    assert native[0] == [(200, b"<h1>served from the guest</h1>\n"), (200, blob),
                         (404, b"not found\n")]
    assert _drive_httpd([*SYXDBG, "run", str(exe), *args]) == native
    rec = tmp_path / "httpd.syxrec"
    assert _drive_httpd([*SYXDBG, "record", "-q", "-o", str(rec), str(exe), *args]) == native
    _replay_check(rec)


# -- a forking server -----------------------------------------------------------------------------
def _drive_forkserver(cmd: list[str]) -> tuple[list[bytes], bytes]:
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stderr is not None
    port = int(p.stdout.readline().split()[1])
    echoes = []
    for msg in (b"first client", b"second client " * 50):
        with socket.create_connection(("127.0.0.1", port), timeout=60) as c:
            c.sendall(msg)
            c.shutdown(socket.SHUT_WR)
            got = b""
            while data := c.recv(4096):
                got += data
            echoes.append(got)
    rest = p.stdout.read()
    assert p.wait(timeout=120) == 0, p.stderr.read()
    return echoes, rest


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_forking_server(build_probe: Callable[[str, str], Path], tmp_path: Path,
                        toolchain: str) -> None:
    """forkserver.c: a child process per client; the parent's close of its copy of the
    connection does not end it (the socket is shut down when the last fd of any process
    goes: the child's exit), so each client gets its whole echo and the end of the
    stream. As natively under run and record; replay --check with the port closed."""
    exe = build_probe("forkserver", toolchain)
    native = _drive_forkserver([*_native(exe), "2"])
    assert native == ([b"FIRST CLIENT", b"SECOND CLIENT " * 50],
                      b"child 0 status 0\nchild 1 status 0\n")
    assert _drive_forkserver([*SYXDBG, "run", str(exe), "2"]) == native
    rec = tmp_path / "fork.syxrec"
    assert _drive_forkserver([*SYXDBG, "record", "-q", "-o", str(rec), str(exe), "2"]) == native
    _replay_check(rec)


# -- blocking socket calls and threads -------------------------------------------------------------
def _drive_threadnet(cmd: list[str]) -> tuple[bytes, bytes]:
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stderr is not None
    head = b""
    while not head.endswith(b"\n") or not head.splitlines()[-1].startswith(b"port"):
        line = p.stdout.readline()
        assert line, p.stderr.read()
        head += line
    port = int(head.splitlines()[-1].split()[1])
    with socket.create_connection(("127.0.0.1", port), timeout=60) as c:
        c.sendall(b"hello from the host")
        answer = b""
        while not answer.endswith(b"host"):
            data = c.recv(200)
            assert data
            answer += data
    rest = p.stdout.read()
    assert p.wait(timeout=120) == 0, p.stderr.read()
    return answer, b"\n".join(head.splitlines()[:-1]) + b"\n" + rest


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_blocking_socket_calls_let_threads_run(build_probe: Callable[[str, str], Path],
                                               tmp_path: Path, toolchain: str) -> None:
    """threadnet.c: the main thread blocks in accept and recv while a client thread of the
    same process connects and sends (without cooperation the client would never run: a
    hang); then it blocks in poll with no timeout, accept and read of a host client while a
    worker waits on a condition variable (the scheduler waits on the host instead of
    reporting a deadlock, and the poll returns 1, never a spurious 0).
    As natively under run and record; replay --check with the port closed."""
    exe = build_probe("threadnet", toolchain)
    native = _drive_threadnet([*_native(exe)])
    assert native == (b"worker saw: hello from the host",
                      b"main thread got 18: ping from a thread\nclient thread got 4: pong\n"
                      b"client thread returned 0\npoll 1, host client said 19 bytes\n")
    assert _drive_threadnet([*SYXDBG, "run", str(exe)]) == native
    rec = tmp_path / "threadnet.syxrec"
    assert _drive_threadnet([*SYXDBG, "record", "-q", "-o", str(rec), str(exe)]) == native
    _replay_check(rec)


@pytest.mark.parametrize(("program", "args"), [("threadnet", []), ("echoserver", ["1"])])
def test_ctrl_c_while_a_server_waits(build_probe: Callable[[str, str], Path], program: str,
                                     args: list[str]) -> None:
    """Ctrl-C once the server printed its port (it is then waiting for a client: in the
    scheduler's host wait with a worker thread on a condition variable, or in a lone
    poll) stops syxdbg run with status 130 and the one-line report."""
    import signal

    exe = build_probe(program, "gcc")
    p = subprocess.Popen([*SYXDBG, "run", str(exe), *args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert p.stdout is not None and p.stderr is not None
    while not p.stdout.readline().startswith(b"port"):
        pass
    p.send_signal(signal.SIGINT)
    assert p.wait(timeout=60) == 130
    assert b"syxdbg: interrupted at pc" in p.stderr.read()
