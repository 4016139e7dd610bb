"""Who wrote this byte, named points in time, the memory budget, interrupting a long
reverse-continue."""

from __future__ import annotations

import threading

import pytest
from progs import PROGRAMS_DIR
from timeline_helpers import build_dirty, capture, function_at, open_session, source_line

from syxdbg.machine import Exited
from syxdbg.timeline import (
    BACKWARD,
    FORWARD,
    MIN_JOURNAL_LIMIT,
    HistoryBoundary,
    HistoryFull,
    OutOfMemory,
    TimelineError,
    WatchStop,
)


@pytest.mark.parametrize("toolchain", ["gcc", "musl", "aarch64"])
def test_last_write_finds_the_out_of_bounds_store_in_record_history(build_program, toolchain):
    exe = build_program("corrupt", toolchain)
    with open_session(exe, interval=3_000) as s:
        end = s.cont(FORWARD)
        assert isinstance(end, Exited) and end.status == 1
        balance = s.symbols["ledger"] + 16 * 8
        assert int.from_bytes(s.mem.read(balance, 8), "little") == 777
        found = s.last_write(balance, 8)
        assert found is not None
        assert s.position == found.position and s.machine.pc == found.pc
        assert isinstance(found.event, WatchStop) and found.event.before
        assert function_at(s, found.pc) == "record_history"
        line = source_line(exe, found.pc)
        assert line is not None and line[0].endswith("corrupt.c")
        text = (PROGRAMS_DIR / "corrupt.c").read_text().splitlines()[line[1] - 1]
        assert "ledger.history[pos] = amount" in text
        # Before the store the balance is the legitimate one; one step later it is 777.
        assert int.from_bytes(s.mem.read(balance, 8), "little") != 777
        s.step(FORWARD)
        assert int.from_bytes(s.mem.read(balance, 8), "little") == 777
        # The previous writer of the balance is the legitimate update in apply_transaction.
        s.step(BACKWARD)
        prev = s.last_write(balance, 8)
        assert prev is not None and prev.position < found.position
        assert function_at(s, prev.pc) == "apply_transaction"
        assert s.timeline.watchpoints == []  # the temporary watchpoint is gone


def test_last_write_of_never_written_bytes_is_none_and_does_not_move(build_program):
    exe = build_program("corrupt", "gcc")
    with open_session(exe, interval=3_000) as s:
        s.cont(FORWARD)
        here = s.position
        amounts = s.symbols["amounts"]  # read-only data
        assert s.last_write(amounts, 8) is None
        assert s.position == here


def test_named_points_in_time(build_program):
    exe = build_program("corrupt", "gcc")
    with open_session(exe, interval=3_000) as s:
        s.seek(5_000)
        five = capture(s)
        s.snapshot_save("five")
        s.cont(FORWARD)
        s.snapshot_save("end")
        assert [p.name for p in s.snapshots()] == ["five", "end"]
        s.snapshot_restore("five")
        assert capture(s).diff(five) == []
        assert any(c.pinned and c.position == 5_000 for c in s.checkpoints())
        s.snapshot_restore("end")
        assert s.position == s.when().frontier
        with pytest.raises(TimelineError):
            s.snapshot_restore("nope")


def test_memory_budget_thins_checkpoints_and_seeks_still_work(build_program):
    exe = build_program("loop", "gcc")
    budget = 600 * 1024
    with open_session(exe, ["60000"], interval=10_000, budget=budget) as s:
        marks = [1_000, 123_457, 400_000, 777_777, 1_100_001]
        states = {}
        for p in marks:
            s.seek(p)
            states[p] = capture(s)
        end = s.cont(FORWARD)
        assert isinstance(end, Exited)
        stats = s.timeline.stats()
        assert stats["bytes"] <= budget
        assert stats["checkpoints"] < end.position // 10_000  # thinned
        for p in reversed(marks):
            if p >= s.when().origin:
                s.seek(p)
                assert capture(s).diff(states[p]) == []
        # After going back, re-execution pushes checkpoints again, still under budget.
        s.seek(end.position)
        assert s.timeline.stats()["bytes"] <= budget


def test_an_interrupt_from_another_thread_stops_a_long_reverse_continue(build_program):
    exe = build_program("loop", "gcc")
    with open_session(exe, ["200000"], interval=50_000) as s:
        s.add_breakpoint("main")
        start = s.cont(FORWARD)
        assert start.why == "breakpoint"
        end = s.cont(FORWARD)
        assert isinstance(end, Exited) and end.position > 2_000_000
        # A long search: every interval re-executed (the index would skip straight to the
        # one holding main, which is what a read watchpoint or a full scan cannot do).
        s.timeline.indexed = False
        asked = threading.Event()
        sent = threading.Event()
        result = []

        def poll() -> bool:
            # Two intervals scanned: ask for Ctrl-C and wait until it is sent.
            if not asked.is_set() and s.machine.position < end.position - 120_000:
                asked.set()
                assert sent.wait(60)
            return False

        worker = threading.Thread(target=lambda: result.append(s.cont(BACKWARD, poll=poll)))
        worker.start()
        assert asked.wait(60)
        s.interrupt()  # from this thread, while the reverse-continue runs
        sent.set()
        worker.join(120)
        assert not worker.is_alive()
        ev = result[0]
        assert ev.why == "interrupt"
        assert start.position < ev.position < end.position  # went back, not to the hit
        assert s.position == ev.position
        # The interrupt does not stick: the next reverse-continue finds main.
        assert s.cont(BACKWARD).position == start.position


def test_removed_breakpoints_never_stop_again_even_at_the_top_address(build_program):
    """The machine drops a removed breakpoint's translated blocks itself (the timeline did
    it, with an end of 2**64 that Unicorn refuses for the last address)."""
    exe = build_program("corrupt", "gcc")
    with open_session(exe, interval=3_000) as s:
        top = s.add_breakpoint((1 << 64) - 1, client="gdb")
        s.remove_breakpoint(top)
        assert s.timeline.breakpoint_table() == []
        target = s.symbols["apply_transaction"]
        bp = s.add_breakpoint(target, client="gdb")
        hit = s.cont(FORWARD)
        assert hit.why == "breakpoint" and hit.pc == target
        again = s.cont(FORWARD)
        assert again.why == "breakpoint" and again.pc == target
        s.remove_breakpoint(bp)
        end = s.cont(FORWARD)
        assert isinstance(end, Exited), end


# -- the snapshot journal out of memory (issue 20) -------------------------------------------
@pytest.fixture(scope="module")
def dirty(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_dirty(tmp_path_factory.mktemp("dirty"))


def test_a_full_journal_is_a_clean_stop_and_the_session_stays_usable(dirty):
    """One interval dirties more than the journal may hold: an out-of-memory stop (exact
    state), a clear error for going further, and every backward motion still works."""
    with open_session(dirty, budget=1 << 20) as s:  # the journal's limit: 8 MiB
        ev = s.cont(FORWARD)
        assert isinstance(ev, OutOfMemory) and ev.why == "memory", ev
        assert "out of memory" in ev.describe()
        stop = s.position
        assert stop == ev.position > 0
        assert s.timeline.stats()["bytes"] <= MIN_JOURNAL_LIMIT + 64 * 4096
        with pytest.raises(HistoryFull, match="out of memory"):
            s.cont(FORWARD)
        with pytest.raises(HistoryFull):
            s.step(FORWARD)
        assert s.position == stop
        here = capture(s)
        back = s.step(BACKWARD)
        assert back.why == "step" and s.position == stop - 1
        before = capture(s)
        assert isinstance(s.cont(BACKWARD), HistoryBoundary) and s.position == 0
        s.seek(stop - 1)  # forward from the origin: the same state
        assert capture(s).diff(before) == []
        s.seek(0)
        again = s.cont(FORWARD)  # re-execution stops at the same place, in the same state
        assert isinstance(again, OutOfMemory) and again.position == stop
        assert capture(s).diff(here) == []


def test_a_full_journal_forgets_the_oldest_history_and_runs_on(dirty):
    with open_session(dirty, interval=2_000, budget=1 << 20) as s:
        end = s.cont(FORWARD)
        assert isinstance(end, Exited) and end.status == 0, end
        when = s.when()
        assert when.origin > 0  # the oldest history was forgotten on the way
        assert s.timeline.stats()["bytes"] <= MIN_JOURNAL_LIMIT + 64 * 4096
        s.seek(when.origin)
        assert s.position == when.origin
        assert isinstance(s.cont(FORWARD), Exited)
