"""The common system-call surface (issue 16): readiness (poll, ppoll, select, pselect6),
file metadata, process facts and Linux's error semantics, each checked against the native
run of the same program, built by the suite, under the real ``syxdbg run``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import progs
import pytest

HERE = Path(__file__).resolve().parent
SYXDBG = [sys.executable, "-m", "syxdbg"]
BUSYBOX = "/bin/busybox"


def _build(src: str, out: Path, *flags: str) -> Path:
    exe = out / Path(src).stem
    cmd = ["gcc", "-O1", "-Wall", "-static", *flags, "-o", str(exe), str(HERE / "programs" / src)]
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stderr
    return exe


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory,
          require_tool: Callable[[str], str]) -> Callable[..., Path]:
    require_tool("gcc")
    out = tmp_path_factory.mktemp("surface")
    cache: dict[str, Path] = {}

    def build(src: str, *flags: str) -> Path:
        if src not in cache:
            cache[src] = _build(src, out, *flags)
        return cache[src]

    return build


def _busybox() -> str:
    """The static busybox (busybox-static: the host's would need a sysroot)."""
    if not os.path.exists(BUSYBOX):
        pytest.fail("busybox-static is not installed (apt-get install busybox-static)")
    assert not progs.is_dynamic(BUSYBOX), f"{BUSYBOX} is not static"
    return BUSYBOX


# -- readiness ---------------------------------------------------------------------------------
def _interactive(cmd: list[str], lines: list[bytes]) -> tuple[bytes, int]:
    """Run ``cmd`` with a pipe as stdin the test controls: wait for the first output line
    (a timeout round), then send each of ``lines`` once the previous answer came, then close
    stdin. No sleeps decide the outcome: the program's own output paces the test."""
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    assert p.stdin is not None and p.stdout is not None
    out = [p.stdout.readline()]
    answered = tuple(b"%s 1 " % w for w in (b"poll", b"ppoll", b"select", b"pselect"))
    for line in lines:
        p.stdin.write(line)
        p.stdin.flush()
        while True:  # until this line's answer
            out.append(p.stdout.readline())
            assert out[-1], b"".join(out) + (p.stderr.read() if p.stderr else b"")
            if out[-1].startswith(answered):
                break
    p.stdin.close()
    rest = p.stdout.read()
    err = p.stderr.read() if p.stderr else b""
    assert p.wait(timeout=120) == 0, err
    return b"".join(out) + rest, p.returncode


def _normal(out: bytes) -> list[bytes]:
    """The rounds of programs/pollwait.c with repeated timeout rounds folded into one (how
    many rounds time out before a line arrives depends on the wall clock)."""
    lines: list[bytes] = []
    for line in out.splitlines():
        if not lines or line != lines[-1]:
            lines.append(line)
    return lines


@pytest.mark.parametrize("how", ["poll", "ppoll", "select", "pselect"])
def test_poll_stdin_with_a_timeout_as_native(built: Callable[..., Path], how: str) -> None:
    exe = built("pollwait.c")
    args = [how, "50", "40"]
    native = _interactive([str(exe), *args], [b"one\n", b"two\n"])
    emu = _interactive([*SYXDBG, "run", str(exe), *args], [b"one\n", b"two\n"])
    flag = b"0x10" if how.endswith("poll") else b"0x1"  # POLLHUP / readable at the end
    assert _normal(native[0])[0] == b"%s 0 flags 0" % how.encode()
    assert _normal(emu[0]) == _normal(native[0])
    assert _normal(emu[0])[-1] == b"%s 1 flags %s read 0 \"\"" % (how.encode(), flag)


def test_poll_results_are_recorded_and_replayed(built: Callable[..., Path],
                                                tmp_path: Path) -> None:
    """The readiness answers and the bytes read are inputs: the replay needs no stdin and
    reproduces the run (--check), with the same timeout rounds."""
    exe = built("pollwait.c")
    rec = tmp_path / "poll.syxrec"
    out, _ = _interactive([*SYXDBG, "record", "-q", "-o", str(rec), str(exe), "poll", "30",
                           "40"], [b"hello\n"])
    assert b'read 6 "hello"' in out
    check = subprocess.run([*SYXDBG, "replay", "--check", str(rec)], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=300, check=False)
    assert check.returncode == 0, check.stderr


@pytest.mark.parametrize("mode", ["timeout", "expire", "wake", "select"])
def test_poll_with_threads_in_virtual_time(built: Callable[..., Path],
                                           emu_run: Callable[..., progs.Result],
                                           mode: str) -> None:
    """A poll that times out while the other thread is blocked (nothing can wake it), one
    whose timeout expires in virtual time once the other thread blocks (no deadlock report),
    and polls woken by the other thread's write, against native."""
    exe = built("pollthreads.c", "-pthread")
    native = progs.native_run(exe, [mode])
    start = time.monotonic()
    emu = emu_run(exe, (mode,), argv0="pollthreads")
    assert (emu.stdout, emu.status) == (native.stdout, 0), emu.stderr
    assert emu.stderr == b""
    if mode in ("wake", "select"):
        assert b'"ping"' in emu.stdout
    else:
        assert emu.stdout.startswith(f"{mode}: 0 ready 0".encode())
    assert time.monotonic() - start < 60


def test_busybox_sh_while_read_sees_every_line(emu_run: Callable[..., progs.Result]) -> None:
    script = 'n=0; while read -r l; do n=$((n+1)); echo "$n: $l"; done; echo "lines $n"'
    data = b"alpha\nbeta gamma\n\nlast line\n"
    native = subprocess.run([_busybox(), "sh", "-c", script], input=data, capture_output=True,
                            check=False)
    emu = emu_run(_busybox(), ("-c", script), stdin=data, argv0="sh")
    assert native.stdout.endswith(b"lines 4\n")
    assert (emu.stdout, emu.status) == (native.stdout, 0), emu.stderr


def test_busybox_read_with_a_timeout(emu_run: Callable[..., progs.Result]) -> None:
    script = 'while read -t 5 l; do echo "got $l"; done; echo "end $?"'
    emu = emu_run(_busybox(), ("-c", script), stdin=b"a\nb\n", argv0="sh")
    native = subprocess.run([_busybox(), "sh", "-c", script], input=b"a\nb\n",
                            capture_output=True, check=False)
    assert (emu.stdout, emu.status) == (native.stdout, 0), emu.stderr


def test_rust_hello_starts(require_tool: Callable[[str], str], tmp_path: Path,
                           emu_run: Callable[..., progs.Result]) -> None:
    """Rust's runtime polls fds 0-2 before main: a hello world runs as natively."""
    rustc = require_tool("rustc")
    src = tmp_path / "hello.rs"
    src.write_text('fn main() { println!("hello from rust {}", std::env::args().count()); }\n')
    exe = tmp_path / "hello"
    p = subprocess.run([rustc, "-O", "-C", "target-feature=+crt-static", "-o", str(exe),
                        str(src)], capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stderr
    native = progs.native_run(exe, ["x"])
    emu = emu_run(exe, ("x",), argv0="hello")
    assert native.stdout == b"hello from rust 2\n"
    assert (emu.stdout, emu.stderr, emu.status) == (native.stdout, b"", 0)


# -- metadata, process facts, error semantics --------------------------------------------------
def test_metadata_and_process_facts_as_native(built: Callable[..., Path], tmp_path: Path,
                                              emu_run: Callable[..., progs.Result]) -> None:
    """fchmod/chmod/fchmodat, the chown family, utimes/utime/futimens, statfs, symlinks and
    hard links, mkfifo/mknodat, fallocate, the sync family, fadvise, sendfile,
    copy_file_range; getgroups/setgroups, mlock family, priorities, ioprio, sysinfo, the
    CPU count, rlimits; read at EOF into a bad pointer, writev with a bad iovec."""
    exe = built("metaprobe.c")
    (tmp_path / "native").mkdir()
    (tmp_path / "emu").mkdir()
    native = progs.native_run(exe, [], cwd=tmp_path / "native")
    emu = emu_run(exe, (), cwd=tmp_path / "emu", argv0="metaprobe")
    assert native.status == 0 and b"FAIL" not in native.stdout, native.stdout
    assert (emu.stdout, emu.status) == (native.stdout, 0), emu.stderr
    assert b"cpus %d" % len(os.sched_getaffinity(0)) in emu.stdout
    for name in ("f", "s", "h", "fifo", "copy", "wv"):
        a, b = (os.lstat(tmp_path / d / name) for d in ("native", "emu"))
        assert (a.st_mode, a.st_size, a.st_nlink) == (b.st_mode, b.st_size, b.st_nlink), name


# -- --strict ----------------------------------------------------------------------------------
def test_strict_stops_at_the_first_unsupported_system_call(built: Callable[..., Path]) -> None:
    exe = built("nosys.c")
    loose = subprocess.run([*SYXDBG, "run", str(exe)], capture_output=True, timeout=120,
                           check=False)
    assert (loose.stdout, loose.returncode) == (b"after -1\n", 0)
    assert b"unsupported syscall kexec_load" in loose.stderr
    strict = subprocess.run([*SYXDBG, "run", "--strict", str(exe)], capture_output=True,
                            timeout=120, check=False)
    assert strict.stdout == b"" and strict.returncode == 128 + 31  # SIGSYS
    assert b"syxdbg: unsupported system call kexec_load (246): the program is stopped" \
        in strict.stderr


# -- sockets -----------------------------------------------------------------------------------
def _drive_echo_server(cmd: list[str]) -> tuple[list[bytes], bytes]:
    """Start the echo server, read its port, talk to it as two clients over loopback (no
    sleeps: the server's own output and the connection's end pace the test)."""
    import socket

    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None
    first = p.stdout.readline()
    port = int(p.stdout.readline().split()[1])
    echoes = []
    for msg in (b"hello world", b"a second client, longer" * 20):
        with socket.create_connection(("127.0.0.1", port), timeout=60) as c:
            c.sendall(msg)
            c.shutdown(socket.SHUT_WR)
            got = b""
            while data := c.recv(4096):
                got += data
            echoes.append(got)
    rest = p.stdout.read()
    assert p.wait(timeout=120) == 0, p.stderr.read() if p.stderr else b""
    return echoes, first + rest


@pytest.mark.parametrize(("wait", "toolchain"), [("poll", "gcc"), ("epoll", "gcc"),
                                                  ("epoll", "musl"), ("epoll", "aarch64")])
def test_echo_server_over_loopback_recorded_and_replayed(
        build_probe: Callable[[str, str], Path], tmp_path: Path, wait: str,
        toolchain: str) -> None:
    """A C server (socketpair, socket/bind/listen on port 0, poll, accept4, get/setsockopt,
    recv/send, close; waiting with poll, or epoll with EPOLLONESHOT re-armed by
    EPOLL_CTL_MOD) under syxdbg run and syxdbg record equals its native run; the
    recording replays with --check after the server is gone (nothing listens on its port:
    every byte and result comes from the recording)."""
    exe = build_probe("echoserver", toolchain)
    qemu = progs.qemu_for(exe)  # the native run of an aarch64 build is qemu-user's
    native = _drive_echo_server([*([qemu] if qemu else []), str(exe), "2", wait])
    assert native[0] == [b"HELLO WORLD", b"A SECOND CLIENT, LONGER" * 20]
    assert _drive_echo_server([*SYXDBG, "run", str(exe), "2", wait]) == native
    rec = tmp_path / "echo.syxrec"
    assert _drive_echo_server([*SYXDBG, "record", "-q", "-o", str(rec), str(exe), "2",
                               wait]) == native
    check = subprocess.run([*SYXDBG, "replay", "--check", str(rec)], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=300, check=False)
    assert check.returncode == 0, check.stderr
    assert b"as recorded" in check.stdout + check.stderr
