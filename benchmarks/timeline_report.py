#!/usr/bin/env python3
"""The timeline report of a long recording: time to render it versus replaying it.

``tests/programs/loop.c`` (about 21 instructions per iteration; the default 5,000,000
iterations make a ~105-million-instruction run) is recorded once, then, ``--reps`` times
each, as separate processes (what a user types), timed by wall clock, median reported:

* replay:   ``syxdbg replay --check FILE``              (re-executes all of it: the baseline)
* timeline: ``syxdbg timeline -o run.html FILE``        (the report, default 500 buckets)
* watched:  ``syxdbg timeline --watch table -o ... FILE``  (plus the writes to the loop's
  table, which the loop writes every iteration: capped at 10,000 writes)

Target (issue 18): a 100M-instruction recording renders its report in under 30 s. The page
size is printed too (the page draws buckets, not instructions, so it stays small).

Usage: python benchmarks/timeline_report.py [--reps R] [--loop-iters N] [--toolchain gcc]
[--quick]   (``--quick``: one repetition of a short loop: a smoke test)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import progs  # noqa: E402

from syxdbg.recording import Recording  # noqa: E402

SYXDBG = [sys.executable, "-m", "syxdbg"]
TARGET_S = 30.0


def timed(argv: list[str], ok: tuple[int, ...] = (0,)) -> float:
    t = time.perf_counter()
    res = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - t
    if res.returncode not in ok:
        raise SystemExit(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.decode()}")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--loop-iters", type=int, default=5_000_000)
    ap.add_argument("--toolchain", default="gcc")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    ns = ap.parse_args()
    if ns.quick:
        ns.reps, ns.loop_iters = 1, 50_000
    exe = str(progs.build("loop", ns.toolchain))
    with tempfile.TemporaryDirectory() as tmp:
        rec = os.path.join(tmp, "loop.syxrec")
        timed([*SYXDBG, "record", "-q", "--clear-env", "-o", rec, exe, str(ns.loop_iters)])
        insns = Recording.open(rec).end_position
        page = os.path.join(tmp, "run.html")
        watched = os.path.join(tmp, "watched.html")
        replays: list[float] = []
        reports: list[float] = []
        watches: list[float] = []
        for _ in range(ns.reps):
            replays.append(timed([*SYXDBG, "replay", "--check", rec]))
            reports.append(timed([*SYXDBG, "timeline", "-o", page, rec]))
            watches.append(timed([*SYXDBG, "timeline", "--watch", "table", "-o", watched,
                                  rec]))
        rep_s, tl_s, w_s = (statistics.median(x) for x in (replays, reports, watches))
        print(f"loop {ns.toolchain}: {insns:,} instructions, {ns.reps} repetition(s), "
              f"median wall clock")
        print(f"replay --check:            {rep_s:7.2f} s")
        print(f"timeline:                  {tl_s:7.2f} s  page {os.path.getsize(page):,} bytes")
        print(f"timeline --watch table:    {w_s:7.2f} s  page {os.path.getsize(watched):,} "
              f"bytes")
        print(f"ratio timeline/replay: {tl_s / rep_s:.2f}x, with --watch: {w_s / rep_s:.2f}x")
        verdict = "meets" if tl_s < TARGET_S else "MISSES"
        print(f"target: report of {insns / 1e6:.0f}M instructions in {tl_s:.1f} s "
              f"({verdict} the {TARGET_S:.0f} s target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
