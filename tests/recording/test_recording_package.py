"""The recording package's seams: the snapshot API it persists checkpoints with (so it works
on the pure-Python reference), the program stored by content, the public names."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

import syxdbg.recording as recording
from syxdbg.recording import _program

SYXDBG = [sys.executable, "-m", "syxdbg"]

PROBE = """
import sys
import syxdbg, syxdbg.snapshot
from syxdbg.recording import Recorder
with syxdbg.open(sys.argv[1], ["100000"], env={}) as s:
    summary = Recorder(s, sys.argv[2], checkpoint_interval=1_000_000).run()
    print(syxdbg.snapshot.BACKEND, type(s.machine.tlb_owner).__name__, summary.checkpoints)
"""


def test_record_uses_the_public_snapshot_api_even_without_the_compiled_core(
        build_program, tmp_path: Path) -> None:
    """SYXDBG_PURE_PYTHON=1: the recorder's dirty pages come from the reference snapshot
    (``dirty_pages_since``), never from the compiled journal; the file replays."""
    out = tmp_path / "pure.syxrec"
    env = {**os.environ, "SYXDBG_PURE_PYTHON": "1"}
    res = subprocess.run([sys.executable, "-c", PROBE, str(build_program("loop")), str(out)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr
    backend, owner, checkpoints = res.stdout.splitlines()[-1].split()
    assert backend == "reference" and owner == "NoneType"  # no compiled journal attached
    assert int(checkpoints) >= 3
    for pure in ("1", "0"):  # and the replay checks every digest, either way
        check = subprocess.run([*SYXDBG, "replay", "--check", str(out)], capture_output=True,
                               text=True, timeout=600, stdin=subprocess.DEVNULL,
                               env={**os.environ, "SYXDBG_PURE_PYTHON": pure})
        assert check.returncode == 0, check.stderr


def test_record_on_the_cli_with_the_reference(build_program, tmp_path: Path) -> None:
    out = tmp_path / "cli.syxrec"
    env = {**os.environ, "SYXDBG_PURE_PYTHON": "1"}
    rec = subprocess.run([*SYXDBG, "record", "-q", "-o", str(out), "--checkpoint-interval",
                          "1000000", str(build_program("entropy")), "3000000"],
                         input=b"abc", capture_output=True, env=env, timeout=600)
    assert rec.returncode == 0, rec.stderr
    check = subprocess.run([*SYXDBG, "replay", "--check", str(out)], capture_output=True,
                           text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert check.returncode == 0, check.stderr


@pytest.mark.parametrize("layout", [
    [],                                   # empty file
    [(0, b"\x7fELF" + bytes(100))],      # small, zeros inside a block
    [(0, os.urandom(70_000)), (1 << 22, b"x"), ((1 << 22) + 70_000, os.urandom(10))],
    [(0, b"a"), (200_000, bytes(300_000) + b"b")],  # dense zeros between data
])
def test_the_program_is_stored_by_content(tmp_path: Path,
                                          layout: list[tuple[int, bytes]]) -> None:
    src = tmp_path / "prog"
    with open(src, "wb") as f:
        for off, data in layout:
            f.seek(off)
            f.write(data)
        f.truncate(max([off + len(d) for off, d in layout], default=0) + 12345)
    size, digest = _program.scan(str(src))
    buf = io.BytesIO()
    length, _ = _program.write_chunk(str(src), buf, digest)
    assert length == len(buf.getvalue())
    stored = _program.StoredProgram(memoryview(buf.getvalue()), 2, size, digest)
    assert stored.read() == src.read_bytes()
    copy = tmp_path / "copy"
    with open(copy, "wb") as f:
        stored.write_to(f)
    assert copy.read_bytes() == src.read_bytes()
    assert stored.matches_file(str(copy)) and stored.matches_file(str(src))
    # A dense copy of the same bytes has the same identity; one changed byte does not.
    dense = tmp_path / "dense"
    dense.write_bytes(src.read_bytes())
    assert _program.scan(str(dense)) == (size, digest)
    if size:
        changed = bytearray(src.read_bytes())
        changed[size // 2] ^= 1
        dense.write_bytes(bytes(changed))
        assert not stored.matches_file(str(dense))


def test_a_truncated_or_padded_program_stream_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "prog"
    src.write_bytes(os.urandom(200_000))
    size, digest = _program.scan(str(src))
    buf = io.BytesIO()
    _program.write_chunk(str(src), buf, digest)
    good = buf.getvalue()
    for bad in (good[:-10], good + b"junk"):
        stored = _program.StoredProgram(memoryview(bad), 2, size, digest)
        with pytest.raises(recording.RecordingError):
            stored.read()


def test_public_names_stay_importable() -> None:
    for name in ("CHECK_INTERVAL", "DEFAULT_CHECKPOINT_INTERVAL", "MAGIC", "VERSION",
                 "RecordSummary", "Recorder", "Recording", "RecordingError", "ReplaySource",
                 "RecordedHistory", "apply_layout", "describe_end_event", "format_size",
                 "memory_digest", "open_replay", "progress_printer", "register_values"):
        assert hasattr(recording, name), name
    assert recording.VERSION == 3 and {1, 2} <= set(recording.READABLE_VERSIONS)
