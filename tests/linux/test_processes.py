"""Processes (issue 14): fork, vfork, execve, wait4, pipes between processes, signals between
processes, process groups, on every machine; busybox and bash scripts as natively.

``programs/procs.c`` runs itself through execve for its pipeline reader and exit-status
children, so its output is the same on every architecture: the x86_64 native run is the
oracle of all of them (qemu-user cannot exec a foreign program without binfmt_misc). The
scripts run under the real busybox-static and bash-static against the same shells run
natively. Going backwards across process switches restores the whole state (reverse
invariant), and recordings of process trees replay.
"""

from __future__ import annotations

import re
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
from syxdbg_plugins.linux import get_kernel

import syxdbg
from syxdbg.machine import Exited, Stopped
from syxdbg.timeline import BACKWARD, FORWARD

BUSYBOX = "/bin/busybox"
BASH = "/bin/bash-static"
SYX = [sys.executable, "-m", "syxdbg"]


@pytest.fixture(scope="module")
def procs_native(build_probe: Callable[[str, str], Path]) -> progs.Result:
    exe = build_probe("procs", "gcc")
    native = progs.native_run(exe, argv0=str(exe))  # it execs itself by argv[0]
    assert native.status == 0, native.describe()
    assert native.stdout.count(b"\n") == 29, native.stdout
    return native


@pytest.mark.parametrize("toolchain", ("gcc", "musl", "aarch64", "arm", "thumb", "riscv64"))
def test_fork_exec_wait_and_signals_as_natively(build_probe: Callable[[str, str], Path],
                                                 emu_run: Callable[..., progs.Result],
                                                 procs_native: progs.Result,
                                                 toolchain: str) -> None:
    exe = build_probe("procs", toolchain)
    emu = emu_run(exe, argv0=str(exe))
    assert (emu.stdout, emu.status) == (procs_native.stdout, 0), emu.stderr.decode()
    assert emu.stderr == b""


#: Shell features that fork, exec, wait and signal: (name, script).
SCRIPTS = [
    ("pipelines", "echo a b c | tr a-z A-Z\nprintf '3\\n1\\n2\\n' | sort | head -2\n"
                  "false | true; echo \"status $?\"\n"
                  "for i in 1 2 3; do echo \"loop $i\"; done | wc -l\n"),
    ("substitution", "x=$(echo sub; echo two)\necho \"[$x]\"\necho \"$(echo $(echo nested))\"\n"),
    ("subshells", "( echo in subshell; exit 3 ); echo \"status $?\"\n"
                  "(cd /; pwd); pwd >/dev/null\n"),
    ("background", "sleep 0 & wait $!; echo \"bg $?\"\n"
                   "( exit 4 ) & p=$!; wait $p; echo \"waited $?\"\n"
                   "sh -c 'exit 7' & wait; echo \"all waited\"\n"),
    ("traps", "trap 'echo got USR1' USR1\nkill -USR1 $$\necho after\n"
              "trap 'echo bye' EXIT\n"),
    ("full pipes", "yes | head -2\nseq 1 200000 | tail -1\n"
                   "dd if=/dev/zero bs=100000 count=3 2>/dev/null | wc -c\n"),
    ("heredoc", "v=value\ncat <<END\nhere $v\nEND\ncat <<'RAW' | wc -c\n$v not expanded\nRAW\n"),
    ("statuses", "sh -c 'exit 7'; echo \"sh -c $?\"\n"
                 "sh -c 'kill -TERM $$'; echo \"killed $?\"\n"
                 "/nonexistent/cmd 2>/dev/null; echo \"missing $?\"\n"),
]


def _native_and_emulated(shell: list[str], script: Path, tmp_path: Path,
                         ) -> tuple[subprocess.CompletedProcess[bytes],
                                    subprocess.CompletedProcess[bytes]]:
    env = dict(progs.DEFAULT_ENV, PATH="/usr/bin:/bin")
    native = subprocess.run([*shell, str(script)], capture_output=True, cwd=tmp_path, env=env,
                            timeout=60, check=False)
    cmd = [*SYX, "run", "--clear-env"]
    for name, value in env.items():
        cmd += ["-E", f"{name}={value}"]
    emu = subprocess.run([*cmd, *shell, str(script)], capture_output=True, cwd=tmp_path,
                         timeout=300, check=False)
    return native, emu


@pytest.mark.parametrize("name,script", SCRIPTS, ids=[n for n, _ in SCRIPTS])
def test_busybox_sh_scripts_as_natively(tmp_path: Path, name: str, script: str) -> None:
    path = tmp_path / f"{name}.sh"
    path.write_text(script)
    native, emu = _native_and_emulated([BUSYBOX, "sh"], path, tmp_path)
    assert native.stdout.strip(), native
    assert (emu.stdout, emu.returncode) == (native.stdout, native.returncode), \
        emu.stderr.decode()
    assert b"warning" not in emu.stderr, emu.stderr.decode()


def test_bash_static_script_as_natively(tmp_path: Path) -> None:
    path = tmp_path / "bash.sh"
    path.write_text("".join(s for _, s in SCRIPTS if "trap 'echo bye'" not in s) + (
        "false | true; echo \"pipestatus ${PIPESTATUS[*]}\"\n"
        "set -o pipefail; /bin/busybox false | true; echo \"pipefail $?\"\n"
        "f() { return 5; }; f; echo \"function $?\"\n"
        "/bin/busybox yes | /bin/busybox head -1; echo \"sigpipe ${PIPESTATUS[*]}\"\n"
        "read -r x < <(echo process substitution); echo \"$x\"\n"
        "coproc { read -r line; echo \"coproc got $line\"; }\n"
        "echo hello >&\"${COPROC[1]}\"; read -r reply <&\"${COPROC[0]}\"; echo \"$reply\"\n"))
    native, emu = _native_and_emulated([BASH], path, tmp_path)
    assert b"coproc got hello" in native.stdout, native
    assert (emu.stdout, emu.returncode) == (native.stdout, native.returncode), \
        emu.stderr.decode()


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_reverse_stepi_across_process_switches_restores_everything(
        build_probe: Callable[[str, str], Path], toolchain: str) -> None:
    exe = build_probe("procs", toolchain)
    switches = process_switches(exe)
    assert len(switches) >= 20, switches
    picks = switches[:3] + switches[len(switches) // 2:len(switches) // 2 + 2] + switches[-3:]
    wanted = sorted({q for p in picks for q in (p - 1, p, p + 1)})
    with syxdbg.open(str(exe), [], env=dict(progs.DEFAULT_ENV), argv0=str(exe),
                     options={"timeline.interval": 20_000}) as s:
        recorded = recorded_states(s, wanted)
        kernel = get_kernel(s)
        assert kernel is not None
        pids = set()
        for p in wanted:  # whose states they are
            s.seek(p)
            pids.add(kernel.process.pid)
        assert len(pids) >= 4, pids  # the states are of several processes
        s.cont(FORWARD)
        assert_reverse_invariant(s, recorded)


def test_a_recording_of_a_process_tree_replays(build_probe: Callable[[str, str], Path],
                                               procs_native: progs.Result,
                                               tmp_path: Path) -> None:
    exe = build_probe("procs", "gcc")
    assert_recording_replays(exe, procs_native.stdout, tmp_path / "procs.syxrec",
                             argv0=str(exe))


def test_a_recording_of_a_shell_script_replays_without_the_programs(tmp_path: Path) -> None:
    """The programs a script execs are event-log inputs: the replay needs no file."""
    work = tmp_path / "work"
    work.mkdir()
    prog = work / "busybox"
    prog.write_bytes(Path(BUSYBOX).read_bytes())
    prog.chmod(0o755)
    script = work / "s.sh"
    script.write_text(f"echo start\n{prog} echo child | {prog} tr a-z A-Z\necho end\n")
    rec = tmp_path / "sh.syxrec"
    made = subprocess.run([*SYX, "record", "-q", "-o", str(rec), str(prog), "sh", str(script)],
                          capture_output=True, timeout=300, check=False)
    assert made.stdout == b"start\nCHILD\nend\n", made.stderr.decode()
    prog.unlink()
    script.unlink()
    check = subprocess.run([*SYX, "replay", "--check", str(rec)], capture_output=True,
                           timeout=300, check=False)
    assert check.returncode == 0, check.stderr.decode()
    assert b"as recorded" in check.stdout


def test_the_process_tree_in_the_api_and_the_commands(build_probe: Callable[[str, str], Path]
                                                      ) -> None:
    """Session.processes and the ``processes``/``process N`` commands at the first fork
    (the child runs) and right after the child's exit (a zombie until the parent waits)."""
    from syxdbg.commands import run_command
    from syxdbg.commands.base import CommandError

    exe = build_probe("procs", "gcc")
    first, second = process_switches(exe)[:2]
    with syxdbg.open(str(exe), [], env=dict(progs.DEFAULT_ENV), argv0=str(exe)) as s:
        root = s.processes[0]
        assert (root.state, root.current, len(s.processes)) == ("running", True, 1)
        s.seek(first)  # the child runs; the parent waits in wait4
        child, parent = s.processes
        assert (child.current, child.state, child.ppid) == (True, "running", root.pid)
        assert (parent.pid, parent.state, parent.threads) == (root.pid, "blocked", 1)
        assert child.program == parent.program == str(exe)
        listing = run_command(s, "processes", frontend="shell").splitlines()
        assert listing[1].split()[:6] == ["*", str(child.pid), str(root.pid), str(root.pid),
                                          "1", "running"]
        assert listing[2].split()[:5] == [str(root.pid), str(parent.ppid), str(root.pid), "1",
                                          "blocked"]
        assert run_command(s, "info processes", frontend="shell").splitlines() == listing
        assert f"process {child.pid}: {exe}" in run_command(s, "process", frontend="shell")
        assert "not running now" in run_command(s, f"process {root.pid}", frontend="shell")
        with pytest.raises(CommandError, match="no process 1 "):
            run_command(s, "process 1", frontend="shell")
        s.seek(second)  # the child exited with 5; its parent has not reaped it yet
        states = {p.pid: (p.state, p.status) for p in s.processes}
        assert states == {root.pid: ("running", None), child.pid: ("zombie", 5 << 8)}
        assert "zombie (exited 5)" in run_command(s, "processes", frontend="shell")
        s.cont(FORWARD)
        assert [p.pid for p in s.processes] == [root.pid]


def _count_stdin(exe: Path) -> int:
    """The address gdb breaks at in count_stdin (after its prologue): only the pipeline's
    reader, a child that exec'd the program again, runs it."""
    with syxdbg.open(str(exe), [], env=dict(progs.DEFAULT_ENV), argv0=str(exe)) as s:
        return s.resolve("count_stdin")


def test_hits_stop_in_the_followed_process_only(build_probe: Callable[[str, str], Path]
                                                ) -> None:
    exe = build_probe("procs", "gcc")
    where = _count_stdin(exe)
    with syxdbg.open(str(exe), [], env=dict(progs.DEFAULT_ENV), argv0=str(exe)) as s:
        root = s.current_process
        assert s.followed == root  # by default, the first process (gdb's fork parent)
        s.add_breakpoint(where, client="shell")
        end = s.cont(FORWARD)
        assert isinstance(end, Exited), end  # only a child runs count_stdin: no stop
        s.follow(None)  # every process
        hit = s.cont(BACKWARD)
        child = s.current_process
        assert isinstance(hit, Stopped) and (hit.why, hit.pc, child != root) == (
            "breakpoint", where, True), hit
        s.follow(child)
        assert isinstance(s.cont(FORWARD), Exited)
        assert s.cont(BACKWARD).position == hit.position  # the child's, found again
        s.follow(root)
        back = s.cont(BACKWARD)  # back to the start: no hit of its own
        assert back.position == 0 and not isinstance(back, Stopped), back
    with syxdbg.open(str(exe), [], env=dict(progs.DEFAULT_ENV), argv0=str(exe)) as s:
        start = s.run_to_exec(exe.name)  # the first exec: the pipeline's reader
        assert start.position < hit.position and s.followed == s.current_process == child
        assert s.processes[0].pid == child and s.regs.pc == s.image.entry
        s.add_breakpoint(where, client="shell")
        assert s.cont(FORWARD).position == hit.position
        with pytest.raises(syxdbg.SyxdbgError, match="no process execs a program named "):
            s.run_to_exec("no-such-program")


def test_gdb_follows_the_process_that_execs(build_probe: Callable[[str, str], Path]) -> None:
    """syxdbg gdb --follow exec:NAME: a real gdb starts in the child that exec'd, breaks in
    it, goes back to its start, and (monitor follow any) breaks in the parent's code."""
    exe = build_probe("procs", "gcc")
    cmds = ["break count_stdin", "continue", "info threads", "monitor processes",
            "reverse-continue", "monitor follow any", "break describe", "continue"]
    args = [x for c in cmds for x in ("--ex", c)]
    res = subprocess.run([*SYX, "gdb", "--follow", f"exec:{exe.name}", "--batch", *args,
                          "--argv0", str(exe), str(exe)],
                         capture_output=True, text=True, timeout=300, check=False)
    out = res.stdout + res.stderr  # (monitor output comes on stderr in batch mode)
    assert "Breakpoint 1, " in out and "count_stdin () at " in out, out
    threads = re.search(r"\* 1 +Thread \d+\.(\d+) ", out)  # (gdb: Thread PID.TID)
    listing = re.search(r"\* (\d+) +(\d+) +\d+ +1 +running +(\S+)\n +(\d+) ", out)
    assert threads and listing, out
    child, parent = int(listing.group(1)), int(listing.group(2))
    assert int(threads.group(1)) == child and int(listing.group(4)) == parent
    # Nothing of the child's before: back to the start of history, in the first process.
    assert re.search(rf"No more reverse-execution history\.\n\[Switching to Thread "
                     rf"{parent}\.{parent}\]", out), out
    assert "Following every process." in out
    assert re.search(r"Breakpoint 2(\.\d+)?, describe \(what=\S+ \"fork child\"", out), out
