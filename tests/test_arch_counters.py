"""Time and cycle counters on the 32-bit ARM and RISC-V 64 Linux machines.

Every value a program reads is a function of the reading instruction's position (or the
read is SIGILL, as on Linux), so runs, re-executions after going backwards and replays
read the same values. What Unicorn 2.1.4 itself does (pinned below): ARM's generic-timer
and PMU reads from user mode are UNDEFINED (CNTKCTL is 0), RISC-V's ``rdtime`` is an
illegal instruction and ``rdcycle``/``rdinstret`` read the host's clock.
"""

from __future__ import annotations

import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import progs
import pytest
import unicorn
from arch_programs import record_and_check
from unicorn import arm_const, riscv_const

import syxdbg
from syxdbg.machine.arch.counters import ARM_CNTFRQ

COUNTERS_C = r"""/* Time and cycle counters read from user mode (tests/test_arch_counters.py). */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static sigjmp_buf back;
static void on_ill(int sig) { (void)sig; siglongjmp(back, 1); }

#if defined(__arm__)
/* Two reads of CNTVCT in a row (r4:r5, then r6:r7); the second is conditional. */
static void pair(unsigned long long *a, unsigned long long *b) {
    unsigned lo1, hi1, lo2, hi2;
    __asm__ volatile(".syntax unified\n"
                     ".globl cnt_read\n"
                     "cnt_read: mrrc p15, 1, r4, r5, c14\n"
                     "cmp r4, r4\n"
                     "it eq\n"
                     "mrrceq p15, 1, r6, r7, c14\n"
                     "mov %0, r4\nmov %1, r5\nmov %2, r6\nmov %3, r7\n"
                     : "=r"(lo1), "=r"(hi1), "=r"(lo2), "=r"(hi2) : : "r4", "r5", "r6", "r7", "cc");
    *a = ((unsigned long long)hi1 << 32) | lo1;
    *b = ((unsigned long long)hi2 << 32) | lo2;
}
static unsigned long long one(void) {
    unsigned lo, hi;
    __asm__ volatile("mrrc p15, 1, %0, %1, c14" : "=r"(lo), "=r"(hi));
    return ((unsigned long long)hi << 32) | lo;
}
static unsigned long freq(void) {
    unsigned f;
    __asm__ volatile("mrc p15, 0, %0, c14, c0, 0" : "=r"(f));
    return f;
}
static int trapped(const char *name) {
    unsigned lo = 0, hi = 0;
    if (!strcmp(name, "cntpct")) __asm__ volatile("mrrc p15, 0, %0, %1, c14" : "=r"(lo), "=r"(hi));
    else if (!strcmp(name, "pmccntr")) __asm__ volatile("mrc p15, 0, %0, c9, c13, 0" : "=r"(lo));
    else if (!strcmp(name, "cntv_ctl")) __asm__ volatile("mrc p15, 0, %0, c14, c3, 1" : "=r"(lo));
    else return -1;
    return (int)(lo + hi);
}
static unsigned long pmuserenr(void) {
    unsigned v;
    __asm__ volatile("mrc p15, 0, %0, c9, c14, 0" : "=r"(v));
    return v;
}
#elif defined(__riscv)
static void pair(unsigned long long *a, unsigned long long *b) {
    unsigned long x, y;
    __asm__ volatile(".globl cnt_read\n"
                     "cnt_read: rdtime t0\n"
                     "csrrs t1, time, zero\n"
                     "mv %0, t0\nmv %1, t1\n" : "=r"(x), "=r"(y) : : "t0", "t1");
    *a = x;
    *b = y;
}
static unsigned long long one(void) {
    unsigned long v;
    __asm__ volatile("rdtime %0" : "=r"(v));
    return v;
}
static unsigned long freq(void) { return 0; }
static int trapped(const char *name) {
    unsigned long v = 0;
    if (!strcmp(name, "cycle")) __asm__ volatile("rdcycle %0" : "=r"(v));
    else if (!strcmp(name, "instret")) __asm__ volatile("rdinstret %0" : "=r"(v));
    else if (!strcmp(name, "hpmcounter3")) __asm__ volatile("csrr %0, hpmcounter3" : "=r"(v));
    else return -1;
    return (int)v;
}
static unsigned long pmuserenr(void) { return 0; }
#endif

int main(int argc, char **argv) {
    if (argc > 2 && !strcmp(argv[1], "trap")) {
        signal(SIGILL, on_ill);
        if (sigsetjmp(back, 1)) {
            printf("%s: SIGILL\n", argv[2]);
            return 0;
        }
        int v = trapped(argv[2]);
        printf("%s: read %d\n", argv[2], v);
        return 1;
    }
    unsigned long long a, b;
    pair(&a, &b);
    volatile unsigned sink = 0;
    unsigned long long before = one();
    for (int i = 0; i < 1000; i++) sink += i;
    unsigned long long after = one();
    printf("pair %llu, loop %s, frequency %lu, pmuserenr %lu\n", b - a,
           after - before > 3000 && after - before < 20000 ? "ok" : "odd", freq(), pmuserenr());
    return 0;
}
"""

#: Toolchain -> instructions from cnt_read to the second counter read (inclusive).
READS_APART = {"arm": 2, "thumb": 3, "riscv64": 1}
TRAPPED = {"arm": ("cntpct", "pmccntr", "cntv_ctl"), "thumb": ("cntpct", "pmccntr", "cntv_ctl"),
           "riscv64": ("cycle", "instret", "hpmcounter3")}


@pytest.fixture(scope="module")
def counters_exe(tmp_path_factory: pytest.TempPathFactory,
                 require_tool: Callable[[str], str]) -> Callable[[str], Path]:
    out = tmp_path_factory.mktemp("counters")
    src = out / "counters.c"
    src.write_text(COUNTERS_C)
    built: dict[str, Path] = {}

    def build(toolchain: str) -> Path:
        if toolchain not in built:
            tc = progs.toolchain_for(toolchain)
            require_tool(tc.cc)
            exe = out / f"counters-{toolchain}"
            subprocess.run(tc.command(src, exe), check=True, capture_output=True)
            built[toolchain] = exe
        return built[toolchain]

    return build


def _first_two(s: syxdbg.Session, toolchain: str) -> tuple[int, int]:
    """The values of the two counter reads at cnt_read (the first one's, then the
    second's), from the registers they write."""
    if toolchain == "riscv64":
        return s.regs["t0"], s.regs["t1"]
    return s.regs["r4"] | s.regs["r5"] << 32, s.regs["r6"] | s.regs["r7"] << 32


@pytest.mark.parametrize("toolchain", ["arm", "thumb", "riscv64"])
def test_counter_reads_are_positions_and_go_backwards(toolchain: str,
                                                      counters_exe: Callable[[str], Path]
                                                      ) -> None:
    s = syxdbg.open(str(counters_exe(toolchain)), [], env=dict(progs.DEFAULT_ENV))
    try:
        s.run(until="cnt_read")
        at = s.position
        apart = READS_APART[toolchain]
        states = []
        for _ in range(apart + 1):
            s.step()
            states.append((s.position, _first_two(s, toolchain)))
        first, second = states[-1][1]
        assert (first, second) == (at, at + apart)  # the reading instruction's position
        if toolchain != "riscv64":
            assert s.regs["r5"] == 0 and s.regs["r7"] == 0
        end = s.cont()
        assert end.status == 0
        # Reverse invariant over the reads: backwards, then forwards, the same values.
        s.seek(states[-1][0])
        for pos, values in reversed(states[:-1]):
            s.step("backward")
            assert s.position == pos and _first_two(s, toolchain)[0] == values[0]
        for pos, values in states[1:]:
            s.step()
            assert (s.position, _first_two(s, toolchain)) == (pos, values)
        # A seek from far away re-executes the reads with the same result.
        s.seek(0)
        s.seek(states[-1][0])
        assert _first_two(s, toolchain) == (first, second)
    finally:
        s.close()


@pytest.mark.parametrize("toolchain", ["arm", "thumb", "riscv64"])
def test_counters_under_run_record_and_replay(toolchain: str, tmp_path: Path,
                                              counters_exe: Callable[[str], Path]) -> None:
    exe = counters_exe(toolchain)
    outs = [subprocess.run([sys.executable, "-m", "syxdbg", "run", str(exe)],
                           capture_output=True, timeout=300, check=False) for _ in range(2)]
    frequency = 0 if toolchain == "riscv64" else ARM_CNTFRQ
    want = (f"pair {READS_APART[toolchain]}, loop ok, frequency {frequency}, "
            f"pmuserenr 0\n").encode()
    assert [(o.stdout, o.returncode) for o in outs] == [(want, 0)] * 2
    out = record_and_check(exe, (), tmp_path)
    assert "exited with status 0, as recorded" in out and "digest match" in out


@pytest.mark.parametrize("toolchain", ["arm", "thumb", "riscv64"])
def test_counters_linux_keeps_from_user_mode_are_sigill(toolchain: str, tmp_path: Path,
                                                       counters_exe: Callable[[str], Path]
                                                       ) -> None:
    """ARM: CNTPCT, the virtual timer's registers and PMCCNTR (PMUSERENR.EN clear); RISC-V
    (Linux 6.6+, perf_user_access=1): cycle, instret, hpmcounterN. The guest's SIGILL
    handler runs (siglongjmp out of it)."""
    exe = counters_exe(toolchain)
    for name in TRAPPED[toolchain]:
        p = subprocess.run([sys.executable, "-m", "syxdbg", "run", str(exe), "trap", name],
                           capture_output=True, timeout=300, check=False)
        assert (p.stdout, p.returncode) == (f"{name}: SIGILL\n".encode(), 0), (name, p)
    out = record_and_check(exe, ("trap", TRAPPED[toolchain][0]), tmp_path)
    assert "as recorded" in out and "digest match" in out


def _raw(arch: int, mode: int, code: bytes, setup: Callable[[unicorn.Uc], None]
         ) -> tuple[unicorn.Uc, str]:
    uc = unicorn.Uc(arch, mode)
    setup(uc)
    uc.mem_map(0x10000, 0x1000)
    uc.mem_write(0x10000, code)
    try:
        uc.emu_start(0x10000, 0x10000 + len(code))
    except unicorn.UcError as exc:
        return uc, str(exc)
    return uc, "ok"


def test_unicorn_facts_the_emulation_rests_on() -> None:
    """Unicorn 2.1.4 without syxdbg: what each counter read does."""
    def riscv_user(uc: unicorn.Uc) -> None:
        uc.reg_write(riscv_const.UC_RISCV_REG_PRIV, 0)

    rdcycle2 = struct.pack("<II", 0xC0002673, 0xC00026F3)  # rdcycle a2; rdcycle a3
    uc, status = _raw(unicorn.UC_ARCH_RISCV, unicorn.UC_MODE_RISCV64, rdcycle2, riscv_user)
    a2, a3 = uc.reg_read(riscv_const.UC_RISCV_REG_A2), uc.reg_read(riscv_const.UC_RISCV_REG_A3)
    assert status == "ok" and a2 > 10**6 and a3 >= a2  # the host's cycle counter
    _, status = _raw(unicorn.UC_ARCH_RISCV, unicorn.UC_MODE_RISCV64,
                     struct.pack("<I", 0xC0102673), riscv_user)  # rdtime a2
    assert status != "ok"  # illegal instruction (no timer)

    def arm_user(uc: unicorn.Uc) -> None:
        uc.ctl_set_cpu_model(arm_const.UC_CPU_ARM_CORTEX_A15)
        uc.reg_write(arm_const.UC_ARM_REG_CPSR, 0x10)

    for word in (0xEC532F1E, 0xEE1E0F10, 0xEC532F0E, 0xEE190F1D):  # cntvct cntfrq cntpct pmccntr
        _, status = _raw(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_ARM, struct.pack("<I", word),
                         arm_user)
        assert "INSN_INVALID" in status or "Invalid instruction" in status, (hex(word), status)
