#!/usr/bin/env python3
"""Threads under the deterministic scheduler (issue 13): what running 4 threads costs per
guest instruction against the same work on one thread, and what one thread switch costs.

A C program (built here, gcc -O2 -static -pthread) runs ``compute T N``: T threads share N
iterations of an LCG step (no system call inside the loop, so every switch between them is
a preemption at the end of a time slice), or ``yield T K``: T threads each call sched_yield
K times (every call switches to the next thread when T > 1).

* Per-instruction cost: each configuration runs to its end in the scripting API
  (``syxdbg.open`` + ``cont``, timeline on, as a user runs it), once with N steps and once
  with 4000: (CPU time(N) - CPU time(4000)) / (instructions(N) - instructions(4000)), so
  start-up and the threads' creation, stacks and exits cancel out and what is left is the
  loop and the switches it takes (every one a preemption: the loop makes no system call).
  Measured at 100 000 instructions a slice and at the default (1 000 000).
Times are this process's CPU time (the emulation runs in it), the best of ``--reps`` runs.

* Switch cost: (time of ``yield 4 K`` - time of ``yield 1 4K``) / (switches made by the
  first - by the second): the same number of sched_yield calls, with and without a switch
  behind each.

Usage: python benchmarks/threads.py [--reps R] [--quick]
(``--quick``: small sizes and one repetition, a smoke test that the benchmark still runs)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from syxdbg_plugins.linux import get_kernel  # noqa: E402
from syxdbg_plugins.linux.kernel import ProcessState  # noqa: E402

import syxdbg  # noqa: E402

PROGRAM_C = r"""
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
static long iters;
static int nthreads;
static unsigned long results[64];
static void *compute(void *arg) {
    long n = (long)arg;
    unsigned long x = (unsigned long)n + 1;
    for (long i = 0; i < iters / nthreads; i++)
        x = x * 6364136223846793005UL + 1442695040888963407UL;
    results[n] = x;
    return NULL;
}
static void *yielder(void *arg) {
    for (long i = 0; i < iters; i++)
        sched_yield();
    results[(long)arg] = 1;
    return NULL;
}
int main(int argc, char **argv) {
    void *(*fn)(void *) = strcmp(argv[1], "compute") == 0 ? compute : yielder;
    pthread_t t[64];
    nthreads = atoi(argv[2]);
    iters = atol(argv[3]);
    if (nthreads == 1) {
        fn((void *)0);
    } else {
        for (long i = 0; i < nthreads; i++)
            pthread_create(&t[i], NULL, fn, (void *)i);
        for (long i = 0; i < nthreads; i++)
            pthread_join(t[i], NULL);
    }
    unsigned long sum = 0;
    for (int i = 0; i < nthreads; i++)
        sum += results[i];
    return (int)(sum & 1); /* (the work is used; nothing printed) */
}
"""


def run(exe: Path, args: list[str], slice_: int | None = None) -> tuple[float, int, int]:
    """(seconds, instructions, thread switches) of one run to the end."""
    options = {} if slice_ is None else {"thread_slice": slice_}
    with syxdbg.open(str(exe), args, options=options) as s:
        t0 = time.process_time()  # CPU time: other load on the host counts less
        ev = s.cont("forward")
        dt = time.process_time() - t0
        kernel = get_kernel(s)
        assert kernel is not None
        return dt, ev.position, kernel.switches


def best(exe: Path, args: list[str], reps: int, slice_: int | None = None
         ) -> tuple[float, int, int]:
    runs = [run(exe, args, slice_) for _ in range(reps)]
    dt = min(r[0] for r in runs)  # the least disturbed run (CPU time only grows with load)
    return dt, runs[0][1], runs[0][2]


def per_insn(exe: Path, threads: int, n: int, reps: int, slice_: int | None
             ) -> tuple[float, int, int]:
    """(ns per guest instruction of the loop of ``compute threads n``, its switches, its
    instructions): the run's CPU time less that of the same program with 4000 steps
    (start-up, creating and ending the threads, mapping and releasing their stacks), per
    instruction of the difference."""
    t0, p0, s0 = best(exe, ["compute", str(threads), "4000"], reps, slice_)
    dt, pos, switches = best(exe, ["compute", str(threads), str(n)], reps, slice_)
    return (dt - t0) / (pos - p0) * 1e9, switches - s0, pos - p0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3, help="runs per measure (the best is kept)")
    ap.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    a = ap.parse_args()
    gcc = shutil.which("gcc")
    if gcc is None:
        print("threads (skipped): gcc is not installed")
        return 0
    reps = 1 if a.quick else a.reps
    n = 2_000_000 if a.quick else 40_000_000
    k = 100 if a.quick else 1000
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp) / "threads.c", Path(tmp) / "threads"
        src.write_text(PROGRAM_C)
        subprocess.run([gcc, "-O2", "-static", "-pthread", "-o", str(exe), str(src)],
                       check=True)
        print(f"compute: {n:,} LCG steps shared by T threads; CPU time per guest "
              "instruction of the loop (best of the runs, less a 4000-step run's)")
        print(f"{'slice':>10} {'1 thread ns/insn':>17} {'4 threads ns/insn':>18} "
              f"{'switches':>12} {'ratio 4/1':>10}")
        costs = []
        for slice_ in (100_000, None):
            one, _, _ = per_insn(exe, 1, n, reps, slice_)
            four, switches, insns = per_insn(exe, 4, n, reps, slice_)
            label = str(slice_ or ProcessState.time_slice)  # None: the default slice
            print(f"{label:>10} {one:>17.2f} {four:>18.2f} {switches:>12} "
                  f"{four / one:>9.2f}x")
            # What each preemption costs: the 4-thread run's extra CPU time over the same
            # instructions on one thread, per switch (every one a preemption here).
            costs.append(f"{(four - one) * insns / max(switches, 1) / 1e3:.0f} us at {label}")
        print("preemption cost (4-thread time over 1-thread time, per switch): "
              + ", ".join(costs))
        t1, _, s1 = best(exe, ["yield", "1", str(4 * k)], reps)
        t4, _, s4 = best(exe, ["yield", "4", str(k)], reps)
        per = (t4 - t1) / max(s4 - s1, 1)
        print(f"switch cost: {per * 1e3:.3f} ms per switch ({s4 - s1} switches: 4 threads x "
              f"{k} sched_yield in {t4:.3f} s against one thread's {4 * k} in {t1:.3f} s; "
              f"ratio {t4 / t1:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
