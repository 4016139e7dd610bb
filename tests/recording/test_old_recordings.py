"""Recordings made by older syxdbg versions keep replaying (tests/recording/data/README.md).

The files are committed as they were written: a refactor of the recording package, of the
snapshot core or of a plugin whose state is pickled in a recording (the Linux kernel's) must
not make them unreadable.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import syxdbg
from syxdbg.machine.events import Exited

DATA = Path(__file__).parent / "data"
SYXDBG = [sys.executable, "-m", "syxdbg"]


@pytest.mark.parametrize("name", ["hello-v1.syxrec", "hello-v2.syxrec"])
def test_an_old_recording_replays_and_checks(tmp_path: Path, name: str) -> None:
    # Another directory, no stdin: the recorded program path ("./hello") is not there, so
    # the embedded copy is used.
    res = subprocess.run([*SYXDBG, "replay", "--check", str(DATA / name)],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    assert "replayed 9,788 instructions" in res.stdout
    assert "the program exited with status 3, as recorded" in res.stdout
    assert "all 4 host inputs replayed" in res.stdout
    assert "final memory digest match" in res.stdout


@pytest.mark.parametrize("name", ["hello-v1.syxrec", "hello-v2.syxrec"])
def test_an_old_recording_goes_back_and_forth_through_the_api(name: str) -> None:
    with syxdbg.replay(str(DATA / name)) as s:
        assert s.recording is not None
        assert s.recording.meta["argv"] == ["hello", "one", "two words"]
        assert s.recording.meta["envp"] == ["SYXDBG_TEST_VAR=fixture"]
        s.cont(until="main")
        at_main = s.position
        assert s.regs.rdi == 3  # argc
        end = s.cont()
        assert getattr(end, "edge", None) == "end" and s.position == 9788
        assert isinstance(s.recording.end_event, Exited) and s.recording.end_event.status == 3
        s.seek(at_main)
        assert s.regs.rdi == 3 and s.position == at_main
