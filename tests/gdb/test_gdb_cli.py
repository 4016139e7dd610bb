"""``syxdbg serve`` / ``syxdbg gdb`` end to end, and interactive situations with real gdb:
Ctrl-C during a long loop, disconnect and reconnect, kill."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from blobs import BASE, COUNTER
from gdbmi import Gdb, running_event, served
from support import in_ci

GDB = shutil.which("gdb")
MULTIARCH = shutil.which("gdb-multiarch")
needs_gdb = pytest.mark.skipif(GDB is None and not in_ci(), reason="gdb is not installed")
needs_multiarch = pytest.mark.skipif(MULTIARCH is None and not in_ci(),
                                     reason="gdb-multiarch is not installed")


def syxdbg_cmd(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syxdbg", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


@needs_gdb
def test_syxdbg_gdb_batch_on_a_static_program(build_program: Callable[..., Path]) -> None:
    exe = build_program("corrupt", "gcc")
    res = syxdbg_cmd("gdb", "--batch", "--gdb-arg=-nx", "--ex", "break record_history",
                     "--ex", "continue", "--ex", "bt", "--ex", "watch ledger.balance",
                     "--ex", "continue", "--ex", "monitor info", "--ex", "delete",
                     "--ex", "continue", str(exe))
    out = res.stdout
    assert res.returncode == 0, res.stderr
    assert "rejected" not in res.stderr  # "Architecture rejected target-supplied description"
    assert "Breakpoint 1, record_history (amount=510) at corrupt.c:" in out
    assert "#4  0x" in out and "in main (" in out
    assert "Hardware watchpoint 2: ledger.balance" in out
    assert re.search(r"Old value = \d+\nNew value = \d+\n", out)
    assert "arch:      x86_64" in res.stdout + res.stderr  # monitor output
    assert "ledger CORRUPTED" in out  # the program's stdout is syxdbg's
    # The end of history is a stop gdb can reverse from (at _exit), or, before that
    # existed, the exit itself.
    assert "exited with code 01" in out or \
        re.search(r"No more reverse-execution history\.\n0x[0-9a-f]+ in _exit", out), out


@needs_multiarch
def test_syxdbg_gdb_raw_aarch64_blob_with_watchpoint(blob: Callable[[str, str], Path]
                                                     ) -> None:
    path = blob("aarch64", "steps")
    res = syxdbg_cmd("gdb", "--batch", "--gdb-arg=-nx", "--ex", f"watch *(long *){COUNTER:#x}",
                     "--ex", "continue", "--ex", "x/i $pc", "--ex", "continue",
                     "--ex", "info registers pc", "--raw", str(path), "--arch", "aarch64",
                     "--base", f"{BASE:#x}")
    out = res.stdout
    assert res.returncode == 0, res.stderr
    assert "rejected" not in res.stderr
    assert "Old value = 0\nNew value = 7\n" in out
    assert "Old value = 7\nNew value = 8\n" in out
    # Reported after gdb stepped the store: pc at the instruction after it.
    assert f"=> {BASE + 12:#x}:\tadd\tx0, x0, #0x1" in out
    assert f"pc             {BASE + 24:#x}" in out


@needs_gdb
def test_syxdbg_serve_prints_its_port_and_k_ends_it(build_program: Callable[..., Path]
                                                    ) -> None:
    exe = build_program("hello", "gcc")
    proc = subprocess.Popen([sys.executable, "-m", "syxdbg", "serve", "--port", "0", str(exe),
                             "a"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        m = re.match(r"syxdbg: listening on 127\.0\.0\.1:(\d+)$", line.strip())
        assert m, line
        port = int(m.group(1))
        assert GDB is not None
        res = subprocess.run([GDB, "-nx", "-batch", "-ex", f"file {exe}",
                              "-ex", f"target remote 127.0.0.1:{port}", "-ex", "break main",
                              "-ex", "continue", "-ex", "info args", "-ex", "kill"],
                             capture_output=True, text=True, timeout=120, check=False)
        assert "argc = 2" in res.stdout, res.stdout + res.stderr
        assert proc.wait(timeout=60) == 0
        assert "killed by gdb" in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()


def test_serve_warns_for_non_loopback_hosts() -> None:
    from syxdbg.cli.serve import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert is_loopback("127.0.0.2") and is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")
    assert not is_loopback("::") and not is_loopback("::ffff:10.0.0.1")


@needs_gdb
def test_ctrl_c_during_a_long_loop(build_program: Callable[..., Path]) -> None:
    exe = build_program("loop", "gcc")
    with served(str(exe), ("1000000000",)) as srv:
        assert GDB is not None
        gdb = Gdb(GDB, str(exe))
        try:
            gdb.cli(f"target remote 127.0.0.1:{srv.port}")
            gdb.cli("break loop.c:33")
            gdb.cli("continue")
            gdb.cli("delete")
            running = running_event(srv)
            gdb.start("continue")
            assert running.wait(60)
            text = gdb.interrupt_and_wait()
            assert "Program received signal SIGINT, Interrupt." in text
            assert re.search(r"main \(argc=<optimized out>, argv=<optimized out>\) at "
                             r"loop\.c:(3[3-9]|4[0-1])", text), text
            frame = gdb.cli("print i")
            assert re.match(r"\$1 = \d+", frame) and int(frame.split()[-1]) > 0
            assert "0x" in gdb.cli("info registers rip")
            # It goes on from there.
            running = running_event(srv)
            gdb.start("continue")
            assert running.wait(60)
            assert "SIGINT" in gdb.interrupt_and_wait()
            assert int(gdb.cli("print i").split()[-1]) > int(frame.split()[-1])
            gdb.cli("kill")
        finally:
            gdb.close()


@needs_gdb
def test_reconnect_after_disconnect_mid_run(build_program: Callable[..., Path]) -> None:
    exe = build_program("loop", "gcc")
    with served(str(exe), ("1000000000",)) as srv:
        assert GDB is not None
        gdb = Gdb(GDB, str(exe))
        try:
            gdb.cli(f"target remote 127.0.0.1:{srv.port}")
            gdb.cli("break loop.c:35")
            gdb.cli("continue")
            gdb.cli("delete")
            before = int(gdb.cli("print i").split()[-1])
            gdb.start("continue")
        finally:
            gdb.close()  # gdb goes away while the program runs
        position = srv.session.machine.position
        gdb = Gdb(GDB, str(exe))
        try:
            text = gdb.cli(f"target remote 127.0.0.1:{srv.port}")
            assert "main (" in text and "loop.c:" in text
            assert srv.session.machine.position >= position
            now = int(gdb.cli("print i").split()[-1])
            assert now >= before
            gdb.cli("break loop.c:35")
            assert "Breakpoint 1, main" in gdb.cli("continue")
            # The disconnect stopped the loop anywhere in an iteration: if that was after
            # i's increment (i lives in a register at -O1), line 35 comes with the same i.
            assert int(gdb.cli("print i").split()[-1]) in (now, now + 1)
            gdb.cli("detach")
        finally:
            gdb.close()


def test_monitor_commands_that_move_in_time_refresh_gdbs_registers(
        build_program: Callable[..., Path]) -> None:
    import syxdbg

    exe = build_program("corrupt", "gcc")
    target = 500
    with syxdbg.open(str(exe), env={}) as s:
        s.seek(target)
        want = s.regs.pc
    res = syxdbg_cmd("gdb", "--batch", "--gdb-arg=-nx", "--ex", "break record_history",
                     "--ex", "continue", "--ex", "p/x $pc", "--ex", f"monitor goto {target}",
                     "--ex", "p/x $pc", "--ex", "monitor when", "--ex", "kill", "--clear-env",
                     str(exe))
    assert res.returncode == 0, res.stderr
    pcs = re.findall(r"\$\d+ = (0x[0-9a-f]+)", res.stdout)
    assert len(pcs) == 2 and int(pcs[1], 16) == want != int(pcs[0], 16), res.stdout
