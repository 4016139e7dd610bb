"""32-bit ARM programs (ARM and Thumb-2 builds) in syxdbg under gdb-multiarch.

The oracle for breakpoints, backtraces, stepping and faults is the same binary under
``qemu-arm -g`` with the same gdb (as test_gdb_aarch64.py does). QEMU's user mode has no
watchpoints nor reverse execution: those are checked against the values and lines the
program's source fixes (the same as on the other architectures).

Watchpoints on arm stop before the accessing instruction (gdb's arm target has
non-steppable watchpoints): gdb steps over the store and reports the new value at the
next instruction.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import capstone
import pytest
from gdbmi import normalize, served
from rsp import RspClient, it_block_stops, le, parse_stop
from test_gdb_aarch64 import START, qemu_outputs, syxdbg_outputs

#: The stacks: syxdbg's below 0xbefff000 (Linux's 3G/1G split), qemu-arm's below 0x40800000.
_STACK32 = re.compile(r"0x(beff[0-9a-f]{4}|407f[0-9a-f]{4}|4080[0-9a-f]{4})\b")


def norm(text: str) -> str:
    return _STACK32.sub("STACK", normalize(text))

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


@pytest.mark.parametrize("toolchain", ["arm", "thumb"])
@pytest.mark.parametrize("program,args,commands", GDB_CASES)
def test_arm_matches_qemu_gdbstub(build_program: Callable[..., Path],
                                  require_tool: Callable[[str], str], toolchain: str,
                                  program: str, args: tuple[str, ...],
                                  commands: list[str]) -> None:
    qemu = require_tool("qemu-arm")
    exe = build_program(program, toolchain)
    want = qemu_outputs(exe, args, commands, qemu)
    got = syxdbg_outputs(exe, args, commands)
    for (cmd, w), (_, g) in zip(want, got, strict=True):
        assert norm(g) == norm(w), f"{cmd!r}:\n--- qemu\n{w}\n--- syxdbg\n{g}"


@pytest.mark.parametrize("toolchain", ["arm", "thumb"])
def test_arm_reverse_continue_to_a_watchpoint_and_reverse_finish(
        build_program: Callable[..., Path], toolchain: str) -> None:
    out = syxdbg_outputs(build_program("corrupt", toolchain), (), [
        "break run_day", START, "watch ledger.balance", "continue", "continue",
        "reverse-continue", "reverse-finish", "stepi", "reverse-stepi", "info registers pc",
        "next", "delete", "continue",
    ])
    text = [o for _, o in out]
    assert "Old value = 0\nNew value = 120\n" in text[3]
    assert "Old value = 120\nNew value = 75\n" in text[4]
    assert "apply_transaction (amount=-45) at corrupt.c:82" in text[4]
    # Backwards, the same store undone: the old and new values swap.
    assert "Old value = 75\nNew value = 120\n" in text[5]
    assert "apply_transaction (amount=-45) at corrupt.c:82" in text[5]
    assert "Run back to call of #0" in text[6] and "process_batch" in text[6]
    back_pc = text[9]
    assert "apply_transaction (amount=-45) at corrupt.c:81" in text[7]
    assert "process_batch" in text[8]
    assert "<process_batch+" in back_pc
    # Forward again over the same call: the watchpoint hits at the same store.
    assert "Old value = 120\nNew value = 75\n" in text[10]
    assert "exited with code 01" in text[12]


def test_thumb_breakpoint_kinds_on_16_and_32_bit_instructions(
        build_program: Callable[..., Path]) -> None:
    """gdb plants Thumb breakpoints with kind 2 (16-bit instruction) or 3 (32-bit Thumb-2
    instruction), ARM ones with kind 4; each stops before its instruction."""
    exe = build_program("loop", "thumb")
    out = syxdbg_outputs(exe, (), [
        "break main", START, "x/6i $pc", "stepi", "stepi", "stepi", "info registers pc",
        "break *$pc", "reverse-stepi", "continue", "info registers pc", "delete",
        "continue",
    ])
    text = [o for _, o in out]
    pc_after = text[6].split()[1]
    assert pc_after in text[10], text[10]
    assert "Breakpoint" in text[9]


@pytest.mark.parametrize("toolchain,sizes", [("thumb", {2: 2, 4: 3}), ("arm", {4: 4})])
def test_z0_kinds_plant_breakpoints_in_each_state(build_program: Callable[..., Path],
                                                   toolchain: str,
                                                   sizes: dict[int, int]) -> None:
    """Raw RSP: ``Z0,addr,kind`` with gdb's arm kinds (2: 16-bit Thumb, 3: 32-bit Thumb-2,
    4: ARM) stops before the instruction; ``z0`` with the same kind removes it; the pc
    (register 15) and CPSR.T (register 25) say where and in which state."""
    exe = build_program("loop", toolchain)
    with served(str(exe)) as srv:
        rsp = RspClient(srv.port)
        try:
            main = srv.session.symbols["main"]
            mode = capstone.CS_MODE_THUMB if toolchain == "thumb" else capstone.CS_MODE_ARM
            cs = capstone.Cs(capstone.CS_ARCH_ARM, mode)
            insns = [(a, n) for a, n, _, _ in
                     cs.disasm_lite(srv.session.mem.read(main, 64), main)][2:]
            for size, kind in sizes.items():
                addr = next(a for a, n in insns if n == size)
                assert rsp.ask(b"Z0,%x,%d" % (addr, kind)) == b"OK"
                sig, _ = parse_stop(rsp.ask(b"c"))
                assert sig == 5
                assert le(rsp.ask(b"pf").decode()) == addr
                thumb = bool(le(rsp.ask(b"p19").decode()) & 0x20)
                assert thumb == (toolchain == "thumb")
                assert rsp.ask(b"z0,%x,%d" % (addr, kind)) == b"OK"
                insns = [i for i in insns if i[0] > addr]
        finally:
            rsp.close()


#: Thumb code with an IT block: ``ite gt`` then a 16-bit and a 32-bit conditional
#: instruction, called with 1 (the first condition fails) and 11 (the second fails).
IT_C = r"""
#include <stdio.h>
__attribute__((noinline)) int itfunc(int x) {
    int r;
    __asm__ volatile(
        ".syntax unified\n"
        "mov r0, %1\n"
        "cmp r0, #5\n"
        ".globl it_start\n"
        "it_start: ite gt\n"
        ".globl it_then\n"
        "it_then: addgt r0, r0, #100\n"
        ".globl it_else\n"
        "it_else: movle.w r0, #7\n"
        "mov %0, r0\n"
        : "=r"(r) : "r"(x) : "r0", "cc");
    return r;
}
int main(int argc, char **argv) {
    (void)argv;
    int a = itfunc(argc);
    int b = itfunc(argc + 10);
    printf("%d %d\n", a, b);
    return 0;
}
"""


@pytest.fixture(scope="module")
def it_program(tmp_path_factory: pytest.TempPathFactory,
               require_tool: Callable[[str], str]) -> Path:
    import subprocess

    out = tmp_path_factory.mktemp("itblock")
    (out / "itblock.c").write_text(IT_C)
    exe = out / "itblock"
    subprocess.run([require_tool("arm-linux-gnueabihf-gcc"), "-static", "-O1", "-g", "-mthumb",
                    "-o", str(exe), "itblock.c"], cwd=out, check=True)
    return exe


def test_gdb_breakpoints_and_steps_in_an_it_block_match_qemu(
        it_program: Path, require_tool: Callable[[str], str]) -> None:
    """gdb on a GNU/Linux program moves a breakpoint inside an IT block to its IT
    instruction ("Breakpoint address adjusted"): it stops there; stepi then visits every
    instruction of the block, taken or not, as under qemu-arm."""
    qemu = require_tool("qemu-arm")
    commands = ["break *it_then", "break *it_else", START, "info registers pc", "stepi",
                "x/i $pc", "stepi", "x/i $pc", "stepi", "x/i $pc", "info registers r0",
                "continue", "info registers pc", "stepi", "stepi", "stepi",
                "info registers r0", "delete", "continue"]
    want = qemu_outputs(it_program, (), commands, qemu)
    got = syxdbg_outputs(it_program, (), commands)
    for (cmd, w), (_, g) in zip(want, got, strict=True):
        assert norm(g) == norm(w), f"{cmd!r}:\n--- qemu\n{w}\n--- syxdbg\n{g}"
    # Stopped before the IT instruction; the steps: addgt, movle.w, then past the block.
    assert "addgt" in got[5][1] and "movle.w" in got[7][1]


def test_rsp_breakpoints_inside_an_it_block_stop_at_their_instruction(it_program: Path) -> None:
    """Raw RSP (no gdb adjustment): ``Z0`` kind 2 on the 16-bit and kind 3 on the 32-bit
    instruction inside the IT block stop before each, also where its condition fails (a
    BKPT is unconditional inside an IT block), forwards and backwards, at the exact
    position; ``z0`` removes them."""
    with served(str(it_program)) as srv:
        rsp = RspClient(srv.port)
        try:
            sym = srv.session.symbols
            then, other = sym["it_then"], sym["it_else"]
            seen = it_block_stops(rsp, then, other, lambda: srv.session.position)
            # r0: argc (1) at both of the first call (addgt fails), 11 then 111 (movle fails).
            assert [(pc, r0) for pc, r0, _ in seen] == [(then, 1), (other, 1), (then, 11),
                                                        (other, 111)]
            assert seen[1][2] == seen[0][2] + 1 and seen[3][2] == seen[2][2] + 1
            back = []
            for _ in range(3):
                sig, _ = parse_stop(rsp.ask(b"bc"))
                assert sig == 5
                back.append((le(rsp.ask(b"pf").decode()), le(rsp.ask(b"p0").decode()),
                             srv.session.position))
            assert back == seen[2::-1]
            assert rsp.ask(b"z0,%x,2" % then) == b"OK"
            assert rsp.ask(b"z0,%x,3" % other) == b"OK"
            rsp.ask(b"c")  # on to the end of history: the block is passed again
            assert le(rsp.ask(b"pf").decode()) not in (then, other)
            assert srv.session.position > seen[3][2]
            assert srv.session.machine.breakpoints == frozenset()
        finally:
            rsp.close()
