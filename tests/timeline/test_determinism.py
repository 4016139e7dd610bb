"""Determinism: host inputs are recorded at the frontier and replayed behind it; host side
effects happen once; execution continues live past the frontier; writing in the past
discards the future."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from timeline_helpers import capture, open_session

from syxdbg.eventlog import Divergence
from syxdbg.machine import Exited
from syxdbg.timeline import BACKWARD, FORWARD, FutureDiscarded, HistoryBoundary

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "timeline_runner.py"
STDIN = b"hello world\nthe quick brown fox\njumps over the lazy dog\nno newline at the end"


def _run_runner(exe: Path, args: list[str], tmp_path: Path, stdin: bytes = b""
                ) -> tuple[subprocess.CompletedProcess[bytes], dict]:
    report = tmp_path / "report.json"
    tests_dir = str(HERE.parent)
    pythonpath = os.pathsep.join(p for p in (str(HERE), tests_dir, os.environ.get("PYTHONPATH"))
                                 if p)
    p = subprocess.run([sys.executable, str(RUNNER), str(report), str(exe), *args],
                       input=stdin, capture_output=True, timeout=600, check=False,
                       env={**os.environ, "PYTHONPATH": pythonpath})
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p, json.loads(report.read_text())


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
@pytest.mark.parametrize("mode", [[], ["--fgets"]])
def test_reads_of_piped_stdin_replay_the_same_bytes_and_output_appears_once(
        build_program, run_native, toolchain, mode, tmp_path):
    exe = build_program("readstdin", toolchain)
    p, report = _run_runner(exe, mode, tmp_path, STDIN)
    native = run_native(exe, mode, stdin=STDIN)
    assert native.stdout.startswith(STDIN.upper())
    assert p.stdout == native.stdout  # exactly once, although re-executed four times
    assert report["mismatches"] == []
    assert report["replay_end"] == report["end"] == report["again_end"] == report["frontier"]
    assert report["replay_status"] == report["status"] == 0
    log = report["eventlog"]
    assert log["recorded"] > 5 and log["replayed"] >= 2 * log["recorded"]


def test_clock_and_getrandom_replay_identically(build_program, capfd):
    exe = build_program("timeclock", "gcc")
    with open_session(exe, interval=3_000) as s:
        first = s.cont(FORWARD)
        assert isinstance(first, Exited) and first.status == 0
        at_end = capture(s)
        out1 = capfd.readouterr().out
        assert "getrandom: 16 bytes" in out1
        # Every state on the way is the same on replay: the clock values and random bytes
        # the guest stored are the recorded ones.
        for target in (first.position // 3, first.position // 2):
            s.seek(target)
            here = capture(s)
            s.seek(0)
            s.seek(target)
            assert capture(s).diff(here) == []
        s.seek(0)
        again = s.cont(FORWARD)
        assert again.position == first.position and again.status == 0
        assert capture(s).diff(at_end) == []
        assert capfd.readouterr().out == ""  # the output is not repeated
        calls = {e.call for e in s.eventlog.events()}
        assert {"clock", "random", "sleep", "write"} <= calls


def test_forward_execution_past_the_frontier_continues_live(build_program, capfd):
    exe = build_program("corrupt", "gcc")
    with open_session(exe, interval=2_000) as s:
        s.add_breakpoint("run_day")
        hit = s.cont(FORWARD)
        assert hit.why == "breakpoint" and s.when().frontier == hit.position
        s.remove_breakpoint("run_day")
        s.seek(100)
        assert s.when().replaying
        end = s.cont(FORWARD)  # replays up to the frontier, then records without stopping
        assert isinstance(end, Exited) and end.status == 1
        assert s.when().frontier == end.position and not s.when().replaying
        assert "ledger CORRUPTED" in capfd.readouterr().out


def test_writing_memory_in_the_past_discards_the_future(build_program, capfd):
    exe = build_program("corrupt", "gcc")
    with open_session(exe, interval=2_000) as s:
        end = s.cont(FORWARD)
        assert end.status == 1
        assert "ledger CORRUPTED" in capfd.readouterr().out
        s.add_breakpoint("run_day")
        at = s.cont(BACKWARD)
        assert at.why == "breakpoint"
        s.remove_breakpoint("run_day")
        events_before = len(s.eventlog)
        # At the frontier nothing is discarded; in the past the future is.
        discarded = s.write_memory("fixed_mode", (1).to_bytes(4, "little"))
        assert isinstance(discarded, FutureDiscarded)
        assert discarded.position == at.position and discarded.old_frontier == end.position
        assert discarded.events == events_before - len(s.eventlog) > 0
        assert s.when().frontier == at.position and s.timeline.last_discarded == discarded
        # Going back and forward again keeps the written value (the checkpoint was replaced).
        s.seek(at.position - 10)
        s.seek(at.position)
        assert int.from_bytes(s.mem.read(s.symbols["fixed_mode"], 4), "little") == 1
        fixed = s.cont(FORWARD)
        assert isinstance(fixed, Exited) and fixed.status == 0
        assert "ledger ok" in capfd.readouterr().out  # a new, live future
        assert s.when().frontier == fixed.position
        # A write at the frontier discards nothing.
        assert s.write_register("rip", s.machine.pc) is None


def test_writing_a_register_at_the_origin_replaces_the_root(build_program):
    exe = build_program("corrupt", "gcc")
    with open_session(exe) as s:
        s.cont(FORWARD)
        s.seek(0)
        sp = s.regs.sp
        assert s.write_register("rsp", sp - 64) is not None
        s.seek(10)
        s.seek(0)
        assert s.regs.sp == sp - 64
        assert isinstance(s.step(BACKWARD), HistoryBoundary)


def test_replay_divergence_is_detected(build_program):
    exe = build_program("corrupt", "gcc")
    with open_session(exe) as s:
        end = s.cont(FORWARD)
        # Forge the recorded future: the first recorded host call was something else.
        first = s.eventlog.events()[0]
        s.eventlog._events[0] = type(first)(first.seq, first.position + 1, first.source,
                                            first.call, first.key, first.result)
        s.seek(0)
        with pytest.raises(Divergence):
            s.seek(end.position)
