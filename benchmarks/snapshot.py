"""Snapshot core benchmark: push/restore cost, baselines, and guest speed with tracking.

Prints one Markdown table set, measured in one run (copy it into docs/performance.md):

* push and restore (restore_last) for 1, 16, 256, 4096 dirty pages at 16 MiB, 256 MiB and
  1 GiB mapped, with the compiled core in virtual-TLB mode, plus the per-page tracking cost
  (first store to a page in an epoch);
* the same against a full memory copy (C memcpy of all RAM) and Unicorn's native
  copy-on-write snapshots (``UC_CTL_CONTEXT_MEMORY``; 4096 pages skipped: seconds);
* guest speed (MIPS) on a store-heavy and an ALU-heavy loop: bare Unicorn, the machine
  without tracking, with the virtual-TLB tracker and with the C write-hook tracker.

Times are medians; push/restore are wall-clock µs of one Python call each; guest speed is
per-thread CPU time. Usage: ``python benchmarks/snapshot.py [--quick]`` (``--quick``: 16 MiB
only, 1 and 16 dirty pages, short loops: a smoke test that the benchmark still runs).
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import unicorn
from unicorn import x86_const

from syxdbg.machine import Machine, Perm, get_arch
from syxdbg.snapshot.core import CoreSyxSnapshot, attach

CODE = 0x400000
RAM = 0x10000000
PAGE = 4096

SRC = """
    .intel_syntax noprefix
dirty:                      # one qword store into each of rcx pages from rdi
    mov [rdi], rcx
    add rdi, 4096
    dec rcx
    jnz dirty
dirty_end:
    nop
stores:                     # 10 insns/iteration, one qword store, stride rbx, 16 MiB wrap
    lea rax, [r8 + r9]
    mov rdx, r9
    imul rdx, rdx, 3
    and r10, 0xffffff
    xor rdx, rax
    mov [rdi + r10], rax
    add r10, rbx
    inc r9
    cmp r9, rcx
    jne stores
stores_end:
    nop
alu:                        # 10 insns/iteration, registers only
    lea rax, [r8 + r9]
    mov rdx, r9
    imul rdx, rdx, 3
    and r10, 0xffffff
    xor rdx, rax
    add r11, rdx
    add r10, rbx
    inc r9
    cmp r9, rcx
    jne alu
alu_end:
    nop
"""


def assemble() -> tuple[bytes, dict[str, int]]:
    with tempfile.TemporaryDirectory() as td:
        d = Path(td)
        (d / "b.S").write_text(SRC)
        subprocess.run(["gcc", "-c", str(d / "b.S"), "-o", str(d / "b.o")], check=True)
        subprocess.run(["objcopy", "-O", "binary", "-j", ".text", str(d / "b.o"),
                        str(d / "b.bin")], check=True)
        nm = subprocess.run(["nm", str(d / "b.o")], check=True, capture_output=True, text=True)
        syms = {ln.split()[2]: int(ln.split()[0], 16) for ln in nm.stdout.splitlines()}
        return (d / "b.bin").read_bytes(), syms


CODE_BYTES, SYMS = assemble()


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def machine(size: int, mode: str | None) -> Machine:
    m = Machine(get_arch("x86_64"))
    m.mem.map(CODE, 0x1000, Perm.RX, "code")
    m.mem.map(RAM, size, Perm.RW, "ram")
    m.mem.write(CODE, CODE_BYTES)
    if mode is not None:
        attach(m, mode)
    return m


def run_dirty(m: Machine, n: int, base: int = RAM) -> None:
    m.regs.rdi = base
    m.regs.rcx = n
    m.regs.pc = CODE + SYMS["dirty"]
    m.run(until=CODE + SYMS["dirty_end"])


def core_row(size: int, n: int, reps: int) -> dict[str, float]:
    m = machine(size, "tlb")
    snap = CoreSyxSnapshot.new(m)
    run_dirty(m, n)  # warm: translations and TLB
    snap.increment_push()
    push, restore, track = [], [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        run_dirty(m, n)  # first stores of the epoch: tracked
        t1 = time.perf_counter()
        run_dirty(m, n)  # same pages again: already recorded
        t2 = time.perf_counter()
        track.append(max(0.0, (t1 - t0) - (t2 - t1)) / n)
        t0 = time.perf_counter()
        snap.increment_restore_last()
        restore.append(time.perf_counter() - t0)
        assert snap.stats()["last_restored_pages"] == n
        run_dirty(m, n)
        t0 = time.perf_counter()
        snap.increment_push()
        push.append(time.perf_counter() - t0)
        if snap.depth > 1:
            snap.merge(1)
        snap.increment_restore_last()
    snap.free()
    m.close()
    return {"push": med(push) * 1e6, "restore": med(restore) * 1e6,
            "track": med(track) * 1e6}


def full_copy_row(size: int, reps: int) -> dict[str, float]:
    m = machine(size, None)
    region = m.mem.find(RAM)
    assert region is not None
    src = region.backing.address
    save_buf = ctypes.create_string_buffer(size)
    dst = ctypes.addressof(save_buf)
    ctypes.memmove(dst, src, size)  # fault in both buffers once
    saves, restores = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        ctypes.memmove(dst, src, size)
        saves.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ctypes.memmove(src, dst, size)
        restores.append(time.perf_counter() - t0)
    del save_buf
    m.close()
    return {"save": med(saves) * 1e6, "restore": med(restores) * 1e6}


def native_row(size: int, n: int, reps: int) -> dict[str, float]:
    uc = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_64)
    uc.ctl(unicorn.UC_CTL_CONTEXT_MODE, unicorn.UC_CTL_IO_WRITE,
           ctypes.c_int(unicorn.UC_CTL_CONTEXT_CPU | unicorn.UC_CTL_CONTEXT_MEMORY))
    uc.mem_map(CODE, 0x1000, unicorn.UC_PROT_ALL)
    uc.mem_map(RAM, size, unicorn.UC_PROT_READ | unicorn.UC_PROT_WRITE)
    uc.mem_write(CODE, CODE_BYTES)

    def dirty() -> None:
        uc.reg_write(x86_const.UC_X86_REG_RDI, RAM)
        uc.reg_write(x86_const.UC_X86_REG_RCX, n)
        uc.emu_start(CODE + SYMS["dirty"], CODE + SYMS["dirty_end"])

    dirty()
    saves, restores, cow = [], [], []
    ctx = uc.context_save()
    for _ in range(reps):
        t0 = time.perf_counter()
        uc.context_update(ctx)
        saves.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        dirty()
        cow.append((time.perf_counter() - t0) / n)
        t0 = time.perf_counter()
        uc.context_restore(ctx)
        restores.append(time.perf_counter() - t0)
    return {"save": med(saves) * 1e6, "restore": med(restores) * 1e6,
            "cow": med(cow) * 1e6}


def speed(kind: str, config: str, iters: int, stride: int, reps: int) -> float:
    """MIPS of ``kind`` ("stores" or "alu") under ``config``."""
    begin, end = CODE + SYMS[kind], CODE + SYMS[f"{kind}_end"]
    insns = 10 * iters
    times = []
    for _ in range(reps):
        if config == "unicorn":
            uc = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_64)
            uc.mem_map(CODE, 0x1000, unicorn.UC_PROT_READ | unicorn.UC_PROT_EXEC)
            buf = ctypes.create_string_buffer(16 << 20)
            uc.mem_map_ptr(RAM, 16 << 20, unicorn.UC_PROT_READ | unicorn.UC_PROT_WRITE,
                           ctypes.addressof(buf))
            uc.mem_write(CODE, CODE_BYTES)
            for reg, v in ((x86_const.UC_X86_REG_RDI, RAM), (x86_const.UC_X86_REG_RCX, iters),
                           (x86_const.UC_X86_REG_RBX, stride)):
                uc.reg_write(reg, v)
            t0 = time.thread_time()
            uc.emu_start(begin, end)
            times.append(time.thread_time() - t0)
            continue
        m = machine(16 << 20, None if config == "machine" else config)
        snap = CoreSyxSnapshot.new(m) if config != "machine" else None
        m.regs.rdi = RAM
        m.regs.rcx = iters
        m.regs.rbx = stride
        m.regs.pc = begin
        t0 = time.thread_time()
        m.run(until=end)
        times.append(time.thread_time() - t0)
        assert m.position == insns, (m.position, insns)
        if snap is not None:
            snap.free()
        m.close()
    return insns / med(times) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    quick = ap.parse_args().quick
    reps = 2 if quick else 7
    sizes = [(16 << 20, "16 MiB")]
    counts = [1, 16]
    if not quick:
        sizes += [(256 << 20, "256 MiB"), (1 << 30, "1 GiB")]
        counts += [256, 4096]
    print(f"# syxdbg snapshot benchmark (unicorn {unicorn.__version__}, Python "
          f"{sys.version.split()[0]}, {'quick' if quick else 'full'} run)\n")
    print("## Push / restore (µs, median); core = compiled journal, virtual-TLB tracker\n")
    print("| mapped | dirty pages | core push | core restore | core track/page | "
          "full copy save | full copy restore | native save | native restore | "
          "native COW/page | restore: native / core |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size, label in sizes:
        full = full_copy_row(size, reps)
        for n in counts:
            core = core_row(size, n, reps)
            if n <= 256:
                nat = native_row(size, n, 3 if n == 256 else reps)
                nat_s = (f"{nat['save']:.1f} | {nat['restore']:.1f} | {nat['cow']:.1f} | "
                         f"{nat['restore'] / core['restore']:.0f}x")
            else:
                nat_s = "skipped (COW of 4096 pages takes seconds) | – | – | –"
            print(f"| {label} | {n} | {core['push']:.1f} | {core['restore']:.1f} | "
                  f"{core['track']:.2f} | {full['save']:.0f} | {full['restore']:.0f} | {nat_s} |",
                  flush=True)
    iters = 20_000 if quick else 2_000_000
    print("\n## Guest speed (MIPS, median of per-thread CPU time; 10 instructions/iteration)\n")
    print("| loop | bare Unicorn | machine, no tracking | tracking: virtual TLB | "
          "tracking: C write hook | vTLB / bare Unicorn | vTLB / machine |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind, stride, label in (("stores", 64, "store-heavy (stride 64)"),
                                ("alu", 64, "ALU-heavy")):
        res: dict[str, float] = {}
        for cfg in ("unicorn", "machine", "tlb", "hook"):
            res[cfg] = speed(kind, cfg, iters, stride, 1 if quick else 5)
        print(f"| {label} | {res['unicorn']:.0f} | {res['machine']:.0f} | {res['tlb']:.0f} | "
              f"{res['hook']:.0f} | {res['tlb'] / res['unicorn']:.2f}x | "
              f"{res['tlb'] / res['machine']:.2f}x |", flush=True)

if __name__ == "__main__":
    main()
