"""The scripting API (docs/api.md) on real programs, both architectures."""

from __future__ import annotations

import pytest

import syxdbg
from syxdbg.machine import Exited, Stopped

ARGS = {"x86_64": ("rdi", "rsi"), "aarch64": ("x0", "x1")}


@pytest.mark.parametrize("toolchain,arch", [("gcc", "x86_64"), ("musl", "x86_64"),
                                            ("aarch64", "aarch64"), ("gcc-pie", "x86_64")])
def test_run_until_main_then_inspect_and_finish(build_program, toolchain: str, arch: str
                                                ) -> None:
    path = str(build_program("hello", toolchain))
    env = {"SYXDBG_TEST_VAR": "api"}
    with syxdbg.open(path, ["--exit=7", "second"], env=env) as s:
        assert s.position == 0 and s.machine.arch.name == arch
        main = s.symbols["main"]
        ev = s.run(until="main")
        assert isinstance(ev, Stopped) and ev.why == "until"
        assert s.regs.pc == main == ev.pc and s.position == ev.position > 0
        argc_reg, argv_reg = ARGS[arch]
        assert s.regs[argc_reg] == 3
        argv = s.regs[argv_reg]
        arg1 = int.from_bytes(s.mem.read(argv + 8, 8), "little")
        assert s.mem.read_cstring(arg1) == b"--exit=7"
        # Registers write by name; symbol+offset resolves.
        assert s.resolve("main+4") == main + 4
        at_main = s.position
        end = s.run()
        assert isinstance(end, Exited) and end.status == 7
        assert end.position > at_main
    # Positions are deterministic: a second session in bounded steps ends at the same count.
    with syxdbg.open(path, ["--exit=7", "second"], env=env) as s2:
        ev = s2.run(count=at_main)
        assert ev.why == "count" and s2.regs.pc == main
        done = s2.run()
        assert isinstance(done, Exited) and done.position == end.position


def test_documented_example_counts_the_instructions_of_main(build_program) -> None:
    s = syxdbg.open(str(build_program("corrupt", "gcc")), env={})
    s.run(until="main")
    start = s.position
    ret = int.from_bytes(s.mem.read(s.regs.sp, 8), "little")
    ev = s.run(until=ret)
    assert isinstance(ev, Stopped) and ev.why == "until" and s.regs.pc == ret
    assert s.position - start > 1000
    assert isinstance(s.run(), Exited)
    s.close()


def test_memory_and_register_writes_change_what_the_program_does(build_program) -> None:
    # Rewrite argv[1] in guest memory at main: the program exits with the status we wrote.
    path = str(build_program("hello", "musl"))
    with syxdbg.open(path, ["--exit=7"], env={}) as s:
        s.run(until="main")
        arg1 = int.from_bytes(s.mem.read(s.regs.rsi + 8, 8), "little")
        assert s.mem.read_cstring(arg1) == b"--exit=7"
        s.mem.write(arg1 + 7, b"9")
        s.regs.rdi = 2  # argc, by name
        assert s.regs["rdi"] == 2
        end = s.run()
        assert isinstance(end, Exited) and end.status == 9


def test_bad_symbol_and_unmapped_memory_are_clear_errors(build_program) -> None:
    with syxdbg.open(str(build_program("hello", "gcc")), env={}) as s:
        with pytest.raises(syxdbg.SyxdbgError, match="no symbol 'nope'"):
            s.run(until="nope")
        with pytest.raises(syxdbg.MemoryAccessError, match="not mapped"):
            s.mem.read(0x10, 4)
        with pytest.raises(syxdbg.SyxdbgError, match="unknown register"):
            s.regs["xyz"]
