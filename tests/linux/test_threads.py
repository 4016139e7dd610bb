"""Threads (issue 13, the kernel side): clone/clone3, futex, the deterministic scheduler.

``programs/threads.c`` is built with -pthread by glibc, musl and the aarch64 toolchain and
run by the real ``syxdbg run``; its output must equal the native run's (qemu-user for
aarch64). The schedule is a function of positions: the same program gives the same racy
result twice, reverse-stepi across a thread switch gives back the exact state, a recording
replays, and a deadlock is reported with every thread's pc instead of hanging.
"""

from __future__ import annotations

import dataclasses
import errno
import re
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import progs
import pytest
from linux_helpers import (
    GuestState,
    SysCaller,
    assert_reverse_invariant,
    capture_state,
    state_diff,
)
from syxdbg_plugins.linux import abi as labi
from syxdbg_plugins.linux import get_kernel

import syxdbg
from syxdbg.machine import Exited, Killed
from syxdbg.timeline import BACKWARD, FORWARD, HistoryBoundary

HERE = Path(__file__).resolve().parent
TOOLCHAINS = ("gcc", "musl", "aarch64")
SYXDBG = [sys.executable, "-m", "syxdbg"]
Make = Callable[[str], SysCaller]


#: The slice of these tests: a tenth of the default, so that short runs switch often.
SLICE = {"thread_slice": 100_000}


def open_session(exe: Path, args: list[str], **options: Any) -> syxdbg.Session:
    opts = {f"timeline.{k}": v for k, v in options.items()}
    return syxdbg.open(str(exe), args, env=dict(progs.DEFAULT_ENV), argv0="threads",
                       options={**SLICE, **opts})


@pytest.fixture(scope="session")
def threads_exe(tmp_path_factory: pytest.TempPathFactory,
                require_tool: Callable[[str], str]) -> Callable[[str], Path]:
    """``build(toolchain) -> Path`` of programs/threads.c linked with -pthread."""
    out = tmp_path_factory.mktemp("threads")
    cache: dict[str, Path] = {}

    def build(toolchain: str) -> Path:
        if toolchain not in cache:
            tc = progs.toolchain_for(toolchain)
            require_tool(tc.cc)
            tc = dataclasses.replace(tc, cflags=(*tc.cflags, "-pthread"))
            exe = out / f"threads-{tc.name}"
            cmd = tc.command(HERE / "programs" / "threads.c", exe)
            p = subprocess.run(cmd, capture_output=True, text=True, check=False)
            assert p.returncode == 0, f"{' '.join(cmd)}:\n{p.stderr}"
            cache[toolchain] = exe
        return cache[toolchain]

    return build


# -- the same output as natively ---------------------------------------------------------------
MODES = [("pc",), ("join",), ("detach",), ("robust",), ("sleep",), ("work", "30000"),
         ("pipe",), ("proc",), ("spin", "200000"), ("names",), ("cancelwait",)]
#: Where qemu-user is no oracle for aarch64, the native x86_64 output, for every toolchain:
#: qemu-user has no robust futex lists (set_robust_list is ENOSYS there: the program hangs)
#: and its /proc/self/task lists qemu's own threads too.
EXPECTED = {
    ("robust",): b"lock after owner died: EOWNERDEAD\nconsistent: 0\nunlock: 0\n"
                 b"lock again: 0\n",
    ("proc",): b"tasks before: 1\nthread: /proc/thread-self is its task: 1\n"
               b"tasks with a thread: 2\nmain: /proc/thread-self is its task: 1\n"
               b"tasks after: 1\n",
}


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
@pytest.mark.parametrize("args", MODES, ids=lambda a: "-".join(a))
def test_threaded_program_behaves_as_natively(threads_exe: Callable[[str], Path],
                                              emu_run: Callable[..., progs.Result],
                                              toolchain: str, args: tuple[str, ...]) -> None:
    exe = threads_exe(toolchain)
    if args in EXPECTED:
        native = progs.Result(EXPECTED[args], b"", 0)
        if toolchain != "aarch64":  # the expected text is the native run's
            assert progs.native_run(exe, args, argv0="threads") == native
    else:
        native = progs.native_run(exe, args, argv0="threads")
    emu = emu_run(exe, args, argv0="threads", timeout=300)
    assert native.status == 0, native.describe()
    assert (emu.stdout, emu.stderr, emu.status) == (native.stdout, native.stderr, 0), \
        emu.stderr.decode(errors="replace")


@pytest.mark.parametrize("toolchain", ["arm", "thumb", "riscv64"])
@pytest.mark.parametrize("args", [("pc",), ("spin", "200000"), ("cancelwait",), ("names",)],
                         ids=lambda a: a[0])
def test_threads_on_arm_and_riscv64_as_under_qemu(threads_exe: Callable[[str], Path],
                                                  emu_run: Callable[..., progs.Result],
                                                  toolchain: str,
                                                  args: tuple[str, ...]) -> None:
    """Preemption (spin), signals to other threads (cancelwait) and names on 32-bit ARM
    (ARM and Thumb-2 code) and riscv64, against qemu-user."""
    exe = threads_exe(toolchain)
    native = progs.native_run(exe, args, argv0="threads", timeout=120)
    assert native.status == 0, native.describe()
    emu = emu_run(exe, args, argv0="threads", timeout=300)
    assert (emu.stdout, emu.stderr, emu.status) == (native.stdout, native.stderr, 0), \
        emu.stderr.decode(errors="replace")


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_pthread_cancel_at_a_cancellation_point(threads_exe: Callable[[str], Path],
                                                emu_run: Callable[..., progs.Result],
                                                toolchain: str) -> None:
    exe = threads_exe(toolchain)
    emu = emu_run(exe, ("cancel",), argv0="threads", timeout=300)
    # musl's pthread_cancel also sends SIGCANCEL, whose handler runs in the target thread;
    # glibc sends none to a thread with deferred cancellation. No warning either way.
    assert (emu.stdout, emu.stderr, emu.status) == (b"cancelled: 1\n", b"", 0), emu.stderr


@pytest.mark.parametrize(("source", "compiler", "flags"), [
    ("threads_cpp.cc", "g++", ("-static", "-pthread", "-O1")),
    ("threads_rust.rs", "rustc", ("-O", "-C", "target-feature=+crt-static")),
])
def test_cpp_and_rust_runtimes_run_threads(emu_run: Callable[..., progs.Result],
                                           require_tool: Callable[[str], str],
                                           tmp_path: Path, source: str, compiler: str,
                                           flags: tuple[str, ...]) -> None:
    cc = require_tool(compiler)
    exe = tmp_path / "prog"
    p = subprocess.run([cc, *flags, "-o", str(exe), str(HERE / "programs" / source)],
                       capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stderr
    native = progs.native_run(exe)
    emu = emu_run(exe, timeout=300)
    assert native.status == 0 and native.stdout.startswith(b"total ")
    assert (emu.stdout, emu.stderr, emu.status) == (native.stdout, native.stderr, 0), \
        emu.stderr.decode(errors="replace")


# -- determinism -------------------------------------------------------------------------------
@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_a_racy_counter_gives_the_same_result_every_time(threads_exe: Callable[[str], Path],
                                                         emu_run: Callable[..., progs.Result],
                                                         toolchain: str) -> None:
    exe = threads_exe(toolchain)
    outs = [emu_run(exe, ("race", "400"), argv0="threads") for _ in range(2)]
    assert outs[0].stdout == outs[1].stdout and outs[0].status == 0
    assert re.fullmatch(rb"counter \d+ of 1600\n", outs[0].stdout)
    results = []
    for _ in range(2):
        with syxdbg.open(str(exe), ["race", "400"], env=dict(progs.DEFAULT_ENV),
                         options=SLICE) as s:
            ev = s.cont(FORWARD)
            assert isinstance(ev, Exited) and ev.status == 0
            kernel = get_kernel(s)
            assert kernel is not None
            results.append([ev.position, kernel.switches])
    assert results[0] == results[1]
    assert results[0][1] > 100  # the threads really took turns


def _switch_positions(exe: Path, args: list[str]) -> tuple[list[int], int]:
    """Positions right after the system calls that switched threads and of the switches
    at slice ends between two instructions (preemption), and the end."""
    switches: list[int] = []
    with open_session(exe, args) as s:
        kernel = get_kernel(s)
        assert kernel is not None
        inner = s.machine.syscall_handler
        preempt = kernel.process.preempt
        assert inner is not None and preempt is not None

        def spy(machine: syxdbg.Machine) -> None:
            before = kernel.switches
            inner(machine)
            if kernel.switches != before:
                switches.append(machine.position)

        def spy_preempt(machine: syxdbg.Machine) -> None:
            before = kernel.switches
            preempt(machine)
            if kernel.switches != before:
                switches.append(machine.position)

        s.machine.set_syscall_handler(spy)
        kernel.process.preempt = spy_preempt
        ev = s.cont(FORWARD)
        assert isinstance(ev, Exited), ev
        return switches, ev.position


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_reverse_stepi_across_thread_switches_restores_every_thread(
        threads_exe: Callable[[str], Path], toolchain: str) -> None:
    exe = threads_exe(toolchain)
    args = ["work", "20000"]
    switches, end = _switch_positions(exe, args)
    assert len(switches) >= 6
    # Around switches made at blocking futex waits, at thread exits and at slice ends.
    picks = switches[:3] + switches[len(switches) // 2:len(switches) // 2 + 2] + switches[-2:]
    wanted = sorted({q for p in picks for q in (p - 2, p - 1, p, p + 1)} | {end // 3, end - 1})
    with open_session(exe, args, interval=20_000) as s:
        kernel = get_kernel(s)
        assert kernel is not None
        recorded: dict[int, GuestState] = {}
        tids: dict[int, int] = {}
        for p in wanted:
            assert s.seek(p).position == p
            recorded[p] = capture_state(s)
            tids[p] = kernel.threads()[0].tid
        assert any(tids[p - 1] != tids[p] for p in picks)  # really across switches
        assert s.cont(FORWARD).position == end

        def same_thread(at: int) -> None:
            assert kernel.threads()[0].tid == tids[at]

        assert_reverse_invariant(s, recorded, same_thread)


def test_a_recording_of_threads_replays(threads_exe: Callable[[str], Path],
                                        tmp_path: Path) -> None:
    exe = threads_exe("gcc")
    rec = tmp_path / "work.syxrec"
    args = ["work", "200000"]
    res = subprocess.run([*SYXDBG, "record", "-q", "--checkpoint-interval", "1000000", "-o",
                          str(rec), str(exe), *args], capture_output=True, check=False,
                         cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr
    native = progs.native_run(exe, args)
    assert res.stdout == native.stdout
    rep = subprocess.run([*SYXDBG, "replay", "--check", str(rec)], capture_output=True,
                         text=True, check=False, cwd=tmp_path, timeout=300)
    assert rep.returncode == 0, rep.stderr
    assert "as recorded" in rep.stdout
    m = re.search(r"(\d+) recorded states", rep.stdout)
    assert m is not None and int(m.group(1)) >= 4  # persisted checkpoints with threads
    # A persisted checkpoint in the middle holds every thread: jumping to it gives the
    # state that re-executing up to it gives.
    with syxdbg.replay(str(rec)) as s:
        s.seek(4_000_000)
        kernel = get_kernel(s)
        assert kernel is not None
        threads = kernel.threads()
        jumped = capture_state(s)
        s.seek(3_990_000)
        s.seek(4_000_000)
        assert state_diff(capture_state(s), jumped) == []
    assert len(threads) == 4
    assert [t.state for t in threads].count("blocked") == 1  # main, in pthread_join


# -- --schedule seed:N ---------------------------------------------------------------------
def _seeded(exe: Path, seed: str, *extra: str, cwd: Path | None = None
            ) -> subprocess.CompletedProcess[bytes]:
    cmd = [*SYXDBG, *extra, "--clear-env", "-E", "LC_ALL=C", "--schedule", seed, str(exe),
           "race", "300"]
    return subprocess.run(cmd, capture_output=True, check=False, timeout=300, cwd=cwd)


def test_a_schedule_seed_gives_one_interleaving_and_others_differ(
        threads_exe: Callable[[str], Path], tmp_path: Path) -> None:
    """Race hunting: each seed is another interleaving of the racy counter (another count
    of lost updates), the same seed gives the same run, a recording keeps its seed."""
    exe = threads_exe("gcc")
    outs = {}
    for seed in (1, 2, 3, 4):
        r = _seeded(exe, f"seed:{seed}", "run")
        assert r.returncode == 0, r.stderr
        assert re.fullmatch(rb"counter \d+ of 1200\n", r.stdout), r.stdout
        outs[seed] = r.stdout
    assert _seeded(exe, "seed:2", "run").stdout == outs[2]
    assert len(set(outs.values())) >= 2, outs
    fifo = _seeded(exe, "fifo", "run")
    plain = subprocess.run([*SYXDBG, "run", "--clear-env", "-E", "LC_ALL=C", str(exe), "race",
                            "300"], capture_output=True, check=False, timeout=300)
    assert fifo.stdout == plain.stdout and fifo.returncode == 0
    bad = _seeded(exe, "seed:x", "run")
    assert bad.returncode == 2 and b"invalid schedule 'seed:x'" in bad.stderr, bad.stderr

    rec = tmp_path / "race.syxrec"
    r = _seeded(exe, "seed:3", "record", "-q", "-o", str(rec), cwd=tmp_path)
    assert r.returncode == 0 and r.stdout == outs[3], r.stderr
    rep = subprocess.run([*SYXDBG, "replay", "--check", str(rec)], capture_output=True,
                         text=True, check=False, cwd=tmp_path, timeout=300)
    assert rep.returncode == 0 and "as recorded" in rep.stdout, rep.stderr
    with syxdbg.replay(str(rec)) as s:
        kernel = get_kernel(s)
        assert kernel is not None and kernel.s.schedule_seed == 3
        assert isinstance(s.cont(FORWARD), HistoryBoundary | Exited)


def test_a_seeded_schedule_goes_backwards_exactly(threads_exe: Callable[[str], Path]) -> None:
    """The seeded choices are functions of positions: reverse-stepi across a seeded
    switch restores every thread, as with the plain round robin."""
    exe = threads_exe("gcc")
    with syxdbg.open(str(exe), ["race", "50"], env=dict(progs.DEFAULT_ENV),
                     options={"schedule": 5, **SLICE}) as s:
        kernel = get_kernel(s)
        assert kernel is not None and kernel.s.schedule_seed == 5
        inner = s.machine.syscall_handler
        assert inner is not None
        switches: list[int] = []

        def spy(machine: syxdbg.Machine) -> None:
            before = kernel.switches
            inner(machine)
            if kernel.switches != before:
                switches.append(machine.position)

        s.machine.set_syscall_handler(spy)
        assert isinstance(s.cont(FORWARD), Exited)
        assert len(switches) > 20
        for p in sorted(set(switches[5:8] + switches[-3:])):
            s.seek(p - 1)
            before, tid = capture_state(s), s.current_thread
            s.seek(p)
            assert s.current_thread != tid
            s.step(BACKWARD)
            assert state_diff(capture_state(s), before) == [] and s.current_thread == tid


# -- preemption of code that makes no system call ------------------------------------------
def _preemptions(s: syxdbg.Session) -> list[int]:
    """Run ``s`` to its end; the positions where a time slice ended between two
    instructions and another thread took the CPU."""
    kernel = get_kernel(s)
    assert kernel is not None and kernel.process.preempt is not None
    inner = kernel.process.preempt
    out: list[int] = []

    def spy(machine: syxdbg.Machine) -> None:
        before = kernel.switches
        inner(machine)
        if kernel.switches != before:
            out.append(machine.position)

    kernel.process.preempt = spy
    ev = s.cont(FORWARD)
    assert isinstance(ev, Exited) and ev.status == 0, ev
    return out


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_a_spinning_thread_is_preempted_and_goes_backwards_exactly(
        threads_exe: Callable[[str], Path], toolchain: str) -> None:
    """``threads spin``: main spins on a flag without a system call; the thread that sets
    it runs only because the slice ends at an exact position (the native oracle is
    test_threaded_program_behaves_as_natively). Reverse-stepi across such a switch gives
    back every thread's registers, RAM and kernel state, and a breakpoint at the
    instruction the preempted thread had not executed yet is hit when it resumes."""
    exe = threads_exe(toolchain)
    args = ["spin", "200000"]
    with open_session(exe, args, interval=20_000) as s:
        switches = _preemptions(s)
    # Slices of 100 000 instructions, exactly, from the first: the setter's work (a
    # million instructions) and each of the 5 spun-on turns.
    assert len(switches) >= 10 and all(p % 100_000 == 0 for p in switches), switches
    picks = [switches[0], switches[len(switches) // 2], switches[-1]]
    wanted = sorted({q for p in picks for q in (p - 2, p - 1, p, p + 1)})
    with open_session(exe, args, interval=20_000) as s:
        kernel = get_kernel(s)
        assert kernel is not None
        recorded: dict[int, GuestState] = {}
        tids: dict[int, int] = {}
        for p in wanted:
            assert s.seek(p).position == p
            recorded[p] = capture_state(s)
            tids[p] = kernel.threads()[0].tid
        assert all(tids[p - 1] != tids[p] for p in picks)
        def same_thread(at: int) -> None:
            assert kernel.threads()[0].tid == tids[at]

        assert_reverse_invariant(s, recorded, same_thread)
        # The preempted thread's next instruction, as the thread list reports it.
        s.seek(picks[1])
        gone = tids[picks[1] - 1]
        resume = next(t.pc for t in kernel.threads() if t.tid == gone)
        assert kernel.threads()[0].tid != gone
        s.seek(picks[1] - 50)
        s.add_breakpoint(resume)
        ev = s.cont(FORWARD, accept=lambda e: s.position >= picks[1])
        # Not at the preemption itself (that thread does not run there): when it resumes.
        assert ev.position > picks[1] and ev.pc == resume and s.current_thread == gone, ev


def test_stepping_a_preempted_thread(threads_exe: Callable[[str], Path]) -> None:
    """``thread N`` of a thread preempted between two instructions, then a step: the others
    run until its next slice, where it stands at the instruction it had not executed (the
    thread list's pc); the next step executes that one instruction, in that thread."""
    exe = threads_exe("gcc")
    with open_session(exe, ["spin", "200000"]) as s:
        s.seek(500_010)  # slices end every 100 000 instructions
        waiting = next(t for t in s.threads if not t.current)
        assert waiting.state == "runnable"
        s.select_thread(waiting.tid)
        ev = s.step()
        assert ev.position == 600_000 and s.current_thread == waiting.tid
        assert s.machine.pc == waiting.pc
        ev = s.step()
        assert ev.position == 600_001 and s.current_thread == waiting.tid
        assert s.machine.pc != waiting.pc  # (a spin loop's compare and branch)


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_a_signal_to_a_blocked_thread_goes_backwards_exactly(
        threads_exe: Callable[[str], Path], toolchain: str) -> None:
    """``threads cancelwait``: pthread_cancel's SIGCANCEL to threads blocked in read and in
    pthread_cond_wait wakes them and runs the handler in each when it next runs (the output
    is native's: test_threaded_program_behaves_as_natively). Reverse-stepi across every
    switch, those included, gives back the whole state."""
    exe = threads_exe(toolchain)
    switches, _ = _switch_positions(exe, ["cancelwait"])
    assert len(switches) >= 6
    with open_session(exe, ["cancelwait"], interval=20_000) as s:
        for n in switches:
            s.seek(n - 1)
            before, tid = capture_state(s), s.current_thread
            s.seek(n)
            s.step(BACKWARD)
            assert state_diff(capture_state(s), before) == [], f"after reverse-stepi from {n}"
            assert s.current_thread == tid


def test_a_seed_gives_the_same_preemptions(threads_exe: Callable[[str], Path]) -> None:
    """With --schedule seed:N the slice lengths are drawn from N and the position: the
    same seed preempts at the same positions, another seed elsewhere."""
    exe = threads_exe("gcc")
    runs: dict[int, list[list[int]]] = {}
    for seed in (7, 7, 8):
        with syxdbg.open(str(exe), ["spin", "200000"], env=dict(progs.DEFAULT_ENV),
                         options={"schedule": seed, **SLICE}) as s:
            runs.setdefault(seed, []).append(_preemptions(s))
    assert runs[7][0] == runs[7][1] and len(runs[7][0]) >= 5
    assert any(p % 100_000 for p in runs[7][0])  # seeded lengths, not the plain slice
    assert runs[8][0] != runs[7][0]


# -- deadlock ----------------------------------------------------------------------------------
@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_a_deadlock_is_reported_with_every_thread(threads_exe: Callable[[str], Path],
                                                  emu_run: Callable[..., progs.Result],
                                                  toolchain: str) -> None:
    exe = threads_exe(toolchain)
    emu = emu_run(exe, ("deadlock",), argv0="threads", timeout=120)
    assert emu.stdout == b"both hold one mutex\n"
    assert emu.status == 128 + 9
    err = emu.stderr.decode()
    assert "syxdbg: deadlock: every thread is blocked and nothing can wake one" in err
    lines = re.findall(r"^  thread (\d+) at (0x[0-9a-f]+) \((\S+)\): futex wait on 0x", err,
                       re.M)
    assert len(lines) == 2 and lines[0][0] != lines[1][0], err
    with syxdbg.open(str(exe), ["deadlock"], env=dict(progs.DEFAULT_ENV)) as s:
        ev = s.cont(FORWARD)
        assert isinstance(ev, Killed) and ev.signal == 9
        kernel = get_kernel(s)
        assert kernel is not None
        threads = kernel.threads()
        assert [t.state for t in threads] == ["blocked", "blocked"]
        assert {t.pc for t in threads} == {int(pc, 16) for _, pc, _ in lines}


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_a_read_of_a_pipe_nobody_can_write_is_a_deadlock(threads_exe: Callable[[str], Path],
                                                          emu_run: Callable[..., progs.Result],
                                                          toolchain: str) -> None:
    emu = emu_run(threads_exe(toolchain), ("pipestall",), argv0="threads", timeout=120)
    assert emu.status == 128 + 9
    err = emu.stderr.decode()
    assert re.search(r"^  thread \d+ at 0x[0-9a-f]+ \(\S*read\S*\): read of an empty pipe "
                     r"\(fd 3\)$", err, re.M), err
    assert re.search(r"^  thread \d+ at 0x[0-9a-f]+ \(\S+\): futex wait on 0x", err, re.M), err


# -- system calls one at a time ----------------------------------------------------------------
THREAD_FLAGS = labi.CLONE_THREAD_REQUIRED | labi.CLONE_SYSVSEM | labi.CLONE_SETTLS \
    | labi.CLONE_PARENT_SETTID | labi.CLONE_CHILD_CLEARTID


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_clone_flags_and_thread_records(toolchain: str, syscaller: Make,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    sc = syscaller(toolchain)
    pid = sc("getpid")
    assert sc("gettid") == pid
    # A new process sharing its parent's memory without vfork's wait: EINVAL, one warning
    # (fork and vfork themselves: test_processes.py).
    assert sc("clone", labi.CLONE_VM | 17, 0, 0, 0, 0) == -errno.EINVAL
    assert sc("clone", labi.CLONE_VM | 17, 0, 0, 0, 0) == -errno.EINVAL
    # A thread without CLONE_SIGHAND, or with a namespace flag: EINVAL, one warning.
    bad = labi.CLONE_VM | labi.CLONE_THREAD
    assert sc("clone", bad, sc.at(0x4000), 0, 0, 0) == -errno.EINVAL
    assert sc("clone", THREAD_FLAGS | labi.CLONE_NEWNS, sc.at(0x4000), 0, 0, 0) \
        == -errno.EINVAL
    err = capsys.readouterr().err
    assert err.count("a process sharing its parent's memory") == 1
    assert err.count("are not supported") == 2
    # clone3 with the glibc thread flags: a new runnable thread, tid written for the parent.
    stack, size, tls = sc.at(0x2000), 0x2000, sc.at(0x7000)
    args = struct.pack("<8Q", THREAD_FLAGS, 0, sc.at(0x100), sc.at(0x108), 0, stack, size, tls)
    sc.mem.write(sc.at(0x200), args)
    tid = sc("clone3", sc.at(0x200), len(args))
    assert tid == pid + 1
    assert struct.unpack("<i", sc.read(0x108, 4))[0] == tid
    threads = sc.kernel.threads()
    assert [(t.tid, t.state) for t in threads] == [(pid, "running"), (tid, "runnable")]
    child = dict(sc.kernel.s.threads[tid].regs)
    arch = sc.machine.arch
    assert child[arch.sp] == stack + size and child[arch.syscall.ret] == 0
    assert child["fs_base" if arch.name == "x86_64" else "tpidr"] == tls
    assert sc.kernel.s.threads[tid].tid_address == sc.at(0x100)
    assert sc("tgkill", pid, tid, 0) == 0 and sc("tkill", tid + 1, 0) == -errno.ESRCH
    # The kernel state holds the thread (frozen, comparable, thawed back).
    saved = sc.kernel.save_state()
    sc.kernel.load_state(saved)
    assert sc.kernel.save_state() == saved and tid in sc.kernel.s.threads
    # RLIMIT_NPROC counts threads: at the limit, EAGAIN.
    sc.kernel.s.rlimits[6] = (2, 2)
    assert sc("clone", THREAD_FLAGS, sc.at(0x3000), 0, 0, 0) == -errno.EAGAIN
    sc.kernel.s.rlimits[6] = (100, 100)
    # clone3 with an exit signal for a thread, or a stack without its size: EINVAL.
    sc.mem.write(sc.at(0x200), struct.pack("<8Q", THREAD_FLAGS, 0, 0, 0, 17, stack, size, 0))
    assert sc("clone3", sc.at(0x200), 64) == -errno.EINVAL
    sc.mem.write(sc.at(0x200), struct.pack("<8Q", THREAD_FLAGS, 0, 0, 0, 0, stack, 0, 0))
    assert sc("clone3", sc.at(0x200), 64) == -errno.EINVAL


@pytest.mark.parametrize("toolchain", ["gcc"])
def test_futex_operations_without_blocking(toolchain: str, syscaller: Make) -> None:
    sc = syscaller(toolchain)
    word, word2 = sc.at(0x40), sc.at(0x44)
    sc.mem.write(word, struct.pack("<II", 5, 3))
    assert sc("futex", word, 0x80, 4, 0) == -errno.EAGAIN  # FUTEX_WAIT_PRIVATE, not 4
    assert sc("futex", word, 0x89, 5, 0, 0, 0) == -errno.EINVAL  # WAIT_BITSET, bitset 0
    assert sc("futex", word + 1, 0x81, 1) == -errno.EINVAL  # unaligned
    assert sc("futex", word, 0x81, 1) == 0  # FUTEX_WAKE: nobody waits
    assert sc("futex", word, 0x84, 1, 1, word2, 4) == -errno.EAGAIN  # CMP_REQUEUE: *uaddr 5
    assert sc("futex", word, 0x84, 1, 1, word2, 5) == 0
    # WAKE_OP: *word2 += 2 (op ADD=1, oparg 2), compare old (3) == 3: both sides woken (0).
    op = (1 << 28) | (0 << 24) | (2 << 12) | 3
    assert sc("futex", word, 0x85, 1, 1, word2, op) == 0
    assert struct.unpack("<I", sc.read(0x44, 4))[0] == 5
    # A timed wait with nobody to wake it times out (virtual time), never blocks.
    sc.mem.write(sc.at(0x60), struct.pack("<qq", 0, 1000))
    assert sc("futex", word, 0x80, 5, sc.at(0x60)) == -errno.ETIMEDOUT
    assert sc("sched_yield") == 0
    sc.mem.write(sc.at(0x80), struct.pack("<Q", 1))
    assert sc("sched_setaffinity", 0, 8, sc.at(0x80)) == 0
    sc.mem.write(sc.at(0x80), struct.pack("<Q", 2))
    assert sc("sched_setaffinity", 0, 8, sc.at(0x80)) == -errno.EINVAL
    assert sc("sched_getaffinity", 0, 128, sc.at(0x80)) == 8
    assert sc("membarrier", 0, 0, 0) > 0 and sc("membarrier", 8, 0, 0) == 0
    assert sc("rseq", 0, 0, 0, 0) == -errno.ENOSYS
    assert sc("set_tid_address", sc.at(0x90)) == sc("getpid")


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_poll_of_pipes_files_and_bad_fds(toolchain: str, syscaller: Make) -> None:
    sc = syscaller(toolchain)
    assert sc("pipe2", sc.at(0x100), 0) == 0
    rfd, wfd = struct.unpack("<ii", sc.read(0x100, 8))
    pollfds = sc.at(0x200)

    def poll(*fds: tuple[int, int]) -> tuple[int, list[int]]:
        sc.mem.write(pollfds, b"".join(struct.pack("<ihh", fd, ev, 0) for fd, ev in fds))
        sc.mem.write(sc.at(0x300), struct.pack("<qq", 0, 0))
        n = sc("ppoll", pollfds, len(fds), sc.at(0x300), 0, 8)
        return n, [struct.unpack("<h", sc.read(0x200 + 8 * i + 6, 2))[0]
                   for i in range(len(fds))]

    # An empty pipe: not readable, its write end writable; a closed fd: POLLNVAL.
    assert poll((rfd, 1), (wfd, 4), (99, 1), (-1, 1)) == (2, [0, 4, 0x20, 0])
    assert sc("write", wfd, sc.cstr("x"), 1) == 1
    assert poll((rfd, 1)) == (1, [1])
    # The write end closed and the pipe drained: POLLHUP.
    assert sc("read", rfd, sc.at(0x400), 8) == 1
    assert sc("close", wfd) == 0
    assert poll((rfd, 1)) == (1, [0x10])
