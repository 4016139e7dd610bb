"""Hypothesis state machine: random guest store programs, host writes and map changes,
interleaved with push / pop / restore_last / root_restore / merge, against a plain model.

The model is the list of states (registers, position, all RAM, memory map) recorded when each
checkpoint was taken. After every restore the machine must equal the model's state and
``check_memory_consistency()`` must be 0. Runs on x86_64 and aarch64, core and reference.
"""

from __future__ import annotations

from typing import Any

import hypothesis.strategies as st
import pytest
from guest import DATA, DATA_PAGES, EXTRA, EXTRA_PAGES, IMPLS, Guest, snapshot_class
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from test_snapshot import assert_state, capture

from syxdbg.machine import Perm

PAGE = 0x1000


def _store_cmd(extra_rw: list[int]) -> st.SearchStrategy[tuple[int, int, int, int]]:
    targets = [DATA + i * PAGE for i in range(DATA_PAGES)] + extra_rw
    page = st.sampled_from(targets)
    value = st.integers(0, 2**64 - 1)
    # Offsets near the end of a page make 2/4/8-byte stores cross into the next page when
    # that page is writable too (DATA pages are contiguous).
    off = st.one_of(st.integers(0, PAGE - 8), st.integers(PAGE - 7, PAGE - 1))

    def fix(op: int, p: int, o: int, v: int, n: int) -> tuple[int, int, int, int]:
        size = {1: 1, 2: 2, 3: 4, 4: 8, 5: n, 6: 8, 8: n}.get(op, 0)
        addr = p + o
        if op == 6:
            addr &= ~7
        last_ok = (DATA + DATA_PAGES * PAGE) if DATA <= p < DATA + DATA_PAGES * PAGE else p + PAGE
        if addr + size > last_ok:
            addr = last_ok - size
        return (op, addr, v, n)

    return st.builds(fix, st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 9]), page, off, value,
                     st.integers(1, 600))


class SnapshotModel(RuleBasedStateMachine):
    arch = "x86_64"
    impl = "reference"

    @initialize()
    def setup(self) -> None:
        snapshot_class(self.impl)
        self.g = Guest(self.arch)
        self.m = self.g.machine
        self.m.mem.map(EXTRA, EXTRA_PAGES * PAGE, Perm.RW, "extra")
        self.extra: dict[int, int] = {EXTRA + i * PAGE: 3 for i in range(EXTRA_PAGES)}
        self.snap = snapshot_class(self.impl).new(self.m, verify=True)
        self.model: list[tuple[Any, ...]] = [capture(self.m)]
        self.extras: list[dict[int, int]] = [dict(self.extra)]

    def teardown(self) -> None:
        if hasattr(self, "snap"):
            self.snap.free()
            self.m.close()

    def _rw_extra(self) -> list[int]:
        return [a for a, p in self.extra.items() if p == 3]

    # -- changing the state -----------------------------------------------------------------
    @rule(data=st.data())
    def guest_program(self, data: st.DataObject) -> None:
        cmds = data.draw(st.lists(_store_cmd(self._rw_extra()), min_size=1, max_size=12))
        self.g.run(cmds)
        if any(c[0] in (7, 9) for c in cmds):
            got = int.from_bytes(self.m.mem.read(0x501FF8, 8), "little")
            assert got == self.g.f_value(), "stale translated code ran"

    @rule(page=st.integers(0, DATA_PAGES - 1), off=st.integers(0, PAGE - 1),
          data=st.binary(min_size=1, max_size=300))
    def host_write(self, page: int, off: int, data: bytes) -> None:
        addr = DATA + page * PAGE + off
        data = data[: DATA + DATA_PAGES * PAGE - addr]
        self.m.mem.write(addr, data)

    @rule(i=st.integers(0, EXTRA_PAGES - 1))
    def unmap(self, i: int) -> None:
        a = EXTRA + i * PAGE
        if a in self.extra:
            self.m.mem.unmap(a, PAGE)
            del self.extra[a]

    @rule(i=st.integers(0, EXTRA_PAGES - 1), perms=st.sampled_from([1, 3]))
    def map_or_protect(self, i: int, perms: int) -> None:
        a = EXTRA + i * PAGE
        if a in self.extra:
            self.m.mem.protect(a, PAGE, Perm(perms))
        else:
            self.m.mem.map(a, PAGE, Perm(perms), "extra")
        self.extra[a] = perms

    # -- snapshot operations ----------------------------------------------------------------
    def _back_to(self, k: int) -> None:
        assert_state(self.snap, self.m, self.model[k])
        self.extra = dict(self.extras[k])

    @rule()
    def push(self) -> None:
        self.snap.increment_push()
        self.model.append(capture(self.m))
        self.extras.append(dict(self.extra))

    @rule()
    def restore_last(self) -> None:
        self.snap.increment_restore_last()
        self._back_to(len(self.model) - 1)

    @precondition(lambda self: len(self.model) > 1)
    @rule()
    def pop(self) -> None:
        self.snap.increment_pop()
        self._back_to(len(self.model) - 1)
        self.model.pop()
        self.extras.pop()

    @rule()
    def root_restore(self) -> None:
        self.snap.root_restore()
        self._back_to(0)
        del self.model[1:]
        del self.extras[1:]

    @precondition(lambda self: len(self.model) > 1)
    @rule(data=st.data())
    def restore_any(self, data: st.DataObject) -> None:
        k = data.draw(st.integers(0, len(self.model) - 1))
        self.snap.restore(k)
        self._back_to(k)
        del self.model[k + 1 :]
        del self.extras[k + 1 :]

    @precondition(lambda self: len(self.model) > 1)
    @rule(data=st.data())
    def merge(self, data: st.DataObject) -> None:
        k = data.draw(st.integers(1, len(self.model) - 1))
        self.snap.merge(k)
        del self.model[k]
        del self.extras[k]

    @invariant()
    def depth_matches(self) -> None:
        if hasattr(self, "snap"):
            assert self.snap.depth == len(self.model) - 1


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_snapshot_state_machine(arch: str, impl: str) -> None:
    snapshot_class(impl)  # skips when the core is not built

    class Machine_(SnapshotModel):
        pass

    Machine_.arch = arch
    Machine_.impl = impl
    Machine_.TestCase.settings = settings(
        max_examples=40, stateful_step_count=25, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    Machine_.TestCase().runTest()
