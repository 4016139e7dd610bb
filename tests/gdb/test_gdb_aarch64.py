"""aarch64 programs in syxdbg under gdb-multiarch.

The oracle for breakpoints, backtraces, stepping and faults is the same binary under
``qemu-aarch64 -g`` (QEMU's user-mode gdbstub) with the same gdb. QEMU's user mode has no
watchpoints, so watchpoint hits are checked against the values and lines native x86 gdb
shows for the same source (the test programs behave identically on both architectures).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from gdbmi import Gdb, normalize, past_end, served
from support import in_ci

GDB = shutil.which("gdb-multiarch")
pytestmark = pytest.mark.skipif(GDB is None and not in_ci(),
                                reason="gdb-multiarch is not installed")

START = "<start>"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_commands(gdb: Gdb, port: int, commands: list[str]) -> list[tuple[str, str]]:
    # gdb retries a refused connection (tcp auto-retry), so no wait for QEMU is needed.
    gdb.cli(f"target remote 127.0.0.1:{port}")
    out = []
    for c in commands:
        real = "continue" if c == START else c
        out.append((c, past_end(gdb, real, gdb.cli(real, check=False))))
    return out


def qemu_outputs(exe: Path, args: tuple[str, ...], commands: list[str],
                 qemu: str) -> list[tuple[str, str]]:
    port = _free_port()
    proc = subprocess.Popen([qemu, "-g", str(port), str(exe), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert GDB is not None
    gdb = Gdb(GDB, str(exe))
    try:
        return run_commands(gdb, port, commands)
    finally:
        gdb.close()
        proc.kill()
        proc.wait()


def syxdbg_outputs(exe: Path, args: tuple[str, ...], commands: list[str]
                   ) -> list[tuple[str, str]]:
    assert GDB is not None
    with served(str(exe), args) as srv:
        gdb = Gdb(GDB, str(exe))
        try:
            return run_commands(gdb, srv.port, commands)
        finally:
            gdb.close()


@pytest.fixture(scope="module")
def a64(build_program: Callable[..., Path]) -> Callable[[str], Path]:
    return lambda name: build_program(name, "aarch64")


@pytest.mark.parametrize("program,args,commands", [
    ("hello", ("alpha", "beta"), [
        "break main", START, "bt", "info args", "next", "next", "info locals", "x/8xg &main",
        "print argv[1]", "stepi", "x/i $pc", "nexti", "info registers pc", "continue"]),
    ("corrupt", (), [
        "break record_history", START, "bt", "info args", "finish", "up", "down",
        "tbreak corrupt.c:82", "continue", "until", "advance audit", "bt", "delete",
        "continue"]),
    ("segv", ("null",), [START, "bt", "x/i $pc", "continue"]),
    ("segv", ("ill",), [START, "bt", "x/i $pc", "continue"]),
])
def test_aarch64_matches_qemu_gdbstub(a64: Callable[[str], Path],
                                      require_tool: Callable[[str], str], program: str,
                                      args: tuple[str, ...], commands: list[str]) -> None:
    qemu = require_tool("qemu-aarch64")
    exe = a64(program)
    want = qemu_outputs(exe, args, commands, qemu)
    got = syxdbg_outputs(exe, args, commands)
    for (cmd, w), (_, g) in zip(want, got, strict=True):
        assert normalize(g) == normalize(w), f"{cmd!r}:\n--- qemu\n{w}\n--- syxdbg\n{g}"


def test_aarch64_watchpoints_report_old_and_new_at_the_writing_line(
        a64: Callable[[str], Path]) -> None:
    out = syxdbg_outputs(a64("corrupt"), (), [
        "break run_day", START, "watch ledger.balance", "continue", "bt", "continue",
        "delete", "continue",
    ])
    text = [o for _, o in out]
    assert "Hardware watchpoint 2: ledger.balance\n\nOld value = 0\nNew value = 120\n" \
        "apply_transaction (amount=120) at corrupt.c:83\n" in text[3]
    assert "#0  apply_transaction (amount=120) at corrupt.c:83" in text[4]
    assert "Old value = 120\nNew value = 75\napply_transaction (amount=-45) at corrupt.c:83" \
        in text[5]
    assert "exited with code 01" in text[7]


def test_aarch64_corrupting_store_is_caught_in_record_history(
        a64: Callable[[str], Path]) -> None:
    out = syxdbg_outputs(a64("corrupt"), (), [
        "break record_history if ledger.history_pos == 16", START, "watch ledger.balance",
        "continue", "bt 2", "rwatch fixed_mode", "delete 2", "continue", "delete",
        "continue",
    ])
    text = [o for _, o in out]
    assert "Old value = 5968\nNew value = 777\n" in text[3]
    assert "record_history (amount=777) at corrupt.c:" in text[3]
    assert "#1  " in text[4] and "audit" in text[4]
    assert "Hardware read watchpoint 3: fixed_mode\n\nValue = 0\n" in text[7]
    assert "exited with code 01" in text[9]
