"""The Go runtime's threads under syxdbg (issue 13): ``programs/goroutines.go``, a static Go
program (CGO_ENABLED=0, built by the test with the go toolchain for amd64 and arm64): a
worker pool over channels, a mutex-protected counter over 8 goroutines that yield, a
select that times out and a sleeping goroutine.

The runtime is the real test: it starts its own threads (clone with its flag set), parks
them on futexes with timeouts, runs sysmon (nanosleep loops), waits for its timers in
epoll_pwait (netpoll), installs handlers on an alternate signal stack for every signal and
preempts goroutines with tgkill(SIGURG), whose handler runs in the thread it names. Output
equal to the native run's (qemu-user for arm64), with a schedule seed too, and a recording
that replays.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import progs
import pytest
from linux_helpers import capture_state, state_diff
from syxdbg_plugins.linux import preempt

import syxdbg
from syxdbg.machine import Exited
from syxdbg.timeline import BACKWARD, FORWARD

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "programs" / "goroutines.go"
EXPECTED = (b"pool: 2459960\ncounter: 8000\ntimers: timeout slept\n"
            b"goroutines at the end: 1\n")
SYXDBG = [sys.executable, "-m", "syxdbg"]


@pytest.fixture(scope="module")
def go_exe(tmp_path_factory: pytest.TempPathFactory,
           require_tool: Callable[[str], str]) -> Callable[[str], Path]:
    go = require_tool("go")
    out = tmp_path_factory.mktemp("go")
    cache: dict[str, Path] = {}

    def build(goarch: str) -> Path:
        if goarch not in cache:
            exe = out / f"goroutines-{goarch}"
            env = {**os.environ, "CGO_ENABLED": "0", "GOARCH": goarch, "GOOS": "linux"}
            if "HOME" not in env and "GOCACHE" not in env:
                env["GOCACHE"] = str(out / "cache")
            p = subprocess.run([go, "build", "-o", str(exe), str(SOURCE)], env=env,
                               capture_output=True, text=True, check=False, timeout=600)
            assert p.returncode == 0, p.stderr
            cache[goarch] = exe
        return cache[goarch]

    return build


@pytest.mark.parametrize("goarch", ["amd64", "arm64"])
def test_goroutines_and_channels_as_natively(go_exe: Callable[[str], Path],
                                             emu_run: Callable[..., progs.Result],
                                             goarch: str) -> None:
    exe = go_exe(goarch)
    if goarch == "amd64" or shutil.which("qemu-aarch64"):
        native = progs.native_run(exe, timeout=120)
        assert (native.stdout, native.status) == (EXPECTED, 0), native.describe()
    emu = emu_run(exe, timeout=300)
    # No warning: the runtime's SIGURG to another thread (async preemption) runs there.
    assert (emu.stdout, emu.stderr, emu.status) == (EXPECTED, b"", 0), \
        emu.stderr.decode(errors="replace")


def test_goroutines_with_a_seed_and_a_recording(go_exe: Callable[[str], Path],
                                               tmp_path: Path) -> None:
    exe = go_exe("amd64")
    seeded = subprocess.run([*SYXDBG, "run", "--schedule", "seed:3", str(exe)],
                            capture_output=True, check=False, timeout=300)
    assert (seeded.stdout, seeded.returncode) == (EXPECTED, 0), seeded.stderr
    rec = tmp_path / "go.syxrec"
    r = subprocess.run([*SYXDBG, "record", "-q", "-o", str(rec), str(exe)],
                       capture_output=True, check=False, timeout=300, cwd=tmp_path)
    assert (r.stdout, r.returncode) == (EXPECTED, 0), r.stderr
    rep = subprocess.run([*SYXDBG, "replay", "--check", str(rec)], capture_output=True,
                         text=True, check=False, timeout=300, cwd=tmp_path)
    assert rep.returncode == 0 and "as recorded" in rep.stdout, rep.stdout + rep.stderr


def test_go_preemption_signals_go_backwards_exactly(go_exe: Callable[[str], Path],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime's SIGURG to another thread runs its handler when that thread next gets
    the CPU, after a system call or between two instructions (a preemption): reverse-stepi
    across both kinds gives back the whole state, and stepping forward again the same."""
    exe = go_exe("amd64")
    hits: list[tuple[int, bool]] = []
    deliver = preempt.deliver_pending

    def spy(p: Any, *, in_syscall: bool) -> None:
        key = f"sigpend:{p.tid}"
        had = p.s.misc.get(key, 0)
        deliver(p, in_syscall=in_syscall)
        if had and p.s.misc.get(key, 0) != had:
            hits.append((p._machine.position, in_syscall))

    monkeypatch.setattr(preempt, "deliver_pending", spy)
    with syxdbg.open(str(exe), [], env=dict(progs.DEFAULT_ENV)) as s:
        assert isinstance(s.cont(FORWARD), Exited)
    monkeypatch.setattr(preempt, "deliver_pending", deliver)
    picks = [next(h for h in hits if h[1]), next(h for h in hits if not h[1])]
    with syxdbg.open(str(exe), [], env=dict(progs.DEFAULT_ENV),
                     options={"timeline.interval": 20_000}) as s:
        for n, _ in picks:
            s.seek(n - 1)
            before, tid = capture_state(s), s.current_thread
            s.seek(n)
            after = capture_state(s)
            s.step(BACKWARD)
            assert state_diff(capture_state(s), before) == [] and s.current_thread == tid
            s.step(FORWARD)
            assert state_diff(capture_state(s), after) == []
