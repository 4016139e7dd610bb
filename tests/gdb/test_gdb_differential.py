"""Differential tests: real gdb debugging a static x86_64 program natively and in syxdbg.

Each scenario is a list of gdb commands. The native side starts the program with ``run``,
the syxdbg side is already started and gets ``continue`` instead; every other command is
sent to both, and what gdb prints for it must be identical after :func:`gdbmi.normalize`
(which masks stack addresses and process start/exit banners, nothing else).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from gdbmi import Gdb, normalize, past_end, served
from support import in_ci

pytestmark = pytest.mark.skipif(shutil.which("gdb") is None and not in_ci(),
                                reason="gdb is not installed")

START = "<start>"


def session_outputs(exe: Path, args: tuple[str, ...], commands: list[str], *,
                    native: bool) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if native:
        gdb = Gdb("gdb", str(exe))
        try:
            for cmd in commands:
                real = "run " + " ".join(args) if cmd == START else cmd
                out.append((cmd, gdb.cli(real, check=False)))
        finally:
            gdb.close()
        return out
    with served(str(exe), args) as srv:
        gdb = Gdb("gdb", str(exe))
        try:
            gdb.cli(f"target remote 127.0.0.1:{srv.port}")
            for cmd in commands:
                real = "continue" if cmd == START else cmd
                out.append((cmd, past_end(gdb, real, gdb.cli(real, check=False))))
        finally:
            gdb.close()
    return out


def compare(exe: Path, args: tuple[str, ...], commands: list[str]) -> list[tuple[str, str]]:
    native = session_outputs(exe, args, commands, native=True)
    emulated = session_outputs(exe, args, commands, native=False)
    for (cmd, want), (_, got) in zip(native, emulated, strict=True):
        assert normalize(got) == normalize(want), f"command {cmd!r}:\n--- native\n{want}" \
            f"\n--- syxdbg\n{got}"
    return emulated


@pytest.fixture(scope="module")
def gcc(build_program: Callable[..., Path]) -> Callable[[str], Path]:
    return lambda name: build_program(name, "gcc")


def test_breakpoint_backtrace_args_locals_and_x(gcc: Callable[[str], Path]) -> None:
    out = compare(gcc("hello"), ("alpha", "beta"), [
        "break main", START, "bt", "info args", "next", "next", "info locals",
        "x/8xg &main", "print argv[1]", "print *argv[2]@4", "info registers rip",
        "stepi", "x/i $pc", "nexti", "info frame", "continue",
    ])
    text = dict(out)
    assert "Breakpoint 1, main (argc=3" in text[START]
    assert "exited with code 03" in text["continue"]


def test_deep_backtrace_finish_and_until(gcc: Callable[[str], Path]) -> None:
    out = compare(gcc("corrupt"), (), [
        "break record_history", START, "bt", "info args", "finish", "bt", "up", "info locals",
        "down", "tbreak corrupt.c:82", "continue", "until", "advance audit", "bt",
        "delete", "continue",
    ])
    text = dict(out)
    assert "#4  0x" in text["bt"] and "main" in text["bt"]
    assert "exited with code 01" in text["continue"]


def test_write_watchpoint_hits_match_native(gcc: Callable[[str], Path]) -> None:
    out = compare(gcc("corrupt"), (), [
        "break run_day", START, "watch ledger.balance", "continue", "continue", "continue",
        "bt", "info watchpoints", "delete", "break record_history if ledger.history_pos == 16",
        "continue", "watch ledger.balance", "continue", "bt", "x/4xg &ledger.history[15]",
        "delete", "continue",
    ])
    hits = [o for c, o in out if c == "continue"]
    assert "Old value = 0\nNew value = 120" in hits[0]
    assert "New value = 777" in hits[4]  # the corrupting store, in record_history
    assert "record_history" in hits[4]


def test_read_and_access_watchpoints_match_native(gcc: Callable[[str], Path]) -> None:
    # Read watchpoints on data that is only read: x86 has no read-only debug registers, so
    # natively gdb emulates rwatch with an access watchpoint and drops hits that changed the
    # value; syxdbg's Z3 is exact (see docs/gdb.md), which agrees whenever nothing writes.
    compare(gcc("corrupt"), (), [
        "break run_day", START, "rwatch fixed_mode", "continue", "continue", "bt",
        "delete", "awatch ledger.large_count", "continue", "continue", "continue",
        "delete", "continue",
    ])


@pytest.mark.parametrize("mode", ["null", "read", "unmapped", "ill"])
def test_faults_stop_at_the_faulting_instruction(gcc: Callable[[str], Path], mode: str) -> None:
    out = compare(gcc("segv"), (mode,), [START, "bt", "x/i $pc", "continue"])
    text = dict(out)
    sig = "SIGILL" if mode == "ill" else "SIGSEGV"
    assert f"Program received signal {sig}" in text[START]
    assert f"Program terminated with signal {sig}" in text["continue"]


def test_step_into_and_return(gcc: Callable[[str], Path]) -> None:
    compare(gcc("sortalloc"), (), [
        "break main", START, "next", "step", "bt", "info frame", "finish", "next", "step",
        "return", "bt", "kill",
    ])
