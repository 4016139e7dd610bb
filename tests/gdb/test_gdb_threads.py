"""Threads under a real gdb (issue 13): all-stop thread packets over syxdbg's scheduler.

``tests/programs/racecount.c`` (built by the suite: glibc static and dynamic, aarch64) has
three workers adding to a shared counter without a lock, each round yielding the CPU
between the read and the write. gdb's ``info threads``, ``thread N`` + ``bt``, ``thread
apply all bt``, breakpoints hit by any thread, a reverse watchpoint on the racy counter and
``reverse-stepi`` across a thread switch are checked against the session itself (its
scheduler is the truth of which thread runs) and against a second, independent session
(the same program re-executed to the same position: the schedule is a function of
positions).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import progs
import pytest
from gdbmi import Gdb, Served, served
from support import in_ci

import syxdbg
from syxdbg.commands import run_command

GDB = shutil.which("gdb")
GDB_MULTIARCH = shutil.which("gdb-multiarch")
#: toolchain -> gdb
TOOLCHAINS = {"gcc": GDB, "gcc-dyn": GDB, "aarch64": GDB_MULTIARCH}
#: gdb of the other builds tested here.
GDBS = {**TOOLCHAINS, "musl": GDB}
SOURCE = Path(__file__).resolve().parent.parent / "programs" / "racecount.c"
WORKERS = 3


def _line(marker: str) -> int:
    for n, text in enumerate(SOURCE.read_text().splitlines(), 1):
        if marker in text:
            return n
    raise AssertionError(marker)


WRITE_LINE = _line("the racy write")
JOIN_LINE = _line("pthread_join(")


def _gdb(toolchain: str) -> str:
    gdb = GDBS[toolchain]
    if gdb is None:
        if in_ci():
            raise AssertionError(f"no gdb for {toolchain}")
        pytest.skip(f"no gdb for {toolchain}")
    return gdb


@pytest.fixture(scope="module")
def racecount(build_program: Callable[..., Path]) -> Callable[[str], Path]:
    return lambda toolchain: build_program("racecount", toolchain)


@contextmanager
def syxdbg_gdb(exe: Path, toolchain: str) -> Iterator[tuple[Gdb, Served]]:
    with served(str(exe)) as srv:
        g = Gdb(_gdb(toolchain), str(exe))
        try:
            g.cli(f"set sysroot {srv.session.image.sysroot or '/'}")
            g.cli(f"target remote 127.0.0.1:{srv.port}")
            yield g, srv
        finally:
            g.close()


#: gdb names a thread PID.TID (the multiprocess ids syxdbg serves, as gdbserver does).
_CURRENT = re.compile(r"\[Current thread is (\d+) \(Thread \d+\.(\d+)")


def current(g: Gdb) -> tuple[int, int]:
    """gdb's selected thread: (gdb's number, the thread id)."""
    m = _CURRENT.search(g.cli("thread"))
    assert m is not None
    return int(m.group(1)), int(m.group(2))


def thread_rows(text: str) -> dict[int, str]:
    """``info threads``: the row of each thread id."""
    rows = {}
    for line in text.splitlines():
        m = re.match(r"[* ]\s+\d+\s+Thread \d+\.(\d+)", line)
        if m:
            rows[int(m.group(1))] = line
    return rows


def after_syscall(session: syxdbg.Session, function: str) -> tuple[int, int]:
    """(address of the system call instruction in ``function``, the address after it)."""
    ins = session.machine.disassemble(session.symbols[function], 16)
    sc = next(i for i in ins if i[1] in ("syscall", "svc"))
    return sc[0], sc[0] + len(sc[3])


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_info_threads_thread_bt_and_apply_all(racecount: Callable[[str], Path],
                                              toolchain: str) -> None:
    exe = racecount(toolchain)
    with syxdbg_gdb(exe, toolchain) as (g, srv):
        s = srv.session
        g.cli(f"break racecount.c:{JOIN_LINE}")  # every worker created, none joined
        g.cli("continue")
        tids = sorted(t.tid for t in s.threads)
        assert len(tids) == 1 + WORKERS, s.threads  # main and the three workers
        main = tids[0]  # the main thread's tid is the pid, the smallest
        rows = thread_rows(g.cli("info threads"))
        assert sorted(rows) == tids, rows
        assert rows[main].startswith("*") and "(main, running)" in rows[main], rows
        g.cli("delete")
        g.cli("break bump")
        out = g.cli("continue")
        running = s.current_thread
        assert running != main
        assert f"[Switching to Thread {main}.{running}]" in out, out
        assert re.search(r"Thread \d+ hit Breakpoint 2, bump \(", out), out
        rows = thread_rows(g.cli("info threads"))
        assert sorted(rows) == sorted(t.tid for t in s.threads)
        assert rows[running].startswith("*") and "bump (" in rows[running], rows
        assert "(main, blocked: futex wait" in rows[main], rows[main]
        assert "(worker, running)" in rows[running], rows[running]

        # thread 1 is the main thread, blocked in pthread_join: its own registers and stack.
        out = g.cli("thread 1")
        assert f"[Switching to thread 1 (Thread {main}.{main}" in out, out
        bt = g.cli("bt")
        assert re.search(r"in main \(\) at racecount\.c:\d+", bt), bt
        assert "pthread" in bt and "bump" not in bt, bt
        number = next(i for i, t in enumerate(tids, 1) if t == running)
        g.cli(f"thread {number}")
        bt = g.cli("bt")
        assert re.search(r"#0 +bump \(id=", bt) and re.search(r"in worker \(arg=", bt), bt

        every = g.cli("thread apply all bt")
        for i, tid in enumerate(tids, 1):
            assert f"Thread {i} (Thread {main}.{tid} (" in every, every
        assert every.count("in main () at racecount.c") == 1, every
        assert re.search(r"bump \(id=.*\n.*in worker \(arg=", every), every

        # The second worker's hit reports that worker.
        out = g.cli("continue")
        assert s.current_thread != running
        assert f"[Switching to Thread {main}.{s.current_thread}]" in out, out
        assert current(g)[1] == s.current_thread


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_watch_reverse_continue_lands_in_the_writing_thread(
        racecount: Callable[[str], Path], toolchain: str) -> None:
    """Thread B stops before its racy write; the last write to ``counter`` was another
    worker's: reverse-continue lands on that worker's write line, in that worker, and gdb
    selects it. The oracle is a second session at the same position asked last_write."""
    exe = racecount(toolchain)
    with syxdbg_gdb(exe, toolchain) as (g, srv):
        s = srv.session
        g.cli(f"break racecount.c:{WRITE_LINE}")
        g.cli("continue")
        first = s.current_thread
        g.cli("continue")
        stopped = s.current_thread
        assert stopped != first and current(g)[1] == stopped
        here = s.position
        g.cli("watch counter")
        out = g.cli("reverse-continue")
        writer = s.current_thread
        assert writer != stopped, out
        assert f"[Switching to Thread {s.current_process}.{writer}]" in out, out
        assert "atchpoint 2: counter" in out, out
        assert f"racecount.c:{WRITE_LINE}" in out or f"{WRITE_LINE}\t" in out, out
        assert current(g)[1] == writer
        assert "in bump (id=" in g.cli("bt") or "bump (id=" in g.cli("bt")
        landed = s.position

    with syxdbg.open(str(exe)) as oracle:
        oracle.seek(here)
        assert oracle.current_thread == stopped
        hit = oracle.last_write(oracle.symbols["counter"], 8)
        assert hit is not None
        assert oracle.current_thread == writer
        # x86_64 lands before the write, aarch64 (after gdb's own bs) on the store too.
        assert landed == hit.position


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_reverse_stepi_across_a_thread_switch(racecount: Callable[[str], Path],
                                              toolchain: str) -> None:
    """At the first instruction a worker runs after sched_yield switched to it,
    reverse-stepi lands in the thread that made that sched_yield, at its system call, and
    every thread's registers (read through gdb, Hg + g) are those at the previous position
    of an independent run."""
    exe = racecount(toolchain)
    with syxdbg_gdb(exe, toolchain) as (g, srv):
        s = srv.session
        svc, after = after_syscall(s, "sched_yield")
        g.cli(f"break *{after:#x}")
        for _ in range(3):
            g.cli("continue")
        resumed = s.current_thread
        n = s.position
        out = g.cli("reverse-stepi")
        previous = s.current_thread
        assert previous != resumed, out
        assert s.position == n - 1
        assert f"[Switching to Thread {s.current_process}.{previous}]" in out, out
        assert f"{svc:#018x} in sched_yield" in out, out  # at its system call
        assert current(g)[1] == previous
        names = ["rip", "rsp", "rax", "rbx", "rdi", "r12"] if toolchain != "aarch64" else \
            ["pc", "sp", "x0", "x8", "x19", "x30"]
        seen = {}
        tids = sorted(t.tid for t in s.threads)
        for i, tid in enumerate(tids, 1):
            g.cli(f"thread {i}")
            text = g.cli("info registers " + " ".join(names))
            seen[tid] = {m.group(1): int(m.group(2), 16)
                         for m in re.finditer(r"^(\w+)\s+(0x[0-9a-f]+)", text, re.M)}

        # Forward again: stepi of that thread completes its sched_yield (the others run
        # until the scheduler gives it the CPU back; the next one resumes at the
        # breakpoint: a hit, reported in that thread as natively).
        g.cli(f"thread {tids.index(previous) + 1}")
        out = g.cli("stepi")
        assert f"[Switching to Thread {s.current_process}.{resumed}]" in out \
            and "hit Breakpoint 1" in out, out
        assert s.current_thread == resumed and s.position == n
        g.cli("delete")
        g.cli(f"thread {tids.index(previous) + 1}")
        out = g.cli("stepi")
        assert s.current_thread == previous and current(g)[1] == previous, out
        assert s.machine.pc == after and s.position > n, out

    with syxdbg.open(str(exe)) as oracle:
        oracle.run(count=n - 1)
        assert oracle.position == n - 1 and oracle.current_thread == previous
        for tid in tids:
            regs = oracle.thread_registers(tid)
            assert seen[tid] == {name: regs[name] for name in names}, tid


def test_stepi_of_a_thread_that_is_not_running(racecount: Callable[[str], Path]) -> None:
    """``thread N`` of a runnable worker (inside its sched_yield), then stepi: the others
    run until the scheduler gives it the CPU, which completes its system call: it stops
    where it resumes, selected."""
    exe = racecount("gcc")
    with syxdbg_gdb(exe, "gcc") as (g, srv):
        s = srv.session
        g.cli(f"break racecount.c:{WRITE_LINE}")
        g.cli("continue")
        g.cli("delete")
        waiting = next(t for t in s.threads if t.state == "runnable" and t.pc
                       == after_syscall(s, "sched_yield")[1])
        number = sorted(t.tid for t in s.threads).index(waiting.tid) + 1
        g.cli(f"thread {number}")
        start = s.position
        g.cli("stepi")
        assert s.current_thread == waiting.tid and current(g)[1] == waiting.tid
        assert s.position > start + 1  # the other threads ran first
        assert s.machine.pc == waiting.pc
        out = g.cli("stepi")  # now running: one instruction
        length = len(s.machine.disassemble(waiting.pc, 1)[0][3])
        assert s.machine.pc == waiting.pc + length and s.current_thread == waiting.tid, out


NAMES_SOURCE = Path(__file__).resolve().parent.parent / "linux" / "programs" / "threads.c"


@pytest.mark.parametrize("toolchain", ["gcc", "musl"])
def test_thread_names_in_info_threads(tmp_path: Path, toolchain: str) -> None:
    """``threads names``: main names itself with prctl(PR_SET_NAME), a thread names itself
    with pthread_setname_np and main names the third through /proc/self/task/TID/comm;
    gdb's ``info threads`` shows each name (qXfer:threads:read's name) as for a native
    process, ``thread N`` + ``bt`` work (musl too), and the shell's ``threads`` lists them."""
    tc = progs.toolchain_for(toolchain)
    _gdb(toolchain)
    exe = tmp_path / f"threads-{toolchain}"
    cmd = dataclasses.replace(tc, cflags=(*tc.cflags, "-pthread")).command(NAMES_SOURCE, exe)
    subprocess.run(cmd, check=True, capture_output=True)
    want = ["main-thread", "self-named", "named-by-main"]
    with served(str(exe), ("names",)) as srv:
        g = Gdb(_gdb(toolchain), str(exe))
        try:
            g.cli(f"target remote 127.0.0.1:{srv.port}")
            g.cli("break names_ready")
            g.cli("continue")
            s = srv.session
            tids = sorted(t.tid for t in s.threads)
            assert len(tids) == 3, s.threads
            rows = thread_rows(g.cli("info threads"))
            assert sorted(rows) == tids, rows
            for tid, name in zip(tids, want, strict=True):
                assert f'Thread {tids[0]}.{tid} "{name}"' in rows[tid], rows
            assert rows[tids[0]].startswith("*") and "names_ready" in rows[tids[0]], rows
            bt = g.cli("bt")
            assert re.search(r"#0 +names_ready \(\) at .*threads\.c:\d+", bt), bt
            assert re.search(r"#1 .* in run_names \(\) at .*threads\.c:\d+", bt), bt
            assert re.search(r"#2 .*main \(.*threads\.c:\d+", bt), bt
            for number, function in ((2, "named_self"), (3, "named_by_main")):
                out = g.cli(f"thread {number}")
                tid = tids[number - 1]
                assert f"[Switching to thread {number} (Thread {tids[0]}.{tid})]" in out
                bt = g.cli("bt")
                if toolchain == "musl":
                    # musl's barrier and futex code has no unwind information: natively
                    # too, gdb's backtrace stops at its first frame.
                    assert re.match(r"#0 +0x[0-9a-f]+ in (pthread_barrier_wait|__wait) \(",
                                    bt), bt
                else:
                    assert re.search(rf"#\d+ .* in {function} \(.*threads\.c:\d+", bt), bt
        finally:
            g.close()
        text = run_command(srv.session, "threads", frontend="shell")
        for name in want:
            assert name in text, text


GO_SOURCE = Path(__file__).resolve().parent.parent / "linux" / "programs" / "goroutines.go"


def test_a_go_program_in_gdb(tmp_path: Path, require_tool: Callable[[str], str]) -> None:
    """The Go runtime's threads in gdb: a breakpoint on a Go function, ``info threads``
    (the runtime's Ms: sysmon in usleep, idle Ms in futex), ``thread N`` + ``bt`` through
    the runtime's frames (built with -N -l, as delve or gdb users do), and continue to the
    end."""
    go = require_tool("go")
    exe = tmp_path / "goroutines"
    env = {**os.environ, "CGO_ENABLED": "0"}
    if "HOME" not in env and "GOCACHE" not in env:
        env["GOCACHE"] = str(tmp_path / "cache")
    subprocess.run([go, "build", "-gcflags=all=-N -l", "-o", str(exe), str(GO_SOURCE)],
                   env=env, check=True, capture_output=True, timeout=600)
    with served(str(exe)) as srv:
        g = Gdb(_gdb("gcc"), str(exe))
        try:
            g.cli(f"target remote 127.0.0.1:{srv.port}")
            g.cli("break main.counter")
            out = g.cli("continue")
            assert re.search(r"hit Breakpoint 1, main\.counter \(", out), out
            s = srv.session
            tids = sorted(t.tid for t in s.threads)
            assert len(tids) >= 3, s.threads
            rows = thread_rows(g.cli("info threads"))
            assert sorted(rows) == tids, rows
            running = s.current_thread
            assert rows[running].startswith("*") and "main.counter" in rows[running], rows
            assert re.search(r"#1 .* in main\.main \(\) at .*goroutines\.go:\d+", g.cli("bt"))
            others = [tid for tid in tids if tid != running]
            runtime_frames = 0
            for tid in others:
                number = re.match(r"[* ]\s+(\d+)", rows[tid])
                assert number is not None
                g.cli(f"thread {number.group(1)}")  # (gdb numbers threads as it meets them)
                bt = g.cli("bt")
                assert re.match(r"#0 .*runtime\.", bt), bt
                runtime_frames += len(re.findall(r"^#\d+ .*runtime\.\w+", bt, re.M))
            assert runtime_frames >= 2 * len(others)  # unwound past the system call stub
            g.cli("delete")
            out = g.cli("continue")  # the end of history: at exit_group, gdb may go back
            assert "No more reverse-execution history." in out and "runtime.exit" in out, out
            assert "exited normally" in g.cli("continue")
        finally:
            g.close()
