"""Debugging details on the Cortex-M machine: breakpoints inside Thumb IT blocks (raw RSP
and gdb-multiarch, which moves them to the IT instruction) and reading peripheral
registers from gdb."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from fwbuild import BOARD, build_firmware
from support import tool_missing

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gdb"))
from gdbmi import Gdb, served  # noqa: E402
from rsp import RspClient, le, parse_stop  # noqa: E402


@pytest.fixture(scope="module")
def gdb_multiarch() -> str:
    path = shutil.which("gdb-multiarch")
    if path is None:
        tool_missing("gdb-multiarch is not installed")
    assert path is not None
    return path


def gdb_outputs(gdb_path: str, program: str, commands: list[str]) -> list[str]:
    elf = build_firmware(program)
    with served(str(elf), options={"board": str(BOARD)}) as srv:
        gdb = Gdb(gdb_path, str(elf))
        try:
            gdb.cli(f"target remote :{srv.port}")
            return [gdb.cli(c, check=False) for c in commands]
        finally:
            gdb.close()


def test_rsp_breakpoints_inside_an_it_block() -> None:
    """``Z0`` kind 2 (16-bit ``addgt``) and kind 3 (32-bit ``movle.w``) inside ``ite gt``:
    each stops before its instruction, taken or not, at consecutive positions; backwards
    too."""
    elf = build_firmware("itblock")
    with served(str(elf), options={"board": str(BOARD)}) as srv:
        rsp = RspClient(srv.port)
        try:
            sym = srv.session.symbols
            then, other = sym["it_then"], sym["it_else"]
            assert rsp.ask(b"Z0,%x,2" % then) == b"OK"
            assert rsp.ask(b"Z0,%x,3" % other) == b"OK"
            seen = []
            for _ in range(4):
                sig, _ = parse_stop(rsp.ask(b"c"))
                assert sig == 5
                seen.append((le(rsp.ask(b"pf").decode()), le(rsp.ask(b"p0").decode()),
                             srv.session.position))
            assert [(pc, r0) for pc, r0, _ in seen] == [(then, 1), (other, 1), (then, 11),
                                                        (other, 111)]
            assert seen[1][2] == seen[0][2] + 1 and seen[3][2] == seen[2][2] + 1
            sig, _ = parse_stop(rsp.ask(b"bc"))
            assert (le(rsp.ask(b"pf").decode()), srv.session.position) == (then, seen[2][2])
        finally:
            rsp.close()


def test_gdb_moves_an_it_block_breakpoint_to_the_it_instruction(gdb_multiarch: str) -> None:
    out = gdb_outputs(gdb_multiarch, "itblock", [
        "break *it_then", "continue", "info registers pc r0", "stepi", "x/i $pc", "stepi",
        "x/i $pc", "continue", "info registers r0"])
    assert "Breakpoint address adjusted" in out[0]
    assert "Breakpoint 1," in out[1] and "itfunc (x=x@entry=1)" in out[1]
    assert "addgt" in out[4] and "movle.w" in out[6]
    assert "itfunc (x=x@entry=11)" in out[7] and "0xb" in out[8]
