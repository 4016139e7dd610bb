#!/usr/bin/env python3
"""Round trips and stepping speed through syxdbg's gdb server, against native gdb.

Everything runs on one static x86_64 program built here (gcc -static -O1 -g): ``main``
calls ``work(N)``, a loop of about 4 instructions per iteration, on one source line.

* stepi round trips per second
  * from a raw RSP client: ``vCont;s:TID`` (TID from ``qC``) and its ``T05`` stop reply,
    back to back, against ``syxdbg serve`` in its own process (target >= 5,000/s);
  * from gdb: ``stepi N`` through pygdbmi, against syxdbg and against native gdb (ptrace)
    on the same binary in the same run (target >= 0.5x native);
* ``next`` over the call of ``work`` (10M instructions) against ``continue`` over the same
  stretch, and ``reverse-next`` back over it against ``reverse-continue`` (targets >= 0.8x).

Usage: python benchmarks/gdb_roundtrip.py [--quick] [--steps N] [--insns N] [--reps R]
(``--quick``: tiny sizes, a few seconds, for the test that keeps benchmarks from rotting).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "gdb")]

from gdbmi import Gdb, Served  # noqa: E402
from rsp import RspClient  # noqa: E402

import syxdbg  # noqa: E402

SOURCE = """\
#include <stdio.h>
#include <stdlib.h>
static volatile unsigned long sink;
__attribute__((noinline)) unsigned long work(unsigned long n)
{
    unsigned long x = 1, i;
    for (i = 0; i < n; i++)
        x = x * 6364136223846793005UL + i;
    return x;
}
int main(int argc, char **argv)
{
    unsigned long n = argc > 1 ? strtoul(argv[1], 0, 10) : 1000;
    unsigned long r = 0;
    r = work(n); /* CALL */
    sink = r; /* AFTER */
    printf("%lu\\n", r);
    return 0;
}
"""
#: Instructions per iteration of work's loop (gcc -O1: imul, add, add, cmp/jne).
PER_ITERATION = 4


def line_of(marker: str) -> int:
    return next(i for i, text in enumerate(SOURCE.splitlines(), 1) if marker in text)


def build(workdir: Path) -> Path:
    src = workdir / "bench.c"
    src.write_text(SOURCE)
    exe = workdir / "bench"
    subprocess.run(["gcc", "-static", "-O1", "-g", "-o", str(exe), str(src)], check=True)
    return exe


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def timed_cli(gdb: Gdb, command: str) -> float:
    t0 = time.perf_counter()
    gdb.cli(command)
    return time.perf_counter() - t0


def raw_stepi_rate(exe: Path, steps: int) -> float:
    """The stub in its own process (``syxdbg serve``), as gdb sees it: a client in the
    server's process would share its GIL and measure the thread handoffs."""
    proc = subprocess.Popen([sys.executable, "-m", "syxdbg", "serve", "--port", "0", str(exe),
                             "10"], stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        port = 0
        for line in proc.stderr:
            found = re.search(r"listening on \S+:(\d+)", line)
            if found:
                port = int(found.group(1))
                break
        assert port, "syxdbg serve did not say where it listens"
        c = RspClient(port)
        c.ask(b"qSupported:swbreak+;hwbreak+")
        # The main thread's id is the guest's pid: ask for it, as gdb does (``qC``).
        step = b"vCont;s:" + c.current_thread()
        stop = c.ask(step)  # warm up
        assert stop.startswith(b"T05"), stop

        def steps_() -> None:
            for _ in range(steps):
                reply = c.ask(step)
                assert reply[:3] == b"T05", reply

        dt = timed(steps_)
        c.send(b"k")
        c.close()
        proc.wait(timeout=30)
        return steps / dt
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _gdb(exe: Path, served: Served | None) -> Gdb:
    gdb = Gdb(shutil.which("gdb") or "gdb", str(exe))
    if served is None:
        gdb.cli("set startup-with-shell off")
        gdb.cli("break main")
        gdb.cli("run 1000")
    else:
        gdb.cli(f"target remote 127.0.0.1:{served.port}")
        gdb.cli("break main")
        gdb.cli("continue")
    return gdb


def gdb_stepi_rate(exe: Path, steps: int, native: bool) -> float:
    srv = None if native else Served(syxdbg.open(str(exe), ["1000"]))
    gdb = _gdb(exe, srv)
    try:
        gdb.cli("stepi 10")
        return steps / timed_cli(gdb, f"stepi {steps}")
    finally:
        gdb.close()
        if srv is not None:
            srv.close()


def over_call(exe: Path, iterations: int) -> dict[str, float]:
    """Seconds for next / continue over the call, and reverse-next / reverse-continue back."""
    out: dict[str, float] = {}
    call, after = line_of("/* CALL */"), line_of("/* AFTER */")
    for way in ("next", "continue"):
        srv = Served(syxdbg.open(str(exe), [str(iterations)]))
        gdb = Gdb(shutil.which("gdb") or "gdb", str(exe))
        try:
            gdb.cli(f"target remote 127.0.0.1:{srv.port}")
            gdb.cli(f"break bench.c:{call}")
            gdb.cli("continue")
            if way == "next":
                out["next"] = timed_cli(gdb, "next")
                text = gdb.cli("info line *$pc")
                assert f"Line {after}" in text, text
                out["reverse-next"] = timed_cli(gdb, "reverse-next")
                text = gdb.cli("info line *$pc")
                assert f"Line {call}" in text, text
            else:
                gdb.cli(f"tbreak bench.c:{after}")
                out["continue"] = timed_cli(gdb, "continue")
                out["reverse-continue"] = timed_cli(gdb, "reverse-continue")
                text = gdb.cli("info line *$pc")
                assert f"Line {call}" in text, text
        finally:
            gdb.close()
            srv.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--insns", type=int, default=10_000_000,
                    help="instructions the call stepped over runs")
    ap.add_argument("--reps", type=int, default=3)
    ns = ap.parse_args()
    if ns.quick:
        ns.steps, ns.insns, ns.reps = 200, 200_000, 1
    if shutil.which("gcc") is None or shutil.which("gdb") is None:
        print("gdb_roundtrip: needs gcc and gdb (skipped)")
        return 0
    iterations = ns.insns // PER_ITERATION
    with tempfile.TemporaryDirectory() as tmp:
        exe = build(Path(tmp))
        raws = [raw_stepi_rate(exe, ns.steps) for _ in range(ns.reps)]
        # Native and syxdbg alternate, so each pair sees about the same load.
        natives: list[float] = []
        ourss: list[float] = []
        for _ in range(ns.reps):
            natives.append(gdb_stepi_rate(exe, ns.steps, True))
            ourss.append(gdb_stepi_rate(exe, ns.steps, False))
        runs = [over_call(exe, iterations) for _ in range(ns.reps)]
    raw, native, ours = (statistics.median(x) for x in (raws, natives, ourss))
    pairs = [o / n for o, n in zip(ourss, natives, strict=True)]
    t = {k: statistics.median(r[k] for r in runs) for k in runs[0]}

    def spread(values: list[float]) -> str:  # the machine is shared: show every repetition
        return "" if len(values) < 2 else " [" + ", ".join(f"{v:,.0f}" for v in values) + "]"

    print(f"stepi round trips/s, raw RSP client: {raw:,.0f}{spread(raws)} (target >= 5,000)")
    each = " " + ", ".join(f"{p:.2f}" for p in pairs) if len(pairs) > 1 else ""
    print(f"stepi {ns.steps} in gdb: syxdbg {ours:,.0f}/s{spread(ourss)}, native gdb (ptrace) "
          f"{native:,.0f}/s{spread(natives)}: {statistics.median(pairs):.2f}x native "
          f"(median of the alternating pairs{each}; target >= 0.5x)")
    print(f"over a call of ~{ns.insns:,} instructions:")
    print(f"  next {t['next']:.3f} s, continue {t['continue']:.3f} s: "
          f"{t['continue'] / t['next']:.2f}x continue speed (target >= 0.8x)")
    print(f"  reverse-next {t['reverse-next']:.3f} s, reverse-continue "
          f"{t['reverse-continue']:.3f} s: {t['reverse-continue'] / t['reverse-next']:.2f}x "
          f"(target >= 0.8x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
