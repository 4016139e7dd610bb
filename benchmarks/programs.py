#!/usr/bin/env python3
"""Whole programs as a user times them (issue 19): real busybox applets under ``syxdbg run``
against qemu-user (the tool people use to run foreign binaries) and native, in one run; plus
the cost of one small system call.

Workloads (busybox-static, the same binary for all three runners; input files generated
here, deterministic):

* ``gzip -c`` of 5 MB of text-like data (compute-bound: deflate);
* ``sha256sum`` of 20 MB (compute-bound);
* ``sort`` of 200,000 lines (allocation and comparisons).

Each is run ``--reps`` times per runner (wall-clock, median; stdout to /dev/null, stdin
from the file). The syscall row runs a C program (built here with gcc -static) doing N
one-byte ``write``s to /dev/null and N loop iterations without them; the difference per call
under ``syxdbg run`` is the per-system-call overhead (target: <= 3 us).

Usage: python benchmarks/programs.py [--reps R] [--quick]
(``--quick``: small inputs and one repetition, a smoke test that the benchmark still runs)
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SYSCALLS_C = r"""
#include <stdlib.h>
#include <unistd.h>
#include <fcntl.h>
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    int calls = argc > 2;
    int fd = open("/dev/null", O_WRONLY);
    volatile long sink = 0;
    for (long i = 0; i < n; i++) {
        if (calls) write(fd, "x", 1);
        else sink += i;
    }
    return 0;
}
"""

WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
         "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo")


def _text(size: int, rng: random.Random) -> bytes:
    out: list[str] = []
    total = 0
    while total < size:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
        line += f" {rng.randint(0, 10**9)}\n"
        out.append(line)
        total += len(line)
    return "".join(out).encode()[:size]


def _lines(count: int, rng: random.Random) -> bytes:
    return "".join(f"{rng.choice(WORDS)}-{rng.randint(0, 10**12):013d}\n"
                   for _ in range(count)).encode()


def _median_wall(argv: list[str], stdin_path: Path | None, reps: int) -> float:
    times = []
    for _ in range(reps):
        with open(stdin_path or "/dev/null", "rb") as stdin:
            t0 = time.perf_counter()
            subprocess.run(argv, stdin=stdin, stdout=subprocess.DEVNULL, check=True)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small inputs, one repetition")
    ns = ap.parse_args()
    reps = 1 if ns.quick else max(1, ns.reps)
    scale = 0.02 if ns.quick else 1.0
    busybox = shutil.which("busybox")
    gcc = shutil.which("gcc")
    qemu = shutil.which("qemu-x86_64")
    if busybox is None or gcc is None:
        print("whole programs (skipped): busybox or gcc is not installed")
        return 0
    check = subprocess.run(["file", "-L", busybox], capture_output=True, text=True)
    if "statically linked" not in check.stdout:
        print(f"whole programs (skipped): {busybox} is not busybox-static")
        return 0
    rng = random.Random(19)
    syxdbg = [sys.executable, "-m", "syxdbg", "run"]
    rows: list[tuple[str, float, float | None, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        text, blob, lines = d / "text", d / "blob", d / "lines"
        text.write_bytes(_text(int(5_000_000 * scale), rng))
        blob.write_bytes(rng.randbytes(int(20_000_000 * scale)))
        lines.write_bytes(_lines(int(200_000 * scale), rng))
        workloads = [("gzip 5 MB", ["gzip", "-c"], text),
                     ("sha256sum 20 MB", ["sha256sum"], blob),
                     ("sort 200k lines", ["sort"], lines)]
        for name, applet, stdin in workloads:
            native = _median_wall([busybox, *applet], stdin, reps)
            emulated = (_median_wall([qemu, busybox, *applet], stdin, reps)
                        if qemu is not None else None)
            ours = _median_wall([*syxdbg, busybox, *applet], stdin, reps)
            rows.append((name, native, emulated, ours))
        src = d / "syscalls.c"
        src.write_text(SYSCALLS_C)
        exe = d / "syscalls"
        subprocess.run([gcc, "-O1", "-static", "-o", str(exe), str(src)], check=True)
        n = 2_000 if ns.quick else 100_000
        with_calls = _median_wall([*syxdbg, str(exe), str(n), "calls"], None, reps)
        without = _median_wall([*syxdbg, str(exe), str(n)], None, reps)
    print(f"{'workload (x86_64 busybox-static)':<34} {'native s':>9} {'qemu s':>9} "
          f"{'syxdbg s':>9} {'syxdbg/qemu':>12} {'syxdbg/native':>14}")
    for name, native, emulated, ours in rows:
        q = f"{emulated:9.3f}" if emulated is not None else f"{'-':>9}"
        ratio = f"{ours / emulated:11.1f}x" if emulated else f"{'-':>12}"
        print(f"{name:<34} {native:9.3f} {q} {ours:9.3f} {ratio} {ours / native:13.1f}x")
    per_call = (with_calls - without) / n * 1e6
    print(f"\nsystem call overhead under syxdbg run: {per_call:.2f} us per 1-byte write "
          f"({n:,} calls; target <= 3 us)")
    if any(e for _, _, e, _ in rows):
        worst = max(o / e for _, _, e, o in rows if e)
        print(f"worst ratio syxdbg/qemu-user: {worst:.1f}x (issue 19 target <= 3x on "
              "compute-bound workloads)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
