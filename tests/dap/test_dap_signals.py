"""A fatal signal is an exception stop, as a fault is (issue 18: "exception-like stops for
faults and signals"): a program that raises SIGTERM on itself stops with reason
``exception`` and text ``SIGTERM``; ``exceptionInfo`` names it; the program can be stepped
back from there; continuing ends the session with 128 + 15."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import progs
from conftest import start
from dapclient import Client

SOURCE = r"""
#include <signal.h>
#include <stdio.h>

int stage;

int main(void) {
    stage = 1;
    raise(SIGTERM);
    stage = 2;
    return 0;
}
"""


def test_a_fatal_signal_is_an_exception_stop(adapter: Callable[[], Client],
                                             tmp_path: Path) -> None:
    source = tmp_path / "term.c"
    source.write_text(SOURCE)
    exe = tmp_path / "term"
    subprocess.run(progs.toolchain_for("gcc").command(source, exe), check=True,
                   capture_output=True)
    c = adapter()
    start(c, {"program": str(exe), "env": dict(progs.DEFAULT_ENV), "clearEnv": True})
    stop = c.stopped()
    assert (stop["reason"], stop.get("text")) == ("exception", "SIGTERM"), stop
    info = c.body("exceptionInfo", {"threadId": stop["threadId"]})
    assert info["exceptionId"] == "SIGTERM", info
    assert c.evaluate("stage")["body"]["result"].startswith("1"), c.output("console")
    c.request("stepBack", {"threadId": stop["threadId"]})
    assert c.stopped()["reason"] == "step"
    c.request("continue", {"threadId": stop["threadId"]})
    c.wait_event("stopped")
    c.request("continue", {"threadId": stop["threadId"]})
    exited = c.wait_event("exited")
    assert exited["body"]["exitCode"] == 128 + 15, exited
