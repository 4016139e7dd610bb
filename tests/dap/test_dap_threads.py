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
