#!/usr/bin/env python3
"""What a process costs under syxdbg: fork + exit + wait, fork + exec + wait, and a shell
script that starts many programs, against native and qemu-user, measured in one run.

* ``forkloop N``: a C program (built here, static) forks N children that ``_exit(0)`` at once
  and waits for each: the cost of one fork (the resident pages of the process are copied,
  see docs/linux.md, Processes), one process switch each way, one exit and reap.
* ``forkloop N exec``: the same with each child exec'ing ``/bin/true``-like ``forkloop 0``.
* ``busybox sh -c 'for i in ...; do true; done'`` is a builtin loop (no process); the
  script ``for i in ...; do busybox true; done`` starts one process per iteration.

Each runs as ``syxdbg run`` (a new process, as a user types it), natively, and under
``qemu-x86_64`` when installed. Printed: wall-clock seconds (median of ``--reps``) and the
per-process cost, with the ratios syxdbg/native and syxdbg/qemu; then the per-process cost
in CPU time (user + system of the child, the best of ``--reps``: on a machine loaded by
other work the wall clock varies by tens of percent, the best CPU time much less).

Usage: python benchmarks/processes.py [--reps R] [--quick]
(``--quick``: small counts, one repetition: a smoke test that the benchmark still runs)
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE = r"""
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 0;
    int do_exec = argc > 2;
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            if (do_exec)
                execl(argv[0], argv[0], "0", (char *)0);
            _exit(0);
        }
        int st;
        waitpid(pid, &st, 0);
    }
    return 0;
}
"""


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _measure(cmd: list[str], reps: int) -> tuple[float, float]:
    """(median wall-clock seconds, best CPU seconds) of ``reps`` runs of ``cmd``."""
    times, cpus = [], []
    for _ in range(reps):
        c0 = _child_cpu()
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
        cpus.append(_child_cpu() - c0)
    return statistics.median(times), min(cpus)


def _median_wall(cmd: list[str], reps: int) -> float:
    return _measure(cmd, reps)[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    reps = 1 if args.quick else args.reps
    forks = 20 if args.quick else 300
    spawns = 10 if args.quick else 100
    if shutil.which("gcc") is None:
        print("gcc not installed (skipped)")
        return 0
    syx = [sys.executable, "-m", "syxdbg", "run", "--clear-env", "-E", "PATH=/usr/bin:/bin"]
    qemu = shutil.which("qemu-x86_64")
    busybox = shutil.which("busybox") if Path("/bin/busybox").exists() else None
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "forkloop.c"
        src.write_text(SOURCE)
        exe = str(Path(tmp) / "forkloop")
        subprocess.run(["gcc", "-O2", "-static", "-o", exe, str(src)], check=True)
        cases: list[tuple[str, list[str], int]] = [
            (f"fork+exit+wait x{forks}", [exe, str(forks)], forks),
            (f"fork+exec+wait x{spawns}", [exe, str(spawns), "exec"], spawns),
        ]
        if busybox is not None:
            script = Path(tmp) / "spawn.sh"
            script.write_text(f"for i in $(seq {spawns}); do {busybox} true; done\n")
            cases.append((f"busybox sh: {spawns} x busybox true", [busybox, "sh", str(script)],
                          spawns))
        # The fixed cost of one run (start-up, load, exit), to take out of the per-process one.
        base_syx, base_cpu = _measure([*syx, exe, "0"], reps)
        base_native = _median_wall([exe, "0"], reps)
        print(f"{'case':38} {'native s':>9} {'qemu s':>8} {'syxdbg s':>9} "
              f"{'per process (syxdbg)':>22} {'syxdbg/native':>14} {'syxdbg/qemu':>12}")
        cpu_lines = []
        for name, cmd, count in cases:
            native = _median_wall(cmd, reps)
            emulated, cpu = _measure([*syx, *cmd], reps)
            cpu_lines.append(f"{name:38} {cpu:7.3f} s CPU {(cpu - base_cpu) / count * 1e3:8.2f} "
                             "ms per process")
            q = _median_wall([qemu, *cmd], reps) if qemu is not None else None
            per = (emulated - base_syx) / count * 1e3
            qtext = f"{q:8.3f}" if q is not None else f"{'-':>8}"
            qratio = f"{emulated / q:11.1f}x" if q is not None else f"{'-':>12}"
            print(f"{name:38} {native:9.3f} {qtext} {emulated:9.3f} {per:19.2f} ms "
                  f"{emulated / native:13.1f}x {qratio}")
        print(f"(syxdbg run of the same program forking nothing: {base_syx:.3f} s; native "
              f"{base_native:.4f} s; per-process figures take the syxdbg one out)")
        print(f"CPU time of syxdbg run (best of {reps}; forking nothing: {base_cpu:.3f} s):")
        for line in cpu_lines:
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
