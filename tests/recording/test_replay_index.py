"""Interval summaries in recordings (issue 19, format 3): a replay's reverse search skips
the recorded intervals that cannot hold a hit, without loading or re-executing them.

The recorder keeps, per persisted checkpoint interval, the code executed and the memory
written (the timeline's indexed-search summaries, ``Recording.summary``). A replay that
jumped over most of the run (a seek to near its end) searches backwards for a breakpoint
hit near the start, a write watchpoint and ``last_write``: each must find what the full
scan (``Timeline.indexed = False``) finds, in the same state, while re-executing one
recorded interval instead of every one. Recordings of format 2 (no summaries) search as
before.
"""

from __future__ import annotations

import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import support
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import syxdbg
from syxdbg.machine import Stopped
from syxdbg.recording import VERSION, Recording

SOURCE = r"""
#include <stdint.h>
/* Each on pages of its own: the write summaries are page-granular. */
__attribute__((aligned(4096))) volatile uint64_t config[512];
__attribute__((aligned(4096))) volatile uint64_t table[8192];

__attribute__((noinline)) void setup(uint64_t seed) {
    config[0] = seed * 7;
    config[1] = seed + 3;
}

__attribute__((noinline)) void late(uint64_t v) { table[0] = v; }

int main(int argc, char **argv) {
    (void)argv;
    setup((uint64_t)argc);
    uint64_t acc = 0;
    for (uint64_t i = 0; i < 1200000; i++) {   /* ~10M instructions */
        acc += i * 3;
        table[i & 8191] = acc;
    }
    late(acc);
    return (int)(config[0] + config[1] + (acc & 1)) & 0x7f;
}
"""

INTERVAL = 1_000_000  # the smallest checkpoint interval a recorder takes


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory,
              require_tool: Callable[[str], str]) -> Iterator[Path]:
    gcc = require_tool("gcc")
    tmp = tmp_path_factory.mktemp("replay-index")
    src = tmp / "prog.c"
    src.write_text(SOURCE)
    exe = tmp / "prog"
    subprocess.run([gcc, "-O1", "-static", "-g", "-o", str(exe), str(src)], check=True)
    out = tmp / "prog.syxrec"
    proc = subprocess.run([sys.executable, "-m", "syxdbg", "record", "-q", "-o", str(out),
                           "--checkpoint-interval", str(INTERVAL), "--clear-env", str(exe)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 11, proc.stderr  # (1*7 + 1+3 + even) & 0x7f
    yield out


def test_the_recording_holds_a_summary_per_interval(recording: Path) -> None:
    rec = Recording.open(str(recording))
    assert rec.version == VERSION == 3
    positions = rec.checkpoint_positions
    assert len(positions) >= 8 and positions[-1] == rec.end_position
    assert rec.summary(0) is None  # no interval ends at the first checkpoint
    for i in range(1, len(positions)):
        summary = rec.summary(i)
        assert summary is not None, i
        code, writes = summary
        assert code and writes and len(code) % 16 == 0 and len(writes) % 16 == 0


def _search(recording: Path, indexed: bool, what: str) -> tuple[object, int, tuple[int, ...],
                                                                 object]:
    """Open a replay, jump to near its end, search backwards for ``what``; the stop, its
    position, the registers there and the timeline's scan statistics."""
    with syxdbg.replay(str(recording)) as s:
        s.timeline.indexed = indexed
        end = s.recording.end_position
        s.seek(end - 5)
        assert s.position == end - 5
        config = s.symbols["config"]
        if what == "breakpoint":
            s.add_breakpoint("setup")
            ev: object = s.cont("backward")
        elif what == "watch":
            s.add_watchpoint(config + 8, 8, "write")
            ev = s.cont("backward")
        else:
            ev = s.last_write(config, 8)
        stats = s.timeline.scan_stats
        regs = tuple(int(v) for _, v in s.machine.regs.read_all())
        return ev, s.position, regs, stats


@pytest.mark.parametrize("what", ["breakpoint", "watch", "last_write"])
def test_reverse_search_in_a_replay_skips_intervals(recording: Path, what: str) -> None:
    ev_full, pos_full, regs_full, full = _search(recording, False, what)
    ev_idx, pos_idx, regs_idx, idx = _search(recording, True, what)
    # The same hit, in the same state.
    assert pos_idx == pos_full and regs_idx == regs_full
    assert type(ev_idx) is type(ev_full) and not (isinstance(ev_idx, Stopped)
                                                  and ev_idx.why == "end")
    if what != "last_write":
        assert getattr(ev_idx, "pc", None) == getattr(ev_full, "pc", None)
    assert pos_idx < 2 * INTERVAL  # near the start: setup() runs first
    # The full scan re-executed every recorded interval down to the hit; the indexed
    # search one (the interval holding it), the rest excluded by the summaries.
    assert full is not None and idx is not None
    assert not full.indexed and idx.indexed
    assert full.scanned >= 8 and full.skipped == 0, full
    assert idx.scanned == 1 and idx.hits == 1, idx
    assert idx.skipped >= 7 and idx.intervals == idx.scanned + idx.skipped, idx
    assert idx.instructions <= INTERVAL < full.instructions, (idx, full)


def test_a_version_2_recording_searches_without_summaries() -> None:
    data = Path(__file__).parent / "data" / "hello-v2.syxrec"
    rec = Recording.open(str(data))
    assert rec.version == 2 and rec.summary(1) is None
    with syxdbg.replay(str(data)) as s:
        s.seek(s.recording.end_position)
        s.add_breakpoint("main")
        ev = s.cont("backward")
        assert getattr(ev, "why", None) == "breakpoint" and s.machine.pc == s.symbols["main"]


def _forge_summaries(src: Path, dst: Path, summary: object, *, drop: bool = False) -> None:
    """``src`` with every checkpoint's summary replaced (or the key dropped), the
    checksums and the whole-file digest made valid again (a forger who knows the format)."""
    def change(tag: bytes, obj: object) -> object:
        if tag == b"STAT" and isinstance(obj, dict) and obj.get("position"):
            obj = dict(obj)
            if drop:
                del obj["summary"]
            else:
                obj["summary"] = summary
        return obj

    support.forge_recording(src, dst, change=change)


@pytest.mark.parametrize("forged", ["text", "odd length", "three parts", "no key"])
def test_malformed_summaries_are_one_line(recording: Path, tmp_path: Path,
                                          forged: str) -> None:
    bad = tmp_path / "bad.syxrec"
    summary = {"text": "code", "odd length": (b"x" * 17, b""),
               "three parts": (b"", b"", b"")}.get(forged)
    _forge_summaries(recording, bad, summary, drop=forged == "no key")
    proc = subprocess.run([sys.executable, "-m", "syxdbg", "replay", "--check", str(bad)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"syxdbg: error: {bad}: corrupted recording: malformed checkpoint ('summary')"]


def test_unsorted_summaries_are_put_in_order(recording: Path, tmp_path: Path) -> None:
    """A forged summary with ranges out of order and overlapping is sorted and merged
    before the search uses it: it says every interval executed and wrote everything, so
    the search re-executes each one, and still finds the hit."""
    everything = struct.pack("<4Q", 1 << 40, 1 << 63, 0, 1 << 41)
    forged = tmp_path / "forged.syxrec"
    _forge_summaries(recording, forged, (everything, everything))
    _, pos_full, regs_full, _ = _search(recording, False, "breakpoint")
    _, pos, regs, stats = _search(forged, True, "breakpoint")
    assert (pos, regs) == (pos_full, regs_full)
    assert stats is not None and stats.scanned >= 8, stats
    assert stats.instructions >= 8 * INTERVAL, stats  # every recorded interval again


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_replay_searches_match_the_full_scan(recording: Path, data: st.DataObject) -> None:
    """Random breakpoints (function entries, instructions inside main, addresses in no
    function), write watchpoints (config, table, bytes in between) and places to search
    from: the replay with recorded summaries stops where the full scan stops, in the same
    state."""
    with syxdbg.replay(str(recording)) as probe:
        end = probe.recording.end_position
        syms = probe.symbols
    code = [syms["setup"], syms["late"], syms["main"],
            syms["main"] + data.draw(st.integers(0, 0x60), label="in main"),
            data.draw(st.integers(0x400000, 0x500000), label="anywhere")]
    bps = data.draw(st.lists(st.sampled_from(code), max_size=2, unique=True), label="bps")
    config, table = syms["config"], syms["table"]
    watch_at = data.draw(st.sampled_from([config, config + 8, config + 4096 - 8, table,
                                          table + 8 * 4097, table - 16]), label="watch")
    watch = data.draw(st.booleans(), label="watching") or not bps
    start = data.draw(st.integers(2 * INTERVAL, end), label="from")

    def search(indexed: bool) -> tuple[int, tuple[int, ...], str]:
        with syxdbg.replay(str(recording)) as s:
            s.timeline.indexed = indexed
            s.seek(start)
            for bp in bps:
                s.add_breakpoint(bp)
            if watch:
                s.add_watchpoint(watch_at, 8, "write")
            ev = s.cont("backward")
            regs = tuple(int(v) for _, v in s.machine.regs.read_all())
            return s.position, regs, type(ev).__name__

    assert search(True) == search(False)
