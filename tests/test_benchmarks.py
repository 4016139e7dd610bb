"""Every benchmark still runs: ``python benchmarks/NAME.py --quick`` from the checkout exits 0
and prints its ratio lines, so benchmarks cannot rot between the runs that measure figures.

A benchmark added to benchmarks/ is picked up automatically; it must take ``--quick`` (tiny
sizes, well under 20 s) and print at least one ratio (``0.93x``, ``ratio``).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from support import tool_missing

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = sorted((ROOT / "benchmarks").glob("*.py"))

#: The lines each known benchmark must print (its ratios against the baselines measured in
#: the same run); any other benchmark must print some ratio.
RATIO_LINES: dict[str, list[str]] = {
    "run_speed": [r"worst ratio machine/bare: \d+\.\d+", r"register-only loops.*: \d+\.\d+"],
    "snapshot": [r"\| 16 MiB \| 1 \| [\d.]+ \| [\d.]+ .*\| \d+x \|",
                 r"\| store-heavy \(stride 64\) \|.* \d+\.\d+x \| \d+\.\d+x \|"],
    "record_speed": [r"(?m)^loop +[\d,]+ +[\d.]+ +[\d.]+ +\d+\.\d+ ",
                     r"(?m)^entropy +[\d,]+ +[\d.]+ +[\d.]+ +\d+\.\d+ ",
                     r"ratio = record / run"],
    "gdb_roundtrip": [r"stepi round trips/s, raw RSP client: [\d,]+",
                      r"\d+\.\d+x native", r"\d+\.\d+x continue speed"],
    "dynamic_startup": [r"syxdbg run: dynamic/static \d+\.\d+x, dynamic/native [\d.]+x",
                        r"in process: dynamic/static \d+\.\d+x",
                        r"syxdbg run /bin/true: \d+\.\d+ s"],
    "reverse": [r"(?m)^bc to setup +[\d.]+ +[\d.]+ +[\d.]+x",
                r"(?m)^watch config +[\d.]+ +[\d.]+ +[\d.]+x",
                r"(?m)^last-write config +[\d.]+ +[\d.]+ +[\d.]+x",
                r"ratio full/indexed above",
                r"code summary \d+ candidates .* keyed by code page \d+"],
    "processes": [r"(?m)^fork\+exit\+wait x\d+ .* \d+\.\dx +(\d+\.\dx|-)$",
                  r"(?m)^fork\+exec\+wait x\d+ .* ms +\d+\.\dx"],
    "net": [r"ratio run/native: \d+\.\d+x, record/native: \d+\.\d+x",
            r"(?m)^syxdbg record +[\d,]+ +\d+\.\d+x"],
    # (differences of two CPU times: a --quick run on a loaded machine may print one below 0)
    "threads": [r"(?m)^ +100000 +-?[\d.]+ +-?[\d.]+ +\d+ +-?\d+\.\d+x$",
                r"(?m)^ +1000000 +-?[\d.]+ +-?[\d.]+ +\d+ +-?\d+\.\d+x$",
                r"switch cost: -?\d+\.\d+ ms per switch .*ratio \d+\.\d+x"],
    "timeline_report": [r"ratio timeline/replay: \d+\.\d+x, with --watch: \d+\.\d+x",
                        r"in [\d.]+ s \(meets the 30 s target\)"],
}
ANY_RATIO = r"\d+(\.\d+)?x\b|ratio"


def test_every_benchmark_is_covered() -> None:
    assert {p.stem for p in BENCHMARKS} >= {"run_speed", "snapshot", "record_speed",
                                           "gdb_roundtrip"}


@pytest.mark.parametrize("script", BENCHMARKS, ids=[p.stem for p in BENCHMARKS])
def test_benchmark_runs_quick_and_prints_its_ratios(script: Path) -> None:
    # Run from the checkout exactly as the README says (no PYTHONPATH games): only the
    # README's test install is assumed.
    res = subprocess.run([sys.executable, f"benchmarks/{script.name}", "--quick"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300,
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    if "(skipped)" in res.stdout:
        tool_missing(res.stdout.strip())
    for pattern in RATIO_LINES.get(script.stem, [ANY_RATIO]):
        assert re.search(pattern, res.stdout), (pattern, res.stdout)
