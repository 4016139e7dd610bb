"""Hostile recording files: every bad file is one line and status 2, in bounded memory.

Forged descriptions (program path, argv, environment, versions), decompression bombs,
deeply nested data, and a program padded to a 4 GiB sparse file. The forger is
``support.forge_recording`` (valid CRCs; with or without a valid whole-file digest).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import support
from hypothesis import given, settings
from hypothesis import strategies as st

from syxdbg.recording._format import _HEADER

SYXDBG = [sys.executable, "-m", "syxdbg"]
FIXTURE = Path(__file__).parent.parent / "recording" / "data" / "hello-v1.syxrec"
MIB = 1 << 20


#: Runs argv and reports its peak RSS: from a small process, since a child forked straight
#: from pytest would count pytest's own memory (ru_maxrss includes the time before exec).
_MEASURE = """
import json, resource, subprocess, sys
res = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, capture_output=True, text=True)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps([res.returncode, res.stdout, res.stderr, peak]))
"""


def peak_rss(argv: list[str], cwd: Path | None = None) -> tuple[int, str, str, int]:
    """(status, stdout, stderr, peak RSS in bytes) of ``argv`` alone."""
    res = subprocess.run([sys.executable, "-c", _MEASURE, *argv], capture_output=True,
                         text=True, cwd=cwd, timeout=300, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    status, out, err, peak = json.loads(res.stdout)
    return status, out, err, peak


def one_error_line(status: int, err: str) -> str:
    assert "Traceback" not in err, err
    assert status == 2, (status, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("syxdbg: error: "), err
    return lines[0]


def replay_check(path: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SYXDBG, "replay", "--check", str(path)], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def v2_recording(build_program, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh recording (format 2) of hello."""
    d = tmp_path_factory.mktemp("rec")
    out = d / "hello.syxrec"
    res = subprocess.run([*SYXDBG, "record", "-q", "-o", str(out), "--clear-env", "-E",
                          "A=1", str(build_program("hello", "musl")), "arg"],
                         capture_output=True, timeout=300)
    assert res.returncode == 3, res.stderr
    return out


# -- the description is covered ----------------------------------------------------------------
EDITS = {
    "path": lambda m: {**m, "path": "/usr/bin/true"},
    "argv": lambda m: {**m, "argv": [m["argv"][0], "forged"]},
    "envp": lambda m: {**m, "envp": ["A=2"]},
    "syxdbg": lambda m: {**m, "syxdbg": "99.0"},
    "version": lambda m: {**m, "version": 1},
}


@pytest.mark.parametrize("field", sorted(EDITS))
def test_an_edited_description_with_fixed_checksums_is_refused(v2_recording: Path,
                                                               tmp_path: Path,
                                                               field: str) -> None:
    bad = tmp_path / "bad.syxrec"
    support.forge_recording(v2_recording, bad, meta=EDITS[field], crc_only=True)
    res = replay_check(bad)
    msg = one_error_line(res.returncode, res.stderr)
    assert "does not match its digest" in msg, msg


@pytest.mark.parametrize("field", ["argv", "envp"])
def test_a_description_that_lies_about_the_start_is_refused(v2_recording: Path,
                                                            tmp_path: Path,
                                                            field: str) -> None:
    """Even with the digest recomputed (a forger who knows the format), argv and the
    environment must be what the recorded initial stack holds."""
    bad = tmp_path / "bad.syxrec"
    support.forge_recording(v2_recording, bad, meta=EDITS[field])
    res = replay_check(bad)
    msg = one_error_line(res.returncode, res.stderr)
    assert "description does not match the recorded start" in msg, msg


def test_an_old_format_file_cannot_lie_about_its_arguments(tmp_path: Path) -> None:
    """Format 1 has no whole-file digest: the recorded start still checks argv/env."""
    for field in ("argv", "envp"):
        bad = tmp_path / f"{field}.syxrec"
        support.forge_recording(FIXTURE, bad, meta=EDITS[field])
        res = replay_check(bad)
        msg = one_error_line(res.returncode, res.stderr)
        assert "does not match the recorded start" in msg, msg


# -- decompression is bounded before inflating -------------------------------------------------
def _zero_bomb(size: int) -> bytes:
    c = zlib.compressobj(9)
    block = bytes(MIB)
    return b"".join(c.compress(block) for _ in range(size // MIB)) + c.flush()


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return _zero_bomb(512 * MIB)  # about 0.5 MiB


def test_a_program_bomb_is_refused_without_inflating_it(tmp_path: Path, bomb: bytes) -> None:
    """Format 1 stored zlib(program): inflating stops at the declared program size."""
    bad = tmp_path / "bomb.syxrec"
    support.forge_recording(FIXTURE, bad, raw=lambda tag, b: bomb if tag == b"PROG" else b,
                            meta=lambda m: {**m, "path": str(tmp_path / "gone")})
    assert bad.stat().st_size < 2 * MIB
    status, _, err, rss = peak_rss([*SYXDBG, "replay", "--check", str(bad)], cwd=tmp_path)
    msg = one_error_line(status, err)
    assert "program" in msg and "corrupted recording" in msg, msg
    assert rss < 400 * MIB, f"{rss / MIB:.0f} MiB"


def test_a_pickled_bomb_is_bounded(v2_recording: Path, tmp_path: Path, bomb: bytes) -> None:
    bad = tmp_path / "bomb.syxrec"
    support.forge_recording(v2_recording, bad,
                            raw=lambda tag, b: bomb if tag == b"EVNT" else b)
    status, _, err, rss = peak_rss([*SYXDBG, "replay", "--check", str(bad)], cwd=tmp_path)
    msg = one_error_line(status, err)
    assert "larger than it may be" in msg, msg
    assert rss < 600 * MIB, f"{rss / MIB:.0f} MiB"


# -- deeply nested data --------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["META", "EVNT", "STAT", "END!"])
def test_deeply_nested_data_is_one_clear_error(v2_recording: Path, tmp_path: Path,
                                               where: str) -> None:
    bad = tmp_path / "deep.syxrec"
    depth = 200_000
    if where == "META":
        data = v2_recording.read_bytes()
        chunks = support.split_chunks(data)
        meta = json.loads(chunks[0][1])
        text = json.dumps(meta)[:-1] + ', "deep": ' + "[" * depth + "]" * depth + "}"
        chunks[0] = (b"META", text.encode())
        bad.write_bytes(support.join_chunks(data[:_HEADER.size], chunks))
    else:
        support.forge_recording(v2_recording, bad, raw=lambda tag, b: zlib.compress(
            _nested("list", depth)) if tag == where.encode() else b)
    res = replay_check(bad)
    msg = one_error_line(res.returncode, res.stderr)
    assert "corrupted recording" in msg, msg


def _nested(kind: str, depth: int) -> bytes:
    """A pickle of lists, dicts or tuples nested ``depth`` deep, written without recursion."""
    if kind == "list":  # EMPTY_LIST x depth, APPEND x (depth - 1)
        body = b"]" * depth + b"a" * (depth - 1)
    elif kind == "dict":  # {"k": {"k": ... {}}}: EMPTY_DICT, key, ..., SETITEM x (depth - 1)
        body = b"}\x8c\x01k" * (depth - 1) + b"}" + b"s" * (depth - 1)
    else:  # ((((),),),): EMPTY_TUPLE, TUPLE1 x (depth - 1)
        body = b")" + b"\x85" * (depth - 1)
    return b"\x80\x05" + body + b"."


@settings(max_examples=60, deadline=None)
@given(depth=st.integers(min_value=1, max_value=20_000),
       kind=st.sampled_from(["list", "dict", "tuple"]))
def test_any_nesting_is_accepted_or_refused_never_a_crash(depth: int, kind: str) -> None:
    """The chunk decoder (in process) against containers nested any depth."""
    from syxdbg.recording import RecordingError
    from syxdbg.recording._codec import MAX_DEPTH, loads

    try:
        obj = loads(zlib.compress(_nested(kind, depth)), frozenset({"syxdbg"}))
    except RecordingError as exc:
        assert depth > MAX_DEPTH + 1 and "nested more than" in str(exc)
    else:
        assert depth <= MAX_DEPTH + 1
        assert repr(obj)  # usable: no RecursionError


# -- a program padded to a 4 GiB sparse file ------------------------------------------------------
def test_a_sparse_4_gib_program_records_and_replays_in_bounded_memory(build_program,
                                                                      tmp_path: Path) -> None:
    prog = tmp_path / "padded"
    prog.write_bytes(build_program("hello", "musl").read_bytes())
    os.truncate(prog, 4 << 30)
    if prog.stat().st_blocks * 512 > 64 * MIB:
        pytest.skip("this file system does not keep sparse files sparse")
    out = tmp_path / "padded.syxrec"
    status, _, err, rss = peak_rss([*SYXDBG, "record", "-q", "-o", str(out), "--clear-env",
                                    str(prog)], cwd=tmp_path)
    assert status == 3, err
    assert rss < 400 * MIB, f"record used {rss / MIB:.0f} MiB"
    assert out.stat().st_size < MIB
    # Replay without the original: the copy extracted is sparse, replay is bounded too.
    prog.unlink()
    status, stdout, err, rss = peak_rss([*SYXDBG, "replay", "--check", str(out)],
                                        cwd=tmp_path)
    assert status == 0, err
    assert "as recorded" in stdout
    assert rss < 400 * MIB, f"replay used {rss / MIB:.0f} MiB"
