"""The machine's recorders (block coverage, instruction trace) against single-stepping.

Guest code is assembled from the snippets below. The ground truth is the machine stepping
one instruction at a time (``run(count=1)``): its pcs, registers and memory after each
step. The recorders run attached to a second machine that executes the same code in
bounded chunks, past breakpoints, after code was translated without them, through ``rep``
loops and self-modifying code, and must record exactly the instructions that retired.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import capstone
import pytest
import support
from tracefiles import parse_tenet

from syxdbg.machine import Exited, Machine, Stopped

CODE = support.TOY_CODE
DATA = support.TOY_DATA
ARCHES = ["x86_64", "aarch64"]

ASM = {
    "x86_64": """
        .intel_syntax noprefix
        _start:
          mov ecx, 40
        1:
          add rax, 3
          mov [0x600000 + 8*rcx], rax
          mov rdx, [0x600000 + 8*rcx]
          call f
          dec ecx
          jnz 1b
          mov rsi, 0x600000
          mov rdi, 0x600400
          mov ecx, 5
          rep movsb
          xor ecx, ecx
          rep stosb
          mov eax, 39
          syscall
          mov rdi, rax
          mov eax, 60
          syscall
        f:
          xor rax, 1
          ret
    """,
    "aarch64": """
        _start:
          mov x1, #40
          mov x2, #0x600000
        1:
          add x0, x0, #3
          str x0, [x2, x1, lsl #3]
          ldr x3, [x2, x1, lsl #3]
          bl f
          subs x1, x1, #1
          b.ne 1b
          add x4, x2, #0x400
          stp x0, x3, [x4]
          mov x8, #172
          svc #0
          mov x8, #93
          svc #0
        f:
          eor x0, x0, #1
          ret
    """,
}

# A store over the running block's own code (same bytes): QEMU restarts at the store.
SMC = {
    "x86_64": """
        .intel_syntax noprefix
        _start:
          mov ecx, 30
        1:
          add rax, 1
          mov r8d, dword ptr [rip + later]
          mov dword ptr [rip + later], r8d
          add rbx, 2
        later:
          add rdx, 3
          dec ecx
          jnz 1b
          mov rdi, 0
          mov eax, 60
          syscall
    """,
    "aarch64": """
        _start:
          mov x1, #30
          adr x2, later
        1:
          add x0, x0, #1
          ldr w5, [x2]
          str w5, [x2]
          add x3, x3, #2
        later:
          add x4, x4, #3
          subs x1, x1, #1
          b.ne 1b
          mov x0, #0
          mov x8, #93
          svc #0
    """,
}

REGS = {"x86_64": (["rax", "rbx", "rcx", "rdx", "rbp", "rsp", "rsi", "rdi"]
                   + [f"r{i}" for i in range(8, 16)], "rip"),
        "aarch64": ([f"x{i}" for i in range(31)] + ["sp"], "pc")}
HOST_BYTES = b"host-written!"


def make_machine(arch: str, code: bytes, *, rwx: bool = False) -> Machine:
    # getpid: the "kernel" also writes guest memory
    return support.toy_machine(arch, code, rwx=rwx, host_write=(DATA + 0x800, HOST_BYTES))


@dataclass
class Step:
    pc: int
    regs: dict[str, int]
    data: bytes  # the DATA page before the instruction


def stepped(arch: str, code: bytes, *, rwx: bool = False) -> list[Step]:
    """The ground truth: one ``run(count=1)`` per instruction until the program exits."""
    m = make_machine(arch, code, rwx=rwx)
    names, _ = REGS[arch]
    out = []
    for _ in range(20_000):  # bounded: a miscount fails the test instead of hanging it
        out.append(Step(m.pc, {n: m.regs[n] for n in names}, m.mem.read(DATA, 0x1000)))
        if isinstance(m.run(count=1), Exited):
            return out
    raise AssertionError("the program did not exit")


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, bytes]]:
    d = tmp_path_factory.mktemp("probes")
    out = {}
    for arch in ARCHES:
        out[arch] = support.assemble(arch, ASM[arch], d, name=f"mixed-{arch}").read_bytes()
        out[f"smc-{arch}"] = support.assemble(arch, SMC[arch], d, name=f"smc-{arch}") \
            .read_bytes()
    yield out


def block_insns(m: Machine, blocks: list[tuple[int, int]]) -> set[int]:
    """Addresses of the instructions inside the recorded blocks (blocks start on one)."""
    md = capstone.Cs(m.arch.cs_arch, m.arch.cs_mode)
    out: set[int] = set()
    for start, size in blocks:
        code = m.mem.read(start, size)
        addrs = [a for a, *_ in md.disasm_lite(code, start)]
        assert addrs, f"block {start:#x}+{size} holds no instruction"
        out |= set(addrs)
    return out


def check_trace(arch: str, path: Path, steps: list[Step], first: int) -> None:
    """Lines are steps[first:]: pcs, registers, and the previous step's memory accesses."""
    lines = parse_tenet(path, arch)
    assert [ln.ip for ln in lines] == [s.pc for s in steps[first:]]
    names, _ = REGS[arch]
    for k, (line, step) in enumerate(zip(lines, steps[first:], strict=True)):
        assert {n: line.state[n.upper()] for n in names} == step.regs, f"line {k}"
        if k == 0:
            assert not line.reads and not line.writes
            continue
        before, after = steps[first + k - 1].data, step.data
        # INVARIANT of the format: line k carries what instruction k-1 read and wrote.
        for addr, data in line.reads:
            if DATA <= addr < DATA + 0x1000:
                assert before[addr - DATA:addr - DATA + len(data)] == data, f"line {k} mr"
        for addr, data in line.writes:
            if DATA <= addr < DATA + 0x1000:
                assert after[addr - DATA:addr - DATA + len(data)] == data, f"line {k} mw"
        changed = {DATA + i for i in range(0x1000) if before[i] != after[i]}
        written = {a + i for a, d in line.writes for i in range(len(d))}
        assert changed <= written, f"line {k}: memory changed without an mw entry"


@pytest.mark.parametrize("arch", ARCHES)
def test_recorders_match_single_stepping_through_bounded_runs(
        arch: str, programs: dict[str, bytes], tmp_path: Path) -> None:
    code = programs[arch]
    steps = stepped(arch, code)
    m = make_machine(arch, code)
    names, pc_name = REGS[arch]
    out = tmp_path / "t.log"
    with out.open("wb") as f, m.block_recorder() as rec, \
            m.insn_tracer(f.fileno(), names, pc_name=pc_name) as tr:
        # Chunks of every small size: most runs stop in the middle of a block.
        for n in itertools.cycle([1, 2, 3, 5, 7, 11, 4, 13]):
            if isinstance(m.run(count=n), Exited):
                break
    assert tr.error is None and tr.lines == len(steps) == m.position
    check_trace(arch, out, steps, 0)
    assert block_insns(m, rec.blocks()) == {s.pc for s in steps}


@pytest.mark.parametrize("arch", ARCHES)
def test_recorders_see_code_translated_before_they_attach(
        arch: str, programs: dict[str, bytes], tmp_path: Path) -> None:
    # Unicorn 2.1.4 bakes the hooks that exist when a block is translated into it: each
    # recorder on its own must still see blocks translated before it was attached.
    code = programs[arch]
    steps = stepped(arch, code)
    m = make_machine(arch, code)
    assert isinstance(m.run(count=150), Stopped)  # the loop is translated, without hooks
    with m.block_recorder() as rec:
        assert isinstance(m.run(count=100), Stopped)
    assert block_insns(m, rec.blocks()) == {s.pc for s in steps[150:250]}
    names, pc_name = REGS[arch]
    out = tmp_path / "t.log"
    with out.open("wb") as f, m.insn_tracer(f.fileno(), names, pc_name=pc_name) as tr:
        assert isinstance(m.run(), Exited)
    assert tr.lines == len(steps) - 250
    check_trace(arch, out, steps, 250)


@pytest.mark.parametrize("arch", ARCHES)
def test_breakpoint_stops_keep_the_recordings_exact(
        arch: str, programs: dict[str, bytes], tmp_path: Path) -> None:
    code = programs[arch]
    steps = stepped(arch, code)
    m = make_machine(arch, code)
    # Breakpoints on a block's first instruction and in the middle of blocks, hooked
    # before and after the recorders (Unicorn calls code hooks in the order they were added).
    for s in (steps[2], steps[3]):
        m.add_breakpoint(s.pc)
    names, pc_name = REGS[arch]
    out = tmp_path / "t.log"
    stops = 0
    with out.open("wb") as f, m.block_recorder() as rec, \
            m.insn_tracer(f.fileno(), names, pc_name=pc_name) as tr:
        m.add_breakpoint(steps[7].pc)
        while not isinstance(m.run(until=steps[-3].pc), Exited):
            stops += 1
            assert tr.lines == m.position
    assert stops > 40
    assert tr.lines == len(steps)
    check_trace(arch, out, steps, 0)
    assert block_insns(m, rec.blocks()) == {s.pc for s in steps}


@pytest.mark.parametrize("arch", ARCHES)
def test_a_run_stopped_inside_a_block_covers_only_what_ran(
        arch: str, programs: dict[str, bytes]) -> None:
    code = programs[arch]
    steps = stepped(arch, code)
    for n in (1, 2, 3, 4, 9):
        m = make_machine(arch, code)
        with m.block_recorder() as rec:
            m.run(count=n)
        assert block_insns(m, rec.blocks()) == {s.pc for s in steps[:n]}, n


@pytest.mark.parametrize("arch", ARCHES)
def test_self_modifying_code_is_traced_exactly(arch: str, programs: dict[str, bytes],
                                               tmp_path: Path) -> None:
    code = programs[f"smc-{arch}"]
    steps = stepped(arch, code, rwx=True)
    m = make_machine(arch, code, rwx=True)
    names, pc_name = REGS[arch]
    out = tmp_path / "t.log"
    with out.open("wb") as f, m.block_recorder() as rec, \
            m.insn_tracer(f.fileno(), names, pc_name=pc_name) as tr:
        assert isinstance(m.run(), Exited)
    assert tr.error is None and tr.lines == len(steps)
    assert [ln.ip for ln in parse_tenet(out, arch)] == [s.pc for s in steps]
    assert block_insns(m, rec.blocks()) == {s.pc for s in steps}


def test_rep_iterations_are_lines_as_positions_count_them(programs: dict[str, bytes],
                                                          tmp_path: Path) -> None:
    arch = "x86_64"
    steps = stepped(arch, programs[arch])
    m = make_machine(arch, programs[arch])
    md = capstone.Cs(m.arch.cs_arch, m.arch.cs_mode)
    rep = {a for s in steps for a, _, mn, _ in md.disasm_lite(m.mem.read(s.pc, 16), s.pc, 1)
           if mn.startswith("rep")}
    assert len(rep) == 2
    names, pc_name = REGS[arch]
    out = tmp_path / "t.log"
    with out.open("wb") as f, m.insn_tracer(f.fileno(), names, pc_name=pc_name):
        m.run()
    lines = parse_tenet(out, arch)
    movsb = min(rep)
    assert sum(ln.ip == movsb for ln in lines) == sum(s.pc == movsb for s in steps) >= 5
    # Each iteration's byte: read from the source, written to the destination.
    moved = [ln for prev, ln in zip(lines, lines[1:], strict=False)
             if prev.ip == movsb and ln.writes]
    assert [w[0][0] for w in (ln.writes for ln in moved)] == [DATA + 0x400 + i
                                                              for i in range(5)]


@pytest.mark.parametrize("arch", ARCHES)
def test_known_values_and_host_writes_appear_in_the_trace(
        arch: str, programs: dict[str, bytes], tmp_path: Path) -> None:
    m = make_machine(arch, programs[arch])
    names, pc_name = REGS[arch]
    out = tmp_path / "t.log"
    with out.open("wb") as f, m.insn_tracer(f.fileno(), names, pc_name=pc_name):
        m.run()
    lines = parse_tenet(out, arch)
    writes = [w for ln in lines for w in ln.writes]
    # The first store of the loop: 3 (x86: rax=3) or 3 (aarch64: x0=3) at DATA + 8*40.
    assert (DATA + 8 * 40, (3).to_bytes(8, "little")) in writes
    # The load right after it reads those bytes back.
    assert (DATA + 8 * 40, (3).to_bytes(8, "little")) in [r for ln in lines for r in ln.reads]
    # getpid's "kernel" wrote guest memory from the host: reported on the next line.
    assert (DATA + 0x800, HOST_BYTES) in writes


def test_detached_recorders_cost_nothing_and_record_nothing(programs: dict[str, bytes],
                                                             tmp_path: Path) -> None:
    arch = "x86_64"
    m = make_machine(arch, programs[arch])
    names, pc_name = REGS[arch]
    with (tmp_path / "t.log").open("wb") as f:
        rec = m.block_recorder()
        tr = m.insn_tracer(f.fileno(), names, pc_name=pc_name)
        assert m.probes == [rec, tr] and rec.attached
        m.run(count=100)
        rec.detach()
        tr.detach()
        tr.detach()  # idempotent
        blocks, entries, lines = rec.blocks(), rec.entries, tr.lines
        assert m.probes == [] and not rec.attached and lines == 100
        assert isinstance(m.run(), Exited)
    assert (rec.blocks(), rec.entries, tr.lines) == (blocks, entries, lines)
    assert len((tmp_path / "t.log").read_text().splitlines()) == 100


def test_untraceable_registers_are_refused(programs: dict[str, bytes]) -> None:
    m = make_machine("x86_64", programs["x86_64"])
    # 32- and 64-bit registers Unicorn holds are traced (eflags, arm's r0-r15); x87, vector
    # and machine-held registers are not.
    for name in ("st0", "xmm0", "orig_rax"):
        with pytest.raises(ValueError, match="cannot be traced"):
            m.insn_tracer(1, [name])
    m.insn_tracer(1, ["eflags"]).detach()
    assert m.probes == []
