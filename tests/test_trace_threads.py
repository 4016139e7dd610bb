"""The trace and coverage plugins on a threaded program (issue 13).

``tests/linux/programs/threads.c spin N``: main spins on a flag (no system call) that a
thread sets after N steps of work, then the two take turns through a spun-on variable, so
the threads switch by preemption in the middle of loops. The oracle is an independent
session with a Unicorn code hook that lists the pc of every instruction in order
(``tracefiles.oracle_pcs``; the schedule is a function of positions, so it is the same).

* coverage of the whole run is exactly the instructions every thread executed;
* a trace across switches is the interleaved instructions (one file Tenet loads) plus one
  Tenet trace per thread (``FILE.TID``): each holds exactly that thread's instructions, in
  order, with register states equal to the interleaved trace's at the same positions, and
  the stretches are the threads the scheduler ran (checked by seeking another session).
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import progs
import pytest
import tracefiles
import unicorn
from syxdbg_plugins.linux import get_kernel
from tracefiles import drcov_instructions, parse_drcov, parse_tenet

import syxdbg
from syxdbg.commands import make_registry
from syxdbg.machine import Exited

SOURCE = Path(__file__).resolve().parent / "linux" / "programs" / "threads.c"
ARGS = ["spin", "20000"]


def open_session(exe: Path, args: list[str], **options: Any) -> syxdbg.Session:
    """A session with slices of 100 000 instructions (a tenth of the default: three
    switches in this short run)."""
    return tracefiles.open_session(exe, args, thread_slice=100_000, **options)


@pytest.fixture(scope="module")
def spin_exe(tmp_path_factory: pytest.TempPathFactory,
             require_tool: Callable[[str], str]) -> Path:
    tc = progs.toolchain_for("gcc")
    require_tool(tc.cc)
    exe = tmp_path_factory.mktemp("spin") / "threads"
    cmd = dataclasses.replace(tc, cflags=(*tc.cflags, "-pthread")).command(SOURCE, exe)
    subprocess.run(cmd, check=True, capture_output=True)
    return exe


@pytest.fixture(scope="module")
def pcs(spin_exe: Path) -> list[int]:
    """pc of every instruction the program executes, in order (index = position): a
    Unicorn code hook, as tracefiles.oracle_pcs, except that at the end of a time slice the
    run stopped before an instruction whose hook may already have been called: entries
    beyond the exact position there are dropped."""
    out: list[int] = []
    with open_session(spin_exe, ARGS, timeline=False) as s:
        kernel = get_kernel(s)
        assert kernel is not None and kernel.process.preempt is not None
        inner = kernel.process.preempt

        def preempt(machine: syxdbg.Machine) -> None:
            del out[machine.position:]  # (not executed: the slice ended before it)
            inner(machine)

        kernel.process.preempt = preempt
        s.machine.uc.hook_add(unicorn.UC_HOOK_CODE, lambda uc, a, size, ud: out.append(a))
        ev = s.run()
        assert isinstance(ev, Exited) and ev.position == len(out)
    return out


def test_coverage_covers_every_thread(spin_exe: Path, pcs: list[int], tmp_path: Path) -> None:
    out = tmp_path / "spin.cov"
    with open_session(spin_exe, ARGS) as s:
        end = s.run()
        assert end.position == len(pcs)
        text = make_registry(s).run_text(f"coverage {out}")
        assert f"coverage of positions 0..{end.position}" in text
        covered = drcov_instructions(s, parse_drcov(out))
        assert covered == set(pcs)
        # Both threads' own code is there: the spinning main and the thread's function.
        for name in ("main", "spin_peer"):
            start = s.symbols[name]
            assert any(start <= pc < start + 64 for pc in covered), name


def test_a_trace_across_switches_gives_one_trace_per_thread(
        spin_exe: Path, pcs: list[int], tmp_path: Path) -> None:
    out = tmp_path / "spin.trace"
    with open_session(spin_exe, ARGS) as s:
        s.run()
        # Slices end every 100 000 instructions: [150 000, 420 000) holds three switches.
        start, end = 150_000, 420_000
        text = make_registry(s).run_text(f"trace {out} {start} {end}")
        m = re.search(r"; (\d+) stretches of 2 threads, one trace each: (.*)$", text, re.M)
        assert m is not None, text
        assert int(m.group(1)) == 4
        files = re.findall(r"(\S+)\.(\d+) \((\d+) lines\)", m.group(2))
        assert len(files) == 2 and all(f == str(out) for f, _, _ in files), text
        whole = parse_tenet(out, "x86_64")
        assert [line.ip for line in whole] == pcs[start:end]
        lines = {int(tid): parse_tenet(f"{out}.{tid}", "x86_64") for _, tid, _ in files}
        assert sum(len(v) for v in lines.values()) == end - start
        assert {int(tid): int(n) for _, tid, n in files} == {t: len(v) for t, v in lines.items()}
        # The switch positions: where the interleaved trace's stack pointer jumps between
        # the two threads' stacks, and what another session says runs there.
        switches = [p for p in range(start + 1, end)
                    if abs(whole[p - start].state["RSP"] - whole[p - start - 1].state["RSP"])
                    > 1 << 20]
        assert len(switches) == 3 and all(p % 100_000 == 0 for p in switches), switches
    bounds = [start, *switches, end]
    with open_session(spin_exe, ARGS) as oracle:
        owners = []
        for first in bounds[:-1]:
            oracle.seek(first)
            owners.append(oracle.current_thread)
    assert owners[0] == owners[2] != owners[1] == owners[3]
    # Each thread's file: its stretches' instructions in order, the same register states.
    for tid, mine in lines.items():
        positions = [p for i, first in enumerate(bounds[:-1]) if owners[i] == tid
                     for p in range(first, bounds[i + 1])]
        assert [line.ip for line in mine] == [pcs[p] for p in positions]
        assert [line.state for line in mine] == [whole[p - start].state for p in positions]
        # Memory accesses: those of this thread's previous instruction (none on a first line).
        for k, p in enumerate(positions):
            if k == 0:
                assert not mine[k].reads and not mine[k].writes
            elif positions[k - 1] == p - 1:
                assert (mine[k].reads, mine[k].writes) == (whole[p - start].reads,
                                                            whole[p - start].writes)
