"""DAP ``threads`` (issue 13): the guest's threads, the stopped thread's id, and each
thread's own call stack, on ``tests/programs/racecount.c`` (three workers racing on a
counter) stopped at the racy write. The session's scheduler is the oracle."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from conftest import line_of, start
from dapclient import Client

LAUNCH_ENV = {"env": {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}, "clearEnv": True}


def test_threads_and_per_thread_stacks(adapter: Callable[[], Client],
                                       build_program: Callable[..., Path]) -> None:
    exe = build_program("racecount")
    c = adapter()
    write = line_of("racecount", "the racy write")
    start(c, {"program": str(exe), **LAUNCH_ENV},
          breakpoints={"racecount.c": [{"line": write}]})
    first = c.stopped()
    c.request("continue", {"threadId": first["threadId"]})
    stop = c.stopped()
    assert stop["reason"] == "breakpoint"
    threads = c.body("threads")["threads"]
    assert len(threads) == 4, threads  # main and three workers
    by_id = {t["id"]: t["name"] for t in threads}
    assert by_id[1] == exe.name  # the first thread seen, the main thread: the program
    assert sum(name.endswith(" worker") for name in by_id.values()) >= 2, by_id
    assert stop["threadId"] != first["threadId"]  # the second worker at its write
    assert by_id[stop["threadId"]].endswith(" worker")
    frames = c.body("stackTrace", {"threadId": stop["threadId"]})["stackFrames"]
    assert frames[0]["name"] == "bump" and frames[0]["line"] == write, frames[0]
    assert any(f["name"] == "worker" for f in frames), frames
    main = c.body("stackTrace", {"threadId": 1})["stackFrames"]
    assert any(f["name"] == "main" for f in main), main
    assert all(f["name"] != "bump" for f in main), main
    c.request("disconnect", {})


def _counter_with(adapter: Callable[[], Client], exe: Path, schedule: object) -> str:
    """The racy count the program ends with when launched with ``schedule`` (the value of
    its ``counter`` at the stop at exit)."""
    c = adapter()
    launch = {"program": str(exe), **LAUNCH_ENV}
    if schedule is not None:
        launch["schedule"] = schedule
    start(c, launch)
    assert c.stopped()["reason"] == "exited"
    value = str(c.evaluate("counter")["body"]["result"])
    c.request("disconnect", {})
    return value


def test_launch_schedule_seed_picks_a_reproducible_interleaving(
        adapter: Callable[[], Client], build_program: Callable[..., Path]) -> None:
    """The launch configuration's ``schedule`` is ``--schedule``: seeds 1-3 give different
    racy counts (as ``syxdbg run --schedule`` does: 7, 5, 8), the same seed the same count,
    "fifo" the default round robin; a bad value is a launch error."""
    exe = build_program("racecount")
    counts = {seed: _counter_with(adapter, exe, f"seed:{seed}") for seed in (1, 2, 3)}
    assert all(v.isdigit() for v in counts.values()), counts
    assert len(set(counts.values())) >= 2, counts
    assert _counter_with(adapter, exe, 2) == counts[2]  # a bare number is a seed too
    assert _counter_with(adapter, exe, "fifo") == _counter_with(adapter, exe, None)
    c = adapter()
    c.body("initialize", {"adapterID": "syxdbg"})
    resp = c.request("launch", {"program": str(exe), "schedule": "seed:x"}, ok=False)
    assert not resp["success"] and "schedule" in resp["message"], resp
