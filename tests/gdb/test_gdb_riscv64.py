"""RISC-V 64 programs in syxdbg under gdb-multiarch.

The oracle for breakpoints, backtraces, stepping and faults is the same binary under
``qemu-riscv64 -g`` with the same gdb; watchpoints and reverse execution are checked
against the values and lines the program's source fixes. Watchpoints stop before the
accessing instruction (as on aarch64 and arm): gdb steps over the store and reports the
new value where it stopped, here the start of the next line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from gdbmi import normalize
from test_gdb_aarch64 import START, qemu_outputs, syxdbg_outputs

#: The stacks: syxdbg's below 0x3ffffff000, qemu-riscv64's near 0x4000800000.
_STACK_RV = re.compile(r"0x0*(3fffff[0-9a-f]{4}|40007f[0-9a-f]{4}|400080[0-9a-f]{4})\b")


def norm(text: str) -> str:
    return _STACK_RV.sub("STACK", normalize(text))


GDB_CASES = [
    ("hello", ("alpha", "beta"), [
        "break main", START, "bt", "info args", "next", "next", "info locals",
        "print argv[1]", "stepi", "x/i $pc", "nexti", "continue"]),
    ("corrupt", (), [
        "break record_history", START, "bt", "info args", "finish", "up", "down",
        "tbreak corrupt.c:82", "continue", "until", "advance audit", "bt", "delete",
        "continue"]),
    ("segv", ("null",), [START, "bt", "x/i $pc", "continue"]),
]


@pytest.mark.parametrize("program,args,commands", GDB_CASES)
def test_riscv64_matches_qemu_gdbstub(build_program: Callable[..., Path],
                                      require_tool: Callable[[str], str], program: str,
                                      args: tuple[str, ...], commands: list[str]) -> None:
    qemu = require_tool("qemu-riscv64")
    exe = build_program(program, "riscv64")
    want = qemu_outputs(exe, args, commands, qemu)
    got = syxdbg_outputs(exe, args, commands)
    for (cmd, w), (_, g) in zip(want, got, strict=True):
        assert norm(g) == norm(w), f"{cmd!r}:\n--- qemu\n{w}\n--- syxdbg\n{g}"


def test_riscv64_reverse_continue_to_a_watchpoint_and_reverse_finish(
        build_program: Callable[..., Path]) -> None:
    out = syxdbg_outputs(build_program("corrupt", "riscv64"), (), [
        "break run_day", START, "watch ledger.balance", "continue", "continue",
        "reverse-continue", "reverse-finish", "stepi", "reverse-stepi", "info registers pc",
        "next", "delete", "continue",
    ])
    text = [o for _, o in out]
    assert "Old value = 0\nNew value = 120\n" in text[3]
    assert "Old value = 120\nNew value = 75\napply_transaction (amount=-45) at corrupt.c:83" \
        in text[4]
    assert "Old value = 75\nNew value = 120\n" in text[5]
    assert "apply_transaction (amount=-45) at corrupt.c:82" in text[5]
    assert "Run back to call of #0" in text[6] and "process_batch" in text[6]
    assert "apply_transaction (amount=-45) at corrupt.c:81" in text[7]
    assert "process_batch" in text[8] and "<process_batch+" in text[9]
    assert "Old value = 120\nNew value = 75\n" in text[10]
    assert "exited with code 01" in text[12]
