"""Guest architectures known to syxdbg, by name."""

from __future__ import annotations

from ...errors import ArchError
from .aarch64 import AARCH64
from .arm import ARM
from .base import ArchSpec, RegisterInfo, SyscallABI
from .cortex_m import CORTEX_M
from .riscv64 import RISCV64
from .x86_64 import X86_64

ARCHES: dict[str, ArchSpec] = {a.name: a for a in (X86_64, AARCH64, ARM, RISCV64, CORTEX_M)}
_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "x86-64": "x86_64", "arm64": "aarch64",
            "armhf": "arm", "armv7": "arm", "thumb": "arm", "riscv": "riscv64",
            "rv64": "riscv64", "cortexm": "cortex-m", "cortex-m4": "cortex-m",
            "armv7m": "cortex-m", "armv7-m": "cortex-m"}


def get_arch(name: str) -> ArchSpec:
    """Return the spec for ``name`` (case-insensitive, common aliases accepted)."""
    key = name.lower()
    key = _ALIASES.get(key, key)
    try:
        return ARCHES[key]
    except KeyError:
        known = ", ".join(sorted(ARCHES))
        raise ArchError(f"unknown architecture {name!r} (supported: {known})") from None


def arch_for_elf_machine(e_machine: int) -> ArchSpec | None:
    for arch in ARCHES.values():
        if arch.elf_machine == e_machine:
            return arch
    return None


__all__ = ["ARCHES", "ArchSpec", "RegisterInfo", "SyscallABI", "arch_for_elf_machine", "get_arch"]
