"""Signals as exception stops (issue 18: "exception-like stops for faults and signals"): a
program that raises SIGTERM on itself (a fatal signal) stops with reason ``exception`` and
text ``SIGTERM``; with the ``signals`` exception filter, a signal given to a handler stops
before the handler runs (``tests/gdb/programs/sigstop.c``, as gdb's "Program received
signal"), and continuing delivers it."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import progs
import pytest
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


SIGSTOP_C = Path(__file__).resolve().parents[1] / "gdb" / "programs" / "sigstop.c"


def _sigstop_line(marker: str) -> int:
    for n, text in enumerate(SIGSTOP_C.read_text().splitlines(), 1):
        if marker in text:
            return n
    raise AssertionError(marker)


@pytest.fixture(scope="module", params=["gcc", "aarch64"])
def sigstop(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            require_tool: Callable[[str], str]) -> Path:
    tc = progs.toolchain_for(str(request.param))
    require_tool(tc.cc)
    exe = tmp_path_factory.mktemp("dap-sigstop") / f"sigstop-{tc.name}"
    subprocess.run(tc.command(SIGSTOP_C, exe), check=True, capture_output=True)
    return exe


def _launch(c: Client, exe: Path, filters: list[str]) -> None:
    caps = c.body("initialize", {"adapterID": "syxdbg", "linesStartAt1": True})
    assert [f["filter"] for f in caps["exceptionBreakpointFilters"]] == ["signals"]
    c.wait_event("initialized")
    c.request("launch", {"program": str(exe), "env": dict(progs.DEFAULT_ENV),
                         "clearEnv": True})
    body = c.body("setExceptionBreakpoints", {"filters": filters})
    assert [b["verified"] for b in body["breakpoints"]] == [True] * len(filters)
    c.request("configurationDone")


def test_a_signal_given_to_a_handler_stops_before_it(adapter: Callable[[], Client],
                                                      sigstop: Path) -> None:
    """With the "signals" filter, SIGUSR1 raised at a handler stops before the handler
    runs (in raise, called from main's line), twice; the count shows the first delivery
    happened; back to the start and forward again stops at the first one again."""
    c = adapter()
    _launch(c, sigstop, ["signals"])
    first = c.stopped()
    assert (first["reason"], first.get("text")) == ("exception", "SIGUSR1"), first
    info = c.body("exceptionInfo", {"threadId": first["threadId"]})
    assert info["exceptionId"] == "SIGUSR1" and "about to be given" in info["description"]
    frames = c.frames()
    main = next(f for f in frames if f["name"] == "main")
    assert main["line"] == _sigstop_line("raise(SIGUSR1);"), frames
    assert c.evaluate("hits")["body"]["result"].startswith("0")
    c.request("continue", {"threadId": first["threadId"]})
    second = c.stopped()
    assert (second["reason"], second.get("text")) == ("exception", "SIGUSR1"), second
    main = next(f for f in c.frames() if f["name"] == "main")
    assert main["line"] == _sigstop_line("kill(getpid(), SIGUSR1);"), main
    assert c.evaluate("hits")["body"]["result"].startswith("1")  # the first was delivered
    assert "Program received signal SIGUSR1" in c.output("console")
    c.request("reverseContinue", {"threadId": 1})
    assert c.stopped()["reason"] == "entry"
    c.request("continue", {"threadId": 1})
    again = c.stopped()
    assert again["reason"] == "exception" and again["description"] == first["description"]
    c.request("continue", {"threadId": 1})
    assert c.stopped()["description"] == second["description"]
    c.request("continue", {"threadId": 1})
    assert c.stopped()["reason"] == "exited"
    assert c.evaluate("hits")["body"]["result"].startswith("2")
    c.request("disconnect", {})


def test_without_the_filter_signals_do_not_stop(adapter: Callable[[], Client],
                                                sigstop: Path) -> None:
    c = adapter()
    _launch(c, sigstop, [])
    assert c.stopped()["reason"] == "exited"
    assert c.evaluate("hits")["body"]["result"].startswith("2")
    c.request("disconnect", {})


FAULTS_C = Path(__file__).resolve().parents[1] / "linux" / "programs" / "faults.c"


def test_a_fault_given_to_a_handler_stops_at_the_faulting_instruction(
        adapter: Callable[[], Client], tmp_path: Path) -> None:
    """With the "signals" filter, faults.c's first fault (a read of unmapped memory that a
    SIGSEGV handler takes) stops before the handler, at the faulting line with nothing of
    it done; a step back goes to the instruction before; continuing gives it to the
    handler and stops at the next fault (the write), in main again."""
    exe = tmp_path / "faults"
    subprocess.run(progs.toolchain_for("gcc").command(FAULTS_C, exe), check=True,
                   capture_output=True)
    lines = FAULTS_C.read_text().splitlines()
    read_line = next(n for n, t in enumerate(lines, 1) if "(void)*(volatile int *)" in t)
    write_line = next(n for n, t in enumerate(lines, 1) if "*(volatile int *)expect_addr = 1"
                      in t)
    c = adapter()
    _launch(c, exe, ["signals"])
    first = c.stopped()
    assert (first["reason"], first.get("text")) == ("exception", "SIGSEGV"), first
    top = c.frames()[0]
    assert (top["name"], top["line"]) == ("main", read_line), top
    position = c.evaluate("$pc")["body"]["result"]
    c.request("stepBack", {"threadId": first["threadId"]})
    assert c.stopped()["reason"] == "step"
    assert c.evaluate("$pc")["body"]["result"] != position
    c.request("continue", {"threadId": first["threadId"]})
    again = c.stopped()  # forward again: the same fault stops again
    assert again.get("text") == "SIGSEGV" and c.evaluate("$pc")["body"]["result"] == position
    c.request("continue", {"threadId": first["threadId"]})
    second = c.stopped()
    top = c.frames()[0]
    assert (second.get("text"), top["name"], top["line"]) == ("SIGSEGV", "main", write_line)
    c.request("disconnect", {})
