"""The timeline of a tree of processes (issue 18), looked at in headless Chromium.

``tests/linux/programs/procs.c`` forks twenty children (some exec the program again, one
execs a program that does not exist, one vforks) and waits for them. Its recording's report
has a lane per process, with the process's forks, execs and ends marked at the system
calls that made them. The oracle is the Session replaying the recording: the processes it
lists before and after each system call (forks, ends), the execve calls that succeeded
(execs), and, at each mark's position, which process runs and the instruction there. With
``SYXDBG_UPDATE_DOCS=1`` the screenshot becomes docs/images/timeline-processes.png.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import progs
import pytest
from browser import load, read_png, screenshot

import syxdbg
from syxdbg.machine import Machine

PROCS = Path(__file__).resolve().parents[1] / "linux" / "programs" / "procs.c"
DOCS_IMAGE = Path(__file__).resolve().parents[2] / "docs" / "images" / "timeline-processes.png"
EXECVE_X86_64 = 59


def syxdbg_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syxdbg", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=600, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def procs_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(recording, report, the command's summary) of procs.c (gcc -static -O1 -g)."""
    tmp = tmp_path_factory.mktemp("timeline-procs")
    exe = tmp / "procs-gcc"
    subprocess.run(progs.toolchain_for("gcc").command(PROCS, exe), check=True,
                   capture_output=True)
    rec = tmp / "procs.syxrec"
    res = syxdbg_cli("record", "-q", "-o", str(rec), "--clear-env", str(exe), cwd=tmp)
    assert res.returncode == 0, res.stderr
    res = syxdbg_cli("timeline", "-o", "procs.html", str(rec), cwd=tmp)
    assert res.returncode == 0, res.stderr
    return rec, tmp / "procs.html", res.stderr


def _oracle(rec: Path) -> tuple[int, list[tuple[str, int, int]], dict[int, int]]:
    """(the first pid, [(kind, pid, position)], {position: the pid that made the system
    call}) from a replay: a process that appears at a system call was forked there, one
    that disappears (a zombie or reaped) ended there, a successful execve is an exec.
    Positions are the system call instruction's."""
    events: list[tuple[str, int, int]] = []
    callers: dict[int, int] = {}
    with syxdbg.replay(str(rec)) as s:
        m = s.machine
        inner = m.syscall_handler
        assert inner is not None
        abi = m.arch.syscall

        def live() -> set[int]:
            return {p.pid for p in s.processes if p.state != "zombie"}

        first = s.current_process

        def spy(machine: Machine) -> None:
            before, pid = live(), s.current_process
            nr = int(machine.regs[abi.number])
            position = machine.position - 1
            inner(machine)
            callers[position] = pid
            after = live()
            events.extend(("fork", p, position) for p in sorted(after - before))
            events.extend(("exit", p, position) for p in sorted(before - after))
            if nr == EXECVE_X86_64 and s.current_process == pid and \
                    int(machine.regs[abi.ret]) == 0:
                events.append(("exec", pid, position))

        m.set_syscall_handler(spy)
        s.cont("forward")
        m.set_syscall_handler(inner)
    return first, events, callers


def test_lanes_and_process_marks_at_their_positions(
        procs_report: tuple[Path, Path, str]) -> None:
    rec, report, summary = procs_report
    first, expected, callers = _oracle(rec)
    forks = [e for e in expected if e[0] == "fork"]
    execs = [e for e in expected if e[0] == "exec"]
    exits = [e for e in expected if e[0] == "exit"]
    assert len(forks) >= 15 and len(execs) == 3 and len(exits) == len(forks), expected
    assert (f"{len(forks) + 1} processes ({len(forks)} forks, {len(execs)} execs, "
            f"{len(exits)} ends)") in summary, summary

    page = load(report)
    assert page.console == [], page.console
    dom = page.dom
    assert 'data-ready="1"' in dom
    marks = re.findall(r'<li class="process-event" data-kind="(\w+)" data-pid="(\d+)" '
                       r'data-lane="(\d+)" data-position="(\d+)">(.*?)</li>', dom, re.S)
    got = sorted((kind, int(pid), int(pos)) for kind, pid, _lane, pos, _ in marks)
    assert got == sorted(expected)

    # A lane per process (its main thread), the first process's first; each mark is in
    # its process's lane.
    lanes = re.findall(r'<li class="lane" data-lane="(\d+)" data-pid="(\d+)" '
                       r'data-tid="(\d+)">lane: ([^<]*)</li>', dom)
    by_pid = {int(pid): (int(lane), label) for lane, pid, tid, label in lanes if pid == tid}
    assert set(by_pid) == {first} | {pid for _, pid, _ in forks}
    assert lanes[0][1] == str(first) and by_pid[first][1] == f"process {first} (procs-gcc)"
    for _kind, pid, lane, _pos, _text in marks:
        assert by_pid[int(pid)][0] == int(lane)

    # Each mark says what happened and gives the command that goes there.
    texts = {(kind, int(pid)): text for kind, pid, _lane, _pos, text in marks}
    fork_pid = forks[0][1]
    assert f"process {fork_pid} (procs-gcc) forked by {first}" in texts[("fork", fork_pid)]
    assert f"process {fork_pid} (procs-gcc) exited 5" in texts[("exit", fork_pid)]
    assert f"process {execs[0][1]} execs procs-gcc" in texts[("exec", execs[0][1])]
    for kind, pid, pos in expected[:6]:
        assert f"syxdbg replay --ex 'monitor goto {pos}' {rec}" in texts[(kind, pid)]

    # The positions are exact: there, pc is on the system call of the process that made
    # it (the parent for a fork, the exec'ing process for an exec).
    assert all(callers[pos] == pid for _, pid, pos in execs)
    with syxdbg.replay(str(rec)) as s:
        for kind, pid, pos in [*forks[:3], *execs, *exits[:2]]:
            s.seek(pos)
            assert s.machine.disassemble(s.regs.pc, 1)[0][1] == "syscall", (kind, pos)
            assert s.current_process == callers[pos], (kind, pid, pos)
            if kind == "fork":
                assert f"forked by {callers[pos]}" in texts[(kind, pid)]


def test_screenshot_shows_fork_and_exec_marks(procs_report: tuple[Path, Path, str],
                                              tmp_path: Path) -> None:
    _, report, _ = procs_report
    shot = tmp_path / "procs.png"
    assert screenshot(report, shot, 1280, 900) == []
    colours = read_png(shot).colours(step=1)

    def near(rgb: tuple[int, int, int], tol: int = 24) -> int:
        return sum(n for c, n in colours.items()
                   if all(abs(a - b) <= tol for a, b in zip(c, rgb, strict=True)))

    assert near((0x08, 0x91, 0xB2)) > 5, "no fork marks"
    assert near((0xD9, 0x77, 0x06)) > 5, "no exec marks"
    assert near((0x25, 0x63, 0xEB)) > 0, "no system call marks"
    if os.environ.get("SYXDBG_UPDATE_DOCS") == "1":  # docs/timeline.md's picture
        shutil.copyfile(shot, DOCS_IMAGE)


BUMPS = r"""
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

long counter;

static void bump(int n) {
    for (int i = 0; i < n; i++)
        counter += 1; /* the one store */
}

int main(void) {
    bump(3);
    pid_t pid = fork();
    if (pid == 0) {
        bump(2);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    bump(1);
    printf("%ld\n", counter);
    return 0;
}
"""


def test_watched_writes_of_every_process(tmp_path: Path) -> None:
    """--watch collects the writes of every process (not only the followed one), each with
    the old value in its own process's memory: the parent's 3 -> 4 after its child wrote
    4 and 5 in the child's copy."""
    source = tmp_path / "bumps.c"
    source.write_text(BUMPS)
    exe = tmp_path / "bumps"
    cmd = [c if c != "-O1" else "-O0" for c in progs.toolchain_for("gcc").command(source, exe)]
    subprocess.run(cmd, check=True, capture_output=True)
    rec = tmp_path / "bumps.syxrec"
    res = syxdbg_cli("record", "-q", "-o", str(rec), "--clear-env", str(exe), cwd=tmp_path)
    assert res.returncode == 0 and res.stdout == "4\n", res
    res = syxdbg_cli("timeline", "--watch", "counter", "-o", "bumps.html", str(rec),
                     cwd=tmp_path)
    assert res.returncode == 0 and "6 writes to counter, 2 processes" in res.stderr, res.stderr
    page = load(tmp_path / "bumps.html")
    assert page.console == [], page.console
    rows = re.findall(r'<tr class="write" data-position="(\d+)"><td class="num">[\d,]+</td>'
                      r'<td><code>(\d+)</code></td><td><code>(\d+)</code></td>', page.dom)
    assert [(int(o), int(n)) for _, o, n in rows] == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5),
                                                      (3, 4)], rows
    with syxdbg.replay(str(rec)) as s:
        first = s.current_process
        writers = []
        for position, _, _ in rows:
            s.seek(int(position))
            writers.append(s.current_process)
    assert writers[:3] == [first] * 3 and writers[5] == first
    assert writers[3] == writers[4] != first
