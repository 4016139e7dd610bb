#!/usr/bin/env python3
"""Round trips and run speed through syxdbg's gdb server.

Measured on a raw x86_64 blob (tests/gdb/blobs.py "count": a register loop of 4
instructions per iteration, then ``ud2`` at ``done``):

* stepi round trips per second
  * from a raw RSP client: ``vCont;s:1`` and its ``T05`` stop reply, back to back;
  * from gdb: ``stepi N`` through pygdbmi (gdb also reads registers and memory at each stop);
* continue speed: the loop runs to a Z0 breakpoint at ``done``
  * through the server (raw client ``vCont;c``, timed from the request to the stop reply),
  * and directly with ``Machine.run(until=done)`` in a fresh session;
  the ratio is server / machine in instructions per second.

Targets (issue 4): >= 2,000 stepi round trips per second; continue >= 0.9x the machine.

Usage: python benchmarks/gdb_roundtrip.py [--steps N] [--reps R]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "gdb")]

from blobs import BASE, assemble  # noqa: E402
from gdbmi import Gdb, Served  # noqa: E402
from rsp import RspClient  # noqa: E402

import syxdbg  # noqa: E402


def open_blob(path: Path) -> syxdbg.Session:
    return syxdbg.open(str(path), raw=True, arch="x86_64", base=BASE)


def done_address(session: syxdbg.Session) -> int:
    m = session.machine
    addr = BASE
    for a, mnem, *_ in m.disassemble(BASE, 16):
        if mnem == "ud2":
            return a
        addr = a
    raise RuntimeError(f"no ud2 after {addr:#x}")


def raw_stepi_rate(path: Path, steps: int) -> float:
    srv = Served(open_blob(path))
    try:
        c = RspClient(srv.port)
        c.ask(b"qSupported:swbreak+;hwbreak+")
        c.ask(b"vCont;s:1")  # warm up
        t0 = time.perf_counter()
        for _ in range(steps):
            c.ask(b"vCont;s:1")
        dt = time.perf_counter() - t0
        c.close()
        return steps / dt
    finally:
        srv.close()


def gdb_stepi_rate(path: Path, steps: int) -> float | None:
    gdb_path = shutil.which("gdb")
    if gdb_path is None:
        return None
    srv = Served(open_blob(path))
    gdb = Gdb(gdb_path)
    try:
        gdb.cli("set architecture i386:x86-64")
        gdb.cli(f"target remote 127.0.0.1:{srv.port}")
        gdb.cli("stepi 10")
        t0 = time.perf_counter()
        gdb.cli(f"stepi {steps}")
        dt = time.perf_counter() - t0
        return steps / dt
    finally:
        gdb.close()
        srv.close()


def continue_times(path: Path) -> tuple[float, float, int]:
    """(seconds through the server, seconds in the machine, instructions)."""
    srv = Served(open_blob(path))
    try:
        done = done_address(srv.session)
        c = RspClient(srv.port)
        c.ask(b"qSupported:swbreak+;hwbreak+")
        c.ask(b"Z0,%x,1" % done)
        t0 = time.perf_counter()
        reply = c.ask(b"vCont;c")
        served = time.perf_counter() - t0
        assert b"swbreak" in reply, reply
        insns = srv.session.machine.position
        c.close()
    finally:
        srv.close()
    session = open_blob(path)
    try:
        t0 = time.perf_counter()
        session.machine.run(until=done)
        direct = time.perf_counter() - t0
        assert session.machine.position == insns
    finally:
        session.close()
    return served, direct, insns


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--reps", type=int, default=3)
    ns = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = assemble("x86_64", "count", Path(tmp))
        raw = [raw_stepi_rate(path, ns.steps) for _ in range(ns.reps)]
        via_gdb = [gdb_stepi_rate(path, ns.steps // 5) for _ in range(ns.reps)]
        runs = [continue_times(path) for _ in range(ns.reps)]
    print(f"stepi round trips/s, raw RSP client: {statistics.median(raw):,.0f} "
          f"(target >= 2,000)")
    if via_gdb[0] is not None:
        print(f"stepi round trips/s, gdb:            "
              f"{statistics.median(v for v in via_gdb if v is not None):,.0f}")
    served = statistics.median(r[0] for r in runs)
    direct = statistics.median(r[1] for r in runs)
    insns = runs[0][2]
    print(f"continue to a breakpoint, {insns:,} instructions:")
    print(f"  through the server: {served:.3f} s ({insns / served / 1e6:,.0f} M insn/s)")
    print(f"  Machine.run:        {direct:.3f} s ({insns / direct / 1e6:,.0f} M insn/s)")
    print(f"  ratio: {direct / served:.2f}x (target >= 0.9x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
