"""Hostile addresses and sizes for breakpoints, watchpoints and last-write: one clear error
line (a SyxdbgError), never an internal error, and the table is left as it was."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import syxdbg
from syxdbg.commands import make_registry
from syxdbg.timeline import TimelineError

LIMIT = 1 << 64
bad_address = st.one_of(st.integers(max_value=-1), st.integers(min_value=LIMIT))
FIXTURE = [HealthCheck.function_scoped_fixture]
any_size = st.integers(min_value=-(1 << 70), max_value=1 << 70)


@pytest.fixture(scope="module")
def session(build_program: Callable[..., Path]) -> Iterator[syxdbg.Session]:
    with syxdbg.open(str(build_program("hello", "gcc")), env={}) as s:
        s.step()
        yield s


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURE)
@given(address=bad_address)
def test_bad_breakpoint_addresses_are_refused(session: syxdbg.Session, address: int) -> None:
    with pytest.raises(TimelineError):
        session.add_breakpoint(address)
    assert session.timeline.breakpoint_table() == []


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURE)
@given(address=st.one_of(bad_address, st.integers(0, LIMIT - 1)), size=any_size)
def test_watchpoints_that_do_not_fit_the_address_space_are_refused(
        session: syxdbg.Session, address: int, size: int) -> None:
    if 0 <= address < LIMIT and size > 0 and address + size <= LIMIT:
        handle = session.add_watchpoint(address, size)
        session.remove_watchpoint(handle)
    else:
        with pytest.raises(TimelineError):
            session.add_watchpoint(address, size)
    assert session.timeline.watchpoint_table() == []
    assert session.machine.watchpoints == []


@settings(max_examples=30, deadline=None, suppress_health_check=FIXTURE)
@given(address=bad_address, length=st.integers(min_value=-3, max_value=1 << 66))
def test_commands_report_bad_addresses_in_one_line(session: syxdbg.Session, address: int,
                                                    length: int) -> None:
    r = make_registry(session)
    here = session.position
    for line in (f"break *{address}", f"watch {address} {max(length, 1)}",
                 f"last-write {address} {max(length, 1)}", f"last-write 0x1000 {length}"):
        try:
            r.run_text(line)
        except syxdbg.SyxdbgError as exc:
            text = str(exc)
            assert text and "\n" not in text and "internal" not in text.lower(), (line, text)
    assert session.position == here
    assert session.timeline.breakpoint_table() == []
