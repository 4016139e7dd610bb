"""Hostile command-line input: program paths, forged ELF segments, hosts and ports.

Each gives one ``syxdbg: error:`` line and status 2, promptly (no hang, no traceback).
"""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from syxdbg.loader.elf import _page_runs
from syxdbg.machine import Perm


def syxdbg(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syxdbg", *args], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], message: str) -> None:
    err = proc.stderr
    assert "Traceback" not in err, err
    assert proc.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("syxdbg: error: "), err
    assert message in lines[0], err


# -- program paths ------------------------------------------------------------------------------
@pytest.fixture
def bad_paths(tmp_path: Path, build_program: Callable[..., Path]) -> dict[str, tuple[str, str]]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    regular = build_program("hello", "gcc")
    return {
        "fifo": (str(fifo), "not a regular file"),
        "symlink loop": (str(loop), "Too many levels of symbolic links"),
        "through a file": (f"{regular}/x", "Not a directory"),
        "too long": (str(tmp_path / ("n" * 5000)), "File name too long"),
        "device": ("/dev/zero", "not a regular file"),
    }


@pytest.mark.parametrize("command", [["run"], ["record", "-q", "-o", "/dev/null"],
                                     ["serve", "--port", "0"], ["shell", "-ex", "info"],
                                     ["gdb", "--gdb", "/bin/false"]])
def test_bad_program_paths_are_one_line(command: list[str],
                                        bad_paths: dict[str, tuple[str, str]]) -> None:
    for path, message in bad_paths.values():
        assert_one_line_error(syxdbg(*command, path, timeout=60), message)


def test_bad_raw_blob_paths_are_one_line(bad_paths: dict[str, tuple[str, str]]) -> None:
    for path, message in bad_paths.values():
        proc = syxdbg("run", "--raw", path, "--arch", "x86_64", "--base", "0x10000",
                      timeout=60)
        assert_one_line_error(proc, message)


# -- forged ELF segments ------------------------------------------------------------------------
def _forge_first_load(exe: Path, out: Path, memsz: int) -> Path:
    """A copy of ``exe`` whose first PT_LOAD has p_memsz ``memsz``."""
    data = bytearray(exe.read_bytes())
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        at = phoff + i * phentsize
        if struct.unpack_from("<I", data, at)[0] == 1:  # PT_LOAD
            struct.pack_into("<Q", data, at + 0x28, memsz)  # p_memsz
            break
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize("memsz", [0xFFFF_FFFF_FFFF_0000, 1 << 47, 1 << 63])
def test_segments_beyond_the_address_space_are_refused(memsz: int, tmp_path: Path,
                                                       build_program: Callable[..., Path]
                                                       ) -> None:
    exe = _forge_first_load(build_program("hello", "gcc"), tmp_path / "forged", memsz)
    started = time.monotonic()
    proc = syxdbg("run", str(exe), timeout=60)
    assert_one_line_error(proc, "beyond the x86_64 address space")
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("memsz", [64 << 30, 64 << 40])
def test_huge_segments_inside_the_address_space_never_hang(memsz: int, tmp_path: Path,
                                                           build_program: Callable[..., Path]
                                                           ) -> None:
    # 64 GiB and 64 TiB fit in the 47-bit space: mapped in one piece (the host may refuse
    # it: one line), never page by page.
    exe = _forge_first_load(build_program("hello", "gcc"), tmp_path / "forged", memsz)
    started = time.monotonic()
    proc = syxdbg("run", str(exe), timeout=60)
    assert "Traceback" not in proc.stderr, proc.stderr
    if proc.returncode == 2:
        assert_one_line_error(proc, "cannot map")
    else:
        assert proc.returncode == 0 and proc.stdout.startswith("hello"), proc.stderr
    assert time.monotonic() - started < 30


def test_page_runs_cost_segments_not_pages() -> None:
    huge = {"p_vaddr": 0x400000, "p_memsz": 1 << 46, "p_flags": 5}
    data = {"p_vaddr": 0x400000 + (1 << 45) + 10, "p_memsz": 8192, "p_flags": 6}
    started = time.monotonic()
    runs = _page_runs([huge, data], 0)
    assert time.monotonic() - started < 0.1
    shared = 0x400000 + (1 << 45)
    assert runs == [(0x400000, shared, Perm.R | Perm.X),
                    (shared, shared + 0x3000, Perm.R | Perm.W | Perm.X),
                    (shared + 0x3000, 0x400000 + (1 << 46), Perm.R | Perm.X)]


# -- hosts and ports ----------------------------------------------------------------------------
def test_bad_ports_and_hosts_are_one_line(build_program: Callable[..., Path]) -> None:
    exe = str(build_program("hello", "gcc"))
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        cases = [
            (["serve", "--port", "70000", exe], "not a TCP port"),
            (["serve", "--port", "-1", exe], "not a TCP port"),
            (["serve", "--port", "nope", exe], "not a number"),
            (["serve", "--port", str(port), exe], "Address already in use"),
            (["serve", "--host", "no-such-host.invalid", exe], "cannot resolve"),
            (["serve", "--host", "192.0.2.1", exe], "Cannot assign requested address"),
            (["serve", "--host", "", exe], "cannot"),
            (["replay", "--port", "70000", "x.syxrec"], "not a TCP port"),
            (["replay", "--port", str(port), "--host", "127.0.0.1", "x.syxrec"],
             "Address already in use"),
        ]
        for args, message in cases:
            assert_one_line_error(syxdbg(*args, timeout=60), message)


def _listening_lines(host: str, exe: str) -> str:
    """Start ``serve --host host``, read until its 'listening' line, then kill it (Ctrl-C
    while serving is tests/hostile/cli_sigint_test.py's business)."""
    proc = subprocess.Popen([sys.executable, "-m", "syxdbg", "serve", "--host", host,
                             "--port", "0", exe], stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    assert proc.stderr is not None
    try:
        head = ""
        for line in proc.stderr:
            head += line
            if line.startswith(("syxdbg: listening on", "syxdbg: error")):
                break
    finally:
        proc.kill()
        proc.wait()
    return head


@pytest.mark.parametrize("host,shown,warns", [
    ("127.0.0.1", "127.0.0.1", False), ("127.1", "127.0.0.1", False),
    ("::ffff:127.0.0.1", "127.0.0.1", False), ("localhost", "127.0.0.1", False),
    ("::1", "[::1]", False), ("0.0.0.0", "0.0.0.0", True), ("::", "[::]", True),
])
def test_listening_addresses_and_warnings(host: str, shown: str, warns: bool,
                                          build_program: Callable[..., Path]) -> None:
    head = _listening_lines(host, str(build_program("hello", "gcc")))
    assert "Traceback" not in head, head
    assert re.search(rf"syxdbg: listening on {re.escape(shown)}:\d+\n", head), head
    assert ("warning: listening on" in head) is warns, head
