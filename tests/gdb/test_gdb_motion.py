"""One motion path and one breakpoint table, through a raw RSP client and real gdb.

* The timeline's breakpoint table is reference counted per client: gdb's breakpoints and the
  shell's (``monitor break``) at one address are two references, and gdb's ``delete`` only
  drops its own. Internal stepping breakpoints never show.
* Range stepping (``vCont;r``) is one motion in the machine: it ends exactly where stepping
  one instruction at a time while pc stays in the range ends, stops at a breakpoint inside
  the range before executing it, and takes no checkpoint per instruction.
* The end of history (the program's exit) is a stop gdb can reverse from, live and in a
  replayed recording.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from gdbmi import Gdb, Served, served
from rsp import RspClient
from support import in_ci

import syxdbg
from syxdbg.machine.events import Exited, Stopped
from syxdbg.timeline import Client

GDB = shutil.which("gdb")
needs_gdb = pytest.mark.skipif(GDB is None and not in_ci(), reason="gdb is not installed")
NO_HISTORY = "No more reverse-execution history."


@pytest.fixture(scope="module")
def corrupt(build_program: Callable[..., Path]) -> Path:
    return build_program("corrupt", "gcc")


def _pc(gdb: Gdb) -> int:
    return int(gdb.cli("p/x $pc").split("=")[1], 16)


def monitor(gdb: Gdb, command: str) -> str:
    """A monitor command's output (MI target-stream records)."""
    seen = len(gdb.log)
    gdb.cli(f"monitor {command}")
    return "".join(r["payload"] for r in gdb.log[seen:]
                   if r["type"] == "target" and r["payload"] is not None)


def _without_hits(text: str) -> str:
    return re.sub(r"\n\s*hit \d+ times?", "", text)


# -- one breakpoint table --------------------------------------------------------------------
@needs_gdb
def test_gdb_delete_keeps_the_monitor_breakpoint_at_the_same_address(corrupt: Path) -> None:
    with served(str(corrupt), env={}) as srv:
        gdb = Gdb(GDB or "gdb", str(corrupt))
        try:
            gdb.cli(f"target remote 127.0.0.1:{srv.port}")
            gdb.cli("break record_history")
            assert "Breakpoint 1, record_history" in gdb.cli("continue")
            here = _pc(gdb)
            out = monitor(gdb, f"break *{here:#x}")
            assert "Breakpoint 1 at" in out, out  # the shell's own numbering
            gdb.cli("delete 1")  # gdb's breakpoint only
            out = gdb.cli("continue")
            # gdb no longer knows a breakpoint there: the monitor's stop is a SIGTRAP.
            assert "SIGTRAP" in out and "record_history" in out, out
            assert _pc(gdb) == here
            tl = srv.session.timeline
            # (gdb keeps internal breakpoints of its own elsewhere)
            assert [h.client for h in tl.breakpoint_table() if h.address == here] == \
                [Client.SHELL]
            assert "record_history" in monitor(gdb, "info breakpoints")
            monitor(gdb, "delete")
            assert NO_HISTORY in gdb.cli("continue")  # nothing stops it any more
            assert [h for h in tl.breakpoint_table() if h.client is Client.SHELL] == []
        finally:
            gdb.close()


def test_references_are_counted_per_client_and_internal_ones_stay_hidden(corrupt: Path
                                                                           ) -> None:
    with syxdbg.open(str(corrupt), env={}) as s:
        addr = s.symbols["record_history"]
        tl = s.timeline
        mine = s.add_breakpoint(addr, client="gdb")
        theirs = s.add_breakpoint(addr, client="shell")
        assert addr in s.machine.breakpoints and tl.breakpoints == {addr}
        s.remove_breakpoint(mine)
        s.remove_breakpoint(mine)  # twice: nothing more happens
        assert addr in s.machine.breakpoints  # the shell's reference holds the hook
        assert s.cont().pc == addr
        inside = tl.add_breakpoint(addr + 1, Client.INTERNAL)
        assert addr + 1 in s.machine.breakpoints and tl.breakpoints == {addr}
        tl.remove_breakpoint(inside)
        s.remove_breakpoint(theirs)
        assert addr not in s.machine.breakpoints and tl.breakpoint_table() == []
        # Watchpoints likewise, by (address, size, kind).
        w1 = s.add_watchpoint("ledger", 8, "write", client="gdb")
        w2 = s.add_watchpoint("ledger", 8, "write", client="plugin")
        s.remove_watchpoint(w1)
        assert tl.watchpoints == [(w2.address, 8, "write")] == s.machine.watchpoints
        s.remove_watchpoint(w2)
        assert s.machine.watchpoints == []


def test_stepping_breakpoints_never_reach_the_table(corrupt: Path) -> None:
    with syxdbg.open(str(corrupt), env={}) as s:
        from syxdbg.commands import make_registry

        r = make_registry(s)
        r.run_text("break run_day")
        r.run_text("run")
        before = r.run_text("info breakpoints")
        for command in ("next", "step", "finish", "reverse-finish", "reverse-next", "nexti",
                        "reverse-nexti", "next", "reverse-step"):
            r.run_text(command)
            assert _without_hits(r.run_text("info breakpoints")) == _without_hits(before), \
                command
            assert [h.client for h in s.timeline.breakpoint_table()] == [Client.SHELL]
            assert s.timeline.watchpoint_table() == []


@pytest.mark.parametrize("where", ["*-1", "*0x10000000000000000"])
def test_bad_breakpoint_addresses_are_one_clear_error(corrupt: Path, where: str) -> None:
    with syxdbg.open(str(corrupt), env={}) as s:
        from syxdbg.commands import make_registry

        r = make_registry(s)
        for line in (f"break {where}", f"watch {where.lstrip('*')} 1",
                     f"last-write {where.lstrip('*')} 8"):
            with pytest.raises(syxdbg.SyxdbgError) as err:
                r.run_text(line)
            assert "internal" not in str(err.value) and "\n" not in str(err.value)
            assert "address" in str(err.value)


# -- range stepping ---------------------------------------------------------------------------
def _function_range(s: syxdbg.Session, name: str) -> tuple[int, int]:
    start = s.symbols[name]
    return start, start + s.image.symbol_sizes[name]


def _oracle(exe: Path, until: str, start: int, end: int, stop_at: int | None = None
            ) -> tuple[int, int, list[int]]:
    """Step one instruction at a time while pc stays in the range (gdb's definition)."""
    with syxdbg.open(str(exe), env={}) as s:
        s.run(until=until)
        pcs = []
        while True:
            ev = s.step()
            pcs.append(s.regs.pc)
            if isinstance(ev, Exited) or not start <= s.regs.pc < end or s.regs.pc == stop_at:
                return s.position, s.regs.pc, pcs


def test_range_step_ends_where_single_steps_end_with_one_checkpoint(corrupt: Path) -> None:
    with syxdbg.open(str(corrupt), env={}) as s:
        start, end = _function_range(s, "apply_transaction")
        want_pos, want_pc, _ = _oracle(corrupt, "apply_transaction", start, end)
        s.run(until="apply_transaction")
        s.timeline.stop_gap = 1  # every stop may take a checkpoint: count them
        before = len(s.checkpoints())
        ev = s.range_step(start, end)
        assert isinstance(ev, Stopped) and ev.why == "step"
        assert (s.position, s.regs.pc) == (want_pos, want_pc)
        assert want_pos - ev.position == 0 and want_pos > 20
        assert len(s.checkpoints()) == before + 1  # one, at the stop
        assert s.timeline.breakpoint_table() == []


def test_range_step_over_rsp_stops_at_a_breakpoint_inside_the_range(corrupt: Path) -> None:
    with syxdbg.open(str(corrupt), env={}) as probe:
        start, end = _function_range(probe, "apply_transaction")
    _, _, pcs = _oracle(corrupt, "apply_transaction", start, end)
    # A breakpoint reached by a jump inside the range (the hard case: after a flow change).
    jumps = [b for a, b in zip(pcs, pcs[1:], strict=False)
             if start <= b < end and not 0 < b - a <= 15]
    target = jumps[0] if jumps else pcs[len(pcs) // 2]
    want_pos, want_pc, _ = _oracle(corrupt, "apply_transaction", start, end, stop_at=target)
    srv = Served(syxdbg.open(str(corrupt), env={}))
    try:
        srv.session.run(until="apply_transaction")
        c = RspClient(srv.port)
        c.ask(b"qSupported:swbreak+;hwbreak+")
        assert b"r" in c.ask(b"vCont?").split(b";")
        assert c.ask(b"Z0,%x,1" % target) == b"OK"
        tid = c.current_thread()
        stop = c.ask(b"vCont;r%x,%x:%s" % (start, end, tid))
        assert b"swbreak" in stop, stop
        m = srv.session.machine
        assert (m.position, m.pc) == (want_pos, want_pc) == (want_pos, target)
        assert c.ask(b"z0,%x,1" % target) == b"OK"
        stop = c.ask(b"vCont;r%x,%x:%s" % (start, end, tid))  # on to the end of the range
        assert stop.startswith(b"T05") and b"swbreak" not in stop
        assert not start <= m.pc < end
        c.close()
    finally:
        srv.close()


@needs_gdb
def test_next_and_step_through_gdb_use_range_stepping(corrupt: Path) -> None:
    with served(str(corrupt), env={}) as srv:
        seen: list[tuple[int, int]] = []
        real = srv.target.range_step

        def spy(start: int, end: int) -> None:
            seen.append((start, end))
            real(start, end)

        srv.target.range_step = spy  # type: ignore[method-assign]
        gdb = Gdb(GDB or "gdb", str(corrupt))
        try:
            gdb.cli(f"target remote 127.0.0.1:{srv.port}")
            gdb.cli("break run_day")
            gdb.cli("continue")
            out = gdb.cli("next")
            assert re.search(r"^\d+\s", out, re.M), out
            assert seen, "gdb did not range-step"
        finally:
            gdb.close()


# -- the end of history -----------------------------------------------------------------------
@needs_gdb
def test_reverse_commands_work_from_the_end_of_history(corrupt: Path) -> None:
    with served(str(corrupt), env={}) as srv:
        gdb = Gdb(GDB or "gdb", str(corrupt))
        try:
            gdb.cli(f"target remote 127.0.0.1:{srv.port}")
            gdb.cli("break record_history")
            gdb.cli("disable 1")
            out = gdb.cli("continue")
            assert NO_HISTORY in out and "_exit" in out, out
            end = srv.session.position
            assert gdb.cli("reverse-stepi") and srv.session.position == end - 1
            gdb.cli("stepi")
            assert srv.session.position == end
            gdb.cli("enable 1")
            out = gdb.cli("reverse-continue")
            assert "Breakpoint 1, record_history" in out, out
            gdb.cli("disable 1")
            assert NO_HISTORY in gdb.cli("continue")
            out = gdb.cli("reverse-finish")
            assert "Run back to call" in out, out
            assert "exited with code 01" in gdb.cli("continue") + gdb.cli("continue")
        finally:
            gdb.close()


@needs_gdb
def test_reverse_continue_from_the_end_of_a_replayed_recording(corrupt: Path,
                                                               tmp_path: Path) -> None:
    out = tmp_path / "corrupt.syxrec"
    rec = subprocess.run([sys.executable, "-m", "syxdbg", "record", "-o", str(out),
                          "--clear-env", str(corrupt)], capture_output=True, timeout=600)
    assert out.exists(), rec.stderr
    srv = Served(syxdbg.replay(str(out)))
    try:
        gdb = Gdb(GDB or "gdb", str(corrupt))
        try:
            gdb.cli(f"target remote 127.0.0.1:{srv.port}")
            assert NO_HISTORY in gdb.cli("continue")
            gdb.cli("break record_history")
            assert "Breakpoint 1, record_history" in gdb.cli("reverse-continue")
            assert "Breakpoint 1, record_history" in gdb.cli("reverse-continue")
        finally:
            gdb.close()
    finally:
        srv.close()


# -- interrupts -------------------------------------------------------------------------------
def test_interrupt_stops_a_monitor_goto_on_a_looping_program(blob) -> None:
    srv = Served(syxdbg.open(str(blob("x86_64", "spin")), raw=True, arch="x86_64",
                             base=0x400000))
    try:
        done = threading.Event()
        out: list[str] = []

        def run() -> None:
            srv.target.monitor_command("goto +1000000000000000", out.append)
            done.set()

        worker = threading.Thread(target=run)
        worker.start()
        while srv.session.machine.position < 1_000_000:
            assert not done.is_set(), out
            done.wait(0.01)
        srv.target.interrupt()
        assert done.wait(10), "the monitor command did not stop"
        worker.join()
        assert "interrupted" in "".join(out)
    finally:
        srv.close()


# -- source-line stepping against native gdb -------------------------------------------------
def _native_lines(exe: Path, start: str, commands: list[str]) -> list[int]:
    gdb = Gdb(GDB or "gdb", str(exe))
    try:
        gdb.cli("set startup-with-shell off")
        gdb.cli(f"break {start}")
        gdb.cli("run")
        gdb.cli("delete")
        lines = []
        for command in commands:
            gdb.cli(command)
            lines.append(int(gdb.cli("info line *$pc").split("Line ")[1].split()[0]))
        return lines
    finally:
        gdb.close()


def _shell_lines(exe: Path, start: str, commands: list[str]) -> list[int]:
    from syxdbg.commands import make_registry

    with syxdbg.open(str(exe), env={}) as s:
        r = make_registry(s)
        r.run_text(f"break {start}")
        r.run_text("run")
        r.run_text("delete")
        lines = []
        for command in commands:
            out = r.run_text(command)
            found = re.search(r"corrupt\.c:(\d+)", out)
            assert found, out
            lines.append(int(found.group(1)))
        return lines


@needs_gdb
@pytest.mark.parametrize("command", ["step", "next"])
def test_stepping_out_of_a_function_finishes_the_callers_line_as_gdb_does(
        corrupt: Path, command: str) -> None:
    # From the last line of record_history out through audit and apply_transaction (each
    # return lands mid-line, after the call) to process_batch's loop, and for next around
    # the loop (the call returns onto the loop increment, a new line): the shell stops on
    # the lines gdb stops on. (Stepping *into* a frameless function gdb stops at its entry
    # line, the shell after the first line: not compared here.)
    commands = [command] * (6 if command == "next" else 2)
    want = _native_lines(corrupt, "corrupt.c:69", commands)
    assert _shell_lines(corrupt, "corrupt.c:69", commands) == want


# -- inferior function calls -------------------------------------------------------------------
@needs_gdb
def test_repeated_inferior_calls_and_reverse_continue_after_them(corrupt: Path) -> None:
    """``call f()`` three times (gdb returns onto a breakpoint on the stack, which is not
    executable: the call ends in a fault there), then the program goes on and back."""
    with served(str(corrupt), env={}) as srv:
        gdb = Gdb(GDB or "gdb", str(corrupt))
        try:
            gdb.cli(f"target remote 127.0.0.1:{srv.port}")
            gdb.cli("break run_day")
            assert "Breakpoint 1, run_day" in gdb.cli("continue")
            for n in range(1, 4):
                out = gdb.cli("call apply_transaction(7)")
                assert "signal" not in out.lower(), out
                assert gdb.cli("print ledger.tx_count").split("=")[1].strip() == str(n)
                assert gdb.cli("print ledger.balance").split("=")[1].strip() == str(7 * n)
            gdb.cli("break process_batch")
            assert "Breakpoint 2, process_batch" in gdb.cli("continue")
            assert gdb.cli("print ledger.tx_count").split("=")[1].strip() == "3"
            out = gdb.cli("reverse-continue")
            assert "Breakpoint 1, run_day" in out, out
            assert "Breakpoint 2, process_batch" in gdb.cli("continue")
            assert gdb.cli("print ledger.balance").split("=")[1].strip() == "21"
        finally:
            gdb.close()


# -- the snapshot journal out of memory ---------------------------------------------------------
@needs_gdb
def test_gdb_sees_a_clean_out_of_memory_stop_and_can_go_back(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    timeline_tests = str(Path(__file__).resolve().parents[1] / "timeline")
    if timeline_tests not in sys.path:
        sys.path.insert(0, timeline_tests)
    from timeline_helpers import build_dirty

    exe = build_dirty(tmp_path_factory.mktemp("dirty"))
    with served(exe, env={}, options={"timeline.budget": 1 << 20}) as srv:
        gdb = Gdb(GDB or "gdb", exe)
        try:
            gdb.cli(f"target remote 127.0.0.1:{srv.port}")

            def target_text(since: int) -> str:  # O packets (MI target-stream records)
                return "".join(r["payload"] for r in gdb.log[since:]
                               if r["type"] == "target" and r["payload"] is not None)

            seen = len(gdb.log)
            out = gdb.cli("continue")
            assert "SIGTRAP" in out, out
            assert "history is out of memory" in target_text(seen), gdb.log[seen:]
            stop = srv.session.position
            seen = len(gdb.log)
            out = gdb.cli("continue")  # nothing can run: one clear line, no motion
            assert "out of memory" in target_text(seen) and "Traceback" not in out, out
            assert srv.session.position == stop
            gdb.cli("reverse-stepi")
            assert srv.session.position == stop - 1
            assert NO_HISTORY in gdb.cli("reverse-continue")
            assert srv.session.position == 0
        finally:
            gdb.close()
