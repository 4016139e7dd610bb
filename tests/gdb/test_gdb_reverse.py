"""Reverse execution through gdb: bs/bc driven by syxdbg's timeline.

Real gdb (gdb-multiarch for aarch64) against syxdbg over TCP, as in the other tests/gdb
files. The oracle for reverse-step/next/finish is gdb's own ``record full`` on the native
x86_64 binary (recording starts at main; GLIBC_TUNABLES keeps glibc off the AVX string
functions record-full cannot record; see /work/shared/reference/peers.md). Watchpoint
values are the ones corrupt.c documents.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from gdbmi import Gdb, Served, normalize, running_event, served
from support import in_ci

GDB = shutil.which("gdb")
GDB_MULTIARCH = shutil.which("gdb-multiarch")
needs_gdb = pytest.mark.skipif(GDB is None and not in_ci(), reason="gdb is not installed")
needs_multiarch = pytest.mark.skipif(GDB_MULTIARCH is None and not in_ci(),
                                     reason="gdb-multiarch is not installed")

TUNABLES = ("GLIBC_TUNABLES=glibc.cpu.hwcaps="
            "-AVX512F,-AVX512VL,-AVX2,-AVX,-AVX_Fast_Unaligned_Load")
NO_HISTORY = "No more reverse-execution history."


@pytest.fixture(scope="module")
def gcc(build_program: Callable[..., Path]) -> Callable[[str], Path]:
    return lambda name: build_program(name, "gcc")


@pytest.fixture(scope="module")
def a64(build_program: Callable[..., Path]) -> Callable[[str], Path]:
    return lambda name: build_program(name, "aarch64")


@contextmanager
def syxdbg_gdb(exe: Path, args: tuple[str, ...] = (), gdb: str | None = GDB
               ) -> Iterator[tuple[Gdb, Served]]:
    assert gdb is not None
    with served(str(exe), args) as srv:
        g = Gdb(gdb, str(exe))
        try:
            g.cli(f"target remote 127.0.0.1:{srv.port}")
            yield g, srv
        finally:
            g.close()


def run_syxdbg(exe: Path, commands: list[str], gdb: str | None = GDB) -> list[str]:
    """``break main`` + continue, then ``commands``; the output of each command."""
    with syxdbg_gdb(exe, gdb=gdb) as (g, _):
        g.cli("break main")
        g.cli("continue")
        return [g.cli(c, check=False) for c in commands]


def run_record_full(exe: Path, commands: list[str]) -> list[str]:
    """The oracle: native run to main, ``record full``, then ``commands``."""
    assert GDB is not None
    g = Gdb(GDB, str(exe))
    try:
        g.cli(f"set environment {TUNABLES}")
        g.cli("set can-use-hw-watchpoints 0")
        g.cli("break main")
        g.cli("run")
        g.cli("record full")
        return [g.cli(c, check=False) for c in commands]
    finally:
        g.close()



def target_output(g: Gdb) -> str:
    """What gdb printed from O packets (MI target-stream records)."""
    return "".join(r["payload"] for r in g.log
                   if r["type"] == "target" and r["payload"] is not None)


# -- x86_64 ---------------------------------------------------------------------------------
@needs_gdb
def test_reverse_stepi_returns_to_the_previous_pc_and_registers(
        gcc: Callable[[str], Path]) -> None:
    with syxdbg_gdb(gcc("corrupt")) as (g, srv):
        g.cli("break apply_transaction")
        g.cli("continue")
        before = g.cli("info registers")
        pc_before = g.cli("info registers rip")
        g.cli("stepi")
        g.cli("stepi")
        assert g.cli("info registers rip") != pc_before
        g.cli("reverse-stepi")
        g.cli("reverse-stepi")
        assert g.cli("info registers rip") == pc_before
        assert g.cli("info registers") == before
        # and forward again over the replayed instructions
        g.cli("stepi")
        when = srv.session.when()
        assert when.replaying


@needs_gdb
def test_reverse_step_next_finish_match_record_full(gcc: Callable[[str], Path]) -> None:
    exe = gcc("corrupt")
    commands = [
        "break apply_transaction", "continue", "continue", "next", "next", "step", "step",
        "reverse-step", "reverse-step", "reverse-next", "reverse-next", "bt",
        "next", "step", "step", "reverse-finish", "bt", "reverse-stepi", "x/i $pc",
        "info registers rip", "reverse-next", "reverse-step", "info args",
        "tbreak record_history", "continue", "bt", "reverse-finish", "reverse-finish", "bt",
    ]
    want = run_record_full(exe, commands)
    got = run_syxdbg(exe, commands)
    for cmd, w, o in zip(commands, want, got, strict=True):
        assert normalize(o) == normalize(w), f"{cmd!r}:\n--- record full\n{w}\n--- syxdbg\n{o}"
    assert "apply_transaction" in got[-1]


@needs_gdb
def test_watch_reverse_continue_lands_on_the_corrupting_store_x86_64(
        gcc: Callable[[str], Path]) -> None:
    out = run_syxdbg(gcc("corrupt"), [
        "watch ledger.balance", "disable 2", "break corrupt.c:113", "continue",
        "enable 2", "reverse-continue", "bt 1", "x/i $pc", "reverse-continue",
        "delete", "reverse-continue", "continue", "continue",
    ])
    # x86: the state before the write, pc at the writing instruction, old = after.
    assert "Old value = 777\nNew value = 5968\n" in out[5]
    assert "record_history (amount=777) at " in out[5] and "corrupt.c:65" in out[5]
    assert "record_history (amount=777)" in out[6]
    assert "=> " in out[7] and "mov" in out[7]
    # the previous write: the legitimate update in apply_transaction
    assert "Old value = 5968\nNew value = 5191\n" in out[8]
    assert "apply_transaction (amount=777)" in out[8]
    assert NO_HISTORY in out[10]
    # and forward again, replaying then live: history ends before the exit (a stop gdb can
    # reverse from), then the program ends as it did
    assert NO_HISTORY in out[11] and "_exit" in out[11]
    assert "exited with code 01" in out[12]


@needs_gdb
def test_reverse_continue_without_earlier_hit_reports_no_more_history(
        gcc: Callable[[str], Path]) -> None:
    with syxdbg_gdb(gcc("corrupt")) as (g, srv):
        g.cli("break record_history")
        g.cli("continue")
        # the breakpoint at the current pc is not a hit backwards
        out = g.cli("reverse-continue")
        assert NO_HISTORY in out
        assert srv.session.when().position == srv.session.when().origin
        out = g.cli("reverse-stepi")
        assert NO_HISTORY in out
        out = g.cli("continue")
        assert "Breakpoint 1, record_history" in out


@needs_gdb
def test_ctrl_c_interrupts_a_long_reverse_continue(gcc: Callable[[str], Path]) -> None:
    exe = gcc("loop")
    with syxdbg_gdb(exe, ("30000000",)) as (g, srv):
        g.cli("break loop.c:46")  # after both loops
        g.cli("continue")
        end = srv.session.when().position
        g.cli("delete")
        srv.session.timeline.indexed = False  # the full scan: the index would skip it all
        running = running_event(srv)
        g.start("reverse-continue")
        assert running.wait(60)  # gdb sent bc and waits for its stop: Ctrl-C becomes 0x03
        out = g.interrupt_and_wait()
        assert "SIGINT" in out
        when = srv.session.when()
        assert when.origin < when.position <= end
        assert when.frontier == end
        # the interrupted reverse-continue left a consistent state: forward again, to the end
        assert NO_HISTORY in g.cli("continue")
        assert "exited normally" in g.cli("continue")


@needs_gdb
def test_memory_write_in_the_past_says_so_once_and_continues_live(
        gcc: Callable[[str], Path]) -> None:
    with syxdbg_gdb(gcc("corrupt")) as (g, srv):
        g.cli("break corrupt.c:113")
        g.cli("continue")
        frontier = srv.session.when().frontier
        out = g.cli("reverse-next")  # back over run_day()
        assert "run_day();" in out
        g.cli("set var fixed_mode = 1")
        g.cli("set var fixed_mode = 1")  # at the (new) frontier: nothing more to discard
        when = srv.session.when()
        assert when.frontier == when.position < frontier
        assert srv.target.discarded and len(srv.target.discarded) == 1
        out = g.cli("continue")  # live from the modified past: the fixed wrap test
        assert "Breakpoint 1, main" in out
        assert g.cli("print ledger.balance").strip().endswith("= 5968")
        text = target_output(g)
        assert text.count("discarded the recorded future") == 1, text
        assert NO_HISTORY in g.cli("continue")
        assert "exited normally" in g.cli("continue")


@needs_gdb
def test_register_write_in_the_past_discards_the_future(gcc: Callable[[str], Path]) -> None:
    with syxdbg_gdb(gcc("corrupt")) as (g, srv):
        g.cli("break record_history")
        g.cli("continue")
        g.cli("reverse-stepi")
        g.cli("set var $rdi = 1000")
        assert len(srv.target.discarded) == 1
        g.cli("stepi")
        assert "amount = 1000" in g.cli("info args")
        assert "discarded the recorded future" in target_output(g)


# -- aarch64 ----------------------------------------------------------------------------------
@needs_multiarch
def test_watch_reverse_continue_lands_on_the_corrupting_store_aarch64(
        a64: Callable[[str], Path]) -> None:
    out = run_syxdbg(a64("corrupt"), [
        "watch ledger.balance", "disable 2", "break corrupt.c:113", "continue",
        "enable 2", "reverse-continue", "bt 1", "x/i $pc", "reverse-continue",
        "delete", "reverse-continue", "continue", "continue",
    ], gdb=GDB_MULTIARCH)
    # aarch64: the stub reports after the write, gdb steps back onto the store itself.
    assert "Old value = 777\nNew value = 5968\n" in out[5]
    assert "record_history (amount=777) at " in out[5] and "corrupt.c:65" in out[5]
    assert "=> " in out[7] and "str" in out[7]
    assert "Old value = 5968\nNew value = 5191\n" in out[8]
    assert "apply_transaction (amount=777)" in out[8]
    assert NO_HISTORY in out[10]
    assert NO_HISTORY in out[11] and "_exit" in out[11]  # the end of history, then the exit
    assert "exited with code 01" in out[12]


@needs_multiarch
def test_reverse_stepi_and_finish_aarch64(a64: Callable[[str], Path]) -> None:
    with syxdbg_gdb(a64("corrupt"), gdb=GDB_MULTIARCH) as (g, _):
        g.cli("break record_history")
        g.cli("continue")
        regs = g.cli("info registers")
        g.cli("stepi")
        g.cli("stepi")
        g.cli("reverse-stepi")
        g.cli("reverse-stepi")
        assert g.cli("info registers") == regs
        out = g.cli("reverse-finish")
        assert "audit (amount=510)" in out or "audit" in out
        assert "audit" in g.cli("bt 1")
