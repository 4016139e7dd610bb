"""The ``trace`` plugin: Tenet traces that say what the program really executed.

The file is read with Tenet's own parsing rules (tests/tracefiles.py). The pcs are checked
against an independent oracle (the program run with the timeline off and a plain Python
``UC_HOOK_CODE``: index k is position k), the registers and memory against the session
stepped one instruction at a time through the same range.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import progs
import pytest
from tracefiles import (
    ENV,
    TENET_ARCH,
    TenetLine,
    drcov_instructions,
    open_session,
    oracle_pcs,
    parse_drcov,
    parse_tenet,
)

from syxdbg.commands import CommandError, make_registry
from syxdbg.session import Session

TOOLCHAINS = ["gcc", "gcc-pie", "musl", "aarch64", "aarch64-pie"]


def traced_registers(arch: str) -> list[str]:
    regs, ip = TENET_ARCH[arch]
    return [r.lower() for r in regs if r != ip]


def memory_image(s: Session) -> dict[int, bytes]:
    return {r.start: s.mem.read(r.start, r.size) for r in s.mem.regions()}


def check_against_stepping(s: Session, lines: list[TenetLine], start: int) -> None:
    """Step the session through the traced range: line k is the state at start+k, and line
    k+1 holds what instruction start+k read (before it ran) and wrote (after it ran)."""
    arch = s.machine.arch.name
    names = traced_registers(arch)
    s.seek(start)
    for k, line in enumerate(lines):
        assert s.position == start + k and s.machine.pc == line.ip, f"line {k}"
        assert {n: s.regs[n] for n in names} == {n: line.state[n.upper()] for n in names}, \
            f"line {k}"
        nxt = lines[k + 1] if k + 1 < len(lines) else None
        if nxt is not None:
            for addr, data in nxt.reads:
                assert s.mem.read(addr, len(data)) == data, f"line {k + 1}: mr {addr:#x}"
        s.step()
        if nxt is not None:
            final: dict[int, int] = {}
            for addr, data in nxt.writes:  # the last store to a byte wins
                final.update({addr + i: b for i, b in enumerate(data)})
            for addr, b in final.items():
                assert s.mem.read(addr, 1)[0] == b, f"line {k + 1}: mw {addr:#x}"


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_trace_is_what_the_program_executed(toolchain: str, build_program: Callable[..., Path],
                                            tmp_path: Path) -> None:
    exe = build_program("hello", toolchain)
    pcs = oracle_pcs(exe, [])
    out = tmp_path / "t.log"
    with open_session(exe, []) as s:
        arch = s.machine.arch.name
        start = pcs.index(s.symbols["main"])
        stop = start + 1200
        s.run()
        here, regs = s.position, s.regs.snapshot()
        text = make_registry(s).run_text(f"trace {out} {start} {stop}")
        assert text.startswith(f"trace of positions {start}..{stop} written to {out}: "
                               f"{stop - start} lines")
        assert (s.position, s.regs.snapshot()) == (here, regs)  # back where it was
        lines = parse_tenet(out, arch)
        assert len(lines) == stop - start
        assert [ln.ip for ln in lines] == pcs[start:stop]
        # Every byte that changed between start and stop-1 is in an mw entry (the writes of
        # the last instruction, stop-1, would be on the line after the trace's last).
        s.seek(start)
        before = memory_image(s)
        s.seek(stop - 1)
        after = memory_image(s)
        written = {a + i for ln in lines for a, d in ln.writes for i in range(len(d))}
        for base, old in before.items():
            new = after[base]
            changed = {base + i for i in range(len(old)) if old[i] != new[i]}
            assert changed <= written, f"unreported writes at {sorted(changed - written)[:4]}"
        check_against_stepping(s, lines, start)


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_a_known_store_appears_with_its_value(toolchain: str, build_program: Callable[..., Path],
                                              tmp_path: Path) -> None:
    exe = build_program("corrupt", toolchain)  # record_history stores 777 over the balance
    out = tmp_path / "t.log"
    with open_session(exe, []) as s:
        s.run()
        balance = s.symbols["ledger"] + 16 * 8
        found = s.last_write(balance, 8)
        assert found is not None
        p = found.position
        make_registry(s).run_text(f"trace {out} {p - 3} {p + 3}")
        lines = parse_tenet(out, s.machine.arch.name)
    assert lines[3].ip == found.pc  # the store, at position p
    assert (balance, (777).to_bytes(8, "little")) in lines[4].writes  # its effect, next line
    assert all((balance, (777).to_bytes(8, "little")) not in ln.writes for ln in lines[:4])


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_system_call_results_appear_as_writes(toolchain: str, build_program: Callable[..., Path],
                                              tmp_path: Path) -> None:
    exe = build_program("filecopy", toolchain)
    payload = b"read(2) put this in the buffer\n"  # shorter than its 37-byte buffer
    src, dst = tmp_path / "src.txt", tmp_path / "dst.txt"
    src.write_bytes(payload)
    out = tmp_path / "t.log"
    with open_session(exe, [str(src), str(dst)]) as s:
        end = s.run()
        make_registry(s).run_text(f"trace {out} 0 {end.position}")
        lines = parse_tenet(out, s.machine.arch.name)
    assert len(lines) == end.position
    assert any(data == payload for ln in lines for _, data in ln.writes)


def test_trace_ranges_and_refusals(build_program: Callable[..., Path], tmp_path: Path) -> None:
    exe = build_program("hello", "gcc")
    pcs = oracle_pcs(exe, [])
    out = tmp_path / "t.log"
    with open_session(exe, []) as s:
        end = s.run().position
        reg = make_registry(s)
        s.seek(1000)
        assert reg.run_text(f"trace {out} +10").startswith("trace of positions 1000..1010 ")
        assert [ln.ip for ln in parse_tenet(out, "x86_64")] == pcs[1000:1010]
        assert reg.run_text(f"trace {out} -10").startswith("trace of positions 990..1000 ")
        assert reg.run_text(f"trace {out} 900").startswith("trace of positions 900..1000 ")
        assert reg.run_text(f"trace {out} origin 5").startswith("trace of positions 0..5 ")
        reg.run_text("set trace.limit 50")
        with pytest.raises(CommandError, match=r"more than trace.limit \(50"):
            reg.run_text(f"trace {out} 0 51")
        reg.run_text("set trace.limit 0")
        assert reg.run_text(f"trace {out} 0 51").startswith("trace of positions 0..51 ")
        cases = {
            f"trace {out} 50 10": r"FROM \(50\) is after TO \(10\)",
            f"trace {out} 10 10": "empty range",
            f"trace {out} {end + 5} {end + 10}": r"FROM .* is beyond the frontier",
            f"trace {tmp_path / 'no' / 'dir' / 't.log'} +5": "cannot write",
            f"trace {out} 5 nowhere": "not a position",
        }
        for line, message in cases.items():
            with pytest.raises(CommandError, match=message):
                reg.run_text(line)
        assert s.position == 1000
        # At the end of the program there is nothing left to trace.
        s.seek(end)
        with pytest.raises(CommandError, match="nothing to record: the program exited"):
            reg.run_text(f"trace {out} +10")


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_breakpoints_and_watchpoints_do_not_disturb_recordings(
        toolchain: str, build_program: Callable[..., Path], tmp_path: Path) -> None:
    # Re-execution ignores them, but the machine still stops at each hit (on aarch64 a write
    # watchpoint even un-executes the store and runs it again): nothing may show.
    exe = build_program("corrupt", toolchain)
    pcs = oracle_pcs(exe, [])
    with open_session(exe, []) as s:
        end = s.run().position
        s.add_watchpoint(s.symbols["ledger"] + 16 * 8, 8, "write")
        s.add_breakpoint("record_history")
        reg = make_registry(s)
        reg.run_text(f"trace {tmp_path / 't.log'} 0 {end}")
        reg.run_text(f"coverage {tmp_path / 'c.cov'}")
        assert [ln.ip for ln in parse_tenet(tmp_path / "t.log", s.machine.arch.name)] == pcs
        assert drcov_instructions(s, parse_drcov(tmp_path / "c.cov")) == set(pcs)


def test_an_interrupted_trace_or_coverage_says_what_it_holds(
        build_program: Callable[..., Path], tmp_path: Path) -> None:
    exe = build_program("hello", "gcc")
    pcs = oracle_pcs(exe, [])
    out = tmp_path / "t.log"
    with open_session(exe, [], **{"timeline.interval": 2000}) as s:
        end = s.run().position
        reg = make_registry(s)
        polls: list[int] = []

        def poll(label: str) -> Callable[[], bool]:
            def interrupted() -> bool:  # Ctrl-C after a few chunks of re-execution
                polls.append(s.position)
                return len(polls) > 3
            return interrupted

        reg.ctx.poll = poll  # type: ignore[method-assign]
        text = reg.run_text(f"trace {out} 0 {end}")
        m = re.search(r"incomplete: interrupted at position (\d+), before (\d+)", text)
        assert m and int(m.group(2)) == end, text
        reached = int(m.group(1))
        assert 0 < reached < end and text.startswith(f"trace of positions 0..{reached} ")
        assert [ln.ip for ln in parse_tenet(out, "x86_64")] == pcs[:reached]
        assert s.position == end
        polls.clear()
        text = reg.run_text(f"coverage {tmp_path / 'c.cov'}")
        assert "incomplete: interrupted at position" in text, text
        assert s.position == end


def test_trace_past_the_frontier_executes_live(build_program: Callable[..., Path],
                                               tmp_path: Path) -> None:
    exe = build_program("hello", "aarch64")
    pcs = oracle_pcs(exe, [])
    out = tmp_path / "t.log"
    with open_session(exe, []) as s:
        ev = s.run(until="main")
        here = ev.position
        text = make_registry(s).run_text(f"trace {out} +300")
        assert f"trace of positions {here}..{here + 300}" in text
        assert f"executed live past the frontier (was {here})" in text
        assert s.position == here and s.when().frontier == here + 300
        assert [ln.ip for ln in parse_tenet(out, "aarch64")] == pcs[here:here + 300]


def test_trace_from_the_real_shell(build_program: Callable[..., Path], tmp_path: Path) -> None:
    exe = build_program("hello", "musl")
    pcs = oracle_pcs(exe, [])
    out = tmp_path / "shell.log"
    cmd = [sys.executable, "-m", "syxdbg", "shell", "--clear-env"]
    cmd += [arg for k, v in ENV.items() for arg in ("-E", f"{k}={v}")]
    cmd += ["--argv0", "prog", "-ex", "break main", "-ex", "run", "-ex", f"trace {out} +250",
            "-ex", "when", str(exe)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stdout + p.stderr
    m = re.search(r"^position (\d+) \(frontier (\d+), origin 0", p.stdout, re.M)
    assert m, p.stdout
    here = int(m.group(1))  # at the breakpoint in main, after its prologue
    assert int(m.group(2)) == here + 250  # the trace ran live past the frontier
    assert f"trace of positions {here}..{here + 250} written to {out}: 250 lines" in p.stdout
    assert [ln.ip for ln in parse_tenet(out, "x86_64")] == pcs[here:here + 250]


def test_progs_toolchains_cover_both_architectures() -> None:
    assert {progs.toolchain_for(t).arch for t in TOOLCHAINS} == {"x86_64", "aarch64"}


# -- files written for remote clients (issue 20) ------------------------------------------------
# From gdb's ``monitor`` (any client of the stub), trace and coverage write only under the
# session's output directory: no absolute path, no '..', no symbolic link out of it, and no
# existing file replaced unless the server allows it. The shell (the local user) keeps full
# paths.


def test_remote_clients_write_only_under_the_output_directory(
        build_program: Callable[..., Path], tmp_path: Path) -> None:
    exe = build_program("hello", "gcc")
    jail = tmp_path / "out"
    outside = tmp_path / "outside"
    jail.mkdir()
    outside.mkdir()
    (jail / "sub").mkdir()
    (jail / "link").symlink_to(outside)
    (jail / "victim-link").symlink_to(outside / "victim")
    (jail / "existing").write_text("keep me")
    os.mkfifo(jail / "fifo")
    with open_session(exe, [], output_dir=str(jail)) as s:
        s.step(count=40)
        gdb = make_registry(s, frontend="gdb")
        for command in ("trace {} -20", "coverage {}"):
            refused = {
                f"{outside}/abs": "relative",
                "../outside/up": "'..'",
                "sub/../../outside/up2": "'..'",
                "link/through": "symbolic link",
                "victim-link": "already exists",
                "existing": "already exists",
                "fifo": "already exists",
                "~/home": "relative",
                "": "file name",
            }
            for name, why in refused.items():
                with pytest.raises(CommandError) as info:
                    gdb.run_text(command.format(name) if name else command.format("''"))
                assert why in str(info.value) and "\n" not in str(info.value), (name, info)
            assert sorted(p.name for p in outside.iterdir()) == []
            assert (jail / "existing").read_text() == "keep me"
            kind = command.split()[0]
            gdb.run_text(command.format(f"{kind}.out"))
            gdb.run_text(command.format(f"sub/{kind}.out"))
            assert (jail / f"{kind}.out").stat().st_size > 0
            assert (jail / "sub" / f"{kind}.out").stat().st_size > 0
            with pytest.raises(CommandError, match="already exists"):
                gdb.run_text(command.format(f"{kind}.out"))
        # A refused command leaves no file behind (a retry may use the name).
        with pytest.raises(CommandError):
            gdb.run_text("trace failed.out 999999999 999999990")
        assert not (jail / "failed.out").exists()
        # The local shell keeps full paths and may replace files.
        shell = make_registry(s)
        shell.run_text(f"trace {outside / 'local.trace'} -10")
        shell.run_text(f"trace {outside / 'local.trace'} -10")
        assert (outside / "local.trace").stat().st_size > 0
    with open_session(exe, [], output_dir=str(jail), output_overwrite=True) as s:
        s.step(count=40)
        gdb = make_registry(s, frontend="gdb")
        gdb.run_text("trace existing -5")
        assert (jail / "existing").read_text().startswith("rax=")
        for name, why in (("victim-link", "symbolic link"),
                          ("fifo", "regular file|No such device"),
                          ("../x", "'..'")):
            with pytest.raises(CommandError, match=why):
                gdb.run_text(f"trace {name} -5")
        assert not (outside / "victim").exists()


def test_monitor_trace_under_real_gdb_is_confined(build_program: Callable[..., Path],
                                                   tmp_path: Path) -> None:
    """Real gdb against ``syxdbg serve`` started in a directory: ``monitor trace ../x`` and
    an absolute path are refused, a plain name lands in the server's directory."""
    import shutil

    from support import tool_missing

    gdb = shutil.which("gdb")
    if gdb is None:
        tool_missing("gdb is not installed")
    assert gdb is not None
    exe = build_program("hello", "gcc")
    served = tmp_path / "served"
    served.mkdir()
    cmd = [sys.executable, "-m", "syxdbg", "serve", "--port", "0", str(exe)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=served)
    try:
        assert proc.stderr is not None
        m = re.match(r"syxdbg: listening on 127\.0\.0\.1:(\d+)", proc.stderr.readline().strip())
        assert m, "syxdbg serve did not print its port"
        res = subprocess.run([gdb, "-nx", "-batch", "-ex", f"file {exe}",
                              "-ex", f"target remote 127.0.0.1:{m.group(1)}",
                              "-ex", "stepi 30",
                              "-ex", "monitor trace ../escaped.trace -20",
                              "-ex", f"monitor trace {tmp_path / 'abs.trace'} -20",
                              "-ex", f"monitor coverage {tmp_path / 'abs.cov'}",
                              "-ex", "monitor trace plain.trace -20",
                              "-ex", "monitor coverage plain.cov",
                              "-ex", "kill"],
                             capture_output=True, text=True, timeout=300, check=False)
        text = res.stdout + res.stderr
        assert "'..' is not allowed" in text, text
        assert text.count("give a relative name") == 2, text
        assert "trace of positions 10..30 written to plain.trace" in text, text
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["served"]
    assert sorted(p.name for p in served.iterdir()) == ["plain.cov", "plain.trace"]
    assert len(parse_tenet(served / "plain.trace", "x86_64")) == 20
