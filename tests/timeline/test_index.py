"""Indexed reverse search never hides a hit: random guest programs, random breakpoints and
watchpoints, random places to search back from; the indexed search (interval summaries skip
intervals) and the full scan (every interval re-executed) must stop at the same place, in
the same state, and that state must be the one recorded there going forward.

The guest is the snapshot tests' store interpreter (``tests/snapshot/guest.py``): random
command lists make random programs of stores (1-8 bytes, page-crossing, ``rep stos``,
atomics), self-modifying code, calls, and system calls whose host side writes guest memory
or maps and unmaps a page (a write watchpoint is hit by both). Small checkpoint intervals
make many intervals; a small budget makes the timeline merge (thin) them, so the summaries
of merged intervals (unions) are exercised too.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "snapshot"))
from guest import CMD, CODE, DATA, DATA_PAGES, EXTRA, Guest, assemble  # noqa: E402

from syxdbg.machine import Machine, Perm  # noqa: E402
from syxdbg.machine.events import StopEvent, WatchHit  # noqa: E402
from syxdbg.timeline import BACKWARD, Timeline  # noqa: E402

PAGE = 0x1000


class MappingGuest(Guest):
    """The store interpreter, whose system call 500 with length 0 at ``EXTRA`` maps or
    unmaps the ``EXTRA`` page (the host reshapes memory) and otherwise writes only into
    mapped memory."""

    def _syscall(self, m: Machine) -> None:
        if self.arch == "x86_64":
            nr, addr, value, n = m.regs.rax, m.regs.rdi, m.regs.rdx, m.regs.r10
        else:
            nr, addr, value, n = m.regs.x8, m.regs.x1, m.regs.x2, m.regs.x3
        if nr != 500:
            m.request_exit(0)
            return
        mapped = any(r.start <= EXTRA < r.end for r in m.mem.regions())
        if n == 0 and addr == EXTRA:
            if mapped:
                m.mem.unmap(EXTRA, PAGE)
            else:
                m.mem.map(EXTRA, PAGE, Perm.RW, "extra")
        elif n and any(r.start <= addr and addr + n <= r.end for r in m.mem.regions()):
            m.mem.write(addr, bytes([value & 0xFF]) * n)


def _command() -> st.SearchStrategy[tuple[int, int, int, int]]:
    off = st.integers(0, DATA_PAGES * PAGE - 8)
    value = st.integers(0, 2**64 - 1)
    store = st.tuples(st.integers(1, 4), off, value, st.just(0))
    rep = st.tuples(st.just(5), st.integers(0, DATA_PAGES * PAGE - 64), value,
                    st.integers(1, 64))
    atomic = st.tuples(st.just(6), off.map(lambda o: o & ~7), value, st.just(0))
    smc = st.tuples(st.just(7), st.just(0), st.integers(0, 0xFFFF), st.just(0))
    call = st.tuples(st.just(9), st.just(0), st.just(0), st.just(0))
    host = st.tuples(st.just(8), st.integers(0, DATA_PAGES * PAGE - 32), value,
                     st.integers(1, 32))
    host_extra = st.tuples(st.just(8), st.integers(0, PAGE - 16), value, st.integers(1, 16))
    remap = st.just((8, -1, 0, 0))

    def fix(c: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        op, o, v, n = c
        if op == 8 and o == -1:
            return (8, EXTRA, 0, 0)
        if op in (7, 9):
            return c
        return (op, (EXTRA if c in () else DATA) + o, v, n)

    def fix_extra(c: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        return (8, EXTRA + c[1], c[2], c[3])

    return st.one_of(store.map(fix), store.map(fix), rep.map(fix), atomic.map(fix), smc,
                     call, host.map(fix), host_extra.map(fix_extra), remap.map(fix))


def _make(arch: str, cmds: list[tuple[int, int, int, int]], interval: int, budget: int
          ) -> tuple[MappingGuest, Timeline, int]:
    g = MappingGuest(arch)
    m = g.machine
    blob = b"".join(b"".join(x.to_bytes(8, "little", signed=x < 0) for x in c)
                    for c in [*cmds, (0, 0, 0, 0)])
    m.mem.write(CMD, blob)
    tl = Timeline(m, interval=interval, budget=budget)
    ev = tl.run(until=g.done)
    assert m.pc == g.done, ev
    return g, tl, m.position


def _describe(ev: StopEvent) -> tuple[Any, ...]:
    out: tuple[Any, ...] = (type(ev).__name__, ev.position, ev.pc, getattr(ev, "why", None))
    if isinstance(ev, WatchHit):
        out += (ev.address, ev.access, getattr(ev, "insn_position", None))
    return out


def _state(m: Machine) -> tuple[Any, ...]:
    ram = tuple((r.start, hashlib.blake2b(m.mem.read(r.start, r.size)).hexdigest())
                for r in m.mem.regions())
    return (m.position, tuple(sorted(m.regs.snapshot().items())), ram)


def _code_addresses(arch: str) -> list[int]:
    """Instruction addresses of the interpreter (and a few addresses inside instructions)."""
    import capstone

    code, _, _ = assemble(arch)
    if arch == "x86_64":
        cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    else:
        cs = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    return [CODE + i.address for i in cs.disasm(code, 0)]


def _search(tl: Timeline, start: int, indexed: bool, what: str, arg: Any
            ) -> tuple[tuple[Any, ...] | None, tuple[Any, ...], Any]:
    m = tl.machine
    tl.seek(start)
    assert m.position == start
    tl.indexed = indexed
    try:
        if what == "cont":
            ev = tl.cont(BACKWARD)
            result: tuple[Any, ...] | None = _describe(ev)
        elif what == "step":
            result = _describe(tl.step(BACKWARD, arg))
        else:
            address, length = arg
            lw = tl.last_write(address, length)
            result = None if lw is None else (lw.position, lw.pc, lw.address,
                                              _describe(lw.event))
    finally:
        tl.indexed = True
    return result, _state(m), tl.scan_stats


ARCHES = ["x86_64", "aarch64"]


@pytest.mark.parametrize("arch", ARCHES)
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_indexed_and_full_reverse_search_stop_at_the_same_place(arch: str, data: Any
                                                                ) -> None:
    cmds = data.draw(st.lists(_command(), min_size=1, max_size=200), label="program")
    interval = data.draw(st.sampled_from([37, 100, 450, 2000]), label="interval")
    budget = data.draw(st.sampled_from([1 << 30, 300 << 10]), label="budget")
    g, tl, end = _make(arch, cmds, interval, budget)
    try:
        code = _code_addresses(arch)
        lo = tl.origin
        for _ in range(data.draw(st.integers(1, 4), label="searches")):
            start = data.draw(st.integers(lo, end), label="from")
            what = data.draw(st.sampled_from(["cont", "cont", "step", "last_write"]),
                             label="what")
            handles: list[Any] = []
            arg: Any = None
            if what == "last_write":
                base = data.draw(st.sampled_from([DATA, EXTRA]), label="lw region")
                arg = (base + data.draw(st.integers(0, PAGE * (DATA_PAGES if base == DATA
                                                                  else 1) - 8)),
                       data.draw(st.sampled_from([1, 2, 4, 8, 64])))
            else:
                if what == "step":
                    arg = data.draw(st.integers(2, 5000), label="count")
                for a in data.draw(st.lists(st.sampled_from(code), max_size=2), label="bps"):
                    handles.append(tl.add_breakpoint(a))
                for _ in range(data.draw(st.integers(0, 2), label="nwatch")):
                    base = data.draw(st.sampled_from([DATA, DATA, EXTRA]), label="region")
                    span = PAGE * (DATA_PAGES if base == DATA else 1)
                    size = data.draw(st.sampled_from([1, 2, 4, 8, 100]), label="size")
                    addr = base + data.draw(st.integers(0, span - size), label="addr")
                    kind = data.draw(st.sampled_from(["write"] * 5 + ["access"]))
                    handles.append(tl.add_watchpoint(addr, size, kind))
            try:
                indexed, state_i, stats = _search(tl, start, True, what, arg)
                full, state_f, _ = _search(tl, start, False, what, arg)
            finally:
                for h in handles:
                    if hasattr(h, "size"):
                        tl.remove_watchpoint(h)
                    else:
                        tl.remove_breakpoint(h)
            assert indexed == full, (what, arg, start, stats)
            assert state_i == state_f
            # The reverse invariant: where it landed is the state recorded there going
            # forward (reached from another place: the end of history, by seek).
            landed = state_i[0]
            tl.seek(end)
            tl.seek(landed)
            assert _state(g.machine) == state_i
            lo = tl.origin  # a small budget may forget the oldest history meanwhile
    finally:
        tl.close()


@pytest.mark.parametrize("arch", ARCHES)
def test_the_index_skips_intervals_and_still_finds_the_only_hit(arch: str) -> None:
    # A breakpoint on the call path of op 9 and a watchpoint on a byte written once, at the
    # start; then thousands of stores elsewhere: the search skips every later interval.
    first = [(9, 0, 0, 0), (1, DATA + 5, 0xAB, 0)]
    rest = [(4, DATA + 0x1000 + (i * 8) % 0x3000, i, 0) for i in range(200)]
    g, tl, end = _make(arch, first + rest, 60, 1 << 30)
    try:
        _, _, f_off = assemble(arch)
        bp = tl.add_breakpoint(CODE + f_off)
        ev = tl.cont(BACKWARD)
        stats = tl.scan_stats
        assert ev.pc == CODE + f_off and getattr(ev, "why", "") == "breakpoint"
        assert stats is not None and stats.indexed
        # (the newest interval may be a candidate too: the run stopped at ``done``, inside
        # a block that falls through into ``f``, and a block entered counts whole)
        assert stats.scanned <= 2 and stats.hits == 1, stats
        assert stats.skipped == stats.intervals - stats.scanned > 10, stats
        tl.remove_breakpoint(bp)
        tl.seek(end)
        lw = tl.last_write(DATA + 5, 1)
        assert lw is not None and tl.scan_stats is not None
        assert tl.scan_stats.scanned == 1 and tl.scan_stats.skipped > 10, tl.scan_stats
        assert g.machine.mem.read(DATA + 5, 1) != b"\xab"  # before the write
        # A read (access) watchpoint cannot be decided: every interval is re-executed.
        tl.seek(end)
        w = tl.add_watchpoint(DATA + 5, 1, "access")
        ev = tl.cont(BACKWARD)
        assert isinstance(ev, WatchHit)
        assert tl.scan_stats is not None and not tl.scan_stats.indexed
        assert tl.scan_stats.skipped == 0
        tl.remove_watchpoint(w)
    finally:
        tl.close()


@pytest.mark.parametrize("arch", ARCHES)
def test_an_unmapped_watched_page_is_a_hit_the_index_sees(arch: str) -> None:
    # The host maps EXTRA, writes it, then unmaps it (no guest store ever touches it):
    # only the interval of the unmap can hold the last hit.
    cmds = [(8, EXTRA, 0, 0), (8, EXTRA + 16, 7, 4), (8, EXTRA, 0, 0)]
    cmds += [(4, DATA + (i * 8) % 0x4000, i, 0) for i in range(200)]
    g, tl, end = _make(arch, cmds, 60, 1 << 30)
    try:
        w = tl.add_watchpoint(EXTRA + 16, 4, "write")
        ev = tl.cont(BACKWARD)
        indexed = _describe(ev)
        assert isinstance(ev, WatchHit), ev
        assert tl.scan_stats is not None and tl.scan_stats.skipped > 5
        tl.seek(end)
        tl.indexed = False
        assert _describe(tl.cont(BACKWARD)) == indexed
        tl.remove_watchpoint(w)
    finally:
        tl.close()


@pytest.mark.parametrize("arch", ARCHES)
def test_a_breakpoint_or_until_at_a_checkpoint_push_point_stops(arch: str) -> None:
    # The machine steps off a breakpoint at the pc it starts from; the timeline's own chunk
    # boundaries (a checkpoint every 37 instructions here) must not make it skip one.
    cmds = [(4, DATA + 8 * i, i, 0) for i in range(30)]
    g, tl, end = _make(arch, cmds, 37, 1 << 30)  # (run(until=done) reached done: asserted)
    try:
        every = sorted({c.position for c in tl.checkpoints()} - {0})
        tl.seek(every[2])
        pc = tl.machine.pc
        tl.seek(0)
        bp = tl.add_breakpoint(pc)
        hits = []
        while True:
            ev = tl.cont()
            if getattr(ev, "why", "") != "breakpoint":
                break
            hits.append(ev.position)
        assert every[2] in hits, (every[2], hits)
        back = []
        while True:
            ev = tl.cont(BACKWARD)
            if getattr(ev, "why", "") != "breakpoint":
                break
            back.append(ev.position)
        assert back == hits[::-1]
        tl.remove_breakpoint(bp)
        # run(until=done) from every checkpoint reaches done whatever the boundaries.
        for p in every:
            if p >= end:  # (from done itself, until=done runs on: the motion starts there)
                continue
            tl.seek(p)
            tl.run(until=g.done)
            assert tl.machine.pc == g.done
    finally:
        tl.close()
