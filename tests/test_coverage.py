"""The ``coverage`` plugin: drcov files of what the program really executed.

The oracle is independent of the plugin: the same binary run with the timeline off and a
plain Python ``UC_HOOK_CODE`` on the machine's engine, which lists the pc of every
instruction (its length is the final position, so index k is position k). The drcov file
is read with Lighthouse's and bncov's rules (tests/tracefiles.py), its blocks expanded into
instruction addresses with capstone, and compared with the oracle's set.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support import tool_missing
from tracefiles import ENV, drcov_instructions, open_session, oracle_pcs, parse_drcov

import syxdbg
from syxdbg.commands import CommandError, make_registry
from syxdbg.machine import Perm
from syxdbg.session import Session

TOOLCHAINS = ["gcc", "gcc-pie", "musl", "aarch64", "aarch64-pie"]


def symbol_range(session: Session, name: str) -> range:
    start = session.symbols[name]
    return range(start, start + session.image.symbol_sizes[name])


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_coverage_is_exactly_what_the_program_executed(
        toolchain: str, build_program: Callable[..., Path], tmp_path: Path) -> None:
    exe = build_program("hello", toolchain)
    pcs = oracle_pcs(exe, ["--exit=5"])
    out = tmp_path / "run.cov"
    with open_session(exe, ["--exit=5"]) as s:
        end = s.run()
        assert end.position == len(pcs)
        reg = make_registry(s)
        text = reg.run_text(f"coverage {out}")
        assert s.position == end.position  # back where it was
        cov = parse_drcov(out)
        assert f"coverage of positions 0..{end.position}" in text and str(out) in text
        assert drcov_instructions(s, cov) == set(pcs)
        # The module table names the program, as Lighthouse/bncov match it.
        image = s.image
        mod = cov.modules[0]
        assert (mod.id, mod.path, mod.entry) == (0, os.path.abspath(exe), image.entry)
        assert mod.base == min(seg.start for seg in image.segments) & ~0xFFF
        assert mod.end >= max(seg.end for seg in image.segments)
        assert len(cov.modules) == 1  # static programs execute nothing else
        assert cov.flavor.strip() == "drcov"


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_a_function_is_covered_iff_it_ran(toolchain: str, build_program: Callable[..., Path],
                                          tmp_path: Path) -> None:
    exe = build_program("hello", toolchain)
    # hello calls atoi (glibc inlines it: strtol) only to parse an --exit=N argument.
    for args, expect in (([], False), (["--exit=7"], True)):
        pcs = oracle_pcs(exe, args)
        with open_session(exe, args) as s:
            strtol = symbol_range(s, "strtol")
            assert any(pc in strtol for pc in pcs) is expect  # the oracle agrees
            s.run()
            make_registry(s).run_text(f"coverage {tmp_path / 'c.cov'}")
            covered = drcov_instructions(s, parse_drcov(tmp_path / "c.cov"))
            assert bool(covered & set(strtol)) is expect
            assert covered == set(pcs)


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64-pie"])
def test_range_coverage_is_exactly_the_range(toolchain: str, build_program: Callable[..., Path],
                                             tmp_path: Path) -> None:
    exe = build_program("hello", toolchain)
    pcs = oracle_pcs(exe, [])
    with open_session(exe, []) as s:
        start = pcs.index(s.symbols["main"])
        stop = pcs.index(s.symbols["exit"])
        s.run(until="main")
        s.cont()  # to the end: the range lies in history, behind the current position
        here, regs = s.position, s.regs.snapshot()
        text = make_registry(s).run_text(f"coverage {tmp_path / 'r.cov'} {start} {stop}")
        assert f"coverage of positions {start}..{stop} ({stop - start} instructions)" in text
        assert (s.position, s.regs.snapshot()) == (here, regs)
        covered = drcov_instructions(s, parse_drcov(tmp_path / "r.cov"))
        assert covered == set(pcs[start:stop])
        # Code that only ran before main (start-up) or after it (exit) is not in it.
        assert s.symbols["_start"] not in covered and s.symbols["exit"] not in covered
        # Relative positions and names work as in goto.
        s.snapshot_save("mark")
        text = make_registry(s).run_text(f"coverage {tmp_path / 'r2.cov'} origin mark")
        assert f"coverage of positions 0..{here}" in text


def test_code_outside_the_program_gets_its_own_module(tmp_path: Path) -> None:
    blob = tmp_path / "blob.bin"
    # mov rax, 0x900000; call rax; 1: jmp 1b      -- and at 0x900000: inc rbx; ret
    blob.write_bytes(bytes.fromhex("48c7c000009000" "ffd0" "ebfe"))
    with syxdbg.open(str(blob), raw=True, arch="x86_64", base=0x10000000) as s:
        s.mem.map(0x900000, 0x1000, Perm.RWX, "jit")
        s.mem.write(0x900000, bytes.fromhex("48ffc3" "c3"))
        s.run(count=20)
        make_registry(s).run_text(f"coverage {tmp_path / 'j.cov'}")
        cov = parse_drcov(tmp_path / "j.cov")
    assert [(m.path, m.base) for m in cov.modules] == [(str(blob), 0x10000000),
                                                      ("jit", 0x900000)]
    assert (0, 4, 1) in cov.blocks  # inc rbx; ret: offset 0 of module 1
    assert cov.absolute() >= {(0x10000000, 9), (0x900000, 4)}


def test_coverage_of_a_replayed_recording_reexecutes_everything(
        build_program: Callable[..., Path], tmp_path: Path) -> None:
    # Replaying a recording, the timeline may load a persisted checkpoint instead of
    # re-executing a long stretch; coverage must not jump over what it records.
    replay = syxdbg.replay
    exe = build_program("loop", "gcc")
    args = ["20000"]  # ~430k instructions: longer than the timeline's shortest jump
    pcs = oracle_pcs(exe, args)
    rec = tmp_path / "loop.syxrec"
    cmd = [sys.executable, "-m", "syxdbg", "record", "-o", str(rec), "--clear-env"]
    cmd += [arg for k, v in ENV.items() for arg in ("-E", f"{k}={v}")]
    p = subprocess.run([*cmd, "--argv0", "prog", str(exe), *args], capture_output=True,
                       text=True, timeout=300, check=False)
    assert p.returncode == 0, p.stderr
    with replay(str(rec)) as s:
        text = make_registry(s).run_text(f"coverage {tmp_path / 'r.cov'}")
        assert f"coverage of positions 0..{len(pcs)} " in text
        assert drcov_instructions(s, parse_drcov(tmp_path / "r.cov")) == set(pcs)


def test_coverage_refuses_bad_requests(build_program: Callable[..., Path],
                                       tmp_path: Path) -> None:
    exe = build_program("hello", "gcc")
    with open_session(exe, []) as s:
        reg = make_registry(s)
        with pytest.raises(CommandError, match="nothing has executed yet"):
            reg.run_text(f"coverage {tmp_path / 'a.cov'}")
        end = s.run().position
        s.seek(100)
        cases = {
            f"coverage {tmp_path / 'a.cov'} 50 10": "FROM \\(50\\) is after TO \\(10\\)",
            f"coverage {tmp_path / 'a.cov'} 10 10": "empty range",
            f"coverage {tmp_path / 'a.cov'} 10 {end + 5}": "beyond the frontier",
            f"coverage {tmp_path / 'a.cov'} {end + 5}": "beyond the frontier",
            f"coverage {tmp_path / 'a.cov'} bogus": "not a position",
            f"coverage {tmp_path / 'no' / 'such' / 'dir.cov'}": "cannot write",
        }
        for line, message in cases.items():
            with pytest.raises(CommandError, match=message):
                reg.run_text(line)
        assert s.position == 100


def test_coverage_option_writes_the_whole_run(build_program: Callable[..., Path],
                                              tmp_path: Path) -> None:
    exe = build_program("hello", "gcc")
    pcs = oracle_pcs(exe, ["--exit=9"])
    out = tmp_path / "whole.cov"
    cmd = [sys.executable, "-m", "syxdbg", "run", "--coverage", str(out), "--clear-env"]
    cmd += [arg for k, v in ENV.items() for arg in ("-E", f"{k}={v}")]
    cmd += ["--argv0", "prog", str(exe), "--exit=9"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert p.returncode == 9, p.stderr
    assert re.search(rf"syxdbg: coverage: \d+ blocks .* written to {re.escape(str(out))}",
                     p.stderr)
    with open_session(exe, ["--exit=9"]) as s:
        assert drcov_instructions(s, parse_drcov(out)) == set(pcs)


def test_coverage_from_the_real_shell(build_program: Callable[..., Path],
                                      tmp_path: Path) -> None:
    exe = build_program("hello", "aarch64")
    pcs = oracle_pcs(exe, [])
    out = tmp_path / "shell.cov"
    cmd = [sys.executable, "-m", "syxdbg", "shell", "--clear-env"]
    cmd += [arg for k, v in ENV.items() for arg in ("-E", f"{k}={v}")]
    cmd += ["--argv0", "prog", "-ex", "run", "-ex", f"coverage {out}", "-ex", "when", str(exe)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stdout + p.stderr
    n = len(pcs)
    assert f"coverage of positions 0..{n} ({n} instructions)" in p.stdout
    assert f"position {n} (frontier {n}" in p.stdout
    with open_session(exe, []) as s:
        assert drcov_instructions(s, parse_drcov(out)) == set(pcs)


def test_monitor_coverage_under_real_gdb(build_program: Callable[..., Path],
                                         tmp_path: Path) -> None:
    gdb = shutil.which("gdb")
    if gdb is None:
        tool_missing("gdb is not installed")
    assert gdb is not None
    exe = build_program("hello", "gcc")
    pcs = oracle_pcs(exe, [])
    out = tmp_path / "gdb.cov"
    cmd = [sys.executable, "-m", "syxdbg", "serve", "--port", "0", "--clear-env"]
    cmd += [arg for k, v in ENV.items() for arg in ("-E", f"{k}={v}")]
    cmd += ["--argv0", "prog", str(exe)]
    # A remote client writes under the server's output directory (its current directory).
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path)
    try:
        assert proc.stderr is not None
        m = re.match(r"syxdbg: listening on 127\.0\.0\.1:(\d+)$", proc.stderr.readline().strip())
        assert m, "syxdbg serve did not print its port"
        res = subprocess.run([gdb, "-nx", "-batch", "-ex", f"file {exe}",
                              "-ex", f"target remote 127.0.0.1:{m.group(1)}",
                              "-ex", "break main", "-ex", "continue",
                              "-ex", f"monitor coverage {out.name}",
                              "-ex", f"monitor coverage {out}", "-ex", "monitor when",
                              "-ex", "kill"],
                             capture_output=True, text=True, timeout=300, check=False)
        text = res.stdout + res.stderr
        assert "Breakpoint 1, main" in text, text
        main = pcs.index(exe_symbol(exe, "main"))
        assert f"coverage of positions 0..{main} ({main} instructions)" in text, text
        assert "give a relative name" in text, text  # the absolute path: refused
        assert f"position {main} (frontier {main}" in text
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.wait()
    with open_session(exe, []) as s:
        assert drcov_instructions(s, parse_drcov(out)) == set(pcs[:main])


def exe_symbol(exe: Path, name: str) -> int:
    with open_session(exe, []) as s:
        return s.symbols[name]

