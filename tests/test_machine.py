"""The Machine: exact positions, breakpoints, faults and hook exceptions, on real Unicorn.

Guest code is real machine code assembled by the cross toolchains from the snippets below.
The ground truth for positions is Unicorn itself: stepping with ``count=1`` executes exactly
one instruction, so N single steps are position N.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest
import support

from syxdbg.machine import Exited, Fault, Machine, Perm, Stopped, get_arch

CODE = support.TOY_CODE
DATA = support.TOY_DATA

ASM = {
    "x86_64": {
        # A loop with a store, a page-crossing store and a call; exits with status rax&0xff.
        "loop": """
            .intel_syntax noprefix
            _start:
              mov ecx, 700
            1:
              add rax, 3
              mov [0x600000 + 8*rcx], rax
              call f
              dec ecx
              jnz 1b
              mov qword ptr [0x600ffd], rax
              mov rdi, rax
              mov eax, 60
              syscall
            f:
              xor rax, 1
              ret
        """,
        "syscall_then_spin": """
            .intel_syntax noprefix
            _start:
              mov eax, 39
              syscall
            2:
              inc rbx
              jmp 2b
        """,
        "segv": """
            .intel_syntax noprefix
            _start:
              mov rax, 5
              mov rbx, [0x12345678]
        """,
        "sigill": """
            .intel_syntax noprefix
            _start:
              nop
              ud2
        """,
        "trap": """
            .intel_syntax noprefix
            _start:
              nop
              int3
              nop
        """,
        "divzero": """
            .intel_syntax noprefix
            _start:
              xor ecx, ecx
              mov eax, 7
              div ecx
        """,
    },
    "aarch64": {
        "loop": """
            _start:
              mov x1, #700
              mov x2, #0x600000
            1:
              add x0, x0, #3
              str x0, [x2, x1, lsl #3]
              bl f
              subs x1, x1, #1
              b.ne 1b
              mov x3, #0x0ffd
              add x3, x3, x2
              str x0, [x3]
              mov x8, #93
              svc #0
            f:
              eor x0, x0, #1
              ret
        """,
        "syscall_then_spin": """
            _start:
              mov x8, #172
              svc #0
            2:
              add x5, x5, #1
              b 2b
        """,
        "segv": """
            _start:
              mov x0, #5
              mov x1, #0x5678
              movk x1, #0x1234, lsl #16
              ldr x2, [x1]
        """,
        "sigill": """
            _start:
              nop
              .inst 0x00000000
        """,
        "trap": """
            _start:
              nop
              brk #0
              nop
        """,
    },
}

ARCHES = ["x86_64", "aarch64"]


@pytest.fixture(scope="session")
def assemble(tmp_path_factory: pytest.TempPathFactory):
    cache: dict[tuple[str, str], bytes] = {}
    base = tmp_path_factory.mktemp("asm")

    def build(arch: str, name: str) -> bytes:
        key = (arch, name)
        if key not in cache:
            cache[key] = support.assemble(arch, ASM[arch][name], base,
                                          name=f"{arch}-{name}").read_bytes()
        return cache[key]

    return build


def make_machine(arch: str, code: bytes) -> Machine:
    return support.toy_machine(arch, code, data_pages=2)


def single_step_trace(arch: str, code: bytes, n: int) -> list[int]:
    """pc before each of the first n instructions, using Unicorn's count=1 only."""
    m = make_machine(arch, code)
    pcs = []
    for _ in range(n):
        pcs.append(m.pc)
        ev = m.run(count=1)
        if not isinstance(ev, Stopped):
            break
    return pcs


@pytest.mark.parametrize("arch", ARCHES)
def test_count_is_exact_across_block_and_limit_boundaries(arch: str, assemble) -> None:
    code = assemble(arch, "loop")
    total_steps = single_step_trace(arch, code, 100_000)
    n_total = len(total_steps)
    assert n_total > 3000
    for k in (1, 2, 7, 511, 512, 513, 1000, 2047, 2048, 3001, n_total - 1):
        m = make_machine(arch, code)
        ev = m.run(count=k)
        assert isinstance(ev, Stopped) and ev.why == "count", (k, ev)
        assert m.position == k == ev.position
        assert m.pc == total_steps[k], k
    # Chained runs of uneven sizes land on the same instruction.
    m = make_machine(arch, code)
    pos = 0
    for k in (3, 600, 1, 1500, 77):
        m.run(count=k)
        pos += k
        assert m.position == pos and m.pc == total_steps[pos]


@pytest.mark.parametrize("arch", ARCHES)
def test_exit_position_and_registers_match_single_stepping(arch: str, assemble) -> None:
    code = assemble(arch, "loop")
    stepped = make_machine(arch, code)
    steps = 0
    while not isinstance(stepped.run(count=1), Exited):
        steps += 1
    steps += 1
    m = make_machine(arch, code)
    ev = m.run()
    assert isinstance(ev, Exited)
    assert ev.position == steps == stepped.position
    assert m.regs.snapshot() == stepped.regs.snapshot()
    assert m.mem.read(DATA, 0x2000) == stepped.mem.read(DATA, 0x2000)
    # The page-crossing store wrote both pages.
    value = m.regs[m.arch.syscall.args[0]]
    assert int.from_bytes(m.mem.read(DATA + 0xFFD, 8), "little") == value
    assert ev.status == value & 0xFF


@pytest.mark.parametrize("arch", ARCHES)
def test_breakpoints_stop_before_the_instruction_and_resume_past_it(arch: str, assemble) -> None:
    code = assemble(arch, "loop")
    trace = single_step_trace(arch, code, 100_000)
    store_pc = trace[3] if arch == "x86_64" else trace[4]  # the store inside the loop
    hits = [i for i, pc in enumerate(trace) if pc == store_pc]
    m = make_machine(arch, code)
    m.add_breakpoint(store_pc)
    for expected in hits[:5]:
        ev = m.run()
        assert isinstance(ev, Stopped) and ev.why == "breakpoint"
        assert ev.pc == store_pc and ev.position == expected
    # A count smaller than the distance to the next hit stops on the count.
    ev = m.run(count=2)
    assert ev.why == "count" and ev.position == hits[4] + 2
    m.remove_breakpoint(store_pc)
    # A breakpoint added in code that already ran (cached translations) still hits.
    ev = m.run(count=50)
    call_pc = trace[hits[0] + 1]
    m.add_breakpoint(call_pc)
    ev = m.run()
    assert ev.why == "breakpoint" and ev.pc == call_pc
    assert ev.position == next(i for i in hits if i > hits[4] + 52) + 1
    m.remove_breakpoint(call_pc)
    ev = m.run(until=trace[-1])
    assert isinstance(ev, Stopped) and ev.why == "until"
    assert ev.position == len(trace) - 1
    assert isinstance(m.run(), Exited)


@pytest.mark.parametrize("arch", ARCHES)
def test_faults_are_typed_events_at_the_faulting_instruction(arch: str, assemble) -> None:
    m = make_machine(arch, assemble(arch, "segv"))
    ev = m.run()
    assert isinstance(ev, Fault)
    assert ev.signal == signal.SIGSEGV
    assert ev.address == 0x12345678
    last = single_step_trace(arch, assemble(arch, "segv"), 10)[-1]
    assert ev.pc == last
    assert ev.position == len(single_step_trace(arch, assemble(arch, "segv"), 10)) - 1
    # The machine stays inspectable and keeps reporting the same end.
    assert m.run() is ev

    m = make_machine(arch, assemble(arch, "sigill"))
    ev = m.run()
    assert isinstance(ev, Fault) and ev.signal == signal.SIGILL
    insn = 1 if arch == "x86_64" else 4
    assert ev.pc == CODE + insn and ev.position == 1


@pytest.mark.parametrize("arch", ARCHES)
def test_a_register_write_after_a_fault_lets_the_machine_run_again(arch: str, assemble
                                                                   ) -> None:
    """A fault is terminal only for its state (gdb restores registers after an inferior
    call that ended in a fault, then resumes)."""
    m = make_machine(arch, assemble(arch, "segv"))
    ev = m.run()
    assert isinstance(ev, Fault) and m.finished is ev
    m.regs[m.arch.pc] = m.pc  # same state: it faults again, at the same place
    assert m.finished is None
    again = m.run()
    assert isinstance(again, Fault) and again is not ev
    assert (again.pc, again.position, again.address) == (ev.pc, ev.position, ev.address)
    m.regs[m.arch.pc] = CODE  # back to the start: the program runs again
    assert isinstance(m.run(count=1), Stopped)
    assert m.position == ev.position + 1


@pytest.mark.parametrize("arch", ARCHES)
def test_breakpoint_instructions_are_sigtrap(arch: str, assemble) -> None:
    """x86 ``int3`` and aarch64 ``brk`` give SIGTRAP as under Linux (int3 was SIGILL): the
    trap leaves pc after ``int3`` (x86 reports traps after the instruction, and the int3 has
    retired) and at ``brk`` (aarch64 reports it before)."""
    m = make_machine(arch, assemble(arch, "trap"))
    ev = m.run()
    assert isinstance(ev, Fault) and ev.signal == signal.SIGTRAP, ev
    assert ev.detail == "breakpoint instruction"
    if arch == "x86_64":
        assert ev.pc == CODE + 2 and ev.position == 2
    else:
        assert ev.pc == CODE + 4 and ev.position == 1
    assert m.run() is ev


def test_x86_divide_error_is_sigfpe_at_the_div(assemble) -> None:
    m = make_machine("x86_64", assemble("x86_64", "divzero"))
    ev = m.run()
    assert isinstance(ev, Fault) and ev.signal == signal.SIGFPE, ev
    assert ev.pc == CODE + 7 and ev.address == CODE + 7 and ev.position == 2


@pytest.mark.parametrize("arch", ARCHES)
def test_syscall_handler_writes_hit_watchpoints_after_the_syscall(arch: str, assemble) -> None:
    """A write of a watched byte by the syscall layer is a WatchHit right after the system
    call instruction on both architectures (never before: a system call cannot be undone);
    a debugger's own write between runs is not a hit."""
    from syxdbg.machine import WatchHit

    code = assemble(arch, "syscall_then_spin")
    m = support.toy_machine(arch, code, host_write=(DATA + 4, b"\x07\x07"))
    m.add_watchpoint(DATA + 5, 4, "write")
    m.add_watchpoint(DATA, 4, "read")  # host writes never hit read watchpoints
    m.mem.write(DATA + 5, b"\x01")  # the debugger's write: no hit
    ev = m.run(count=1000)
    assert isinstance(ev, WatchHit), ev
    assert (ev.kind, ev.access, ev.address, ev.before) == ("write", "write", DATA + 5, False)
    syscall_end = CODE + (7 if arch == "x86_64" else 8)
    assert ev.pc == m.pc == syscall_end and ev.position == 2
    assert m.mem.read(DATA + 4, 2) == b"\x07\x07"
    ev = m.run(count=10)
    assert isinstance(ev, Stopped) and ev.why == "count"


@pytest.mark.parametrize("arch", ARCHES)
def test_a_held_watch_stop_before_a_syscall_lets_it_run_once(arch: str, assemble) -> None:
    """A history layer that re-creates the state before a system call whose write hit (gdb
    on aarch64 wants the stop before the access) marks it with hold_watch_stop: the next run
    executes that system call without hitting again; an unmarked run hits."""
    from syxdbg.machine import WatchHit

    code = assemble(arch, "syscall_then_spin")
    for hold in (False, True):
        m = support.toy_machine(arch, code, host_write=(DATA, b"\x05"))
        m.add_watchpoint(DATA, 1, "write")
        assert m.run(count=1).position == 1  # pc at the system call
        if hold:
            m.hold_watch_stop()
        ev = m.run(count=20)
        assert isinstance(ev, WatchHit) != hold, ev
        assert m.mem.read(DATA, 1) == b"\x05"


@pytest.mark.parametrize("arch", ARCHES)
def test_exception_in_a_hook_is_reraised_after_the_emulator_returns(arch: str, assemble) -> None:
    m = make_machine(arch, assemble(arch, "syscall_then_spin"))

    class Boom(Exception):
        pass

    def bad_handler(mm: Machine) -> None:
        raise Boom("from the syscall layer")

    m.set_syscall_handler(bad_handler)
    with pytest.raises(Boom):
        m.run()
    # Stopped right after the syscall instruction, with an exact position.
    assert m.position == 2
    assert m.regs.pc == CODE + (7 if arch == "x86_64" else 8)


@pytest.mark.parametrize("arch", ARCHES)
def test_interrupt_from_another_thread_stops_an_endless_loop(arch: str, assemble) -> None:
    m = make_machine(arch, assemble(arch, "syscall_then_spin"))
    started = threading.Event()

    def handler(mm: Machine) -> None:
        mm.regs[mm.arch.syscall.ret] = 0
        started.set()

    m.set_syscall_handler(handler)
    t = threading.Thread(target=lambda: (started.wait(), m.interrupt()))
    t.start()
    ev = m.run()
    t.join()
    assert isinstance(ev, Stopped) and ev.why == "interrupt"
    counter = "rbx" if arch == "x86_64" else "x5"
    # The spin loop is two instructions; the counter says how far it got, exactly.
    assert ev.position in (2 + 2 * m.regs[counter], 2 + 2 * m.regs[counter] + 1)
    # And the machine can continue exactly.
    pos = m.position
    ev = m.run(count=1000)
    assert ev.position == pos + 1000


def test_memory_map_unmap_protect_and_host_access() -> None:
    m = Machine(get_arch("x86_64"))
    m.mem.map(0x10000, 0x4000, Perm.RW, "a")
    m.mem.write(0x10FFE, b"abcd")  # crosses a page
    assert m.mem.read(0x10FFE, 4) == b"abcd"
    m.mem.protect(0x11000, 0x1000, Perm.R)
    assert [str(r.perms) for r in m.mem.regions()] == ["rw-", "r--", "rw-"]
    assert m.mem.read(0x10FFE, 4) == b"abcd"  # same backing bytes after the split
    m.mem.unmap(0x12000, 0x1000)
    assert not m.mem.is_mapped(0x12000)
    assert m.mem.is_mapped(0x13000)
    with pytest.raises(Exception, match="not mapped"):
        m.mem.read(0x11FFF, 2)
    assert m.mem.read_partial(0x11FFE, 8) == b"\0\0"
    with pytest.raises(Exception, match="overlaps"):
        m.mem.map(0x13000, 0x1000)
    # The guest sees host writes (shared buffer), Unicorn agrees.
    assert bytes(m.uc.mem_read(0x10FFE, 4)) == b"abcd"


SMC_SAME_PAGE = {
    # A store over an instruction of the running block (self-modifying code, here rewriting
    # the same bytes) makes QEMU leave the block after the store and resume in a new block
    # at the next instruction: the count must follow.
    "x86_64": """
        .intel_syntax noprefix
        _start:
          mov ecx, 50
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
          mov x1, #50
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


@pytest.mark.parametrize("arch", ARCHES)
def test_stores_into_the_code_page_keep_positions_exact(arch: str, tmp_path: Path) -> None:
    code = support.assemble(arch, SMC_SAME_PAGE[arch], tmp_path, name="smc").read_bytes()

    def rwx_machine() -> Machine:
        m = make_machine(arch, b"")
        m.mem.protect(CODE, 0x1000, Perm.RWX)
        m.mem.write(CODE, code)
        return m

    stepped = rwx_machine()
    steps = 0
    for _ in range(5000):  # bounded: a miscount must fail the test, not hang it
        if not isinstance(stepped.run(count=1), Stopped):
            break
        steps += 1
    m = rwx_machine()
    ev = m.run(count=100_000)
    assert isinstance(ev, Exited)
    assert ev.position == steps + 1 == stepped.position
    assert m.regs.snapshot() == stepped.regs.snapshot()
    # And a bounded run lands where single-stepping does.
    m = rwx_machine()
    ev = m.run(count=123)
    trace = rwx_machine()
    for _ in range(123):
        trace.run(count=1)
    assert m.pc == trace.pc and m.position == 123


@pytest.mark.parametrize("arch", ARCHES)
def test_single_steps_keep_their_hooks_and_never_stop_a_later_run(arch: str, assemble
                                                                  ) -> None:
    """Stepping through a loop arms kept step hooks (no retranslation once the loop's
    instructions have one); they stop only the run that armed them."""
    code = assemble(arch, "loop")
    trace = single_step_trace(arch, code, 100_000)
    m = make_machine(arch, code)
    for i in range(1, 200):  # three loop iterations and more, one instruction at a time
        ev = m.run(count=1)
        assert isinstance(ev, Stopped) and ev.why == "count"
        assert (m.pc, m.position) == (trace[i], i)
    hooks = m._core.step_hooks
    assert 0 < len(hooks) <= 32
    for _ in range(50):  # the same loop again: no new hook
        m.run(count=1)
    assert m._core.step_hooks == hooks
    m.run(count=100)  # a short run keeps them
    assert m._core.step_hooks == hooks
    # A long run drops them first (in a hot loop they would cost a call per pass), and
    # nothing of them stops it.
    end = m.run()
    assert isinstance(end, Exited) and end.position == len(trace)  # (trace ends at the exit)
    assert m._core.step_hooks == []
