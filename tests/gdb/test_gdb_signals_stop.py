"""Signals shown to gdb (issue 14): a signal about to be given to a handler of the followed
process stops gdb ("Program received signal SIGUSR1") before the handler runs; ``continue``
passes it, ``signal 0`` discards it, ``handle SIG nostop noprint pass`` (``QPassSignals``)
runs through; the decision is part of history (back and forward again it holds); and
``reverse-stepi`` out of the handler lands on the instruction it interrupted.

``programs/sigstop.c`` (built by the suite) raises SIGUSR1 (``raise``, then ``kill``) at a
counting handler and prints the count after each, on the test's stdout (``capfd``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from gdbmi import Gdb
from gdbprogs import GDBS, build, debugged, line_of

SOURCE = Path(__file__).resolve().parent / "programs" / "sigstop.c"
RECEIVED = "Program received signal SIGUSR1, User defined signal 1."
#: The system call instruction (x86_64, aarch64) in ``x/i $pc``.
SYSCALL = re.compile(r"\t(syscall|svc\s+#0x0)\b")


AFTER_KILL = line_of(SOURCE, 'printf("after kill')
RAISE = line_of(SOURCE, "raise(SIGUSR1);")


@pytest.fixture(scope="module", params=tuple(GDBS))
def sigstop(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The program built by one toolchain (glibc, musl, aarch64)."""
    return build(SOURCE, request.param, tmp_path_factory)


@pytest.fixture(scope="module", params=tuple(GDBS))
def sigterm(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(SOURCE.with_name("sigterm.c"), request.param, tmp_path_factory)


def hits(g: Gdb) -> int:
    m = re.search(r"= (\d+)", g.cli("print hits"))
    assert m is not None
    return int(m.group(1))


def test_a_handled_signal_stops_gdb_before_its_handler(
        sigstop: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with debugged(sigstop) as (g, srv):
        s = srv.session
        out = g.cli("continue")
        assert RECEIVED in out, out
        assert hits(g) == 0  # the handler has not run
        assert SYSCALL.search(g.cli("x/i $pc"))  # (the system call that delivers it)
        out = g.cli("continue")  # gdb passes it (C1e): the handler runs
        assert RECEIVED in out and "in kill ()" in out, out
        assert hits(g) == 1
        out = g.cli("signal 0")  # discarded: the handler does not run
        assert "Continuing with no signal." in out, out
        assert "No more reverse-execution history." in out and s.machine.finished
    assert capfd.readouterr().out == "after raise: hits=1\nafter kill: hits=1\n"


def test_handle_nostop_noprint_pass_runs_through(
        sigstop: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with debugged(sigstop) as (g, srv):
        g.cli("handle SIGUSR1 nostop noprint pass")
        out = g.cli("continue")
        assert "SIGUSR1" not in out and "No more reverse-execution history." in out, out
    assert capfd.readouterr().out == "after raise: hits=1\nafter kill: hits=2\n"


def test_a_discarded_signal_stays_discarded_back_and_forward(sigstop: Path) -> None:
    """``signal 0`` is an input of history: going back before it and forward again (a
    re-execution that does not stop) repeats it; deciding otherwise changes the future."""
    with debugged(sigstop) as (g, srv):
        g.cli(f"break {AFTER_KILL}")
        g.cli("continue")
        g.cli("continue")
        out = g.cli("signal 0")
        assert "Breakpoint 1, main ()" in out and hits(g) == 1, out
        out = g.cli("reverse-continue")
        assert "No more reverse-execution history." in out and srv.session.position == 0
        g.cli("handle SIGUSR1 nostop noprint pass")  # re-executed without stops
        out = g.cli("continue")
        assert "Breakpoint 1, main ()" in out, out
        assert hits(g) == 1  # the kill's signal is still discarded
        g.cli("handle SIGUSR1 stop print pass")
        g.cli("reverse-continue")
        g.cli("continue")  # raise: pass it again
        out = g.cli("continue")  # kill: pass it this time
        assert RECEIVED in out and "in kill ()" in out, out
        out = g.cli("continue")
        assert "Breakpoint 1, main ()" in out and hits(g) == 2, out


def test_reverse_stepi_out_of_the_handler_lands_on_the_interrupted_code(
        sigstop: Path) -> None:
    with debugged(sigstop) as (g, srv):
        s = srv.session
        g.cli("break on_usr1")
        g.cli("continue")
        out = g.cli("continue")
        assert "Breakpoint 1, on_usr1 (sig=10)" in out, out
        assert "<signal handler called>" in g.cli("bt")
        entry = s.position
        out = g.cli("reverse-stepi")
        assert s.position == entry - 1, out
        assert SYSCALL.search(g.cli("x/i $pc")) and hits(g) == 0
        out = g.cli("continue")  # forward again: the same signal stop, then the handler
        assert RECEIVED in out, out
        out = g.cli("continue")
        assert "Breakpoint 1, on_usr1 (sig=10)" in out and s.position == entry, out
        g.cli("reverse-step")  # (the source-level step: out of the handler too)
        assert s.position == entry - 1 and SYSCALL.search(g.cli("x/i $pc"))


def test_signal_from_gdb_is_delivered_and_kept_in_history(
        sigstop: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """``signal SIGUSR1`` at a breakpoint (after the handler is installed) runs the
    handler now; it is a debugger write at that position, so back before it and forward
    again it happens again."""
    with debugged(sigstop) as (g, srv):
        g.cli(f"break {RAISE}")
        g.cli("continue")
        out = g.cli("signal SIGUSR1")
        assert "Continuing with signal SIGUSR1." in out, out
        if sigstop.name.endswith("-aarch64"):
            # Not before the program's first signal on aarch64: the handler's return
            # trampoline (the [vdso] page) is mapped then, and a mapping is not a write
            # history can repeat. gdb is told; the program goes on without it.
            assert RECEIVED in out and hits(g) == 0, out
            return
        assert "Breakpoint 1, main ()" in out and hits(g) == 1, out  # (back from it)
        g.cli("delete")
        g.cli("handle SIGUSR1 nostop noprint pass")
        g.cli(f"break {AFTER_KILL}")
        out = g.cli("continue")
        assert "Breakpoint 2, main ()" in out and hits(g) == 3, out
        end = srv.session.position
        out = g.cli("reverse-continue")
        assert "No more reverse-execution history." in out and srv.session.position == 0
        out = g.cli("continue")
        assert "Breakpoint 2, main ()" in out and hits(g) == 3, out
        assert srv.session.position == end
    assert capfd.readouterr().out == "after raise: hits=2\n"  # (the next one is not run)


def test_a_fatal_default_action_stops_first_and_can_be_discarded(
        sigterm: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """SIGTERM without a handler: gdb stops before it kills ("Program received signal
    SIGTERM"); ``signal 0`` lets the program live on; passed, it terminates it."""
    with debugged(sigterm) as (g, srv):
        out = g.cli("continue")
        assert "Program received signal SIGTERM, Terminated." in out, out
        assert SYSCALL.search(g.cli("x/i $pc"))
        out = g.cli("signal 0")
        assert "Program received signal SIGTERM, Terminated." in out, out  # the second
        out = g.cli("continue")
        assert "Program terminated with signal SIGTERM, Terminated." in out, out
    assert capfd.readouterr().out == "before\nsurvived\n"
