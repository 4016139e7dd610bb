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

Then the summaries' false positives on a real program (``tests/programs/fpsimd.c``, gcc,
about 83,000 instructions of glibc start-up, stdio and floating point, ``--fp-interval``
instruction intervals): for breakpoints on a sample of the
functions it runs, the intervals the code summary names as candidates, against the
intervals that really hit (a forward pass per breakpoint), and against what a summary keyed
by code page would name; for write watchpoints on a sample of its data symbols, the
candidates of the page summary against the intervals that really wrote them.

Usage: python benchmarks/reverse.py [--insns N] [--interval N] [--fp-interval N] [--quick]
(``--quick``: 5 million instructions and 5,000-instruction intervals, a smoke test).
"""

from __future__ import annotations

import argparse
import bisect
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import progs  # noqa: E402

import syxdbg  # noqa: E402
from syxdbg.machine.events import WatchHit  # noqa: E402
from syxdbg.machine.probes import ranges_overlap  # noqa: E402

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
    ap.add_argument("--fp-interval", type=int, default=1_000,
                    help="checkpoint interval of the false-positive measurement")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    ns = ap.parse_args()
    if ns.quick:
        ns.insns, ns.fp_interval = 5_000_000, 5_000
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
            measure(s, iterations, per)
        finally:
            s.close()
    false_positives(ns.fp_interval)
    return 0


def _intervals_hit(s: syxdbg.Session, bounds: list[int], watch: bool) -> set[int]:
    """Indexes of the intervals [bounds[i], bounds[i+1]) holding a hit of the armed
    breakpoint or watchpoint: a forward pass from the origin that seeks to the next interval
    after each hit (seek ignores breakpoints)."""
    hit: set[int] = set()
    s.seek(bounds[0])
    while True:
        ev = s.cont()
        if watch and isinstance(ev, WatchHit):
            at = getattr(ev, "insn_position", ev.position)
        elif not watch and getattr(ev, "why", "") == "breakpoint":
            at = ev.position
        else:
            return hit
        k = bisect.bisect_right(bounds, at) - 1
        if k >= len(bounds) - 1:
            return hit
        hit.add(k)
        if k + 1 >= len(bounds) - 1:
            return hit
        s.seek(bounds[k + 1])
        if not watch and s.machine.pc in s.machine.breakpoints:
            hit.add(k + 1)  # (cont steps off a breakpoint at its start)


def false_positives(interval: int) -> None:
    exe = progs.build("fpsimd", "gcc")
    s = syxdbg.open(str(exe), [], env={}, options={"timeline.interval": interval})
    try:
        ev = s.cont()
        end = ev.position
        tl = s.timeline
        metas = tl._meta  # the interval summaries (read only)
        bounds = [mt.position for mt in metas] + [end]
        code = [tl._summary(i)[0] for i in range(len(metas))]
        writes = [tl._summary(i)[1] for i in range(len(metas))]
        n = len(metas)
        image = s.image
        text = [sg for sg in image.segments if "x" in sg.perms]
        data = [sg for sg in image.segments if "w" in sg.perms]

        def inside(a: int, segs: list) -> bool:  # type: ignore[type-arg]
            return any(sg.start <= a < sg.end for sg in segs)

        def cands(ranges: list[bytes | None], lo: int, hi: int) -> set[int]:
            return {i for i, r in enumerate(ranges) if r is None or ranges_overlap(r, lo, hi)}

        funcs = sorted(a for name, a in image.symbols.items()
                       if inside(a, text) and image.symbol_sizes.get(name, 0) > 0)
        ran = [a for a in funcs if cands(code, a, a + 1)]
        sample = ran[:: max(1, len(ran) // 10)][:10]
        c_idx = c_page = c_true = 0
        for a in sample:
            idx = cands(code, a, a + 1)
            page = cands(code, a & ~0xFFF, (a | 0xFFF) + 1)
            h = s.add_breakpoint(a)
            try:
                true = _intervals_hit(s, bounds, False)
            finally:
                s.remove_breakpoint(h)
            assert true <= idx, (hex(a), sorted(true - idx))  # never hides a hit
            c_idx, c_page, c_true = c_idx + len(idx), c_page + len(page), c_true + len(true)
        objs = sorted(a for name, a in image.symbols.items()
                      if inside(a, data) and image.symbol_sizes.get(name, 0) >= 8)
        written = [a for a in objs if cands(writes, a, a + 8)]
        wsample = written[:: max(1, len(written) // 5)][:5]
        w_idx = w_true = 0
        for a in wsample:
            idx = cands(writes, a, a + 8)
            h = s.add_watchpoint(a, 8, "write")
            try:
                true = _intervals_hit(s, bounds, True)
            finally:
                s.remove_watchpoint(h)
            assert true <= idx, (hex(a), sorted(true - idx))
            w_idx, w_true = w_idx + len(idx), w_true + len(true)

        def rate(c: int, t: int, total: int) -> str:
            neg = total - t
            return f"{(c - t) / neg * 100:.1f}%" if neg else "-"

        print(f"false positives, fpsimd: {end:,} instructions, {n} intervals of "
              f"{interval:,}")
        print(f"  breakpoints on {len(sample)} functions: {c_true} intervals hit, code summary "
              f"{c_idx} candidates ({rate(c_idx, c_true, n * len(sample))} of the others), "
              f"keyed by code page {c_page} ({rate(c_page, c_true, n * len(sample))})")
        print(f"  write watchpoints on {len(wsample)} data symbols: {w_true} intervals wrote "
              f"them, page summary {w_idx} candidates "
              f"({rate(w_idx, w_true, n * len(wsample))} of the others)")
    finally:
        s.close()


def measure(s: syxdbg.Session, iterations: int, per: float) -> None:
    tl = s.timeline
    t0 = time.perf_counter()
    ev = s.run(until="done")
    forward = time.perf_counter() - t0
    end = s.machine.position
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


if __name__ == "__main__":
    sys.exit(main())
