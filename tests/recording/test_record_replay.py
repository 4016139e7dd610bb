"""``syxdbg record`` and ``syxdbg replay``: real programs, real files, real gdb.

Every test records a real run of a test program (tests/programs) with the real CLI, then
replays the file: through ``replay --check`` (digests), through the API (state compared
position by position) and through a real gdb.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import support
from support import tool_missing

import syxdbg
from syxdbg.machine.events import Fault
from syxdbg.recording import Recording, memory_digest, register_values
from syxdbg.recording._format import _CHUNK, _HEADER

SYXDBG = [sys.executable, "-m", "syxdbg"]
ENV = ["--clear-env", "-E", "PATH=/usr/bin:/bin", "-E", "LC_ALL=C"]


def record(out: Path, prog: Path | str, *args: str, stdin: bytes = b"", options: tuple[str, ...]
           = (), cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*SYXDBG, "record", "-o", str(out), *ENV, *options, str(prog), *args],
                          input=stdin, capture_output=True, cwd=cwd, timeout=600)


def replay_check(path: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # stdin is closed and the cwd is elsewhere: replay must need neither.
    return subprocess.run([*SYXDBG, "replay", "--check", str(path)], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, cwd=cwd, timeout=600)


def rewrite_events(src: Path, dst: Path, change) -> None:
    """Copy a recording, passing every event tuple through ``change``, with valid CRCs (a
    well-formed file whose inputs differ from what the run really took)."""
    forge(src, dst, change=lambda tag, o: [change(e) for e in o] if tag == b"EVNT" else o)


# -- every program, recorded and replayed -----------------------------------------------------
CASES = [
    ("hello", ("alpha", "two words"), b""),
    ("corrupt", (), b""),
    ("readstdin", (), b"first line\nsecond line with words\nno newline at the end"),
    ("entropy", ("20000",), b"input that only the recording has\n"),
    ("timeclock", (), b""),
    ("sortalloc", (), b""),
    ("fpsimd", (), b""),
    ("segv", (), b""),
]


# sortalloc runs a billion instructions: one toolchain is enough for it.
MATRIX = [(*case, tc) for case in CASES for tc in ("gcc", "musl", "aarch64")
          if case[0] != "sortalloc" or tc == "gcc"]


@pytest.mark.parametrize(("program", "args", "stdin", "toolchain"), MATRIX,
                         ids=[f"{m[0]}-{m[3]}" for m in MATRIX])
def test_record_then_replay_matches_every_digest(build_program, run_native, tmp_path: Path,
                                                 toolchain, program, args, stdin) -> None:
    exe = build_program(program, toolchain)
    native = run_native(exe, list(args), stdin=stdin) if program != "entropy" else None
    out = tmp_path / "run.syxrec"
    rec = record(out, exe, *args, stdin=stdin, options=("--checkpoint-interval", "1000000"))
    if native is not None:
        # Recording is running: the program behaves as natively.
        assert rec.stdout == native.stdout
        assert rec.returncode == native.status, rec.stderr
    summary = rec.stderr.decode()
    assert "syxdbg: recorded " in summary and f"{out} is " in summary, summary
    res = replay_check(out, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "final memory digest match" in res.stdout and "as recorded" in res.stdout
    assert res.stdout.count("\n") == 1 and res.stderr == ""  # the replay printed nothing else


def test_files_are_neither_read_nor_written_again(build_program, tmp_path: Path) -> None:
    exe = build_program("filecopy", "gcc")
    work = tmp_path / "work"
    work.mkdir()
    (work / "src.txt").write_bytes(bytes(range(256)) * 40)
    out = tmp_path / "copy.syxrec"
    rec = record(out, exe, "src.txt", "dst.txt", cwd=work)
    assert rec.returncode == 0, rec.stderr
    assert b"verify: ok" in rec.stdout
    # The host changes completely: replay must not notice, and must not touch it.
    (work / "dst.txt").unlink()
    (work / "src.txt").write_bytes(b"other contents")
    res = replay_check(out, cwd=work)
    assert res.returncode == 0, res.stderr
    assert not (work / "dst.txt").exists() and not (work / "dst.txt.tmp").exists()
    assert (work / "src.txt").read_bytes() == b"other contents"


def test_the_replayed_state_is_what_the_recorded_run_printed(build_program,
                                                            tmp_path: Path) -> None:
    exe = build_program("entropy", "gcc")
    out = tmp_path / "e.syxrec"
    rec = record(out, exe, "5000", stdin=b"abc\n")
    assert rec.returncode == 0, rec.stderr
    printed = dict(line.split(": ", 1) for line in rec.stdout.decode().splitlines())
    with syxdbg.replay(str(out)) as s:
        end = s.cont()
        assert end.edge == "end" and s.position == s.recording.end_position  # type: ignore
        seen = s.symbols["seen"]
        raw = s.mem.read(seen, 8 * 2 + 32 + 8 * 6)
        assert int.from_bytes(raw[:8], "little") == 4
        assert raw[16:48].hex() == printed["random"]
        words = [int.from_bytes(raw[48 + 8 * i:56 + 8 * i], "little", signed=True)
                 for i in range(6)]
        assert f"{words[0]}.{words[1]:09d}" == printed["realtime"]
        assert f"{words[2]}.{words[3]:09d}" == printed["monotonic"]
        assert str(words[4]) == printed["pid"]
        assert f"{words[5] & (2**64 - 1):016x}" == printed["mix"]
        # The program wrote its output once, when recorded: the log has the writes.
        writes = [e for e in s.eventlog.events() if e.call == "write"]
        assert writes and s.eventlog.replayed == len(s.eventlog.events())


def _trajectory(path: Path, positions: list[int]
                ) -> list[tuple[int, tuple[int, ...], tuple[int, ...], str]]:
    """(position, every register, the digest registers, memory digest) at each position."""
    with syxdbg.replay(str(path)) as s:
        assert s.recording is not None
        names = s.regs.names()
        digest_names = s.recording.meta["registers"]
        out = []
        for p in positions:
            s.seek(p)
            out.append((s.position, register_values(s.machine, names),
                        register_values(s.machine, digest_names), memory_digest(s.machine)))
        return out


def test_replaying_the_same_file_twice_gives_identical_digests(build_program,
                                                               tmp_path: Path) -> None:
    exe = build_program("entropy", "musl")
    out = tmp_path / "twice.syxrec"
    assert record(out, exe, "3000000", stdin=b"xyz",
                  options=("--checkpoint-interval", "1000000")).returncode == 0
    rec = Recording.open(str(out))
    end = rec.end_position
    positions = sorted({1, 17, 1000, end // 3, end // 2, end - 5, end, *rec.checks})
    first = _trajectory(out, positions)
    second = _trajectory(out, list(reversed(positions)))[::-1]
    assert first == second
    # ...and equal to what the recorder saw.
    names = rec.meta["registers"]
    assert names
    checked = 0
    for pos, _, regs, _ in first:
        if pos in rec.checks:
            assert regs == rec.checks[pos], pos
            checked += 1
    assert checked == len(rec.checks) >= 5
    assert first[-1][3] == rec.end["memory_digest"]


def test_reverse_stepi_in_a_replay_gives_the_recorded_previous_state(build_program,
                                                                     tmp_path: Path) -> None:
    exe = build_program("readstdin", "aarch64")
    out = tmp_path / "rev.syxrec"
    assert record(out, exe, stdin=b"one two\nthree\n").returncode == 0
    with syxdbg.replay(str(out)) as s:
        names = s.regs.names()
        s.cont(until="main")
        seen = []
        for _ in range(300):  # through several syscalls' worth of code
            seen.append((s.position, register_values(s.machine, names)))
            s.step()
        for pos, regs in reversed(seen):
            ev = s.step("backward")
            assert ev.position == pos
            assert register_values(s.machine, names) == regs


def test_persisted_checkpoints_let_replay_jump_without_reexecuting(build_program,
                                                                   tmp_path: Path) -> None:
    exe = build_program("loop", "gcc")
    out = tmp_path / "jump.syxrec"
    assert record(out, exe, "400000", options=("--checkpoint-interval", "1000000")
                  ).returncode == 0
    rec = Recording.open(str(out))
    assert len(rec.checkpoint_positions) >= 6
    target = rec.checkpoint_positions[-2] + 12345
    with syxdbg.replay(str(out)) as jumping:
        jumping.seek(target)
        source = jumping.timeline.recorded
        assert source.loads >= 1  # type: ignore[union-attr]
        jumped = (register_values(jumping.machine, jumping.regs.names()),
                  memory_digest(jumping.machine))
        # Going back from there crosses the jump: the earlier state is intact.
        jumping.seek(1000)
        early = memory_digest(jumping.machine)
    with syxdbg.replay(str(out)) as slow:
        slow.timeline.recorded.jumps = False  # type: ignore[union-attr]
        slow.seek(1000)
        assert memory_digest(slow.machine) == early
        slow.seek(target)
        assert slow.timeline.recorded.loads == 0  # type: ignore[union-attr]
        assert (register_values(slow.machine, slow.regs.names()),
                memory_digest(slow.machine)) == jumped


# -- the file: self-checking --------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_recording(build_program, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rec") / "hello.syxrec"
    rec = record(out, build_program("hello", "gcc"), "a")
    assert rec.returncode == 3, rec.stderr  # hello's own exit status
    return out


def _replay_error(path: Path) -> str:
    res = replay_check(path)
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_truncated_corrupted_and_foreign_files_are_one_clear_error(small_recording: Path,
                                                                  tmp_path: Path) -> None:
    data = small_recording.read_bytes()
    bad = tmp_path / "bad.syxrec"
    for cut in (5, len(data) // 3, len(data) - 1):
        bad.write_bytes(data[:cut])
        msg = _replay_error(bad)
        assert "truncated" in msg or "not a syxdbg recording" in msg, msg
    for where in (len(data) // 2, len(data) - 20, _HEADER.size + _CHUNK.size + 3):
        flipped = bytearray(data)
        flipped[where] ^= 0x40
        bad.write_bytes(bytes(flipped))
        assert "corrupted recording" in _replay_error(bad)
    bad.write_bytes(Path(sys.executable).read_bytes()[:4096])
    assert "not a syxdbg recording" in _replay_error(bad)
    bad.write_bytes(data[:8] + (99).to_bytes(4, "little") + data[12:])
    assert "version 99 is not supported" in _replay_error(bad)
    assert "cannot read" in _replay_error(tmp_path / "missing.syxrec")


def test_a_file_that_would_run_code_is_refused(small_recording: Path, tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    bad = tmp_path / "evil.syxrec"
    rewrite_events(small_recording, bad, lambda e: (*e[:5], Evil(), *e[6:]))
    msg = _replay_error(bad)
    assert "may not contain" in msg and "system" in msg, msg
    assert not (tmp_path / "pwned").exists()


def test_a_diverging_replay_reports_where(build_program, tmp_path: Path) -> None:
    exe = build_program("entropy", "gcc")
    out = tmp_path / "e.syxrec"
    assert record(out, exe, "400000", stdin=b"q").returncode == 0
    forged = tmp_path / "forged.syxrec"
    rewrite_events(out, forged, lambda e: (*e[:5], bytes(b ^ 1 for b in e[5]), *e[6:])
                   if e[3] == "random" else e)
    res = replay_check(forged)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "replay diverged from the recording: first difference found at position " \
        in res.stderr, res.stderr
    assert "register(s) differ" in res.stderr
    # Where the recorded inputs are consumed in another order, the event log says so.
    swapped = tmp_path / "swapped.syxrec"
    rewrite_events(out, swapped, lambda e: (*e[:3], "clock" if e[3] == "random" else e[3],
                                            *e[4:]))
    res = replay_check(swapped)
    assert res.returncode == 1 and "replay diverged at host call #" in res.stderr, res.stderr


# -- the binary is gone; gdb on the recording -----------------------------------------------------
def _gdb_or_skip() -> str:
    gdb = shutil.which("gdb")
    if gdb is None:
        tool_missing("gdb is not installed (apt-get install gdb)")
    assert gdb is not None
    return gdb


def test_replay_in_gdb_with_the_binary_deleted(build_program, tmp_path: Path) -> None:
    gdb = _gdb_or_skip()
    exe = tmp_path / "entropy"
    shutil.copy(build_program("entropy", "gcc"), exe)
    out = tmp_path / "gone.syxrec"
    rec = record(out, exe, "1000", stdin=b"four")
    assert rec.returncode == 0
    mix = rec.stdout.decode().split("mix: ")[1].strip()
    exe.unlink()
    cmds = ["break main", "continue", "watch seen.mix", "continue", "print/x seen.mix",
            "continue", "continue", "reverse-continue", "print/x seen.mix",
            "print seen.stdin_bytes", "set var seen.mix = 5", "monitor recording"]
    argv = [*SYXDBG, "replay", "--gdb", "--debugger", gdb, "--gdb-arg=-nx", "--batch"]
    for c in cmds:
        argv += ["--ex", c]
    res = subprocess.run([*argv, str(out)], capture_output=True, text=True, timeout=300,
                         stdin=subprocess.DEVNULL)
    text = res.stdout + res.stderr
    assert res.returncode == 0, text
    assert "Breakpoint 1, main" in text
    assert f"$1 = 0x{mix.lstrip('0')}" in text  # the recorded value, computed again
    assert "No more reverse-execution history." in text  # continuing at the end
    assert "[Inferior 1 (Remote target) exited" not in text  # the end is not an exit
    assert "$2 = 0x0" in text  # reverse-continue: back before the store
    assert "$3 = 4" in text
    assert "Cannot access memory" in text  # a recording is read-only
    assert "the program exited with status 0" in text  # monitor recording
    assert "Traceback" not in text


def test_gdb_reaches_the_end_of_a_cut_recording_and_goes_back(build_program,
                                                             tmp_path: Path) -> None:
    gdb = _gdb_or_skip()
    out = tmp_path / "cut.syxrec"
    rec = record(out, build_program("loop", "gcc"), "100000000", options=("--max-insns",
                                                                         "2000000"))
    assert rec.returncode == 124, rec.stderr  # as run: stopped at the limit
    assert b"stopped at the --max-insns limit" in rec.stderr
    argv = [*SYXDBG, "replay", "--debugger", gdb, "--gdb-arg=-nx", "--batch",
            "--ex", "continue", "--ex", "monitor when", "--ex", "stepi", "--ex",
            "reverse-stepi", "--ex", "monitor when", str(out)]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                         stdin=subprocess.DEVNULL)
    text = res.stdout + res.stderr
    assert res.returncode == 0, text
    assert text.count("No more reverse-execution history.") == 2, text
    assert "position 2000000 (frontier 2000000" in text
    assert "position 1999999 (frontier 2000000" in text


# -- recording: progress, Ctrl-C, bad input -------------------------------------------------------
def test_ctrl_c_ends_the_recording_cleanly(build_program, tmp_path: Path) -> None:
    out = tmp_path / "int.syxrec"
    proc = subprocess.Popen([*SYXDBG, "record", "-o", str(out), str(build_program("loop")),
                             "1000000000"], stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stderr is not None
    first = proc.stderr.readline()  # the first progress line: recording is under way
    assert first.startswith("syxdbg: recording: ") and "instructions/s" in first, first
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err  # as run: interrupted
    assert "interrupted" in err and "Traceback" not in err
    res = replay_check(out)
    assert res.returncode == 0, res.stderr
    assert "it reached the end of the recording, as recorded" in res.stdout


def test_record_refuses_bad_input(tmp_path: Path) -> None:
    for args, want in ((["record"], "no program given"),
                       (["record", "--max-insns", "0", sys.executable], "must be positive"),
                       (["record", str(tmp_path / "nope")], "nope")):
        res = subprocess.run([*SYXDBG, *args], capture_output=True, text=True, cwd=tmp_path)
        assert res.returncode == 2 and want in res.stderr and "Traceback" not in res.stderr, \
            (args, res.stderr)


def test_record_writes_next_to_the_user_by_default(build_program, tmp_path: Path) -> None:
    exe = build_program("hello", "musl")
    for expected in (f"{exe.name}.syxrec", f"{exe.name}-1.syxrec"):
        res = subprocess.run([*SYXDBG, "record", "-q", str(exe)], capture_output=True,
                             cwd=tmp_path)
        assert res.returncode == 3 and res.stderr == b"hello: to stderr\n"
        assert (tmp_path / expected).is_file()


def test_replay_serves_gdb_on_a_port(build_program, tmp_path: Path) -> None:
    gdb = _gdb_or_skip()
    out = tmp_path / "serve.syxrec"
    assert record(out, build_program("hello", "gcc")).returncode == 3
    server = subprocess.Popen([*SYXDBG, "replay", "--port", "0", str(out)],
                              stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None
        line = server.stderr.readline()
        assert line.startswith("syxdbg: listening on 127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        res = subprocess.run([gdb, "-nx", "-batch", "-ex",
                              f"target remote 127.0.0.1:{port}", "-ex", "continue", "-ex",
                              "reverse-stepi", "-ex", "monitor when", "-ex", "kill"],
                             capture_output=True, text=True, timeout=120)
        text = res.stdout + res.stderr
        assert "No more reverse-execution history." in text, text
        assert "; replaying)" in text
    finally:
        server.wait(timeout=60)


def test_a_raw_blob_recording_ends_in_its_fault(tmp_path: Path) -> None:
    from support import assemble

    blob = assemble("aarch64", """
        .globl _start
        _start:
          mov x0, #0
          mov x1, #0x0800
          movk x1, #0x40, lsl #16
        1:
          add x0, x0, #3
          str x0, [x1], #8
          b 1b
    """, tmp_path)
    out = tmp_path / "raw.syxrec"
    rec = subprocess.run([*SYXDBG, "record", "-o", str(out), "--raw", str(blob), "--arch",
                          "aarch64", "--base", "0x400000"], capture_output=True, text=True)
    # The stores walk off the blob's one page: 256 of them fit, the next one faults.
    assert rec.returncode == 128 + 11, rec.stderr
    assert "SIGSEGV at pc 0x400010" in rec.stderr
    res = replay_check(out)
    assert res.returncode == 0, res.stderr
    assert "replayed 772 instructions" in res.stdout and "signal 11" in res.stdout
    with syxdbg.replay(str(out)) as s:
        ev = s.cont()
        assert isinstance(ev, Fault) and ev.address == 0x401000 and s.position == 772
        assert isinstance(s.cont(), Fault)  # reported again, not past the end
        s.step("backward")
        assert s.position == 771
        assert s.mem.read(0x400ff8, 8) == (3 * 256).to_bytes(8, "little")


def test_forged_contents_with_valid_checksums_never_crash(small_recording: Path,
                                                          tmp_path: Path) -> None:
    """Flip bytes inside the decompressed payloads (and fix the CRCs): whatever the file
    then says, replaying it is a clean error, a divergence or a clean replay."""
    from syxdbg.errors import SyxdbgError

    data = small_recording.read_bytes()
    chunks = support.split_chunks(data)
    outcomes = set()
    for i, (tag, body) in enumerate(chunks):
        if tag in (b"META", b"PROG"):
            continue
        raw = zlib.decompress(body)
        for where in range(0, len(raw), max(1, len(raw) // 6)):
            forged = bytearray(raw)
            forged[where] ^= 0x5A
            new = zlib.compress(bytes(forged))
            bad = tmp_path / f"forged-{i}-{where}.syxrec"
            bad.write_bytes(support.join_chunks(data[:_HEADER.size],
                                        [(t, new if j == i else b)
                                         for j, (t, b) in enumerate(chunks)]))
            try:
                with syxdbg.replay(str(bad)) as s:
                    s.seek(s.recording.end_position)  # type: ignore[union-attr]
                outcomes.add("replayed")
            except SyxdbgError as exc:
                outcomes.add(type(exc).__name__)
    assert "RecordingError" in outcomes and "Divergence" in outcomes, outcomes


def forge(src: Path, dst: Path, **kwargs) -> None:
    """Rewrite a recording with valid checksums and digest (``support.forge_recording``)."""
    support.forge_recording(src, dst, **kwargs)


def test_a_replay_that_ends_otherwise_than_recorded_diverges(small_recording: Path,
                                                            tmp_path: Path) -> None:
    import dataclasses

    # The recorded exit status is 3; a file claiming 4 does not replay.
    claims_4 = tmp_path / "status.syxrec"
    forge(small_recording, claims_4, change=lambda tag, o: {
        **o, "event": dataclasses.replace(o["event"], status=4)} if tag == b"END!" else o)
    res = replay_check(claims_4)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "re-execution ended with Exited(" in res.stderr and "status=3" in res.stderr
    # One host input short: the replay needs it and says so (never asks the host).
    short = tmp_path / "short.syxrec"

    def drop_last(tag, o):
        if tag == b"EVNT":
            return o[:-1]
        if tag == b"END!":
            return {**o, "events": o["events"] - 1}
        return o

    forge(small_recording, short, change=drop_last)
    res = replay_check(short)
    assert res.returncode == 1 and "the recording has no more host calls" in res.stderr, \
        res.stderr


def test_recordings_cannot_import_or_reach_unicorn_internals(small_recording: Path,
                                                             tmp_path: Path) -> None:
    import syxdbg.recording as recording
    from syxdbg.recording import _codec

    # A global from a trusted package that is not imported yet: refused, never imported.
    sneaky = tmp_path / "import.syxrec"
    forge(small_recording, sneaky, raw=lambda tag, b: zlib.compress(
        b"csyxdbg.__main__\nmain\n(tR.") if tag == b"EVNT" else b)
    probe = ("import sys, syxdbg.recording as r\n"
             f"try:\n    r.Recording.open({str(sneaky)!r})\n"
             "except r.RecordingError as e:\n    print('refused:', e)\n"
             "print('imported' if 'syxdbg.__main__' in sys.modules else 'not imported')\n")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert "refused:" in res.stdout and "syxdbg.__main__.main" in res.stdout, res
    assert res.stdout.strip().endswith("not imported"), res.stdout
    # The CPU is stored as named registers: a bogus one is a clean error, and no unicorn
    # object can be smuggled in (the raw context holds host pointers).
    bogus = tmp_path / "cpu.syxrec"
    forge(small_recording, bogus, change=lambda tag, o: {
        **o, "cpu": {**o["cpu"], "registers": {**o["cpu"]["registers"], "dr7": 1}}}
        if tag == b"STAT" else o)
    assert "no register 'dr7'" in _replay_error(bogus)
    ctx = tmp_path / "ctx.syxrec"
    forge(small_recording, ctx, raw=lambda tag, b: zlib.compress(
        b"cunicorn.unicorn_py3.unicorn\nUcContext\n)\x81.") if tag == b"STAT" else b)
    assert "may not contain" in _replay_error(ctx)
    # Decompression is bounded.
    bomb = zlib.compress(b"\0" * (recording.MAX_CHUNK + 1))
    assert len(bomb) < recording.MAX_CHUNK // 500
    with pytest.raises(recording.RecordingError, match="larger than it may be"):
        _codec.loads(bomb, frozenset({"syxdbg"}))


def test_the_recorded_program_path_is_only_a_hint(small_recording: Path,
                                                  tmp_path: Path) -> None:
    for path in ("/dev/zero", "/x/..", str(tmp_path), "/proc/self/mem"):
        moved = tmp_path / "moved.syxrec"
        forge(small_recording, moved, meta=lambda m, p=path: {**m, "path": p})
        res = replay_check(moved)
        assert res.returncode == 0, (path, res.stderr)


def test_sigterm_keeps_the_recording_and_failures_leave_no_file(build_program,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "term.syxrec"
    out.write_bytes(b"an older file that must survive a failed recording")
    failed = subprocess.run([*SYXDBG, "record", "-q", "-p", "no:linux", "-o", str(out),
                             str(build_program("hello"))], capture_output=True, text=True)
    assert failed.returncode == 2 and "no syscall layer" in failed.stderr
    assert out.read_bytes().startswith(b"an older file")
    assert not (tmp_path / "term.syxrec.part").exists()
    proc = subprocess.Popen([*SYXDBG, "record", "-o", str(out), str(build_program("loop")),
                             "1000000000"], stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stderr is not None
    assert proc.stderr.readline().startswith("syxdbg: recording: ")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    res = replay_check(out)
    assert res.returncode == 0, res.stderr


def test_record_refuses_to_overwrite_its_program_or_write_to_a_full_disk(
        build_program, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    shutil.copy(build_program("hello"), victim)
    before = victim.read_bytes()
    res = subprocess.run([*SYXDBG, "record", "-o", str(victim), str(victim)],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "is the program being recorded" in res.stderr
    assert victim.read_bytes() == before

    def small_disk() -> None:  # files may not grow past 64 KiB: writes fail with EFBIG
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))

    full = tmp_path / "full.syxrec"
    res = subprocess.run([*SYXDBG, "record", "-o", str(full), str(victim)],
                         capture_output=True, text=True, preexec_fn=small_disk)
    assert res.returncode == 2, res.stderr
    assert f"{full}: cannot write (File too large)" in res.stderr
    assert "Traceback" not in res.stderr
    assert not full.exists() and not (tmp_path / "full.syxrec.part").exists()


def _blocked_reading_stdin(pid: int) -> bool:
    """The process's main thread is inside read(0, ...) (the host's read syscall number)."""
    import platform

    read_nr = {"x86_64": "0", "aarch64": "63"}.get(platform.machine(), "0")
    try:
        fields = Path(f"/proc/{pid}/syscall").read_text().split()
    except OSError:
        return False
    return len(fields) > 1 and fields[0] == read_nr and int(fields[1], 16) == 0


@pytest.mark.parametrize("command", ["run", "record"])
def test_ctrl_c_while_the_program_waits_for_input(build_program, tmp_path: Path,
                                                  command: str) -> None:
    import time

    out = tmp_path / "wait.syxrec"
    argv = [*SYXDBG, command, *(["-o", str(out)] if command == "record" else []),
            str(build_program("readstdin"))]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdin is not None
    proc.stdin.write("typed before the wait\n")
    proc.stdin.flush()  # ... and the pipe stays open: the program then waits in read(0)
    deadline = time.monotonic() + 60
    while not _blocked_reading_stdin(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _blocked_reading_stdin(proc.pid), "the program never waited for input"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted at pc" in err or "interrupted" in err
    assert "Traceback" not in err
    if command == "record":
        res = replay_check(out)  # the interrupted read (EINTR) is part of the recording
        assert res.returncode == 0, res.stderr
