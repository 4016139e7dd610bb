"""The page stays responsive on the biggest report the plugin makes: 20,000 buckets, 80
function rows active in half of them, 200,000 system calls and 10,000 watched writes over
a billion positions. Loaded in headless Chromium with ``#selftest``, the page zooms in and
out twenty times and records its slowest frame and its slowest update of the tables."""

from __future__ import annotations

import re
from pathlib import Path

from browser import load
from syxdbg_plugins.timeline import Buckets, FunctionActivity, Report, render
from syxdbg_plugins.timeline.collect import MAX_SYSCALLS, MAX_WRITES, Syscall, Watch, Write

#: The slowest frame allowed (ms); the budget leaves room for a loaded 2-core CI machine.
FRAME_BUDGET_MS = 300.0


def big_report() -> Report:
    end = 1_000_000_000
    buckets = Buckets.cover(0, end, 20_000)
    functions = [FunctionActivity(f"function_{i}", 0x401000 + 64 * i,
                                  list(range(i % 2, len(buckets), 2)),
                                  [1 + (b % 7) for b in range(i % 2, len(buckets), 2)])
                 for i in range(80)]
    step = end // MAX_SYSCALLS
    calls = [Syscall(k * step, 0x402000, 1, "write", ("1", "'x'", "1"), 1)
             for k in range(MAX_SYSCALLS)]
    watch = Watch("counter", 0x4a0000, 8)
    wstep = end // MAX_WRITES
    watch.writes = [Write(k * wstep + 3, 0x401234, 0x4a0000, k.to_bytes(8, "little"),
                          (k + 1).to_bytes(8, "little")) for k in range(MAX_WRITES)]
    return Report(program="/bin/big", arch="x86_64", start=0, end=end, buckets=buckets,
                  edge_pcs=[0x401000] * (len(buckets) + 1), functions=functions,
                  syscalls=calls, syscalls_dropped=0,
                  syscall_counts=[10] * len(buckets),
                  checkpoints=[(p, "persisted") for p in range(0, end, 20_000_000)],
                  end_text="the program exited with status 0", end_kind="exit",
                  end_pc=0x401000, watches=[watch], recording="/tmp/big.syxrec",
                  lanes=[{"id": 0, "process": 1, "thread": 1, "label": "process 1"}],
                  disasm={0x401000: "0x401000: ret", 0x402000: "0x402000: syscall",
                          0x401234: "0x401234: mov qword ptr [rip], rax"})


def test_a_billion_positions_stay_responsive(tmp_path: Path) -> None:
    page = tmp_path / "big.html"
    page.write_text(render(big_report()))
    loaded = load(page, "selftest")
    assert loaded.console == [], loaded.console
    frame = re.search(r'data-selftest-ms="([\d.]+)"', loaded.dom)
    tables = re.search(r'data-selftest-tables-ms="([\d.]+)"', loaded.dom)
    assert frame is not None and tables is not None, loaded.dom[:500]
    # measured here: about 100 ms per frame and 60-85 ms per table update at worst
    assert float(frame.group(1)) < FRAME_BUDGET_MS, frame.group(1)
    assert float(tables.group(1)) < FRAME_BUDGET_MS, tables.group(1)
    # the tables list at most 500 rows of what is in view
    assert loaded.dom.count('<tr class="syscall"') == 500
    assert loaded.dom.count('<tr class="write"') == 500
