#!/usr/bin/env python3
"""Recording speed versus ``syxdbg run``, and recording size per million instructions.

Each test program (built from tests/programs by tests/progs.py) runs, round-robin, ``--reps``
times under

* run:    ``syxdbg run PROG``                       (the baseline, measured in this run)
* record: ``syxdbg record -q -o FILE PROG``         (default checkpoint interval)
* replay: ``syxdbg replay --check FILE``            (re-executes all of it, every digest)

as separate processes (what a user types), timed by wall clock; the median is reported.
Programs: ``loop`` (stores into a 16 KiB table: few dirty pages), ``sortalloc`` (1e9
instructions through malloc/free of up to 3 MiB blocks: many dirty pages, mmap churn) and
``entropy`` (stdin, clock, getrandom; short). Target (issue 8): record / run <= 1.2.

Usage: python benchmarks/record_speed.py [--reps R] [--loop-iters N] [--toolchain gcc] [--quick]
(``--quick``: one repetition, a short loop and entropy, no sortalloc: a smoke test)
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


def timed(argv: list[str], stdin: bytes) -> float:
    t = time.perf_counter()
    res = subprocess.run(argv, input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t
    if res.returncode not in (0, 3):
        raise SystemExit(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.decode()}")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--loop-iters", type=int, default=10_000_000)
    ap.add_argument("--toolchain", default="gcc")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    ns = ap.parse_args()
    cases = [
        ("loop", [str(ns.loop_iters)], b""),
        ("sortalloc", [], b""),
        ("entropy", ["2000000"], b"some input\n"),
    ]
    if ns.quick:
        ns.reps = 1
        cases = [("loop", ["50000"], b""), ("entropy", ["20000"], b"some input\n")]
    print(f"{'program':<10} {'insns':>14} {'run s':>7} {'record s':>9} {'ratio':>6} "
          f"{'replay s':>9} {'file':>10} {'bytes/M insns':>14}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, args, stdin in cases:
            exe = str(progs.build(name, ns.toolchain))
            out = os.path.join(tmp, f"{name}.syxrec")
            runs: list[float] = []
            recs: list[float] = []
            reps: list[float] = []
            for _ in range(ns.reps):
                runs.append(timed([*SYXDBG, "run", exe, *args], stdin))
                recs.append(timed([*SYXDBG, "record", "-q", "-o", out, exe, *args], stdin))
                reps.append(timed([*SYXDBG, "replay", "--check", out], b""))
            rec = Recording.open(out)
            insns = rec.end_position
            size = os.path.getsize(out)
            run_s, rec_s, rep_s = (statistics.median(x) for x in (runs, recs, reps))
            print(f"{name:<10} {insns:>14,} {run_s:>7.2f} {rec_s:>9.2f} {rec_s / run_s:>6.2f} "
                  f"{rep_s:>9.2f} {size / 1024:>8.0f}Ki {size / (insns / 1e6):>14,.0f}")
    print("\nratio = record / run (target <= 1.2); file = whole recording, including the "
          "compressed program image")
    return 0


if __name__ == "__main__":
    sys.exit(main())
