#!/usr/bin/env python3
"""Guest speed under syxdbg's Machine versus bare Unicorn, measured in one process.

The same guest code, x86_64, aarch64, arm (ARM and Thumb-2 state), riscv64 and cortex-m
(the Thumb-2 loops on the ARMv7-M firmware machine, no firmware layer), assembled here by
the cross toolchains, runs

* "mixed": a compute-and-store loop (the issue's target path: arithmetic plus two stores
  per iteration into a 16 MiB array), and
* "alu": a register-only 7-instruction loop, the worst case for per-block counting: each
  iteration is one translation block, so the C block hook's fixed cost (a TCG helper call,
  about 4 ns) is compared with 7 instructions that bare Unicorn runs in about 2.3 ns.

Each loop runs

* bare: a fresh ``unicorn.Uc`` with the code mapped and no hooks at all, and
* machine: a fresh syxdbg ``Machine`` (C block counter, syscall and fault hooks installed,
  guest RAM in syxdbg-owned buffers), through ``Machine.run(until=...)``.

Each configuration runs round-robin ``--reps`` times; the median per-thread CPU time gives
MIPS. Target (issue 2): machine / bare >= 0.9 on the mixed compute-and-store path. The alu
rows are printed for honesty: they show the price of exact instruction counting on tight
register loops (see docs/performance.md).

Usage: python benchmarks/run_speed.py [--iters N] [--reps R] [--quick]
(``--quick``: tiny sizes, a smoke test that the benchmark still runs; its figures mean little)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import unicorn

from syxdbg.machine import Machine, Perm, get_arch

CODE = 0x400000
DATA = 0x10000000
DATA_SIZE = 16 << 20

LOOPS = {
    ("x86_64", "mixed"): """
        .intel_syntax noprefix
        _start:
          mov rcx, {iters}
          xor r10, r10
          mov rdi, {data}
        1:
          lea rax, [rcx + 7]
          imul rax, rax, 13
          and r10, 0xffff8
          mov [rdi + r10*8], rax
          add r10, 8
          mov [rdi + r10*8 + 64], rcx
          dec rcx
          jnz 1b
        done:
          nop
    """,
    ("x86_64", "alu"): """
        .intel_syntax noprefix
        _start:
          mov rcx, {iters}
          mov rax, 1
          mov rbx, 3
        1:
          imul rax, rbx
          add rax, rcx
          xor rbx, rax
          shr rbx, 3
          or rbx, 1
          dec rcx
          jnz 1b
        done:
          nop
    """,
    ("aarch64", "mixed"): """
        _start:
          ldr x1, ={iters}
          ldr x2, ={data}
          mov x3, #0
        1:
          add x0, x1, #7
          mov x4, #13
          mul x0, x0, x4
          and x3, x3, #0xffff8
          str x0, [x2, x3, lsl #3]
          add x3, x3, #8
          add x5, x2, #64
          str x1, [x5, x3, lsl #3]
          subs x1, x1, #1
          b.ne 1b
        done:
          nop
    """,
    ("aarch64", "alu"): """
        _start:
          ldr x1, ={iters}
          mov x0, #1
          mov x2, #3
        1:
          mul x0, x0, x2
          add x0, x0, x1
          eor x2, x2, x0
          lsr x2, x2, #3
          orr x2, x2, #1
          subs x1, x1, #1
          b.ne 1b
        done:
          nop
    """,
}

_ARM_MIXED = """
          ldr r1, ={iters}
          ldr r2, ={data}
          mov r3, #0
        1:
          add r0, r1, #7
          mov r4, #13
          mul r0, r0, r4
          ubfx r3, r3, #0, #20
          str r0, [r2, r3, lsl #2]
          add r3, r3, #8
          add r5, r2, #64
          str r1, [r5, r3, lsl #2]
          subs r1, r1, #1
          bne 1b
        done:
          nop
          .ltorg
"""
_ARM_ALU = """
          ldr r1, ={iters}
          mov r0, #1
          mov r2, #3
        1:
          mul r0, r0, r2
          add r0, r0, r1
          eor r2, r2, r0
          lsr r2, r2, #3
          orr r2, r2, #1
          subs r1, r1, #1
          bne 1b
        done:
          nop
          .ltorg
"""
LOOPS[("arm", "mixed")] = ".syntax unified\n.arm\n_start:" + _ARM_MIXED
LOOPS[("arm", "alu")] = ".syntax unified\n.arm\n_start:" + _ARM_ALU
LOOPS[("thumb", "mixed")] = ".syntax unified\n.thumb\n.thumb_func\n_start:" + _ARM_MIXED
LOOPS[("thumb", "alu")] = ".syntax unified\n.thumb\n.thumb_func\n_start:" + _ARM_ALU
LOOPS[("cortex-m", "mixed")] = (".syntax unified\n.cpu cortex-m4\n.thumb\n.thumb_func\n_start:"
                                + _ARM_MIXED)
LOOPS[("cortex-m", "alu")] = (".syntax unified\n.cpu cortex-m4\n.thumb\n.thumb_func\n_start:"
                              + _ARM_ALU)
LOOPS[("riscv64", "mixed")] = """
        _start:
          lui a1, %hi({iters})
          addi a1, a1, %lo({iters})
          lui a2, %hi({data})
          li a3, 0
        1:
          addi a0, a1, 7
          li a4, 13
          mul a0, a0, a4
          slli a3, a3, 44
          srli a3, a3, 44
          slli t0, a3, 3
          add t0, a2, t0
          sd a0, 0(t0)
          addi a3, a3, 8
          sd a1, 128(t0)
          addi a1, a1, -1
          bnez a1, 1b
        done:
          nop
"""
LOOPS[("riscv64", "alu")] = """
        _start:
          lui a1, %hi({iters})
          addi a1, a1, %lo({iters})
          li a0, 1
          li a2, 3
        1:
          mul a0, a0, a2
          add a0, a0, a1
          xor a2, a2, a0
          srli a2, a2, 3
          ori a2, a2, 1
          addi a1, a1, -1
          bnez a1, 1b
        done:
          nop
"""
#: Instructions before the loop and per iteration (x86_64 and aarch64: 3, and 8/10 or 7).
COUNTS = {("arm", "mixed"): (3, 10), ("thumb", "mixed"): (3, 10), ("arm", "alu"): (3, 7),
          ("thumb", "alu"): (3, 7), ("riscv64", "mixed"): (4, 12), ("riscv64", "alu"): (4, 7),
          ("cortex-m", "mixed"): (3, 10), ("cortex-m", "alu"): (3, 7)}

_ARM_TOOLS = ("arm-linux-gnueabihf-gcc", "arm-linux-gnueabihf-objcopy", "arm-linux-gnueabihf-nm")
TOOLS = {"x86_64": ("gcc", "objcopy", "nm"),
         "aarch64": ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-objcopy", "aarch64-linux-gnu-nm"),
         "arm": _ARM_TOOLS, "thumb": _ARM_TOOLS,
         "cortex-m": ("arm-none-eabi-gcc", "arm-none-eabi-objcopy", "arm-none-eabi-nm"),
         "riscv64": ("riscv64-linux-gnu-gcc", "riscv64-linux-gnu-objcopy", "riscv64-linux-gnu-nm")}
#: Thumb code starts at an odd address (the state Unicorn enters).
_ENTRY_BIT = {"thumb": 1, "cortex-m": 1}


def assemble(arch: str, kind: str, iters: int, workdir: Path) -> tuple[bytes, int, int]:
    """Return (code, offset of `done`, instructions executed up to `done`)."""
    cc, objcopy, nm = TOOLS[arch]
    src = workdir / f"{arch}-{kind}.S"
    obj = workdir / f"{arch}-{kind}.o"
    out = workdir / f"{arch}-{kind}.bin"
    src.write_text(LOOPS[(arch, kind)].format(iters=iters, data=DATA) + "\n.globl done\n")
    subprocess.run([cc, "-c", str(src), "-o", str(obj)], check=True)
    subprocess.run([objcopy, "-O", "binary", "-j", ".text", str(obj), str(out)], check=True)
    syms = subprocess.run([nm, str(obj)], check=True, capture_output=True, text=True).stdout
    done = next(int(line.split()[0], 16) for line in syms.splitlines() if line.endswith(" done"))
    per_iter = {"mixed": 8 if arch == "x86_64" else 10, "alu": 7}[kind]
    setup = 3
    if (arch, kind) in COUNTS:
        setup, per_iter = COUNTS[(arch, kind)]
    return out.read_bytes(), done, setup + per_iter * iters


def run_bare(arch: str, code: bytes, done: int) -> float:
    spec = get_arch(arch)
    uc = unicorn.Uc(spec.uc_arch, spec.uc_mode)
    if arch == "cortex-m" and spec.cpu_init is not None:
        spec.cpu_init(uc)  # (the Cortex-M4 model, as the machine; before any mapping)
    uc.mem_map(CODE, 0x10000, unicorn.UC_PROT_READ | unicorn.UC_PROT_EXEC)
    uc.mem_map(DATA, DATA_SIZE + 0x10000, unicorn.UC_PROT_READ | unicorn.UC_PROT_WRITE)
    uc.mem_write(CODE, code)
    if arch in ("arm", "thumb"):
        uc.reg_write(unicorn.arm_const.UC_ARM_REG_FPEXC, 1 << 30)
    t0 = time.thread_time()
    uc.emu_start(CODE | _ENTRY_BIT.get(arch, 0), CODE + done)
    return time.thread_time() - t0


def run_machine(arch: str, code: bytes, done: int, expected: int) -> float:
    m = Machine(get_arch(arch))
    m.mem.map(CODE, 0x10000, Perm.RX, "code")
    m.mem.map(DATA, DATA_SIZE + 0x10000, Perm.RW, "data")
    m.mem.write(CODE, code)
    m.regs.pc = CODE | _ENTRY_BIT.get(arch, 0)
    t0 = time.thread_time()
    ev = m.run(until=CODE + done)
    elapsed = time.thread_time() - t0
    if ev.position != expected:
        raise SystemExit(f"position {ev.position} != expected {expected} ({ev})")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=2_000_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    args = ap.parse_args()
    if args.quick:
        args.iters, args.reps = 20_000, 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch, kind in LOOPS:
            code, done, insns = assemble(arch, kind, args.iters, Path(tmp))
            bare, mach = [], []
            for _ in range(args.reps):
                bare.append(run_bare(arch, code, done))
                mach.append(run_machine(arch, code, done, insns))
            b, m = statistics.median(bare), statistics.median(mach)
            rows.append((arch, kind, insns, insns / b / 1e6, insns / m / 1e6, b / m))
    print(f"{'arch':8} {'loop':6} {'insns':>11} {'bare MIPS':>10} {'machine MIPS':>13} "
          f"{'ratio':>6}")
    for arch, kind, insns, bm, mm, ratio in rows:
        print(f"{arch:8} {kind:6} {insns:>11,} {bm:>10.1f} {mm:>13.1f} {ratio:>6.2f}")
    worst = min(r[5] for r in rows if r[1] == "mixed")
    print(f"\nmixed compute+store path, worst ratio machine/bare: {worst:.2f} "
          f"(target >= 0.90): {'OK' if worst >= 0.9 else 'BELOW TARGET'}")
    alu = min(r[5] for r in rows if r[1] == "alu")
    print(f"tight register-only loops (one 7-instruction block per iteration): {alu:.2f} "
          "(the fixed cost of the per-block counting hook)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
