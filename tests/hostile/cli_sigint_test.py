"""Ctrl-C at any moment of start-up: status 130 and one line, never a traceback.

Deterministic: the command line's test hook (``SYXDBG_TEST_SIGINT_AT_CALL=N``, see
``syxdbg.sigint``) makes the process send itself SIGINT at its N-th Python function call
after ``main`` begins (inside imports, parsing, plugin loading, program loading, opening the
recording file, binding the port...), or at the end of start-up if that comes first. Real
signals are sent only at moments the test observes (a line printed).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

#: Python calls after main() begins; start-up of ``run`` on a static ELF is about 130,000.
CALLS = (1, 4, 30, 300, 3_000, 20_000, 60_000, 120_000, 10**9)
FOREVER = "100000000000"  # loop.c iterations: runs for hours


def syxdbg(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syxdbg", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, stdin=subprocess.DEVNULL, timeout=300)


def assert_interrupted(status: int, err: str) -> None:
    """Status 130; besides serve's two 'listening' lines, exactly 'syxdbg: interrupted'."""
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert status == 130, err
    lines = [line for line in err.strip().splitlines()
             if not line.startswith(("syxdbg: listening on ", "syxdbg: in gdb: "))]
    assert len(lines) == 1 and lines[0].startswith("syxdbg: interrupted"), err


@pytest.fixture(scope="module")
def forever(build_program: Callable[..., Path]) -> Path:
    return build_program("loop", "gcc")


@pytest.mark.parametrize("command", ["run", "record", "serve"])
def test_sigint_at_every_stage_of_start_up(command: str, forever: Path, tmp_path: Path
                                           ) -> None:
    extra = {"run": [], "record": ["-q", "-o", "out.syxrec"], "serve": ["--port", "0"]}
    for calls in CALLS:
        env = dict(os.environ, SYXDBG_TEST_SIGINT_AT_CALL=str(calls))
        proc = syxdbg(command, *extra[command], str(forever), FOREVER, env=env, cwd=tmp_path)
        assert_interrupted(proc.returncode, proc.stderr)
        # Interrupted before recording began: nothing is left behind, not even a temporary.
        assert list(tmp_path.iterdir()) == [], (calls, list(tmp_path.iterdir()))


@pytest.fixture(scope="module")
def spin(build_program: Callable[..., Path]) -> Path:
    """tests/programs/spin.c: prints "ready" (flushed), then loops forever."""
    return build_program("spin")


def test_sigint_while_recording_keeps_a_usable_recording(spin: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.syxrec"
    proc = subprocess.Popen([sys.executable, "-m", "syxdbg", "record", "-q", "-o", str(out),
                             str(spin)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        # The program has printed: it is running under the recorder now.
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, err
    assert b"Traceback" not in err
    check = syxdbg("replay", "--check", str(out))
    assert check.returncode == 0, check.stderr


def test_sigint_while_serving_ends_the_server(forever: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "syxdbg", "serve", "--port", "0",
                             str(forever), FOREVER], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    try:
        line = proc.stderr.readline()
        assert re.match(r"syxdbg: listening on 127\.0\.0\.1:\d+$", line.strip()), line
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert_interrupted(proc.returncode, line + err)


def test_sigint_ignored_by_the_parent_stays_ignored(forever: Path) -> None:
    """A shell starts background jobs with SIGINT ignored; syxdbg keeps it so (as Python
    does), and SIGTERM still ends it."""
    proc = subprocess.Popen([sys.executable, "-m", "syxdbg", "serve", "--port", "0",
                             str(forever), FOREVER], stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert proc.stderr is not None
    try:
        line = proc.stderr.readline()
        assert line.startswith("syxdbg: listening on "), line
        proc.send_signal(signal.SIGINT)
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=2)  # bounded: proves it did not end, then goes on
        proc.terminate()
        assert proc.wait(timeout=60) == -signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()
