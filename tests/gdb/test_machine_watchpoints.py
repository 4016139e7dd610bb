"""Machine-level data watchpoints: exact stop positions and the per-architecture semantics.

Ground truth is single-stepping (``run(count=1)``) and reading memory after each step.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support import assemble

import syxdbg
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


# -- host-side writes: system calls that change watched bytes ---------------------------------
#
# A real C program (compiled here with the suite's toolchains) writes a watched byte with plain
# stores and through three system calls: read() from a pipe into it, mmap(MAP_FIXED) over its
# page (zeros), munmap of its page. Watchpoints must stop right after each system call
# instruction, forwards and backwards (issue 12: they never did), and a backward search that
# passes those system calls must still find the earlier plain stores.

HOSTWRITE_C = r"""
#include <sys/mman.h>
#include <unistd.h>

char *volatile page;

__attribute__((noinline)) void store(char v) { *(volatile char *)page = v; }

int main(void)
{
    int fds[2];
    page = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED || pipe(fds))
        return 1;
    store(1);
    store(2);
    if (write(fds[1], "xyz", 3) != 3 || read(fds[0], page, 3) != 3)   /* page[0] = 'x' */
        return 2;
    store(3);
    if (mmap(page, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
             -1, 0) != page)                                            /* page[0] = 0 */
        return 3;
    store(4);
    if (munmap(page, 4096))                                             /* page[0] gone */
        return 4;
    return 0;
}
"""

#: What the watched byte holds after each write, in program order (None: unmapped).
HOST_SEQUENCE = [("store", b"\x01"), ("store", b"\x02"), ("syscall", b"x"), ("store", b"\x03"),
                 ("syscall", b"\x00"), ("store", b"\x04"), ("syscall", None)]


@pytest.fixture(scope="module")
def hostwrite(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    """``hostwrite(toolchain) -> path`` of the program above, built once per toolchain."""
    import subprocess

    import progs
    from support import tool_missing

    built: dict[str, str] = {}
    tmp = tmp_path_factory.mktemp("hostwrite")

    def build(toolchain: str) -> str:
        if toolchain not in built:
            tc = progs.toolchain_for(toolchain)
            if not tc.available():
                tool_missing(f"{tc.cc} is not installed")
            src, exe = tmp / "hostwrite.c", tmp / f"hostwrite-{toolchain}"
            src.write_text(HOSTWRITE_C)
            subprocess.run(tc.command(src, exe), check=True, cwd=tmp)
            built[toolchain] = str(exe)
        return built[toolchain]

    return build


_SYSCALL_INSN = {"x86_64": b"\x0f\x05", "aarch64": (0xD4000001).to_bytes(4, "little")}


def _after_syscall(session: syxdbg.Session) -> bool:
    """True when the instruction just before pc is the system call instruction."""
    insn = _SYSCALL_INSN[session.machine.arch.name]
    return session.mem.read(session.machine.pc - len(insn), len(insn)) == insn


def _watched_byte(session: syxdbg.Session) -> int:
    session.run(until="store")  # the first store: page is set
    return int.from_bytes(session.mem.read(session.symbols["page"], 8), "little")


def _value(session: syxdbg.Session, byte: int) -> bytes | None:
    return session.mem.read(byte, 1) if session.mem.is_mapped(byte) else None


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_system_call_writes_trigger_watchpoints_forward(toolchain: str, hostwrite) -> None:
    """read(), mmap(MAP_FIXED) and munmap over a watched byte stop right after the system
    call instruction on x86-64 (pc after it, the new bytes in memory), between the plain
    stores. On aarch64 every forward watch stop is before the access (gdb's model there),
    system calls included: pc at the svc, the old bytes in memory; a step executes it."""
    with syxdbg.open(hostwrite(toolchain)) as s:
        byte = _watched_byte(s)
        s.add_watchpoint(byte, 1, "write")
        seen = []
        svc = _SYSCALL_INSN[s.machine.arch.name]
        while isinstance(ev := s.cont(), WatchHit):
            assert ev.kind == "write" and ev.access == "write" and ev.address == byte
            assert ev.before == (toolchain == "aarch64")
            if ev.before:  # stopped before the write; let it run
                at_svc = s.mem.read(s.machine.pc, len(svc)) == svc
                assert s.position == ev.insn_position  # type: ignore[attr-defined]
                old = _value(s, byte)
                s.step()
                seen.append(("syscall" if at_svc else "store", _value(s, byte)))
                assert seen[-1][1] != old
                continue
            kind = "syscall" if _after_syscall(s) else "store"
            seen.append((kind, _value(s, byte)))
        assert s.machine.finished is not None
        assert seen == HOST_SEQUENCE


def _forward_hits(s: syxdbg.Session, byte: int) -> list[int]:
    """Positions of the writing instructions, running forward to the end."""
    out = []
    while isinstance(ev := s.cont(), WatchHit):
        out.append(ev.insn_position)  # type: ignore[attr-defined]
    return out


@pytest.mark.parametrize("toolchain", ["gcc"])
def test_reverse_continue_finds_system_call_writes_and_every_earlier_store(
        toolchain: str, hostwrite) -> None:
    """Backwards from the end: each system call (state before it, pc at the system call
    instruction) and, past them, every earlier plain store (the hits forwards, reversed)."""
    with syxdbg.open(hostwrite(toolchain)) as s:
        byte = _watched_byte(s)
        s.add_watchpoint(byte, 1, "write")
        forward = _forward_hits(s, byte)
        assert len(forward) == len(HOST_SEQUENCE)
        backward = []
        olds = [None, *[v for _, v in HOST_SEQUENCE[:-1]]]
        while isinstance(ev := s.cont("backward"), WatchHit):
            backward.append(ev.insn_position)  # type: ignore[attr-defined]
            i = len(HOST_SEQUENCE) - len(backward)
            if i < 0:
                continue  # the mmap that created the page
            assert ev.before and s.position == ev.insn_position  # type: ignore[attr-defined]
            is_syscall = s.mem.read(s.machine.pc, 2) == _SYSCALL_INSN["x86_64"]
            assert is_syscall == (HOST_SEQUENCE[i][0] == "syscall")
            if i > 0:
                assert _value(s, byte) == olds[i]  # the state before the write
        # Past the last system call, the plain stores store(2) and store(1) were found too;
        # then the mmap that created the page, then the beginning of history.
        assert backward[:len(forward)] == forward[::-1]
        assert len(backward) == len(forward) + 1
        assert s.position == 0


@pytest.mark.parametrize("toolchain", ["aarch64", "gcc"])
def test_a_read_into_a_watched_buffer_forwards_and_backwards(toolchain: str,
                                                              hostwrite) -> None:
    """The read() that fills the watched byte, as a front end sees it per architecture.

    Forward on aarch64 the stop is before the svc (old byte, pc at the svc: gdb's
    trap-before model, as for stores) and a step executes it; on x86-64 after the syscall.
    Backward the mirror image: x86-64 before the syscall, aarch64 after it (gdb then removes
    the watchpoint and steps back)."""
    with syxdbg.open(hostwrite(toolchain)) as s:
        aarch64 = toolchain == "aarch64"
        svc = _SYSCALL_INSN[s.machine.arch.name]
        byte = _watched_byte(s)
        watch = s.add_watchpoint(byte, 1, "write")
        for _ in range(2):  # store(1), store(2)
            ev = s.cont()
            assert isinstance(ev, WatchHit)
            if ev.before:
                s.step()
        ev = s.cont()
        assert isinstance(ev, WatchHit) and ev.before == aarch64
        insn = ev.insn_position  # type: ignore[attr-defined]
        if aarch64:
            assert s.position == insn and s.mem.read(s.machine.pc, len(svc)) == svc
            assert _value(s, byte) == b"\x02"
            step = s.step()
            assert not isinstance(step, WatchHit), step  # the held stop lets it run once
        assert s.position == insn + 1 and _after_syscall(s) and _value(s, byte) == b"x"
        s.remove_watchpoint(watch)
        end = s.cont()
        assert s.machine.finished is not None, end
        watch = s.add_watchpoint(byte, 1, "write")
        found = []
        while isinstance(ev := s.cont("backward"), WatchHit):
            found.append(ev.insn_position)  # type: ignore[attr-defined]
            if aarch64:  # after the write; do what gdb does: step back without the watch
                assert not ev.before and s.position == found[-1] + 1
                s.remove_watchpoint(watch)
                s.step("backward")
                watch = s.add_watchpoint(byte, 1, "write")
            assert s.position == found[-1]
            if found[-1] == insn:
                break
        assert found and found[-1] == insn, found
        assert s.mem.read(s.machine.pc, len(svc)) == svc and _value(s, byte) == b"\x02"
        ev = s.cont("backward")  # past the system call: the plain store(2)
        assert isinstance(ev, WatchHit) and ev.insn_position < insn  # type: ignore[attr-defined]


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_last_write_names_the_system_call(toolchain: str, hostwrite) -> None:
    with syxdbg.open(hostwrite(toolchain)) as s:
        byte = _watched_byte(s)
        s.add_watchpoint(byte, 1, "write")
        forward = _forward_hits(s, byte)
        s.remove_watchpoint(byte, 1, "write")
        end = s.position
        insn = _SYSCALL_INSN[s.machine.arch.name]
        found = s.last_write(byte, 1)  # the munmap
        assert found is not None and found.position == forward[-1]
        assert s.position == forward[-1] and s.mem.read(s.machine.pc, len(insn)) == insn
        assert _value(s, byte) == b"\x04"
        s.seek(forward[3])  # store(3), right after the read(): its last writer is the read
        found = s.last_write(byte, 1)
        assert found is not None and found.position == forward[2]
        assert s.mem.read(s.machine.pc, len(insn)) == insn and _value(s, byte) == b"\x02"
        found = s.last_write(byte, 1)  # past the system call: the plain store(2)
        assert found is not None and found.position == forward[1]
        assert end > forward[-1]


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_gdb_watch_and_reverse_continue_see_system_call_writes(toolchain: str,
                                                                hostwrite) -> None:
    """Real gdb: ``watch -l`` on the byte stops after read()/mmap/munmap going forward, and
    ``reverse-continue`` from the end stops at each of them and at every plain store.

    aarch64 (gdb-multiarch): gdb treats every watchpoint stop as before the access and steps
    one instruction itself; the timeline re-creates the state before the svc for system
    calls, so gdb shows the stop right after the system call instruction on both
    architectures."""
    import shutil

    from gdbmi import Gdb, served
    from support import in_ci

    name = "gdb" if toolchain == "gcc" else "gdb-multiarch"
    gdb = shutil.which(name)
    if gdb is None:
        if in_ci():
            pytest.fail(f"{name} is not installed")
        pytest.skip(f"{name} is not installed")
    exe = hostwrite(toolchain)
    with served(exe) as srv:
        g = Gdb(gdb, exe)
        try:
            g.cli(f"target remote 127.0.0.1:{srv.port}")
            g.cli("break store")
            g.cli("continue")
            g.cli("delete")
            g.cli("watch -l page[0]")
            insn = "svc" if toolchain == "aarch64" else "syscall"
            back = 4 if toolchain == "aarch64" else 2
            forward = []
            for kind, _ in HOST_SEQUENCE:
                forward.append(g.cli("continue"))
                if kind == "syscall":  # stopped right after the system call instruction
                    assert insn in g.cli(f"x/i $pc - {back}"), forward[-1]
            for out, (kind, value) in zip(forward, HOST_SEQUENCE, strict=True):
                assert "watchpoint 2: -location page[0]" in out, out
                if value is not None:
                    assert f"New value = {value[0]} " in out, out
                assert ("in store" in out) == (kind == "store"), out
            assert "<unreadable>" in forward[-1]
            end = g.cli("continue")  # the end of history (or the exit, before issue 12)
            assert "No more reverse-execution history" in end or "exited normally" in end
            backward = [g.cli("reverse-continue") for _ in HOST_SEQUENCE]
            for out, (kind, _) in zip(backward, HOST_SEQUENCE[::-1], strict=True):
                assert "watchpoint 2: -location page[0]" in out, out
                assert ("in store" in out or "store (" in out) == (kind == "store"), out
            # Past every system call, the first plain store (gdb shows reverse changes as
            # old = after, new = before).
            assert "Old value = 1 '\\001'" in backward[-1], backward[-1]
            assert "New value = 0 '\\000'" in backward[-1], backward[-1]
        finally:
            g.close()
