"""Where ``break FUNCTION`` and ``step`` into a function stop, compared with real gdb on the
suite's optimised (-O1) programs: gdb is the oracle for prologue skipping."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from support import tool_missing

import syxdbg
from syxdbg.commands import make_registry

PROGRAMS = ("corrupt", "sortalloc", "hello", "fpsimd")


def _gdb(toolchain: str) -> str:
    name = "gdb-multiarch" if toolchain == "aarch64" else "gdb"
    path = shutil.which(name)
    if path is None:
        tool_missing(f"{name} is not installed")
    assert path is not None
    return path


def _own_functions(gdb: str, exe: Path, program: str) -> list[str]:
    out = subprocess.run([gdb, "-batch", "-nx", "-ex", "info functions -n", str(exe)],
                         capture_output=True, text=True, check=True).stdout
    section = out.split(f"File {program}.c:")[1].split("\n\n")[0]
    return re.findall(r"\b(\w+)\(", section)


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
@pytest.mark.parametrize("program", PROGRAMS)
def test_break_function_stops_where_gdb_does(build_program: Callable[..., Path],
                                             toolchain: str, program: str) -> None:
    gdb = _gdb(toolchain)
    exe = build_program(program, toolchain)
    funcs = _own_functions(gdb, exe, program)
    assert funcs, "no functions found"
    args = [a for f in funcs for a in ("-ex", f"break {f}")]
    out = subprocess.run([gdb, "-batch", "-nx", *args, str(exe)], capture_output=True,
                         text=True, check=True).stdout
    found = re.findall(r"at (0x[0-9a-f]+): file \S+, line (\d+)\.", out)
    assert len(found) == len(funcs), out
    want = {f: (int(a, 16), int(line)) for f, (a, line) in zip(funcs, found, strict=True)}
    with syxdbg.open(str(exe), env={}) as s:
        registry = make_registry(s)
        di = registry.ctx.debuginfo
        got = {}
        for f in funcs:
            address = di.after_prologue(s.image.symbols[f])
            row = di.line_at(address)
            got[f] = (address, row.line if row else 0)
        assert got == want
        # and the shell's own command agrees
        text = registry.run_text(f"break {funcs[0]}")
        assert f"{want[funcs[0]][0]:#x}" in text, text


def test_step_into_functions_stops_where_native_gdb_does(
        build_program: Callable[..., Path]) -> None:
    """The shell's ``step`` from main, 40 times (into and out of calls, over library
    functions without line information), visits the same pcs as native gdb's ``step``."""
    gdb = _gdb("gcc")
    exe = build_program("corrupt")
    steps = 40
    cmds = ["break main", "run"] + ["step", "printf \"PC=%#lx\\n\", $pc"] * steps
    args = [a for c in cmds for a in ("-ex", c)]
    out = subprocess.run(["env", "-i", gdb, "-batch", "-nx", *args, str(exe)],
                         capture_output=True, text=True, check=True).stdout
    native = [int(x, 16) for x in re.findall(r"^PC=(0x[0-9a-f]+)$", out, re.M)]
    assert len(native) == steps, out
    with syxdbg.open(str(exe), env={}) as s:
        registry = make_registry(s)
        registry.run("break main")
        registry.run("run")
        ours = []
        for _ in range(steps):
            registry.run("step")
            ours.append(s.regs.pc)
    assert [hex(p) for p in ours] == [hex(p) for p in native]
