#!/usr/bin/env python3
"""Reverse search from the end of a long run: indexed against the full scan, same run.

One static x86_64 program built here (gcc -static -O1): ``main`` calls ``setup()`` once,
near the start, which writes ``config`` (a variable on its own page, written nowhere else),
then runs a loop of about 8 instructions per iteration that keeps writing a 64 KiB table,
then calls ``done()``. The session runs forward to ``done`` (about ``--insns``
instructions, default one billion), then, from there, each of:

* ``bc``: reverse-continue to a breakpoint on ``setup`` (hit only near the start);
* ``watch``: reverse-continue with a write watchpoint on ``config``;
* ``last-write``: ``last_write(config, 8)``;

once with the timeline's index (``Timeline.indexed = True``: interval summaries skip the
intervals that cannot hold a hit) and once with today's full scan (``indexed = False``:
every checkpoint interval re-executed, newest first). Before each search the session
goes back to the end (``seek``, not timed). Both must land on the same position. The
targets (issue 19): each indexed search <= 0.5 s at one billion instructions.

Usage: python benchmarks/reverse.py [--insns N] [--interval N] [--quick]
(``--quick``: 5 million instructions, a smoke test).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

import syxdbg  # noqa: E402

SOURCE = """\
#include <stdio.h>
#include <stdlib.h>
#define WORDS (16 * 512)
static unsigned long config[512] __attribute__((aligned(4096)));
static unsigned long table[WORDS] __attribute__((aligned(4096)));
__attribute__((noinline)) void setup(unsigned long n) { config[0] = n ^ 0x5eedUL; }
__attribute__((noinline)) void done(unsigned long x) { __asm__ volatile("" :: "r"(x)); }
int main(int argc, char **argv)
{
    unsigned long n = argc > 1 ? strtoul(argv[1], 0, 10) : 1000, x = 1, i;
    setup(n);
    for (i = 0; i < n; i++) {
        x = x * 6364136223846793005UL + i;
        table[(x >> 40) % WORDS] += x;
    }
    done(x);
    printf("%lu %lu\\n", x, config[0]);
    return 0;
}
"""
TARGET_S = 0.5


def build(workdir: Path) -> Path:
    src = workdir / "reverse.c"
    src.write_text(SOURCE)
    exe = workdir / "reverse"
    subprocess.run(["gcc", "-static", "-O1", "-o", str(exe), str(src)], check=True)
    return exe


def per_iteration(exe: Path) -> float:
    """Instructions per loop iteration (two short runs)."""
    ends = []
    for n in (1000, 11000):
        s = syxdbg.open(str(exe), [str(n)])
        try:
            s.machine.run(until=s.resolve("done"))
            ends.append(s.machine.position)
        finally:
            s.close()
    return (ends[1] - ends[0]) / 10000


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--insns", type=int, default=1_000_000_000,
                    help="instructions of the run (approximately)")
    ap.add_argument("--interval", type=int, default=0,
                    help="checkpoint interval (default: the session's)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    ns = ap.parse_args()
    if ns.quick:
        ns.insns = 5_000_000
    if shutil.which("gcc") is None:
        print("reverse: needs gcc (skipped)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        exe = build(Path(tmp))
        per = per_iteration(exe)
        iterations = max(1, int(ns.insns / per))
        options = {"timeline.interval": ns.interval} if ns.interval else None
        s = syxdbg.open(str(exe), [str(iterations)], env={}, options=options)
        try:
            return measure(s, iterations, per)
        finally:
            s.close()


def measure(s: syxdbg.Session, iterations: int, per: float) -> int:
    tl = s.timeline
    t0 = time.perf_counter()
    ev = s.run(until="done")
    forward = time.perf_counter() - t0
    end = s.position if hasattr(s, "position") else s.machine.position
    assert ev.pc == s.resolve("done"), ev
    config = s.resolve("config")
    setup = s.resolve("setup")
    print(f"reverse search: {end:,} instructions ({iterations:,} iterations of ~{per:.1f}), "
          f"forward run {forward:.2f} s ({end / forward / 1e6:.0f} MIPS), "
          f"{len(tl.checkpoints())} checkpoints, interval {tl.interval:,}")

    def bc() -> int:
        h = s.add_breakpoint(setup)
        try:
            e = s.cont("backward")
            assert e.pc == setup, e
            return e.position
        finally:
            s.remove_breakpoint(h)

    def watch() -> int:
        h = s.add_watchpoint(config, 8, "write")
        try:
            e = s.cont("backward")
            assert getattr(e, "why", "") == "watchpoint", e
            return e.position
        finally:
            s.remove_watchpoint(h)

    def last_write() -> int:
        r = s.last_write(config, 8)
        assert r is not None
        return r.position

    searches: list[tuple[str, Callable[[], int]]] = [
        ("bc to setup", bc), ("watch config", watch), ("last-write config", last_write)]
    rows = []
    for name, fn in searches:
        got: dict[bool, tuple[float, int, str]] = {}
        for indexed in (True, False):
            s.seek(end)
            tl.indexed = indexed  # type: ignore[attr-defined]  # (absent before the index)
            t = time.perf_counter()
            pos = fn()
            dt = time.perf_counter() - t
            stats = getattr(tl, "scan_stats", None)
            got[indexed] = (dt, pos, "" if stats is None else stats.describe())
        tl.indexed = True  # type: ignore[attr-defined]
        (ti, pi, si), (tf, pf, _) = got[True], got[False]
        assert pi == pf, (name, pi, pf)
        rows.append((name, ti, tf, pi, si))
    print(f"{'search':<18} {'indexed s':>10} {'full scan s':>12} {'speed-up':>9}  "
          f"{'lands at':>12}  intervals")
    ok = True
    for name, ti, tf, pos, stats in rows:
        ok = ok and ti <= TARGET_S
        print(f"{name:<18} {ti:10.3f} {tf:12.3f} {tf / ti:8.1f}x  {pos:12,}  {stats}")
    verdict = "meets" if ok else "misses"
    print(f"ratio full/indexed above; indexed searches {verdict} the {TARGET_S} s target "
          f"at {end:,} instructions; peak RSS {rss_mib():.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
