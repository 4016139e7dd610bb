"""Machine-level data watchpoints: exact stop positions and the per-architecture semantics.

Ground truth is single-stepping (``run(count=1)``) and reading memory after each step.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support import assemble

from syxdbg.machine import Machine, Perm, Stopped, WatchHit, get_arch

CODE = 0x400000
DATA = 0x600000

SRC = {
    "x86_64": ("gcc", "objcopy", """
        .intel_syntax noprefix
        _start:
          mov rbx, 0x600000
          mov ecx, 0
        1:
          add rcx, 1
          mov rax, [rbx+16]
          mov [rbx+8], rcx
          cmp rcx, 5
          jne 1b
          mov rdi, rbx
          mov ecx, 24
          mov al, 0x55
          rep stosb
          push rbx
          mov [rbx-8], rcx
          ud2
    """),
    "aarch64": ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-objcopy", """
        _start:
          mov x1, #0x600000
          mov x2, #0
        1:
          add x2, x2, #1
          ldr x0, [x1, #16]
          str x2, [x1, #8]
          cmp x2, #5
          b.ne 1b
          stp x2, x2, [x1, #-8]!
          add x4, x1, #16
          ldadd x2, x3, [x4]
          str x2, [x1, #256]
          .inst 0
    """),
}


@pytest.fixture(scope="module")
def code(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], bytes]:
    out: dict[str, bytes] = {}
    tmp = tmp_path_factory.mktemp("watch")

    def build(arch: str) -> bytes:
        if arch not in out:
            extra = ["-march=armv8.1-a"] if arch == "aarch64" else []
            out[arch] = assemble(arch, SRC[arch][2], tmp, name=arch, flags=extra).read_bytes()
        return out[arch]

    return build


def machine(arch: str, code: bytes) -> Machine:
    m = Machine(get_arch(arch))
    m.mem.map(CODE, 0x1000, Perm.RX, "code")
    m.mem.map(DATA - 0x1000, 0x2000, Perm.RW, "data")
    m.mem.write(CODE, code)
    m.regs.pc = CODE
    m.regs.sp = DATA + 0x800
    return m


def trace(arch: str, code: bytes) -> list[tuple[int, bytes]]:
    """(pc, data page) before each instruction, by single-stepping."""
    m = machine(arch, code)
    out = []
    while True:
        out.append((m.pc, m.mem.read(DATA - 0x1000, 0x2000)))
        if not isinstance(m.run(count=1), Stopped):
            return out


def accesses(arch: str, code: bytes, lo: int, hi: int, write: bool) -> list[int]:
    """Positions of the instructions that wrote (changed) bytes in [lo, hi) (ground truth)."""
    t = trace(arch, code)
    base = DATA - 0x1000
    return [i for i in range(len(t) - 1)
            if t[i][1][lo - base:hi - base] != t[i + 1][1][lo - base:hi - base]]


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_write_watch_stops_at_every_changing_write(arch: str, code) -> None:
    blob = code(arch)
    lo, hi = DATA + 8, DATA + 16
    want = accesses(arch, blob, lo, hi, True)
    assert len(want) >= 6
    steps = trace(arch, blob)
    m = machine(arch, blob)
    m.add_watchpoint(lo, hi - lo, "write")
    got = []
    while True:
        ev = m.run()
        if not isinstance(ev, WatchHit):
            break
        assert ev.kind == "write" and ev.access == "write" and lo <= ev.address < hi
        if arch == "x86_64":  # after: the writing instruction has retired
            assert not ev.before
            got.append(ev.position - 1)
            assert (m.pc, m.mem.read(DATA - 0x1000, 0x2000)) == steps[ev.position]
        else:  # before: pc at the writer, memory and registers as before it
            assert ev.before
            got.append(ev.position)
            assert (m.pc, m.mem.read(DATA - 0x1000, 0x2000)) == steps[ev.position]
        assert ev.pc == m.pc and ev.position == m.position
    assert got == want


def test_aarch64_before_stop_undoes_multi_register_and_atomic_stores(code) -> None:
    blob = code("aarch64")
    steps = trace("aarch64", blob)
    m = machine("aarch64", blob)
    m.add_watchpoint(DATA, 8, "write")  # the second half of the stp
    ev = m.run()
    assert isinstance(ev, WatchHit) and ev.before
    assert (m.pc, m.mem.read(DATA - 0x1000, 0x2000)) == steps[ev.position]
    assert m.regs.x1 == DATA  # the pre-index writeback was undone too
    m.remove_watchpoint(DATA, 8, "write")
    m.add_watchpoint(DATA + 8, 8, "read")  # ldadd at [x1+16] after x1 -= 8: a read and write
    ev = m.run()
    assert isinstance(ev, WatchHit) and ev.kind == "read" and ev.before
    assert (m.pc, m.mem.read(DATA - 0x1000, 0x2000)) == steps[ev.position]
    assert m.regs.x3 == 0
    ev = m.run()  # resuming runs the accessing instruction once, then goes on
    assert not isinstance(ev, WatchHit) and m.regs.x3 != 0


def test_x86_rep_stos_and_push_hits(code) -> None:
    blob = code("x86_64")
    m = machine("x86_64", blob)
    m.add_watchpoint(DATA + 20, 1, "write")  # the 21st byte of the rep stosb
    m.add_watchpoint(DATA - 8, 8, "access")  # the push at the end... and the mov after it
    hits = []
    while isinstance(ev := m.run(), WatchHit):
        hits.append((ev.kind, ev.address, m.mem.read(ev.address, 1)))
    assert ("write", DATA + 20, b"\x55") in hits
    assert hits[-1][0] == "access" and hits[-1][1] == DATA - 8


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_removing_the_last_watchpoint_restores_plain_runs(arch: str, code) -> None:
    blob = code(arch)
    m = machine(arch, blob)
    m.add_watchpoint(DATA + 16, 8, "read")
    assert isinstance(m.run(), WatchHit)
    m.remove_watchpoint(DATA + 16, 8, "read")
    assert m.watchpoints == []
    end = m.run()
    assert not isinstance(end, WatchHit)
    plain = machine(arch, blob)
    assert plain.run() == end
