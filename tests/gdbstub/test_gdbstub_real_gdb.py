"""The stub against the real gdb (batch mode), with the toy target behind an x86-64 target
description. Skipped when gdb is not installed."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import pytest
from gdbstub_doubles import NOP, FullToyTarget, RunningServer, program, store
from support import in_ci

GDB = shutil.which("gdb")
pytestmark = pytest.mark.skipif(GDB is None and not in_ci(), reason="gdb is not installed")


def run_gdb(port: int, *commands: str) -> subprocess.CompletedProcess[str]:
    assert GDB is not None
    args = [GDB, "-nx", "-batch", "-ex", "set architecture i386:x86-64"]
    args += ["-ex", f"target remote 127.0.0.1:{port}"]
    for command in commands:
        args += ["-ex", command]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def test_real_gdb_session(serve: Callable[..., RunningServer]) -> None:
    code = program(bytes([NOP] * 4), store(0x400100, 0x2A), bytes([NOP] * 4))
    target = FullToyTarget(code)
    target.set_reg("rbx", 0x1234)
    running = serve(target)

    gdb = run_gdb(
        running.port,
        "info registers rip",
        "x/4xb 0x400000",
        "print/x $rbx",
        "stepi",
        "info registers rip",
        "monitor hello",
        "break *0x400003",
        "continue",
        "watch *(char*)0x400100",
        "continue",
        "reverse-stepi",
        "info registers rip",
        "delete",
        "reverse-continue",
        "info registers rip",
    )
    out = gdb.stdout
    assert gdb.returncode == 0, gdb.stderr
    assert "rejected" not in gdb.stderr  # the target description was accepted
    assert "rip            0x400000            0x400000" in out
    assert "0x400000:\t0x90\t0x90\t0x90\t0x90" in out
    assert "$1 = 0x1234" in out
    assert "rip            0x400001            0x400001" in out
    assert "you said: hello" in gdb.stderr + out
    assert "Breakpoint 1, 0x0000000000400003 in ?? ()" in out
    assert "Old value = 0 '\\000'\nNew value = 42 '*'" in out
    assert "rip            0x400004            0x400004" in out  # after reverse-stepi
    assert "No more reverse-execution history." in out
    assert out.rstrip().splitlines()[-2] == "rip            0x400000            0x400000"
    assert "[Inferior 1 (Remote target) detached]" in out
    assert target.mem[0x100] == 0  # reverse-continue undid the store
