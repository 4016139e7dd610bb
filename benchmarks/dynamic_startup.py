#!/usr/bin/env python3
"""Start-up of a dynamically linked program under syxdbg, against a static build of the same
program and against native, measured in one run.

The program is ``int main(void) { return 0; }`` built twice by gcc here: the default way
(a dynamic PIE: ld.so maps libc, relocates, runs the constructors) and with ``-static``.
Three measures:

* ``syxdbg run PROG`` as a user types it (a new process: Python's start-up, imports, load,
  run to exit), wall-clock, median of ``--reps`` runs; ``syxdbg --version`` alone is printed
  as the floor every command pays, and ``syxdbg run /bin/true`` (target: under 1 s);
* in-process ``syxdbg.open(PROG)`` + ``run()`` (no interpreter start-up: the emulated work
  itself) with the guest instructions each start-up retires;
* native ``PROG``, wall-clock, and ``qemu-x86_64 PROG`` (qemu-user: the tool people use to
  run foreign binaries) when installed;
* ``syxdbg run --max-insns 1`` of the static build: start-up to the first guest
  instruction (issue 19's target: 0.25 s), then the exit.

Each syxdbg command line also gets the best CPU time (user + system) of its runs: on a
machine loaded by other work the wall clock varies a lot more than that. The interpreter
runs with compiled bytecode, as an installed syxdbg does (an environment that sets
``PYTHONDONTWRITEBYTECODE`` would recompile every edited module at each start: the
commands get a private ``PYTHONPYCACHEPREFIX`` and one warm-up run instead).

Usage: python benchmarks/dynamic_startup.py [--reps R] [--quick]
(``--quick``: one repetition, a smoke test that the benchmark still runs)
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

SOURCE = "int main(void) { return 0; }\n"


def _median_wall(fn: Callable[[], object], reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


#: The environment of the syxdbg command lines (set in main: compiled bytecode).
_ENV: dict[str, str] | None = None
#: Best CPU seconds (user + system) of each measured command line, by its arguments.
_CPU: dict[tuple[str, ...], float] = {}


def _command(*args: str, ok: tuple[int, ...] = (0,)) -> Callable[[], object]:
    def run() -> None:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        before = usage.ru_utime + usage.ru_stime
        proc = subprocess.run(list(args), stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL if ok != (0,) else None, env=_ENV)
        if proc.returncode not in ok:
            raise SystemExit(f"{args}: status {proc.returncode}")
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = usage.ru_utime + usage.ru_stime - before
        _CPU[args] = min(cpu, _CPU.get(args, cpu))
    return run


def _in_process(path: str) -> tuple[Callable[[], object], Callable[[], int]]:
    import syxdbg

    last = [0]

    def run() -> None:
        with syxdbg.open(path, [], env={"PATH": "/usr/bin:/bin"}) as s:
            s.run()
            last[0] = s.position

    return run, lambda: last[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="one repetition (smoke test)")
    ns = ap.parse_args()
    reps = 1 if ns.quick else max(1, ns.reps)
    gcc = shutil.which("gcc")
    true = shutil.which("true")
    if gcc is None or true is None:
        print("dynamic start-up (skipped): gcc or true is not installed")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "empty.c"
        src.write_text(SOURCE)
        dyn, static = str(Path(tmp) / "empty-dyn"), str(Path(tmp) / "empty-static")
        subprocess.run([gcc, "-O1", "-o", dyn, str(src)], check=True)
        subprocess.run([gcc, "-O1", "-static", "-o", static, str(src)], check=True)
        syxdbg = [sys.executable, "-m", "syxdbg"]
        global _ENV
        _ENV = dict(os.environ)
        if _ENV.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
            _ENV["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        _command(*syxdbg, "run", static)()  # warm-up: bytecode written
        first = (*syxdbg, "run", "--max-insns", "1", static)
        rows = {
            "native dynamic": _median_wall(_command(dyn), reps),
            "native static": _median_wall(_command(static), reps),
            "syxdbg --version": _median_wall(_command(*syxdbg, "--version"), reps),
            "syxdbg run dynamic": _median_wall(_command(*syxdbg, "run", dyn), reps),
            "syxdbg run static": _median_wall(_command(*syxdbg, "run", static), reps),
            "syxdbg run /bin/true": _median_wall(_command(*syxdbg, "run", true), reps),
            "syxdbg run, 1st insn": _median_wall(_command(*first, ok=(124,)), reps),
        }
        qemu = shutil.which("qemu-x86_64")
        if qemu is not None:
            rows["qemu-x86_64 static"] = _median_wall(_command(qemu, static), reps)
        inner: dict[str, tuple[float, int]] = {}
        for name, path in (("dynamic", dyn), ("static", static)):
            run, insns = _in_process(path)
            run()  # warm: imports, plugin manager
            inner[name] = (_median_wall(run, reps), insns())
    cpu = {"syxdbg --version": _CPU[(*syxdbg, "--version")],
           "syxdbg run dynamic": _CPU[(*syxdbg, "run", dyn)],
           "syxdbg run static": _CPU[(*syxdbg, "run", static)],
           "syxdbg run /bin/true": _CPU[(*syxdbg, "run", true)],
           "syxdbg run, 1st insn": _CPU[first]}
    print(f"{'wall-clock, median of ' + str(reps):<28} {'seconds':>9} {'best CPU s':>11}")
    for name, secs in rows.items():
        extra = f"{cpu[name]:>11.3f}" if name in cpu else ""
        print(f"{name:<28} {secs:>9.3f} {extra}")
    print(f"\n{'in process (open + run)':<28} {'seconds':>9} {'guest insns':>12}")
    for name, (secs, count) in inner.items():
        print(f"{name:<28} {secs:>9.3f} {count:>12,}")
    d, s = rows["syxdbg run dynamic"], rows["syxdbg run static"]
    print(f"\nsyxdbg run: dynamic/static {d / s:.2f}x, dynamic/native "
          f"{d / rows['native dynamic']:.1f}x")
    print(f"in process: dynamic/static {inner['dynamic'][0] / inner['static'][0]:.2f}x "
          f"({inner['dynamic'][1] / max(1, inner['static'][1]):.1f}x the instructions)")
    print(f"syxdbg run /bin/true: {rows['syxdbg run /bin/true']:.2f} s (target < 1 s; "
          f"{rows['syxdbg --version']:.2f} s of it is syxdbg's own start-up)")
    qemu_row = (f"; qemu-x86_64 {rows['qemu-x86_64 static']:.3f} s"
                if "qemu-x86_64 static" in rows else "")
    print(f"syxdbg run static: {s:.3f} s{qemu_row}")
    print(f"start-up to the first guest instruction (syxdbg run --max-insns 1, static): "
          f"{rows['syxdbg run, 1st insn']:.3f} s wall, {cpu['syxdbg run, 1st insn']:.3f} s CPU "
          "(issue 19 target <= 0.25 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
