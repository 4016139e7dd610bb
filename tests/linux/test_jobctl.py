"""Stopped and continued processes (issue 14): SIGSTOP/SIGTSTP/SIGCONT between processes,
what wait4, waitid and SIGCHLD report of them, signals that wait while a process is stopped,
SA_NOCLDSTOP, orphaned process groups (stop signals discarded; SIGHUP + SIGCONT when an exit
orphans a stopped group), on every machine, against the native run of the same program;
going backwards across stops and continues, recordings, the process list, busybox sh.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import progs
import pytest
from linux_helpers import (
    assert_recording_replays,
    assert_reverse_invariant,
    process_switches,
    recorded_states,
)
from syxdbg_plugins.linux import LinuxKernel

import syxdbg
from syxdbg.timeline import FORWARD

SYX = [sys.executable, "-m", "syxdbg"]
BUSYBOX = "/bin/busybox"


@pytest.fixture(scope="module")
def jobctl_native(build_probe: Callable[[str, str], Path]) -> progs.Result:
    exe = build_probe("jobctl", "gcc")
    native = progs.native_run(exe)
    assert native.status == 0, native.describe()
    lines = native.stdout.decode().splitlines()
    assert len(lines) == 28 and lines[-1] == "done", lines
    assert "the stopped grandchild got: hc" in lines  # (SIGHUP's handler, then SIGCONT)
    return native


@pytest.mark.parametrize("toolchain", ("gcc", "musl", "aarch64", "arm", "thumb", "riscv64"))
def test_stop_and_continue_as_natively(build_probe: Callable[[str, str], Path],
                                       emu_run: Callable[..., progs.Result],
                                       jobctl_native: progs.Result, toolchain: str) -> None:
    emu = emu_run(build_probe("jobctl", toolchain))
    assert (emu.stdout.decode(), emu.status) == (jobctl_native.stdout.decode(), 0), \
        emu.stderr.decode()
    assert emu.stderr == b""


def _stopped(kernel: LinuxKernel) -> frozenset[int]:
    return frozenset(st.ids[0] for st in kernel.process.all_states() if st.stopped)


def test_backwards_across_stops_and_in_the_process_list(
        build_probe: Callable[[str, str], Path]) -> None:
    """The reverse invariant around every change of the set of stopped processes, and the
    process list (API and command) while a child is stopped."""
    from syxdbg.commands import run_command

    exe = build_probe("jobctl", "gcc")
    changes = process_switches(exe, _stopped)
    assert len(changes) >= 12, changes  # stops and continues of six children
    wanted = sorted({q for p in changes[:4] + changes[-4:] for q in (p - 1, p, p + 1)})
    with syxdbg.open(str(exe), [], env=dict(progs.DEFAULT_ENV),
                     options={"timeline.interval": 20_000}) as s:
        recorded = recorded_states(s, wanted)
        s.seek(changes[0])  # the first child was just stopped by SIGSTOP
        states = {p.pid: p.state for p in s.processes}
        child = max(states)
        assert states[child] == "stopped", states
        row = next(line for line in run_command(s, "processes", frontend="shell").splitlines()
                   if line.split()[0] == str(child))
        assert "stopped" in row.split(), row
        s.cont(FORWARD)
        assert_reverse_invariant(s, recorded)


def test_a_recording_of_stops_and_continues_replays(build_probe: Callable[[str, str], Path],
                                                   jobctl_native: progs.Result,
                                                   tmp_path: Path) -> None:
    assert_recording_replays(build_probe("jobctl", "gcc"), jobctl_native.stdout,
                             tmp_path / "jobctl.syxrec")


def test_busybox_sh_stops_continues_and_kills_a_job(tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text("sleep 5 & p=$!\nkill -STOP $p\nkill -CONT $p\nkill $p\nwait $p\n"
                      "echo \"status $?\"\n"
                      "sleep 5 & p=$!\nkill -STOP $p\nkill -TERM $p\nkill -CONT $p\n"
                      "wait $p\necho \"status $?\"\n")
    env = dict(progs.DEFAULT_ENV, PATH="/usr/bin:/bin")
    native = subprocess.run([BUSYBOX, "sh", str(script)], capture_output=True, env=env,
                            timeout=60, check=False)
    assert native.stdout == b"status 143\nstatus 143\n", native
    emu = subprocess.run([*SYX, "run", "--clear-env", *(f"-E{k}={v}" for k, v in env.items()),
                          BUSYBOX, "sh", str(script)], capture_output=True, timeout=300,
                         check=False)
    assert (emu.stdout, emu.returncode) == (native.stdout, native.returncode), \
        emu.stderr.decode()


def test_a_process_that_stops_itself_with_nobody_to_continue_it() -> None:
    """Natively it would wait for a SIGCONT from outside (a shell's fg): the run ends with
    the deadlock report, naming the stopped process and its signal."""
    emu = subprocess.run([*SYX, "run", BUSYBOX, "sh", "-c", "kill -TSTP $$; echo never"],
                         capture_output=True, timeout=300, check=False)
    err = emu.stderr.decode()
    assert emu.stdout == b"" and emu.returncode == 128 + 9, (emu.returncode, err)
    assert "every process is stopped or blocked" in err, err
    assert "stopped by SIGTSTP" in err, err
