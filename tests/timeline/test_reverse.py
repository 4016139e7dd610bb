"""Reverse execution: the reverse-stepi invariant, reverse-continue to breakpoints and
watchpoints, the beginning of history."""

from __future__ import annotations

import random

import pytest
from timeline_helpers import State, capture, open_session

from syxdbg.machine import Exited
from syxdbg.timeline import BACKWARD, FORWARD, HistoryBoundary, WatchStop

INVARIANT_CASES = [
    ("corrupt", "gcc"),
    ("corrupt", "musl"),
    ("corrupt", "aarch64"),
    ("fpsimd", "gcc"),
    ("fpsimd", "aarch64"),
    ("timeclock", "musl"),  # clock, getrandom, nanosleep: replayed from the event log
    ("timeclock", "aarch64"),
    ("hello", "gcc"),
]


def _end(session) -> int:
    ev = session.cont(FORWARD)
    assert isinstance(ev, Exited), ev
    return ev.position


@pytest.mark.parametrize(("program", "toolchain"), INVARIANT_CASES)
def test_state_after_reverse_stepi_from_n_equals_state_recorded_at_n_minus_1(
        build_program, program, toolchain):
    exe = build_program(program, toolchain)
    with open_session(exe, interval=20_000) as s:
        end = _end(s)
    # A fresh session: record states on the way forward, then check them going back.
    with open_session(exe, interval=20_000) as s:
        rng = random.Random(f"{program}-{toolchain}")
        scattered = {rng.randrange(1, end) for _ in range(12)} | {1, 2, end - 1, end}
        window_start = rng.randrange(1, end - 80)
        window = set(range(window_start, window_start + 60))  # consecutive reverse-stepi
        wanted = sorted(scattered | window | {20_000, 20_001, 40_000} & set(range(1, end + 1)))
        recorded: dict[int, State] = {}
        for p in wanted:
            ev = s.seek(p)
            assert ev.position == p, ev
            recorded[p] = capture(s)
        assert s.when().frontier == end

        # Scattered: jump to N (restore + replay), reverse-stepi, compare with N-1.
        for n in sorted(scattered, reverse=True):
            if n - 1 not in recorded:
                continue
            s.seek(n)
            ev = s.step(BACKWARD)
            assert ev.position == n - 1
            assert capture(s).diff(recorded[n - 1]) == [], f"after reverse-stepi from {n}"
        # A run of consecutive reverse-stepi (each from where the previous one landed).
        top = max(window)
        s.seek(top)
        for n in range(top, window_start, -1):
            ev = s.step(BACKWARD)
            assert ev.position == n - 1
            assert capture(s).diff(recorded[n - 1]) == [], f"after reverse-stepi from {n}"
        # And forward again, replaying over the same stretch.
        for n in range(window_start, top):
            ev = s.step(FORWARD)
            assert ev.position == n + 1
            assert capture(s).diff(recorded[n + 1]) == [], f"after stepi to {n + 1}"


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_reverse_continue_lands_on_each_earlier_breakpoint_hit_then_history_begin(
        build_program, toolchain):
    exe = build_program("corrupt", toolchain)
    with open_session(exe, interval=3_000) as s:
        bp = s.add_breakpoint("record_history").address
        forward_hits = []
        while True:
            ev = s.cont(FORWARD)
            if isinstance(ev, Exited):
                break
            assert ev.why == "breakpoint" and ev.pc == bp
            forward_hits.append(ev.position)
        assert len(forward_hits) == 17  # large transactions
        backward_hits = []
        while True:
            ev = s.cont(BACKWARD)
            if isinstance(ev, HistoryBoundary):
                break
            assert ev.why == "breakpoint" and ev.pc == bp and s.position == ev.position
            backward_hits.append(ev.position)
        assert backward_hits == forward_hits[::-1]
        assert ev.edge == "begin" and ev.position == 0 == s.position
        # Once more at the origin: still the beginning of history, no motion.
        again = s.step(BACKWARD)
        assert isinstance(again, HistoryBoundary) and again.position == 0


def test_breakpoint_at_the_current_pc_is_not_a_hit_backwards(build_program):
    exe = build_program("corrupt", "gcc")
    with open_session(exe, interval=3_000) as s:
        bp = s.add_breakpoint("record_history").address
        first = s.cont(FORWARD)
        second = s.cont(FORWARD)
        assert second.pc == bp and second.position > first.position
        # At a hit: reverse-continue goes to the previous hit, not the current one.
        ev = s.cont(BACKWARD)
        assert ev.position == first.position
        # At the first hit: nothing earlier, beginning of history.
        ev = s.cont(BACKWARD)
        assert isinstance(ev, HistoryBoundary) and s.position == 0
        # Forward from the origin reaches the first hit again (a replay).
        assert s.cont(FORWARD).position == first.position


def test_reverse_continue_from_between_hits_finds_the_last_one_before(build_program):
    exe = build_program("corrupt", "gcc")
    with open_session(exe, interval=2_000) as s:
        s.add_breakpoint("apply_transaction")
        hits = []
        while not isinstance(ev := s.cont(FORWARD), Exited):
            hits.append(ev.position)
        assert len(hits) == 40
        for i in (39, 20, 5, 0):
            s.seek(hits[i] + 7)  # just after hit i
            assert s.cont(BACKWARD).position == hits[i]
        # Reverse stepi over several instructions stops at a hit in between.
        s.seek(hits[10] + 5)
        ev = s.step(BACKWARD, 50)
        assert ev.position == hits[10] and ev.why == "breakpoint"
        gap, i = max((hits[j + 1] - hits[j], j) for j in range(len(hits) - 1))
        assert gap > 30
        s.seek(hits[i] + gap - 5)
        ev = s.step(BACKWARD, gap - 15)
        assert ev.position == hits[i] + 10 and ev.why == "step"


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_reverse_watchpoints_report_the_writing_instruction_per_architecture(
        build_program, toolchain):
    exe = build_program("corrupt", toolchain)
    with open_session(exe, interval=4_000) as s:
        balance = s.symbols["ledger"] + 16 * 8
        s.add_watchpoint(balance, 8, "write")
        forward = []
        while not isinstance(ev := s.cont(FORWARD), Exited):
            assert isinstance(ev, WatchStop) and ev.direction == "forward"
            forward.append(ev.insn_position)
        assert len(forward) == 41  # 40 legitimate updates + the out-of-bounds store
        after = s.timeline.reverse_watch_after
        assert after is (toolchain == "aarch64")
        backward = []
        while not isinstance(ev := s.cont(BACKWARD), HistoryBoundary):
            assert isinstance(ev, WatchStop) and ev.direction == "backward"
            # x86: state before the write, pc at the writing instruction;
            # aarch64: state after it (gdb then steps back itself).
            assert ev.position == ev.insn_position + (1 if after else 0) == s.position
            assert ev.before is not after
            assert ev.insn_pc is not None
            backward.append(ev.insn_position)
            if after:
                # What gdb does on aarch64: remove the watchpoint, step back onto the
                # writing instruction, insert it again. (Without that, another reverse-continue
                # from here reports the same write: it is the instruction just before.)
                s.remove_watchpoint(balance, 8, "write")
                assert s.step(BACKWARD).position == ev.insn_position
                assert s.machine.pc == ev.insn_pc
                s.add_watchpoint(balance, 8, "write")
            assert len(backward) <= len(forward)
        assert backward == forward[::-1]

        # reverse-stepi over a watched write reports it too.
        w = forward[-1]
        s.seek(w + 1)
        ev = s.step(BACKWARD)
        assert isinstance(ev, WatchStop) and ev.insn_position == w
        assert s.position == (w + 1 if after else w)
        s.seek(w + 3)
        ev = s.step(BACKWARD)
        assert not isinstance(ev, WatchStop) and ev.position == w + 2
