"""gdb's own fork, vfork and exec support over syxdbg (issue 14): multiprocess thread ids
(``pPID.TID``), ``fork``/``vfork``/``vforkdone``/``exec`` stop reasons, ``D;PID``, so that
``catch fork``, ``catch vfork``, ``catch exec``, ``set follow-fork-mode child``, ``set
detach-on-fork off`` and ``info inferiors`` work with a real gdb.

``programs/forks.c`` (built by the suite) forks a child that runs ``in_child`` and exits
41, then vforks a child that execs the program again (``exec_main`` prints and exits 7);
it prints every pid, so gdb's view is checked against what the program saw. The program
writes to the test's stdout (``capfd``); gdb's text is what a user sees.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from gdbprogs import GDBS, build, debugged, line_of

SOURCE = Path(__file__).resolve().parent / "programs" / "forks.c"
SYX = [sys.executable, "-m", "syxdbg"]


#: The parent's line right after its fork (the child's pid is known there).
AFTER_FORK = line_of(SOURCE, 'printf("forked')


@pytest.fixture(scope="module", params=tuple(GDBS))
def forks(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The program built by one toolchain (glibc, musl, aarch64)."""
    return build(SOURCE, request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def forks_gcc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(SOURCE, "gcc", tmp_path_factory)


def exe_is(exe: Path, toolchain: str) -> bool:
    return exe.name.endswith(f"-{toolchain}")


def printed(capfd: pytest.CaptureFixture[str], what: str) -> int:
    """The pid the program printed after ``what`` ("forked", "vforked")."""
    m = re.search(rf"^{what} (\d+)$", capfd.readouterr().out, re.M)
    assert m is not None, what
    return int(m.group(1))


def test_catch_fork_stops_in_the_parent_with_the_childs_pid(
        forks: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with debugged(forks, argv0=str(forks)) as (g, srv):
        s = srv.session
        parent = s.current_process
        g.cli("catch fork")
        out = g.cli("continue")
        m = re.search(r"Catchpoint 1 \(forked process (\d+)\), .* in _Fork \(\)", out)
        assert m is not None, out
        child = int(m.group(1))
        assert s.current_process == parent  # stopped in the parent's fork system call
        assert re.search(rf"\* 1 +process {parent} ", g.cli("info inferiors"))
        assert f"Thread {parent}.{parent}" in g.cli("info threads")
        out = g.cli(f"break {AFTER_FORK}")
        out = g.cli("continue")  # gdb detaches the child (D;PID): it runs on, unobserved
        assert f"[Detaching after fork from child process {child}]" in out, out
        assert "Breakpoint 2, main (" in out, out
        assert child in [p.pid for p in s.processes]  # (alive: it runs unobserved)
        out = g.cli("continue")  # the vfork is not caught (catch fork only)
        assert "No more reverse-execution history." in out, out
        assert re.search(r"\[Detaching after vfork from child process \d+\]", out), out
    assert printed(capfd, "forked") == child


def test_follow_fork_mode_child_breaks_in_the_child(
        forks: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with debugged(forks, argv0=str(forks)) as (g, srv):
        s = srv.session
        parent = s.current_process
        g.cli("set follow-fork-mode child")
        g.cli("break in_child")
        out = g.cli("continue")
        m = re.search(r"\[Attaching after Thread \d+\.\d+ fork to child Thread (\d+)\.\d+\]",
                      out)
        assert m is not None, out
        child = int(m.group(1))
        assert f"[Detaching after fork from parent process {parent}]" in out, out
        assert re.search(r"Thread 2\.1 hit Breakpoint 1, in_child \(n=(n@entry=)?20\)", out), out
        assert s.current_process == child and s.followed == child
        assert g.cli("print n").strip() == "$1 = 20"
        assert re.search(rf"\* 2 +process {child} ", g.cli("info inferiors"))
        hit = s.position
        # Backwards, the child's history starts where its parent's fork returned.
        out = g.cli("reverse-continue")
        assert "No more reverse-execution history." in out and "in _Fork ()" in out, out
        assert s.current_process == parent and s.position < hit
        assert "1    <null>" in g.cli("info inferiors")  # (gdb saw no other process)
        out = g.cli("continue")
        assert "hit Breakpoint 1, in_child (" in out and s.position == hit, out
        # A watchpoint in the child, both ways (the parent never writes it).
        g.cli("watch child_value")
        out = g.cli("continue")
        assert "Old value = 0\nNew value = 41\n" in out and s.current_process == child, out
        out = g.cli("reverse-continue")
        assert "Old value = 41\nNew value = 0\n" in out and s.current_process == child, out
        g.cli("delete")
        out = g.cli("continue")
        assert f"[Inferior 2 (process {child}) exited with code 051]" in out, out
    assert printed(capfd, "forked") == child


def test_catch_exec_shows_the_new_program(forks: Path) -> None:
    """After the first fork (followed in the parent), ``follow-fork-mode child`` follows
    the vfork child, whose exec stops gdb with the new program; a breakpoint in it hits."""
    with debugged(forks, argv0=str(forks)) as (g, srv):
        s = srv.session
        g.cli(f"break {AFTER_FORK}")
        g.cli("continue")
        g.cli("set follow-fork-mode child")
        g.cli("catch vfork")
        g.cli("catch exec")
        out = g.cli("continue")
        m = re.search(r"Catchpoint 2 \(vforked process (\d+)\)", out)
        assert m is not None, out
        child = int(m.group(1))
        out = g.cli("continue")
        assert "[Attaching after Thread" in out and f"vfork to child Thread {child}." in out
        assert f"process {child} is executing new program: {forks}" in out, out
        assert re.search(rf"Catchpoint 3 \(exec'd {re.escape(str(forks))}\)", out), out
        assert s.current_process == child and s.machine.pc == s.image.entry  # (its start)
        out = g.cli("break exec_main")
        out = g.cli("continue")
        assert re.search(r"hit Breakpoint \d+(\.\d+)?, exec_main \(n=(n@entry=)?7\)", out), out
        assert s.current_process == child
        hit = s.position
        # Backwards across the exec, to the start of the child's history (its vfork).
        out = g.cli("reverse-continue")
        assert "No more reverse-execution history." in out and s.position < hit, out
        out = g.cli("continue")
        assert f"process {child} is executing new program: {forks}" in out, out
        out = g.cli("continue")
        assert "exec_main (" in out and s.position == hit, out


def test_detach_on_fork_off_keeps_two_inferiors(
        forks: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with debugged(forks, argv0=str(forks)) as (g, srv):
        s = srv.session
        parent = s.current_process
        g.cli("set detach-on-fork off")
        g.cli(f"break {AFTER_FORK}")
        out = g.cli("continue")
        m = re.search(r"\[New inferior 2 \(process (\d+)\)\]", out)
        assert m is not None, out
        child = int(m.group(1))
        rows = g.cli("info inferiors")
        assert re.search(rf"\* 1 +process {parent} ", rows), rows
        assert re.search(rf"  2 +process {child} ", rows), rows
        # The child's registers and memory, though it does not run: its frames.
        g.cli("inferior 2")
        bt = g.cli("bt")
        assert re.match(r"#0 +0x[0-9a-f]+ in _Fork \(\)", bt), bt
        if not exe_is(forks, "musl"):  # (musl's _Fork has no unwind information: natively
            assert re.search(r"in fork \(\)\n#\d+ +0x[0-9a-f]+ in main \(", bt), bt  # too)
        g.cli("break in_child")
        out = g.cli("continue")  # inferior 2 only (schedule-multiple off)
        assert re.search(r"Thread 2\.1 hit Breakpoint 2\.\d, in_child \(", out), out
        assert s.current_process == child
        out = g.cli("continue")
        assert f"[Inferior 2 (process {child}) exited with code 051]" in out, out
        out = g.cli("inferior 1")  # (it was not held: it ran on, to its waitpid)
        assert f"[Switching to inferior 1 [process {parent}]" in out, out
    assert printed(capfd, "forked") == child


def test_reverse_execution_across_a_fork(forks: Path) -> None:
    """In the parent: back over its fork (reverse-stepi, reverse-continue to a breakpoint
    before it and to the start of history), forward again: the same child, caught again."""
    with debugged(forks, argv0=str(forks)) as (g, srv):
        s = srv.session
        g.cli("catch fork")
        g.cli(f"break {AFTER_FORK}")
        out = g.cli("continue")
        child = int(re.search(r"forked process (\d+)", out).group(1))  # type: ignore[union-attr]
        fork_at = s.position
        g.cli("continue")
        after = s.position
        g.cli("reverse-stepi")
        assert s.position == after - 1
        g.cli("break fork")
        out = g.cli("reverse-continue")
        assert re.search(r"Breakpoint 3, .*fork \(\)", out), out
        assert s.position < fork_at and [p.pid for p in s.processes] == [s.current_process]
        out = g.cli("reverse-continue")
        assert "No more reverse-execution history." in out and s.position == 0, out
        g.cli("delete 3")
        out = g.cli("continue")
        assert f"Catchpoint 1 (forked process {child})" in out, out
        assert s.position == fork_at
        out = g.cli("continue")
        assert "Breakpoint 2, main (" in out and s.position == after, out


def test_replay_pid_starts_gdb_in_that_process(forks_gcc: Path, tmp_path: Path) -> None:
    """``syxdbg replay --pid N`` (as ``rr replay -p``): gdb starts where process N of the
    recording came to be, debugging it; its breakpoint hits, the parent's do not."""
    rec = tmp_path / "forks.syxrec"
    forks = forks_gcc
    made = subprocess.run([*SYX, "record", "-o", str(rec), "--argv0", str(forks), str(forks)],
                          capture_output=True, text=True, timeout=300, check=True)
    child = int(re.search(r"^forked (\d+)$", made.stdout, re.M).group(1))  # type: ignore[union-attr]
    cmds = ["info inferiors", "break in_child", "break exec_main", "continue", "print n",
            "continue"]
    res = subprocess.run([*SYX, "replay", "--pid", str(child), "--batch",
                          *[x for c in cmds for x in ("--ex", c)], str(rec)],
                         capture_output=True, text=True, timeout=300, check=False)
    out = res.stdout + res.stderr
    assert re.search(rf"\* 1 +process {child} ", out), out
    assert re.search(r"Breakpoint 1, in_child \(n=(n@entry=)?20\)", out), out
    assert "$1 = 20" in out and "exec_main (" not in out, out
    assert f"[Inferior 1 (process {child}) exited with code 051]" in out, out


def test_attach_a_detached_child_with_extended_remote(
        forks: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """``target extended-remote`` + ``attach PID`` (``vAttach``): the fork child gdb
    detached runs on, unobserved; attaching it again makes it an inferior whose breakpoints
    stop, as with gdbserver."""
    with debugged(forks, "extended-remote", argv0=str(forks)) as (g, srv):
        s = srv.session
        g.cli(f"break {AFTER_FORK}")
        g.cli("continue")
        child = int(re.search(r"= (\d+)", g.cli("print pid")).group(1))  # type: ignore[union-attr]
        assert child in [p.pid for p in s.processes] and child not in srv.target._attached
        g.cli("add-inferior")
        g.cli("inferior 2")
        out = g.cli(f"attach {child}")
        assert f"Attaching to process {child}" in out and "failed" not in out, out
        rows = g.cli("info inferiors")
        assert re.search(rf"\* 2 +process {child} ", rows), rows
        assert re.match(r"#0 +0x[0-9a-f]+ in _Fork \(\)", g.cli("bt"))
        g.cli("break in_child")
        out = g.cli("continue")
        assert re.search(r"Thread 2\.1 hit Breakpoint 2\.\d, in_child \(", out), out
        assert s.current_process == child
        out = g.cli("continue")
        assert f"[Inferior 2 (process {child}) exited with code 051]" in out, out
        out = g.cli(f"attach {child}", check=False)  # (gone now)
        assert "failed" in out, out
    assert printed(capfd, "forked") == child


def test_odd_multiprocess_packets_get_one_plain_answer(
        forks_gcc: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Thread and process ids gdb would not send (any process, no such process, pid 0)
    against the real adapter: each packet one reply, no target failure logged."""
    import syxdbg
    from gdbstub import GdbStub, MemoryTransport
    from gdbstub.packet import Packet, PacketReader
    from gdbstub.server import Session as StubSession

    with syxdbg.open(str(forks_gcc), argv0=str(forks_gcc)) as s:
        from syxdbg.gdb_target import SessionTarget

        transport = MemoryTransport([])
        conn = StubSession(GdbStub(SessionTarget(s)), transport)
        pid = s.current_process
        packets = [b"qSupported:multiprocess+;fork-events+;vfork-events+;exec-events+",
                   b"Hgp-1.-1", b"Hgp0.0", b"Tp-1.5", b"vCont;s:p0.0", b"qC",
                   b"Hgp%x.0" % (pid + 99), b"D;0", b"vKill;0", b"vAttach;0",
                   b"vAttach;%x" % pid, b"QPassSignals:ff;0", b"Hgp%x.%x" % (pid, pid + 1),
                   b"qfThreadInfo", b"g", b"bs", b"?"]
        replies = []
        for packet in packets:
            before = len(transport.sent)
            conn.handle_packet(packet)
            sent = PacketReader(1 << 20).feed(bytes(transport.sent[before:]))
            replies.append([e.data for e in sent if isinstance(e, Packet)])
        assert all(len(r) == 1 for r in replies), replies
        got = dict(zip(packets, (r[0] for r in replies), strict=True))
        assert got[b"Tp-1.5"] == got[b"vCont;s:p0.0"] == got[b"vAttach;0"] == b"E16"
        assert got[b"qC"] == b"QCp%x.%x" % (pid, pid)
        assert got[b"vAttach;%x" % pid].startswith(b"T11")
        assert got[b"qfThreadInfo"] == b"mp%x.%x" % (pid, pid)
        assert got[b"bs"].startswith(b"T05replaylog:begin;")
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
