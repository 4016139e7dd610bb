"""The RISC-V 64 machine (RV64GC, lp64d). Oracle: the same static binaries under
``qemu-riscv64``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import progs
import pytest
from arch_programs import CASES, case_id, check_case, record_and_check

import syxdbg
from syxdbg.machine.arch import get_arch


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_program_matches_qemu_riscv64(case: tuple[str, tuple[str, ...], bytes],
                                      build_program: Callable[..., Path],
                                      require_tool: Callable[[str], str],
                                      tmp_path: Path) -> None:
    require_tool("qemu-riscv64")
    check_case(build_program(case[0], "riscv64"), case, tmp_path)


def test_arch_spec_and_target_description() -> None:
    rv = get_arch("riscv64")
    regs = {r.name: r.regnum for r in rv.registers}
    assert regs["zero"] == 0 and regs["a0"] == 10 and regs["pc"] == 32
    assert regs["ft0"] == 33 and regs["ft11"] == 64 and regs["fcsr"] == 68
    # AT_HWCAP: one bit per letter of RV64IMAFDC.
    assert rv.hwcap == sum(1 << (ord(c) - ord("a")) for c in "imafdc")
    assert rv.register("x10") == rv.register("a0") and rv.register("s0").name == "fp"


def test_ebreak_is_sigtrap_and_compressed_code_counts_exactly(
        build_program: Callable[..., Path]) -> None:
    exe = build_program("segv", "riscv64")
    s = syxdbg.open(str(exe), ["ill"])
    try:
        ev = s.cont()
        assert ev.signal == 5 and s.machine.disassemble(s.regs.pc)[0][1] in ("ebreak", "c.ebreak")
        end = s.position
        # Reverse invariant on compressed (2-byte) and 4-byte instructions.
        s.seek(end - 40)
        states = [(s.position, s.regs.snapshot())]
        for _ in range(20):
            s.step()
            states.append((s.position, s.regs.snapshot()))
        for pos, regs in reversed(states[:-1]):
            s.step("reverse")
            assert s.position == pos and s.regs.snapshot() == regs
    finally:
        s.close()


def test_fpu_state_reaches_gdb_registers(build_program: Callable[..., Path]) -> None:
    exe = build_program("fpsimd", "riscv64")
    out = subprocess.run([sys.executable, "-m", "syxdbg", "run", str(exe)], capture_output=True,
                         check=False)
    assert out.stdout == progs.native_run(exe).stdout


def test_record_replay_check(build_program: Callable[..., Path], tmp_path: Path) -> None:
    out = record_and_check(build_program("corrupt", "riscv64"), (), tmp_path)
    assert "exited with status 1, as recorded" in out and "digest match" in out


@pytest.mark.parametrize("case", [c for c in CASES if c[0] in ("hello", "corrupt", "filecopy")],
                         ids=case_id)
def test_dynamic_program_matches_qemu(case: tuple[str, tuple[str, ...], bytes],
                                      build_program: Callable[..., Path],
                                      require_tool: Callable[[str], str],
                                      tmp_path: Path) -> None:
    """Dynamically linked: ld-linux and libc from the cross sysroot (qemu-user's ``-L``)."""
    check_case(build_program(case[0], "riscv64-dyn"), case, tmp_path)

THREADS_C = r"""
#include <pthread.h>
#include <stdio.h>
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long total;
static __thread int mine;
static void *work(void *arg) {
    for (int i = 0; i < 20000; i++) {
        pthread_mutex_lock(&mu); total += (long)arg; pthread_mutex_unlock(&mu); mine++;
    }
    return (void *)(long)mine;
}
int main(void) {
    pthread_t t[4]; long sum = 0;
    for (long i = 0; i < 4; i++) pthread_create(&t[i], NULL, work, (void *)(i + 1));
    for (int i = 0; i < 4; i++) { void *r; pthread_join(t[i], &r); sum += (long)r; }
    printf("total %ld sum %ld\n", total, sum);
    return 0;
}
"""


def test_threads_with_tls_match_qemu(tmp_path: Path, require_tool: Callable[[str], str]) -> None:
    """pthreads: clone with CLONE_SETTLS sets each thread's pointer, futexes, joins."""
    src = tmp_path / "threads.c"
    src.write_text(THREADS_C)
    exe = tmp_path / "threads"
    subprocess.run([require_tool("riscv64-linux-gnu-gcc"), "-static", "-O1",
                    "-pthread", "-o", str(exe), str(src)], check=True)
    native = progs.native_run(exe)
    emu = subprocess.run([sys.executable, "-m", "syxdbg", "run", str(exe)], capture_output=True,
                         check=False)
    assert native.stdout == emu.stdout == b"total 200000 sum 80000\n"
    out = record_and_check(exe, (), tmp_path)
    assert "exited with status 0, as recorded" in out
