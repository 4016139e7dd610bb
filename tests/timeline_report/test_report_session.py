"""The ``timeline`` command on live sessions and under gdb's ``monitor`` (its file confined
to the output directory), on both architectures: the report's data is what the machine
did, and the session ends where it was."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

import syxdbg
from syxdbg.commands import CommandError, make_registry
from syxdbg.recording import Recorder


def data_of(path: Path) -> dict:
    m = re.search(r'<script type="application/json" id="timeline-data">(.*?)</script>',
                  path.read_text(), re.S)
    assert m is not None
    return json.loads(m.group(1))


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_live_session_report_and_watch_values(toolchain: str, tmp_path: Path,
                                              build_program: Callable[..., Path]) -> None:
    exe = build_program("corrupt", toolchain)
    with syxdbg.open(str(exe), env={}) as s:
        s.run()
        end = s.position
        r = make_registry(s)
        r.run_text("goto 5000")
        out = tmp_path / "live.html"
        text = r.run_text(f"timeline {out} --watch ledger.balance --buckets 64")
        assert s.position == 5000  # back where it was
        assert "41 writes to ledger.balance" in text and "64 buckets" in text, text
        d = data_of(out)
        assert d["start"] == 0 and d["end"] == end and d["bucketCount"] == 64
        assert d["commands"]["shell"] == "goto {N}"  # a live session: no recording
        w = d["watches"][0]
        assert w["length"] == 8 and len(w["pos"]) == 41
        assert w["old"][0] == "0" and w["new"][0] == "120"
        assert w["old"][-1] == "5968" and w["new"][-1] == "777"
        assert "record_history" in d["disasm"][str(w["pc"][-1])]
        assert all("apply_transaction" in d["disasm"][str(pc)] for pc in w["pc"][:-1])
        # each write's position is its instruction's: goto lands on it, before the store
        r.run_text(f"goto {w['pos'][-1]}")
        assert s.regs.pc == w["pc"][-1]
        assert s.mem.read(w["address"], 8) == (5968).to_bytes(8, "little")
        names = d["syscalls"]["name"]
        assert names[-1] == "exit_group" and "write" in names
        last_call = d["disasm"][str(d["syscalls"]["pc"][-1])]
        assert last_call.endswith((": syscall", ": svc #0")), last_call
        r.run_text(f"goto {d['syscalls']['pos'][-1]}")
        assert s.regs.pc == d["syscalls"]["pc"][-1]
        counts = d["syscallCounts"]
        assert len(counts) == 64 and sum(counts) == len(names)
        for p in d["syscalls"]["pos"]:
            assert counts[(p - d["start"]) // d["bucketSize"]] > 0
        fns = {f["name"] for f in d["functions"]}
        assert {"main", "run_day", "process_batch", "apply_transaction", "audit",
                "record_history"} <= fns
        record = next(f for f in d["functions"] if f["name"] == "record_history")
        guilty_bucket = (w["pos"][-1] - d["start"]) // d["bucketSize"]
        assert guilty_bucket in record["b"]
        assert d["finish"]["kind"] == "exit" and d["finish"]["position"] == end


def test_monitor_report_is_confined_to_the_output_directory(
        tmp_path: Path, build_program: Callable[..., Path]) -> None:
    exe = build_program("corrupt", "gcc")
    outdir = tmp_path / "out"
    outdir.mkdir()
    with syxdbg.open(str(exe), env={}, options={"output_dir": str(outdir)}) as s:
        s.run()
        r = make_registry(s, frontend="gdb")
        for bad, why in (("../x.html", "'..' is not allowed"), ("/tmp/x.html", "relative"),
                         (str(tmp_path / "y.html"), "relative")):
            with pytest.raises(CommandError, match=re.escape(why)):
                r.run_text(f"timeline {bad}")
        text = r.run_text("timeline run.html --from 100 --to 9000")
        assert "positions 100..9000" in text
        d = data_of(outdir / "run.html")
        assert d["start"] == 100 and d["end"] == 9000
        assert all(100 <= p < 9000 for p in d["syscalls"]["pos"])
        with pytest.raises(CommandError, match="already exists"):
            r.run_text("timeline run.html")
        for bad, why in (("run2.html --watch", "needs a value"),
                         ("run2.html --frobnicate 1", "unknown option"),
                         ("run2.html --buckets 0", "between 1"),
                         ("run2.html --from 9000 --to 100", "after TO")):
            with pytest.raises(CommandError, match=why):
                r.run_text(f"timeline {bad}")
        assert not (outdir / "run2.html").exists()


def test_nothing_executed_yet(build_program: Callable[..., Path], tmp_path: Path) -> None:
    with syxdbg.open(str(build_program("hello", "gcc")), env={}) as s, \
            pytest.raises(CommandError, match="nothing has executed yet"):
        make_registry(s).run_text(f"timeline {tmp_path / 'x.html'}")


def test_a_fault_is_the_end_mark_of_a_recording(build_program: Callable[..., Path],
                                                tmp_path: Path) -> None:
    exe = build_program("segv", "gcc")
    rec = tmp_path / "segv.syxrec"
    with syxdbg.open(str(exe), ["null"], env={}) as s:
        Recorder(s, str(rec)).run(max_insns=None)
    with syxdbg.replay(str(rec)) as s:
        end = s.recording.end_position
        out = tmp_path / "segv.html"
        text = make_registry(s).run_text(f"timeline {out}")
        assert "signal 11" in text, text
        d = data_of(out)
        finish = d["finish"]
        assert finish["kind"] == "fault" and finish["position"] == end
        assert "signal 11 (write to unmapped memory)" in finish["text"]
        # the faulting store, disassembled, and the command that goes there
        assert "mov" in d["disasm"][str(finish["pc"])]
        assert d["commands"]["gdb"] == f"syxdbg replay --ex 'monitor goto {{N}}' {rec}"
        s.seek(end)
        assert s.regs.pc == finish["pc"]


def test_threads_get_a_lane_each(tmp_path: Path, build_program: Callable[..., Path]) -> None:
    """racecount.c: the main thread and three workers; each system call and each watched
    write sits in the lane of the thread that made it (the kernel's scheduler says which)."""
    exe = build_program("racecount")
    with syxdbg.open(str(exe), env={}) as s:
        s.run()
        r = make_registry(s)
        out = tmp_path / "threads.html"
        r.run_text(f"timeline {out} --watch counter")
        d = data_of(out)
    lanes = d["lanes"]
    assert len(lanes) == 4, lanes
    main = lanes[0]
    assert main["thread"] == main["process"] and main["label"].endswith("(main)"), main
    assert {lane["label"] for lane in lanes[1:]} == {f"thread {lane['thread']}"
                                                    for lane in lanes[1:]}
    calls = d["syscalls"]
    by_lane = {lane["id"]: [n for n, ln in zip(calls["name"], calls["lane"], strict=True)
                            if ln == lane["id"]] for lane in lanes}
    assert "clone3" in by_lane[0] or "clone" in by_lane[0], by_lane[0]  # main makes them
    for lane in lanes[1:]:
        assert "sched_yield" in by_lane[lane["id"]], by_lane  # each worker yields
    writes = d["watches"][0]
    assert {ln for ln in writes["lane"]} == {lane["id"] for lane in lanes[1:]}  # workers
