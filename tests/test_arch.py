"""The architecture tables (ArchSpec): facts other layers rely on, checked without a machine."""

from __future__ import annotations

import pytest

from syxdbg.machine import get_arch

ARCHES = ["x86_64", "aarch64"]


@pytest.mark.parametrize("arch", ARCHES)
def test_arch_register_lists_name_real_registers(arch: str) -> None:
    """The ArchSpec's DWARF and trace register lists (used by debug info and the trace
    plugin) name registers of the architecture's own table, the pc excluded from traces."""
    spec = get_arch(arch)
    names = {r.name for r in spec.registers}
    assert set(spec.dwarf_registers.values()) <= names
    assert spec.dwarf_registers[7 if arch == "x86_64" else 31] == spec.sp
    assert spec.trace_registers and set(spec.trace_registers) <= names
    assert spec.register(spec.pc) is not None and spec.pc not in spec.trace_registers
