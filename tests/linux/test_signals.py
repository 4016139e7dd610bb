"""Signal handlers (issue 14): Linux's signal frames on x86_64 and aarch64.

``programs/signals.c`` checks, from inside the guest, what a handler sees and what survives
it (siginfo, ucontext, masks, SA_* flags, nesting, siglongjmp, the alternate stack, every
register around a raw system call). ``programs/faults.c`` gives faults to SIGSEGV, SIGILL,
SIGFPE and SIGTRAP handlers (siglongjmp out, repair and return, a stack overflow on the
alternate stack). ``programs/alarm.c`` waits for timer signals (alarm, setitimer, pause,
sigsuspend, a loop until its alarm fires). Built with glibc, musl and the aarch64
toolchain, each prints the same as natively (qemu-aarch64 for aarch64). Delivery happens at
positions (system call returns, faults), so it is deterministic: reverse-stepi into and out
of handlers gives back the exact recorded state, and recordings replay.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import progs
import pytest
from linux_helpers import assert_reverse_invariant, recorded_states
from syxdbg_plugins.linux import get_kernel

import syxdbg
from syxdbg.machine import Fault, Killed
from syxdbg.timeline import FORWARD

TOOLCHAINS = ("gcc", "musl", "aarch64")
#: The program ends by raising SIGUSR2 with its default action: killed, 128 + 12.
STATUS = 128 + 12
HANDLERS = ("on_usr1", "on_usr2", "on_info", "outer", "masked_check", "jumper", "on_stack",
            "count_nodefer", "clobber")


#: arm (ARM and Thumb code) and riscv64 as well: their own frame layouts (arm's non-rt frame
#: for handlers without SA_SIGINFO, 32-bit sigaction/stack_t/itimerval, riscv's sigaction
#: without a restorer and its vDSO-style return).
ALL_MACHINES = (*TOOLCHAINS, "arm", "thumb", "riscv64")


@pytest.mark.parametrize("toolchain", ALL_MACHINES)
def test_handlers_see_and_leave_what_linux_gives(build_probe: Callable[[str, str], Path],
                                                 emu_run: Callable[..., progs.Result],
                                                 toolchain: str) -> None:
    exe = build_probe("signals", toolchain)
    native = progs.native_run(exe, argv0="signals")
    assert native.status == STATUS, native.describe()
    # The raw-register check has code for x86_64 and aarch64 only.
    asm = toolchain in TOOLCHAINS
    assert (b"registers intact=1 hits=2" if asm else b"registers intact=1 hits=0") \
        in native.stdout
    want = native.stdout
    if toolchain == "riscv64":
        # qemu-riscv64 does not block sa_mask's signals in the handler; Linux does (its
        # generic signal_setup_done), as x86_64 and aarch64 natively show.
        assert b"mask inside=10 after=00" in want
        want = want.replace(b"mask inside=10 after=00", b"mask inside=11 after=00")
    emu = emu_run(exe, argv0="signals")
    assert (emu.stdout, emu.status) == (want, STATUS), emu.stderr.decode()
    assert emu.stderr.decode().startswith("syxdbg: program killed by SIGUSR2 at pc ")
    assert "warning" not in emu.stderr.decode()


@pytest.mark.parametrize("toolchain", (*TOOLCHAINS, "thumb", "riscv64"))
def test_faults_go_to_the_guests_handlers(build_probe: Callable[[str, str], Path],
                                          emu_run: Callable[..., progs.Result],
                                          toolchain: str) -> None:
    exe = build_probe("faults", toolchain)
    native = progs.native_run(exe, argv0="faults")
    assert native.status == 128 + 11, native.describe()
    assert b"repaired: faults=1 code=2 addr_ok=1 value=42" in native.stdout
    emu = emu_run(exe, argv0="faults")
    assert (emu.stdout, emu.status) == (native.stdout, native.status), emu.stderr.decode()
    # The last fault has no handler: the run ends with it, reported as before.
    assert re.fullmatch(r"syxdbg: program received SIGSEGV at pc 0x[0-9a-f]+ \(main\+0x[0-9a-f]+\):"
                        r" write to unmapped memory at 0x20\n", emu.stderr.decode())


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_reverse_stepi_across_a_fault_given_to_a_handler(
        build_probe: Callable[[str, str], Path], toolchain: str) -> None:
    exe = build_probe("faults", toolchain)
    delivered: list[int] = []
    with syxdbg.open(str(exe), [], env=dict(progs.DEFAULT_ENV), argv0="faults") as s:
        kernel = get_kernel(s)
        assert kernel is not None

        def spy(machine: syxdbg.Machine, fault: Fault) -> bool:
            given = kernel.handle_fault(machine, fault)
            if given:
                delivered.append(machine.position)
            return given

        s.machine.set_fault_handler(spy)
        end = s.cont(FORWARD)
        assert isinstance(end, Fault) and end.address == 0x20, end
    assert len(delivered) >= 5, delivered
    wanted = sorted({q for p in delivered[:4] for q in (p - 1, p, p + 1, p + 2)})
    with syxdbg.open(str(exe), [], env=dict(progs.DEFAULT_ENV), argv0="faults",
                     options={"timeline.interval": 5_000}) as s:
        recorded = recorded_states(s, wanted)
        entered = set()
        for p in delivered[:4]:  # the handler's first instruction retires at p + 1
            s.seek(p + 1)
            entered.add((s.image.symbolize(s.machine.regs.pc) or "?").split("+")[0])
        assert "jumper" in entered and entered <= {"jumper", "repair"}, entered
        assert isinstance(s.cont(FORWARD), Fault)
        assert_reverse_invariant(s, recorded)


#: The load (read of unmapped memory) and store (write) that fault first in faults.c.
_LOAD = {"gcc": r"mov\s+\(%rax\),%eax", "aarch64": r"ldr\s+w\d+, \[x\d+\]"}
_STORE = {"gcc": r"movl\s+\$0x1,\(%rax\)", "aarch64": r"str\s+w\d+, \[x\d+\]"}


@pytest.mark.parametrize("toolchain,gdb", [("gcc", "gdb"), ("aarch64", "gdb-multiarch")])
def test_gdb_stops_at_a_fault_before_its_handler(build_probe: Callable[[str, str], Path],
                                                 toolchain: str, gdb: str) -> None:
    """A fault that a handler takes stops gdb first ("Program received signal SIGSEGV"),
    with pc at the faulting instruction (nothing of it done), as natively; continue gives
    it to the handler; reverse-stepi from there goes to the instruction before it; forward
    again, the same fault stops gdb again; ``handle SIGSEGV nostop pass`` runs through."""
    exe = build_probe("faults", toolchain)
    cmds = ["continue", "x/i $pc", "continue", "x/i $pc", "reverse-stepi", "x/i $pc",
            "continue", "x/i $pc", "handle SIGSEGV nostop noprint pass", "continue",
            "x/i $pc"]
    args = [x for c in cmds for x in ("--ex", c)]
    res = subprocess.run([sys.executable, "-m", "syxdbg", "gdb", "--gdb", gdb, "--batch",
                          *args, "--argv0", "faults", str(exe)],
                         capture_output=True, text=True, timeout=300, check=False)
    out = res.stdout + res.stderr
    stops = out.split("Program received signal ")
    shown = [re.findall(r"=> 0x[0-9a-f]+ <main\+\d+>:\t([^\n]+)", stop) for stop in stops]
    assert all(stop.startswith("SIGSEGV, Segmentation fault.") for stop in stops[1:4]), out
    assert re.fullmatch(_LOAD[toolchain], shown[1][0]), out  # the read of unmapped memory
    assert re.fullmatch(_STORE[toolchain], shown[2][0]), out  # the write (the next fault)
    assert len(shown[2]) == 2 and not re.fullmatch(_STORE[toolchain], shown[2][1]), out
    assert re.fullmatch(_STORE[toolchain], shown[3][0]), out  # the same fault again
    # SIGSEGV passed without stops (the read-only page, the repair, the stack overflow):
    # the next stop is the next fault of another signal, at its instruction.
    nxt = {"gcc": ("SIGILL, Illegal instruction.", "ud2"),
           "aarch64": ("SIGTRAP, Trace/breakpoint trap.", "brk\t#0x3e8")}[toolchain]
    assert len(stops) == 5 and stops[4].startswith(nxt[0]) and shown[4] == [nxt[1]], out


@pytest.mark.parametrize("toolchain", ALL_MACHINES)
def test_timer_signals_and_waits_as_natively(build_probe: Callable[[str, str], Path],
                                             emu_run: Callable[..., progs.Result],
                                             toolchain: str) -> None:
    exe = build_probe("alarm", toolchain)
    native = progs.native_run(exe, argv0="alarm")
    assert native.status == 128 + 14, native.describe()
    assert b"busy loop: alarms=1 waited_ok=1" in native.stdout
    emu = emu_run(exe, argv0="alarm")
    assert (emu.stdout, emu.status) == (native.stdout, native.status), emu.stderr.decode()
    assert re.fullmatch(r"syxdbg: program killed by SIGALRM at pc 0x[0-9a-f]+ \([\w.]+\+0x"
                        r"[0-9a-f]+\)\n", emu.stderr.decode())


def test_a_recording_of_timer_signals_replays_without_waiting(
        build_probe: Callable[[str, str], Path], tmp_path: Path) -> None:
    """The clock reads that decide when the alarm fires are recorded: the replay takes the
    same path without sleeping (the recorded run slept about 3 s)."""
    made, check = _record_and_check(build_probe("alarm", "gcc"), "alarm", tmp_path)
    assert made.returncode == 128 + 14, made.stderr.decode()
    assert b"sigsuspend: eintr=3 alarms=3" in made.stdout
    assert check.returncode == 0, check.stderr.decode()
    assert re.search(rb"replayed [\d,]+ instructions in [\d.]+ s: the program was killed by "
                     rb"signal 14, as recorded", check.stdout), check.stdout


def _deliveries(exe: Path) -> tuple[list[int], int]:
    """Positions right after the system calls that entered or left a handler, and the end."""
    out: list[int] = []
    with syxdbg.open(str(exe), [], env=dict(progs.DEFAULT_ENV), argv0="signals") as s:
        symbols = s.image.symbols
        entries = {symbols[h] for h in HANDLERS if h in symbols}
        assert len(entries) == len(HANDLERS)
        inner = s.machine.syscall_handler
        assert inner is not None
        calls = {"n": 0}

        def spy(machine: syxdbg.Machine) -> None:
            regs = machine.regs
            before = regs.pc, regs.sp
            inner(machine)
            calls["n"] += 1
            pc = regs.pc + (2 if machine.arch.name == "x86_64" else 0)
            if pc in entries or regs.sp > before[1] + 64:  # into a handler, or out of one
                out.append(machine.position)

        s.machine.set_syscall_handler(spy)
        ev = s.cont(FORWARD)
        assert isinstance(ev, Killed), ev
        return out, ev.position


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_reverse_stepi_into_and_out_of_handlers_restores_everything(
        build_probe: Callable[[str, str], Path], toolchain: str) -> None:
    exe = build_probe("signals", toolchain)
    marks, end = _deliveries(exe)
    assert len(marks) >= 20, marks  # 15 deliveries and their returns
    picks = marks[:4] + marks[len(marks) // 2:len(marks) // 2 + 2] + marks[-4:]
    wanted = sorted({q for p in picks for q in (p - 1, p, p + 1, p + 2)} | {end - 1})
    options = {"timeline.interval": 5_000}
    with syxdbg.open(str(exe), [], env=dict(progs.DEFAULT_ENV), argv0="signals",
                     options=options) as s:
        kernel = get_kernel(s)
        assert kernel is not None
        recorded = recorded_states(s, wanted)
        assert s.cont(FORWARD).position == end
        assert_reverse_invariant(s, recorded)


def test_a_recording_with_handlers_replays(build_probe: Callable[[str, str], Path],
                                           tmp_path: Path) -> None:
    made, check = _record_and_check(build_probe("signals", "gcc"), "signals", tmp_path)
    assert made.returncode == STATUS, made.stderr.decode()
    assert b"registers intact=1" in made.stdout
    assert check.returncode == 0, check.stderr.decode()
    assert b"as recorded" in check.stdout + check.stderr


def _record_and_check(exe: Path, name: str, tmp_path: Path
                      ) -> tuple[subprocess.CompletedProcess[bytes],
                                 subprocess.CompletedProcess[bytes]]:
    """``syxdbg record`` the program, then ``syxdbg replay --check`` the recording."""
    rec = tmp_path / f"{name}.syxrec"
    syx = [sys.executable, "-m", "syxdbg"]
    made = subprocess.run([*syx, "record", "-q", "-o", str(rec), "--argv0", name, str(exe)],
                          capture_output=True, timeout=300, check=False)
    check = subprocess.run([*syx, "replay", "--check", str(rec)], capture_output=True,
                           timeout=300, check=False)
    return made, check


@pytest.mark.parametrize("toolchain", ("gcc", "musl", "aarch64", "arm", "riscv64"))
def test_posix_timers_as_natively(build_probe: Callable[[str, str], Path],
                                  emu_run: Callable[..., progs.Result], toolchain: str) -> None:
    """timer_create/settime/gettime/getoverrun/delete: expiries compared with the recorded
    host clock, as ITIMER_REAL's (the output has no timing-dependent line)."""
    exe = build_probe("ptimer", toolchain)
    # The host runs the x86_64 builds; the other machines' output is glibc's (musl's
    # timer_delete of a deleted timer returns -EINVAL without setting errno).
    oracle = exe if toolchain in ("gcc", "musl") else build_probe("ptimer", "gcc")
    native = progs.native_run(oracle, argv0="ptimer")
    assert native.status == 0 and native.stdout.count(b"\n") == 6, native.describe()
    emu = emu_run(exe, argv0="ptimer")
    assert (emu.stdout, emu.status) == (native.stdout, 0), emu.stderr.decode()


def test_a_recording_of_posix_timers_replays(build_probe: Callable[[str, str], Path],
                                             tmp_path: Path) -> None:
    made, check = _record_and_check(build_probe("ptimer", "gcc"), "ptimer", tmp_path)
    assert made.returncode == 0 and b"absolute in the past: fired" in made.stdout, made.stderr
    assert check.returncode == 0, check.stderr.decode()
