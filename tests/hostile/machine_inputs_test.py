"""Hostile inputs at the machine: addresses and sizes outside the 64-bit address space and
register values the emulated CPU refuses give the project's one-line errors (SyxdbgError
subclasses), never Unicorn's or Cython's exceptions, and change nothing."""

from __future__ import annotations

import pytest
import support
from hypothesis import given, settings
from hypothesis import strategies as st

from syxdbg.commands import make_registry
from syxdbg.errors import RegisterError, SyxdbgError
from syxdbg.machine import AddressRangeError, Stopped

LIMIT = 1 << 64
#: x86: spin forever (jmp $); aarch64: b .
SPIN = {"x86_64": b"\xeb\xfe", "aarch64": (0x14000000).to_bytes(4, "little")}
addresses = st.one_of(st.integers(max_value=-1), st.integers(min_value=LIMIT, max_value=1 << 80),
                      st.integers(0, LIMIT - 1), st.sampled_from([-1, LIMIT - 1, LIMIT]))
sizes = st.one_of(st.integers(-(1 << 70), 1 << 70), st.sampled_from([-1, 0, 1, 2, 8, LIMIT]))


def _fits(address: int, size: int) -> bool:
    return 0 <= address < LIMIT and size >= 1 and address + size <= LIMIT


@settings(max_examples=150, deadline=None)
@given(address=addresses, size=sizes)
def test_breakpoints_and_watchpoints_outside_the_address_space(address: int, size: int) -> None:
    m = support.toy_machine("x86_64", SPIN["x86_64"])
    if 0 <= address < LIMIT:
        m.add_breakpoint(address)
        m.remove_breakpoint(address)
    else:
        with pytest.raises(AddressRangeError):
            m.add_breakpoint(address)
        m.remove_breakpoint(address)  # removing what was never added is a no-op
    for kind in ("write", "read", "access"):
        if _fits(address, size):
            m.add_watchpoint(address, size, kind)
            m.remove_watchpoint(address, size, kind)
        else:
            with pytest.raises(AddressRangeError) as info:
                m.add_watchpoint(address, size, kind)
            assert "\n" not in str(info.value)
            m.remove_watchpoint(address, size, kind)
    assert m.breakpoints == frozenset() and m.watchpoints == []
    assert isinstance(m.run(count=5), Stopped)  # still runs


@settings(max_examples=150, deadline=None)
@given(address=addresses, size=st.integers(-3, 1 << 66))
def test_memory_access_beyond_the_address_space(address: int, size: int) -> None:
    m = support.toy_machine("aarch64", SPIN["aarch64"])
    for op in ("read", "write"):
        try:
            if op == "read":
                m.mem.read(address, size)
            elif size <= 64:
                m.mem.write(address, bytes(max(size, 0)))
        except SyxdbgError as exc:
            assert "\n" not in str(exc)
            if not _fits(address, max(size, 1)):
                assert isinstance(exc, AddressRangeError), exc


def test_until_outside_the_address_space() -> None:
    m = support.toy_machine("x86_64", SPIN["x86_64"])
    for bad in (-1, LIMIT):
        with pytest.raises(AddressRangeError):
            m.run(until=bad, count=3)
    assert m.position == 0


def test_x86_segment_selectors_the_cpu_refuses() -> None:
    """``set reg fs 0xffff`` (gdb ``P`` of fs): one clear error, the old value kept."""
    machine = support.toy_machine("x86_64", SPIN["x86_64"])
    for name in ("fs", "gs"):
        old = machine.regs[name]
        with pytest.raises(RegisterError, match=f"cannot set {name} to 0xffff"):
            machine.regs[name] = 0xFFFF
        assert machine.regs[name] == old
        reg = machine.regs.info(name)
        with pytest.raises(RegisterError):
            machine.regs.write_bytes(reg.regnum, (0xFFFF).to_bytes(reg.size, "little"))
    machine.regs["fs_base"] = 0xFFFF  # the base itself is any 64-bit value
    assert machine.regs["fs_base"] == 0xFFFF
    assert isinstance(machine.run(count=3), Stopped)


def test_set_reg_command_reports_refused_values(build_program) -> None:
    import syxdbg

    with syxdbg.open(str(build_program("hello", "gcc")), env={}) as s:
        s.step()
        r = make_registry(s)
        with pytest.raises(SyxdbgError) as info:
            r.run_text("set reg fs 0xffff")
        assert "cannot set fs" in str(info.value) and "\n" not in str(info.value)
