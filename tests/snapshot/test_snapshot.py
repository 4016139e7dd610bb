"""Snapshot semantics on real guests, against both implementations (core and reference).

After every restore: ``check_memory_consistency() == 0`` and registers, position and all
mapped RAM equal what was recorded when the restored state was pushed.
"""

from __future__ import annotations

from typing import Any

import pytest
from guest import CMD, CODE, DATA, EXTRA, IMPLS, STACK, Guest, layout, ram, snapshot_class

from syxdbg.machine import Machine, Perm
from syxdbg.snapshot import DeviceSnapshotKind, SnapshotError, SyxSnapshotTracker
from syxdbg.state import StateRegistry

ARCHES = ["x86_64", "aarch64"]


@pytest.fixture(params=IMPLS)
def Snap(request: pytest.FixtureRequest) -> type:  # noqa: N802 (a class)
    """The SyxSnapshot class under test; Guests created in the test attach to it."""
    return snapshot_class(request.param)


def capture(m: Machine) -> tuple[Any, ...]:
    return (m.regs.snapshot(), m.position, ram(m), layout(m))


def assert_state(snap: Any, m: Machine, expected: tuple[Any, ...]) -> None:
    assert snap.check_memory_consistency_details() == []
    regs, pos, mem, lay = expected
    assert layout(m) == lay
    got = ram(m)
    for start in mem:
        assert got[start] == mem[start], f"region {start:#x} differs"
    assert m.position == pos
    assert m.regs.snapshot() == regs


class Counter:
    """A plugin-like state (a Snapshottable)."""

    def __init__(self) -> None:
        self.n = 0
        self.items: list[int] = []

    def save_state(self) -> Any:
        return (self.n, tuple(self.items))

    def load_state(self, state: Any) -> None:
        self.n, items = state
        self.items = list(items)


@pytest.mark.parametrize("arch", ARCHES)
def test_root_restore_undoes_guest_stores_host_writes_and_registers(Snap, arch: str) -> None:
    g = Guest(arch)
    m = g.machine
    g.run([(4, DATA + 8, 0x1111, 0)])
    snap = Snap.new(m, verify=True)
    root = capture(m)
    g.run([(4, DATA + 0xFFC, 0xDEADBEEFCAFEF00D, 0), (5, DATA + 0x3000, 0x5A, 5000),
           (6, DATA + 8, 7, 0), (8, DATA + 0x6000, 0x33, 100), (7, 0, 0x4242, 0)])
    m.mem.write(DATA + 0x7000, b"host")
    assert snap.check_memory_consistency() > 0
    snap.root_restore()
    assert_state(snap, m, root)
    # Restoring twice in a row is idempotent, and the restored code runs the old f.
    snap.root_restore()
    assert_state(snap, m, root)
    g.run([(9, 0, 0, 0)])
    assert int.from_bytes(m.mem.read(0x501FF8, 8), "little") == g.f_value() == (
        0x11223344 if arch == "x86_64" else 0x3344)


@pytest.mark.parametrize("arch", ARCHES)
def test_pop_then_restore_last_restores_the_previous_increment(Snap, arch: str) -> None:
    g = Guest(arch)
    m = g.machine
    snap = Snap.new(m, verify=True)
    states = [capture(m)]
    for i in range(4):
        g.run([(4, DATA + 0x1000 * i, i + 1, 0), (1, DATA + 0x1000 * (i + 1) + 5, i, 0)])
        snap.increment_push()
        states.append(capture(m))
    g.run([(5, DATA, 0xEE, 0x8000)])
    # pop: state := top (S4), drop it; then restore_last goes to S3 exactly (SYX loses pages).
    snap.increment_pop()
    assert_state(snap, m, states[4])
    snap.increment_restore_last()
    assert_state(snap, m, states[3])
    snap.increment_pop()
    assert_state(snap, m, states[3])
    snap.increment_pop()
    assert_state(snap, m, states[2])
    snap.root_restore()
    assert_state(snap, m, states[0])
    assert snap.depth == 0
    with pytest.raises(SnapshotError):
        snap.increment_pop()
    snap.increment_restore_last()  # no increment: the root
    assert_state(snap, m, states[0])


@pytest.mark.parametrize("arch", ARCHES)
def test_self_modifying_code_replays_after_restore(Snap, arch: str) -> None:
    g = Guest(arch)
    m = g.machine
    g.run([(9, 0, 0, 0)])  # f translated and run
    snap = Snap.new(m, verify=True)
    base = g.f_value()
    for v in (0x1234, 0x777, 0x4321):
        g.run([(7, 0, v, 0), (9, 0, 0, 0)])
        assert int.from_bytes(m.mem.read(0x501FF8, 8), "little") == v
        snap.root_restore()
        assert g.f_value() == base
        g.run([(9, 0, 0, 0)])
        assert int.from_bytes(m.mem.read(0x501FF8, 8), "little") == base
        snap.root_restore()


@pytest.mark.parametrize("arch", ARCHES)
def test_map_unmap_protect_are_undone(Snap, arch: str) -> None:
    g = Guest(arch)
    m = g.machine
    m.mem.map(EXTRA, 0x3000, Perm.RW, "extra")
    g.run([(4, EXTRA + 0x1000, 0xABCD, 0)])
    snap = Snap.new(m, verify=True)
    s0 = capture(m)
    m.mem.unmap(EXTRA + 0x1000, 0x1000)
    m.mem.protect(EXTRA, 0x1000, Perm.R)
    m.mem.map(EXTRA + 0x5000, 0x1000, Perm.RW, "new")
    g.run([(4, EXTRA + 0x5000, 1, 0), (4, EXTRA + 0x2000, 2, 0)])
    snap.increment_push()
    s1 = capture(m)
    m.mem.unmap(EXTRA, 0x6000)
    m.mem.map(EXTRA + 0x1000, 0x1000, Perm.RW, "again")
    g.run([(4, EXTRA + 0x1000, 3, 0)])
    snap.increment_restore_last()
    assert_state(snap, m, s1)
    snap.root_restore()
    assert_state(snap, m, s0)
    assert m.mem.read(EXTRA + 0x1000, 8) == (0xABCD).to_bytes(8, "little")
    g.run([(4, EXTRA, 5, 0)])  # writable again


@pytest.mark.parametrize("arch", ARCHES)
def test_warm_tlb_snapshot_mid_loop_restores_every_page(Snap, arch: str) -> None:
    """SYX misses stores to pages whose TLB entries are warm (64 of 64 pages upstream)."""
    g = Guest(arch)
    m = g.machine
    cmds = [(4, DATA + 0x1000 * (i % 8) + 8 * (i // 8), i, 0) for i in range(64)]
    g.run(cmds)  # every data page's TLB entry is now warm and writable
    m.mem.write(CMD, b"".join(b"".join(x.to_bytes(8, "little") for x in c)
                              for c in [*cmds, (0, 0, 0, 0)]))
    m.regs.pc = 0x400000
    m.run(count=150)  # stop in the middle of the loop
    snap = Snap.new(m, verify=True)
    s0 = capture(m)
    m.run(until=g.done)
    g.run([(4, DATA + 0x1000 * i + 0x800, 0xFF, 0) for i in range(8)])
    assert snap.check_memory_consistency() == 8 + 1  # data pages and the command page
    snap.root_restore()
    assert_state(snap, m, s0)
    m.run(until=g.done)
    assert m.pc == g.done


@pytest.mark.parametrize("arch", ARCHES)
def test_devices_are_saved_by_kind(Snap, arch: str) -> None:
    g = Guest(arch)
    m = g.machine
    reg = StateRegistry()
    a, b = Counter(), Counter()
    reg.register("a", a)
    reg.register("b", b)
    snap = Snap.new(m, states=reg, verify=True)
    a.n, b.n = 1, 1
    a.items.append(5)
    pc0 = m.pc
    snap.increment_push(kind=DeviceSnapshotKind.ALLOWLIST, devices=["a"])
    a.n, b.n = 2, 2
    a.items.append(6)
    g.run([(4, DATA, 1, 0)])
    snap.increment_restore_last()
    assert (a.n, a.items, b.n) == (1, [5], 2)
    assert m.pc == g.done  # the CPU was not in the allow-list
    snap.increment_push(kind=DeviceSnapshotKind.DENYLIST, devices=["cpu", "a"])
    b.n = 9
    snap.increment_restore_last()
    assert b.n == 2
    snap.root_restore()
    assert (a.n, a.items, b.n) == (0, [], 0)
    assert m.pc == pc0
    with pytest.raises(SnapshotError, match="unknown device"):
        snap.increment_push(kind=DeviceSnapshotKind.ALLOWLIST, devices=["nope"])


@pytest.mark.parametrize("arch", ARCHES)
def test_two_tracked_snapshots_see_every_write(Snap, arch: str) -> None:
    g = Guest(arch)
    m = g.machine
    root = Snap.new(m, verify=True)
    s_root = capture(m)
    g.run([(4, DATA, 1, 0), (4, DATA + 0x2000, 2, 0)])
    exp = Snap.new(m, verify=True)  # a per-experiment snapshot, later
    s_exp = capture(m)
    tracker = SyxSnapshotTracker.of(m)
    assert set(tracker.tracked) == {root, exp}
    for i in range(3):
        g.run([(4, DATA + 0x1000 * i, 100 + i, 0), (5, DATA + 0x3000, i, 0x2000)])
        exp.root_restore()
        assert_state(exp, m, s_exp)
    g.run([(4, DATA + 0x5000, 5, 0)])
    root.root_restore()
    assert_state(root, m, s_root)
    # The experiment's root is newer than the state restored: it no longer exists.
    assert not exp.valid
    with pytest.raises(SnapshotError):
        exp.root_restore()
    exp.free()
    # Untracked snapshots cannot restore; tracking again works while the history exists.
    tracker.stop_track(root)
    with pytest.raises(SnapshotError, match="not tracked"):
        root.root_restore()
    tracker.track(root)
    g.run([(4, DATA, 9, 0)])
    root.root_restore()
    assert_state(root, m, s_root)
    root.free()


@pytest.mark.parametrize("arch", ARCHES)
def test_merge_and_thin_keep_the_remaining_increments_exact(Snap, arch: str) -> None:
    g = Guest(arch)
    m = g.machine
    snap = Snap.new(m, verify=True)
    states = [capture(m)]
    for i in range(10):
        g.run([(4, DATA + 0x1000 * (i % 3), i, 0), (4, DATA + 0x1000 * (3 + i % 5), i, 0)])
        snap.increment_push()
        states.append(capture(m))
    pages_before = snap.stats()["pages"]
    snap.merge(5)
    # 9 increments left (pushes 1-4, 6-10); keep the last 3 and every 4th push before them.
    assert snap.thin(keep_last=3, keep_every=4) == 5
    kept = [0, 4, 8, 9, 10]
    assert snap.depth == len(kept) - 1
    assert snap.stats()["pages"] <= pages_before
    g.run([(5, DATA, 0x77, 0x8000)])
    for k in range(len(kept) - 1, -1, -1):
        snap.restore(k)
        assert_state(snap, m, states[kept[k]])


@pytest.mark.parametrize("arch", ["x86_64"])
def test_consistency_check_reports_writes_nobody_was_told_about(Snap, arch: str) -> None:
    g = Guest(arch)
    m = g.machine
    snap = Snap.new(m, verify=True)
    region = m.mem.find(DATA)
    assert region is not None
    region.backing.buf[0x2010] = 0x99  # a raw write into the buffer: no observer sees it
    diffs = snap.check_memory_consistency_details()
    assert [(d.address, d.region, d.first_offset) for d in diffs] == [(DATA + 0x2000, "data",
                                                                        0x10)]


def test_stats_and_free(Snap) -> None:
    g = Guest("x86_64")
    m = g.machine
    snap = Snap.new(m, verify=True)
    g.run([(5, DATA, 1, 0x4000)])
    snap.increment_push()
    st = snap.stats()
    assert st["increments"] == 1
    assert st["last_push_us"] > 0
    snap.root_restore()
    st = snap.stats()
    assert st["increments"] == 0 and st["last_restored_pages"] >= 4
    snap.free()
    assert not snap.valid
    with pytest.raises(SnapshotError):
        snap.root_restore()


@pytest.mark.parametrize("arch", ARCHES)
def test_region_permissions_are_enforced_while_tracking(Snap, arch: str) -> None:
    from syxdbg.machine import Fault

    g = Guest(arch)
    m = g.machine
    snap = Snap.new(m, verify=True)
    g.run([(4, DATA + 0x2000, 1, 0)])  # the page's TLB entry is now writable
    snap.increment_push()
    m.mem.protect(DATA + 0x2000, 0x1000, Perm.R)
    m.mem.write(CMD, b"".join(x.to_bytes(8, "little") for x in (4, DATA + 0x2008, 2, 0)))
    m.regs.pc = 0x400000
    ev = m.run(until=g.done)
    assert isinstance(ev, Fault) and ev.address == DATA + 0x2008
    assert "protected" in ev.detail
    assert m.mem.read(DATA + 0x2008, 8) == bytes(8)
    # Back before the protect: the store works, and the machine runs again.
    snap.increment_restore_last()
    g.run([(4, DATA + 0x2008, 2, 0)])
    assert m.mem.read(DATA + 0x2008, 1) == b"\x02"
    # Executing data faults too.
    m.regs.pc = DATA
    ev = m.run(count=1)
    assert isinstance(ev, Fault) and "execute" in ev.detail


def test_many_pages_grow_the_pool_and_restore_exactly(Snap) -> None:
    g = Guest("x86_64")
    m = g.machine
    m.mem.map(0x10000000, 0x300000, Perm.RW, "big")
    snap = Snap.new(m, verify=True)
    s0 = capture(m)
    for round_ in range(3):
        m.mem.write(0x10000000, bytes([round_ + 1]) * 0x300000)  # 768 pages, 3 pool chunks
        g.run([(5, 0x10000000 + 0x1000 * round_, 0xAA, 0x2000)])
        snap.increment_push()
    states = capture(m)
    m.mem.write(0x10000000, b"\xff" * 0x300000)
    snap.increment_restore_last()
    assert_state(snap, m, states)
    snap.root_restore()
    assert_state(snap, m, s0)
    snap.free()


@pytest.mark.parametrize("arch", ARCHES)
def test_dirty_pages_since_names_written_pages_and_new_regions(Snap, arch: str) -> None:
    """The public API a recording persists checkpoints with: guest stores, host writes and
    regions mapped since, on every implementation (so ``record`` works without the core)."""
    g = Guest(arch)
    m = g.machine
    g.run([])
    snap = Snap.new(m)
    assert snap.dirty_pages_since() == []
    g.run([(4, DATA + 0xFFC, 0xDEADBEEFCAFEF00D, 0), (8, DATA + 0x5000, 0x33, 10)])
    m.mem.map(EXTRA, 0x2000, Perm.RW, "extra")
    pages = snap.dirty_pages_since()
    # The page-crossing store, the host write, the new region whole; the command page the
    # test wrote and the stack the interpreter used may be there too, nothing else.
    must = {DATA, DATA + 0x1000, DATA + 0x5000, EXTRA, EXTRA + 0x1000}
    assert must <= set(pages) and pages == sorted(pages)
    assert set(pages) - must <= {CMD, CMD + 0x1000, STACK}
    snap.increment_push()
    assert snap.dirty_pages_since() == []
    assert set(must) <= set(snap.dirty_pages_since(0))
    m.mem.write(DATA + 0x7000, b"x")
    assert snap.dirty_pages_since() == [DATA + 0x7000]
    with pytest.raises(SnapshotError):
        snap.dirty_pages_since(5)


@pytest.mark.parametrize("arch", ARCHES)
def test_a_full_journal_is_a_clean_error_and_every_state_stays_exact(Snap, arch: str) -> None:
    """Out of memory for pre-images (a limit provokes it): no MemoryError, the machine stops,
    the next push raises JournalFull (a SyxdbgError), older states restore exactly, and once
    memory is given back the journal works again."""
    from syxdbg.errors import SyxdbgError
    from syxdbg.snapshot import JournalFull

    big, size = 0x10000000, 0x200000  # 512 pages, twice the limit below
    g = Guest(arch)
    m = g.machine
    m.mem.map(big, size, Perm.RW, "big")
    snap = Snap.new(m, verify=True)
    root = capture(m)
    tracker = snap.tracker
    ram_bytes = sum(r.size for r in m.mem.regions())
    core = not Snap.__name__.startswith("Reference") and Snap.__module__.endswith("core")
    # The reference keeps one RAM image per checkpoint: room for two.
    tracker.set_memory_limit(1 << 20 if core else ram_bytes * 5 // 2)
    snap.increment_push()
    blob = b"".join(x.to_bytes(8, "little") for x in (5, big, 0x77, size, 0, 0, 0, 0))
    m.mem.write(CMD, blob)
    m.regs.pc = CODE
    ev = m.run(until=g.done)
    assert tracker.memory_full
    if core:
        # Stopped early, at a block boundary: the stores in flight kept their pre-images.
        assert ev.reason == "stopped" and m.pc != g.done
        untouched = big + size - 0x1000
        assert m.mem.read(untouched, 16) == bytes(16)
        with pytest.raises(JournalFull):  # a host write whose pre-image cannot be kept ...
            m.mem.write(untouched, b"host")
        assert m.mem.read(untouched, 16) == bytes(16)  # ... does not happen
    with pytest.raises(JournalFull) as info:
        snap.increment_push()
    assert isinstance(info.value, SyxdbgError) and "full" in str(info.value)
    assert snap.depth == 1
    snap.root_restore()
    assert_state(snap, m, root)
    assert not tracker.memory_full
    # Usable again: push, run, restore.
    snap.increment_push()
    g.run([(4, DATA + 8, 0x1234, 0)])
    snap.restore(1)
    assert_state(snap, m, root)
    tracker.set_memory_limit(None)
