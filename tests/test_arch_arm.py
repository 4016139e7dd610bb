"""The 32-bit ARM machine (ARMv7-A EABI hard-float, ARM and Thumb-2 code mixed).

Oracle: the same static binaries under ``qemu-arm``. Debian's armhf glibc is Thumb-2 code,
so even ``-marm`` builds run Thumb code with IT blocks (and its ARM-state memcpy/memset).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import progs
import pytest
from arch_programs import CASES, case_id, check_case, record_and_check

import syxdbg
from syxdbg.loader.kuser import KUSER_GET_TLS, kuser_page
from syxdbg.machine import Machine
from syxdbg.machine.arch import get_arch
from syxdbg.machine.events import Exited, Stopped
from syxdbg.timeline import WatchStop

TOOLCHAINS = ("arm", "thumb")

KUSER_C = r"""
#include <stdio.h>
#include <stdint.h>
typedef int (*cmpxchg_t)(int oldval, int newval, volatile int *ptr);
typedef int (*cmpxchg64_t)(const int64_t *oldval, const int64_t *newval,
                           volatile int64_t *ptr);
typedef void *(*get_tls_t)(void);
typedef void (*barrier_t)(void);
static __thread int tls_var = 42;
int main(void) {
    volatile int v = 5;
    volatile int64_t w = 1;
    int64_t o = 1, n = 0x100000002LL, o2 = 7;
    int a = ((cmpxchg_t)0xffff0fc0)(5, 7, &v);
    int b = ((cmpxchg_t)0xffff0fc0)(5, 9, &v);
    int c = ((cmpxchg64_t)0xffff0f60)(&o, &n, &w);
    int d = ((cmpxchg64_t)0xffff0f60)(&o2, &n, &w);
    ((barrier_t)0xffff0fa0)();
    char *tp = ((get_tls_t)0xffff0fe0)();
    printf("cmpxchg %d %d v=%d\n", a == 0, b == 0, v);
    printf("cmpxchg64 %d %d w=%llx\n", c == 0, d == 0, (unsigned long long)w);
    printf("tls %d version %d var %d\n", tp == __builtin_thread_pointer(),
           *(volatile int *)0xffff0ffc, tls_var);
    return 0;
}
"""

# A Thumb IT block in the middle of a loop: stepping must visit every instruction it
# covers (the ones whose condition fails included), one position each.
IT_C = r"""
#include <stdio.h>
__attribute__((noinline)) int pick(int a, int b) {
    int r;
    __asm__ volatile("cmp %1, %2\n\titte gt\n\tmovgt %0, %1\n\taddgt %0, %0, #1\n"
                     "\tmovle %0, %2\n" : "=&r"(r) : "r"(a), "r"(b) : "cc");
    return r;
}
int main(void) {
    int total = 0;
    for (int i = 0; i < 40; i++)
        total += pick(i, 20);
    printf("total %d\n", total);
    return 0;
}
"""

# A store inside a Thumb IT block that is the first store to its page (in an epoch of the
# snapshot journal: after any checkpoint push, every page). Unicorn's TLB fill restores the
# CPU state of that store, IT state included, and leaves the IT bits set afterwards.
IT_STORE_C = r"""
#include <stdio.h>
#define PAGES 48
static char buf[(PAGES + 1) * 4096] __attribute__((aligned(4096)));
__attribute__((noinline)) unsigned fill(int n) {
    unsigned sum = 0;
    for (int i = 0; i < n; i++) {
        char *p = buf + i * 4096;
        __asm__ volatile("cmp %1, #40\n\titt ls\n\tstrls %1, [%0]\n\taddls %2, %2, #3\n"
                         : "+r"(p), "+r"(i), "+r"(sum) : : "cc", "memory");
        sum = sum * 5 + (unsigned)i;
    }
    return sum;
}
int main(void) {
    unsigned s = fill(PAGES);
    unsigned t = 0;
    for (int i = 0; i < PAGES; i++)
        t += (unsigned char)buf[i * 4096];
    printf("%u %u\n", s, t);
    return 0;
}
"""


def _build_c(tmp_path: Path, name: str, source: str, mode: str,
             require_tool: Callable[[str], str]) -> Path:
    cc = require_tool("arm-linux-gnueabihf-gcc")
    src = tmp_path / f"{name}.c"
    src.write_text(source)
    exe = tmp_path / f"{name}-{mode}"
    subprocess.run([cc, "-static", "-O1", "-g", f"-m{mode}", "-o", str(exe), str(src)],
                   check=True)
    return exe


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_program_matches_qemu_arm(case: tuple[str, tuple[str, ...], bytes], toolchain: str,
                                  build_program: Callable[..., Path],
                                  require_tool: Callable[[str], str], tmp_path: Path) -> None:
    require_tool("qemu-arm")
    check_case(build_program(case[0], toolchain), case, tmp_path)


def test_arch_spec_and_target_description() -> None:
    arm = get_arch("arm")
    assert get_arch("thumb") is arm and arm.bits == 32 and arm.elf_machine == 40
    regs = {r.name: r.regnum for r in arm.registers}
    assert regs["r0"] == 0 and regs["pc"] == 15 and regs["cpsr"] == 25
    assert regs["d0"] == 26 and regs["d31"] == 57 and regs["fpscr"] == 58
    # glibc looks at these AT_HWCAP bits: VFP, NEON, VFPv3, TLS, VFPD32.
    for bit in (64, 4096, 8192, 32768, 524288):
        assert arm.hwcap & bit


def test_kuser_page_holds_the_helpers() -> None:
    page = kuser_page()
    assert len(page) == 4096 and page[0xFFC:] == (5).to_bytes(4, "little")
    m = Machine(get_arch("arm"))
    from syxdbg.loader.kuser import map_kuser_page
    map_kuser_page(m)
    assert m.disassemble(KUSER_GET_TLS, 2)[0][1] == "mrc"
    assert m.disassemble(KUSER_GET_TLS, 2)[1][1:3] == ("bx", "lr")


@pytest.mark.parametrize("mode", ["arm", "thumb"])
def test_kuser_helpers_match_qemu(mode: str, tmp_path: Path,
                                  require_tool: Callable[[str], str]) -> None:
    require_tool("qemu-arm")
    exe = _build_c(tmp_path, "kuser", KUSER_C, mode, require_tool)
    native = progs.native_run(exe)
    assert native.returncode == 0 and b"cmpxchg 1 0 v=7" in native.stdout
    out = subprocess.run([sys.executable, "-m", "syxdbg", "run", str(exe)], capture_output=True,
                         check=False)
    assert out.stdout == native.stdout and out.returncode == 0


def test_thumb_it_block_steps_one_instruction_at_a_time_and_reverses(
        tmp_path: Path, require_tool: Callable[[str], str]) -> None:
    exe = _build_c(tmp_path, "itblock", IT_C, "thumb", require_tool)
    s = syxdbg.open(str(exe), [])
    try:
        s.add_breakpoint("pick")
        s.cont()
        s.cont()  # the second call: pick(1, 20)
        states = [(s.position, s.regs.snapshot())]
        pcs = []
        for _ in range(12):
            pcs.append(s.regs.pc)
            s.step()
            assert s.position == states[-1][0] + 1
            states.append((s.position, s.regs.snapshot()))
        # The IT block's three instructions are each one stop, taken or not.
        code = {a: mnem for a, mnem, _, _ in s.machine.disassemble(s.symbols["pick"], 12)}
        it_at = next(a for a, mnem in code.items() if mnem.startswith("itte"))
        covered = sorted(a for a in code if a > it_at)[:3]
        assert all(a in pcs for a in covered), (pcs, covered)
        # Reverse invariant: reverse-stepi from N gives the state recorded at N - 1.
        for pos, regs in reversed(states[:-1]):
            s.step("reverse")
            assert s.position == pos and s.regs.snapshot() == regs
        # A fresh run to the same position through one bounded run agrees.
        end_pos, end_regs = states[-1]
        t = syxdbg.open(str(exe), [])
        try:
            t.run(count=end_pos)
            assert t.position == end_pos and t.regs.snapshot() == end_regs
        finally:
            t.close()
    finally:
        s.close()
    native = progs.native_run(exe)
    emu = subprocess.run([sys.executable, "-m", "syxdbg", "run", str(exe)], capture_output=True,
                         check=False)
    assert native.stdout == emu.stdout == b"total 1009\n"


def test_it_block_stores_that_fill_the_tlb_keep_positions_exact(
        tmp_path: Path, require_tool: Callable[[str], str]) -> None:
    """Issue 17's seek bug: with the snapshot journal's virtual TLB, such a store left a
    stale IT state, the next block was translated as if inside an IT block and ran
    uncounted (Unicorn ignores stops from its hooks there): here 410 of 8,231 instructions
    were lost, and a seek (which pushes checkpoints on the way, so every page fills again)
    landed elsewhere than a run of the same count (glibc's _dl_aux_init in signals.c went
    on to fault). Without a timeline there is no virtual TLB: its count is the reference."""
    exe = _build_c(tmp_path, "itstore", IT_STORE_C, "thumb", require_tool)
    with syxdbg.open(str(exe), [], env={}, options={"timeline": False}) as plain:
        want = plain.run()
        assert isinstance(want, Exited) and not plain.has_timeline
    with syxdbg.open(str(exe), [], env={}) as s:
        s.add_breakpoint("fill")
        s.cont()
        start = s.position
        got = s.run()
        assert (got.position, got.pc) == (want.position, want.pc)
    for k in range(start + 3, start + 700, 53):  # seeks and runs land on the same states
        with syxdbg.open(str(exe), [], env={}) as a, syxdbg.open(str(exe), [], env={}) as b:
            a.run(count=k)
            b.seek(k)
            assert (b.position, b.regs.snapshot()) == (k, a.regs.snapshot()), k
    native = progs.native_run(exe)
    assert native.stdout == b"2742115507 820\n"


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_record_replay_check(toolchain: str, build_program: Callable[..., Path],
                             tmp_path: Path) -> None:
    out = record_and_check(build_program("corrupt", toolchain), (), tmp_path)
    assert "exited with status 1, as recorded" in out and "digest match" in out


@pytest.mark.parametrize("case", [c for c in CASES if c[0] in ("hello", "corrupt", "filecopy")],
                         ids=case_id)
def test_dynamic_program_matches_qemu(case: tuple[str, tuple[str, ...], bytes],
                                      build_program: Callable[..., Path],
                                      require_tool: Callable[[str], str],
                                      tmp_path: Path) -> None:
    """Dynamically linked: ld-linux and libc from the cross sysroot (qemu-user's ``-L``)."""
    check_case(build_program(case[0], "arm-dyn"), case, tmp_path)

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
    subprocess.run([require_tool("arm-linux-gnueabihf-gcc"), "-static", "-O1", "-mthumb",
                    "-pthread", "-o", str(exe), str(src)], check=True)
    native = progs.native_run(exe)
    emu = subprocess.run([sys.executable, "-m", "syxdbg", "run", str(exe)], capture_output=True,
                         check=False)
    assert native.stdout == emu.stdout == b"total 200000 sum 80000\n"
    out = record_and_check(exe, (), tmp_path)
    assert "exited with status 0, as recorded" in out


PIPE_C = r"""
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
static int fds[2];
static void *reader(void *arg) {
    char buf[16]; long n = 0, got;
    while ((got = read(fds[0], buf, sizeof buf)) > 0) n += got;
    return (void *)n;
}
int main(void) {
    pthread_t t; void *r;
    pipe(fds);
    pthread_create(&t, NULL, reader, NULL);
    for (volatile int i = 0; i < 300000; i++) {}
    for (int k = 0; k < 50; k++) write(fds[1], "0123456789", 10);
    close(fds[1]);
    pthread_join(t, &r);
    printf("read %ld\n", (long)r);
    return 0;
}
"""


def test_thumb_thread_waiting_on_a_pipe_retries_its_svc(
        tmp_path: Path, require_tool: Callable[[str], str]) -> None:
    """A thread blocked reading an empty pipe makes its (2-byte Thumb) svc again later."""
    exe = _build_c(tmp_path, "pipe", PIPE_C, "thumb", require_tool)  # (pthreads are libc's)
    emu = subprocess.run([sys.executable, "-m", "syxdbg", "run", str(exe)], capture_output=True,
                         check=False)
    assert emu.stdout == progs.native_run(exe).stdout == b"read 500\n"


#: Stores inside a Thumb IT block (``itte gt``: a store, an add, the other store), run with
#: each condition: a write watchpoint hit there is a code hook's stop Unicorn defers to the
#: end of the IT block.
ITSTORE_C = r"""#include <stdio.h>
volatile int cells[4];
__attribute__((noinline)) void itstore(int x) {
    __asm__ volatile(
        ".syntax unified\n"
        "mov r0, %0\n"
        "mov r1, %1\n"
        "cmp r0, #5\n"
        ".globl its\n"
        "its: itte gt\n"
        ".globl st_then\n"
        "st_then: strgt r0, [r1]\n"
        "addgt r0, r0, #1\n"
        ".globl st_else\n"
        "st_else: strle r0, [r1, #4]\n"
        "add r0, r0, #2\n"
        "str r0, [r1, #8]\n"
        : : "r"(x), "r"(cells) : "r0", "r1", "cc", "memory");
}
int main(int argc, char **argv) {
    (void)argv;
    itstore(argc);
    itstore(argc + 10);
    printf("%d %d %d\n", cells[0], cells[1], cells[2]);
    return 0;
}
"""


def test_watchpoint_hits_inside_an_it_block_are_exact(
        tmp_path: Path, require_tool: Callable[[str], str]) -> None:
    """Each hit stops before its store, at the store's position (the instructions after it
    up to the block's end undone), also the first store of the block; re-executing from
    the start with the watchpoints reads the event log at the same positions (the count
    used to come out 2 short: a replay divergence)."""
    exe = _build_c(tmp_path, "itstore", ITSTORE_C, "thumb", require_tool)
    assert progs.native_run(exe).stdout == b"11 1 14\n"
    with syxdbg.open(str(exe), [], env=dict(progs.DEFAULT_ENV)) as s:
        sym = s.symbols
        s.add_breakpoint(sym["its"])
        its = []
        while isinstance(s.cont(), Stopped):
            its.append(s.position)
        s.remove_breakpoint(sym["its"])
        s.seek(0)
        s.add_watchpoint(sym["cells"], 4, "write")
        s.add_watchpoint(sym["cells"] + 4, 4, "write")
        hits = []
        while isinstance(ev := s.cont(), WatchStop):
            hits.append((s.regs.pc, s.position, s.mem.read(sym["cells"], 8)))
        assert isinstance(ev, Exited) and ev.status == 0
        # Call 1 (x=1): strgt and addgt fail, strle stores; call 2 (x=11): strgt stores.
        assert [(pc, pos) for pc, pos, _ in hits] == [(sym["st_else"], its[0] + 3),
                                                       (sym["st_then"], its[1] + 1)]
        assert hits[1][2] == bytes(4) + (1).to_bytes(4, "little")  # before the store
        s.remove_watchpoint(sym["cells"], 4, "write")
        s.remove_watchpoint(sym["cells"] + 4, 4, "write")
        s.seek(hits[1][1])
        assert s.regs.pc == sym["st_then"]
        s.step()
        assert s.mem.read(sym["cells"], 4) == (11).to_bytes(4, "little")


def test_trace_of_thumb_it_blocks_has_every_instruction(
        tmp_path: Path, require_tool: Callable[[str], str]) -> None:
    """An instruction trace over IT blocks whose instructions fail their condition (Unicorn
    calls no code hook for those) is complete: one line per position, each line's pc and
    registers those the session shows when it steps there."""
    from syxdbg.commands import make_registry

    exe = _build_c(tmp_path, "itstore", ITSTORE_C, "thumb", require_tool)
    out = tmp_path / "it.trace"
    with syxdbg.open(str(exe), [], env=dict(progs.DEFAULT_ENV)) as s:
        sym = s.symbols
        s.add_breakpoint(sym["its"])
        its = []
        while isinstance(s.cont(), Stopped):
            its.append(s.position)
        s.remove_breakpoint(sym["its"])
        start, stop = its[0] - 5, its[1] + 10
        text = make_registry(s).run_text(f"trace {out} {start} {stop}")
        assert text.startswith(f"trace of positions {start}..{stop} written to {out}: "
                               f"{stop - start} lines"), text
        regs = ("r0", "r1", "r2", "r3")
        state: dict[str, int] = {}
        for k, line in enumerate(out.read_text().splitlines()):
            items = dict(item.split("=") for item in line.split(","))
            state.update({n: int(v, 16) for n, v in items.items() if n in regs})
            s.seek(start + k)
            assert s.regs.pc == int(items["pc"], 16), k
            assert all(s.regs[n] == state[n] for n in state), k
