"""Helpers shared by the Linux plugin's tests (importable: tests/linux is on sys.path)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import progs
from syxdbg_plugins.linux import LinuxKernel, get_kernel
from syxdbg_plugins.linux.tables import SYSCALL_TABLES

import syxdbg
from syxdbg.timeline import FORWARD

MASK64 = (1 << 64) - 1


class SysCaller:
    """Issue guest syscalls by name against a real machine, outside of ``run``."""

    def __init__(self, session: syxdbg.Session) -> None:
        self.session = session
        self.machine = session.machine
        self.mem = session.machine.mem
        kernel = get_kernel(session)
        assert kernel is not None
        self.kernel: LinuxKernel = kernel
        self.arch = self.machine.arch.name
        self.numbers = {name: nr for nr, name in SYSCALL_TABLES[self.arch].items()}
        abi = self.machine.arch.syscall
        self._nr, self._args, self._ret = abi.number, abi.args, abi.ret
        self.scratch = self("mmap", 0, 0x10000, 3, 0x22, -1, 0)
        assert self.scratch > 0

    def __call__(self, name: str, *args: int) -> int:
        regs = self.machine.regs
        regs[self._nr] = self.numbers[name]
        for reg, value in zip(self._args, args, strict=False):
            regs[reg] = value & MASK64
        self.kernel.handle_syscall(self.machine)
        ret = regs[self._ret]
        return ret - (1 << 64) if ret & (1 << 63) else ret

    def cstr(self, text: str | bytes, offset: int = 0x8000) -> int:
        """Put a NUL-terminated string in the scratch area; return its address."""
        data = os.fsencode(text) + b"\0"
        self.mem.write(self.scratch + offset, data)
        return self.scratch + offset

    def at(self, offset: int) -> int:
        return self.scratch + offset

    def read(self, offset: int, n: int) -> bytes:
        return self.mem.read(self.scratch + offset, n)


#: Everything that decides a guest's future, comparable with ==: see :func:`capture_state`.
GuestState = tuple[object, ...]
STATE_PARTS = ("position", "registers", "RAM", "kernel state", "event log cursor",
               "other processes' RAM")


def capture_state(s: syxdbg.Session) -> GuestState:
    """Position, registers, RAM (hashed per region), the kernel state (every thread, signal
    state, every process), the event log cursor and the memory of the processes that are
    not running: equal states mean the same future."""
    import hashlib

    m = s.machine
    ram = tuple((r.start, r.size, hashlib.blake2b(m.mem.read(r.start, r.size)).hexdigest())
                for r in m.mem.regions())
    kernel = s.states.get("linux")
    assert kernel is not None
    # Processes that are not running: their memory, hashed now (their saved layouts in the
    # kernel state hold live buffers).
    others = tuple((pid, tuple((r.start, r.size, hashlib.blake2b(r.view).hexdigest())
                               for r in entry.layout))
                   for pid, entry in sorted(kernel.s.procs.items()))
    return (m.position, tuple(sorted(m.regs.snapshot().items())), ram, kernel.save_state(),
            s.eventlog.cursor, others)


def state_diff(a: GuestState, b: GuestState) -> list[str]:
    """Names of the parts in which two captured states differ."""
    return [n for n, x, y in zip(STATE_PARTS, a, b, strict=True) if x != y]


def recorded_states(s: syxdbg.Session, wanted: list[int]) -> dict[int, GuestState]:
    """The whole guest state at each position of ``wanted``, reached going forward."""
    recorded = {}
    for p in wanted:
        assert s.seek(p).position == p
        recorded[p] = capture_state(s)
    return recorded


def assert_reverse_invariant(s: syxdbg.Session, recorded: dict[int, GuestState],
                             also: Callable[[int], None] | None = None) -> None:
    """From each recorded N (newest first), reverse-stepi gives the state recorded at N-1
    and stepi the one at N; ``also(N - 1)`` checks more after each reverse-stepi."""
    from syxdbg.timeline import BACKWARD, FORWARD

    for n in sorted(recorded, reverse=True):
        if n - 1 not in recorded:
            continue
        s.seek(n)
        assert s.step(BACKWARD).position == n - 1
        assert state_diff(capture_state(s), recorded[n - 1]) == [], \
            f"after reverse-stepi from {n}"
        if also is not None:
            also(n - 1)
        s.step(FORWARD)
        assert state_diff(capture_state(s), recorded[n]) == [], f"after stepi to {n}"


def process_switches(exe: Path, fact: Callable[[LinuxKernel], object] | None = None
                     ) -> list[int]:
    """Positions right after the system calls of a run of ``exe`` that changed ``fact`` of
    the kernel (by default which process runs: the calls at which another one started)."""
    fact = fact or (lambda kernel: kernel.process.pid)
    out: list[int] = []
    with syxdbg.open(str(exe), [], env=dict(progs.DEFAULT_ENV), argv0=str(exe)) as s:
        kernel = get_kernel(s)
        assert kernel is not None
        inner = s.machine.syscall_handler
        assert inner is not None

        def spy(machine: syxdbg.Machine) -> None:
            before = fact(kernel)
            inner(machine)
            if fact(kernel) != before:
                out.append(machine.position)

        s.machine.set_syscall_handler(spy)
        s.cont(FORWARD)
    return out


def assert_recording_replays(exe: Path, expected: bytes, recording: Path, *,
                             argv0: str | None = None) -> None:
    """``syxdbg record`` of ``exe`` (a real command line) prints ``expected`` and exits 0,
    and ``syxdbg replay --check`` of its recording agrees."""
    syx = [sys.executable, "-m", "syxdbg"]
    made = subprocess.run([*syx, "record", "-q", "-o", str(recording),
                           *(["--argv0", argv0] if argv0 else []), str(exe)],
                          capture_output=True, timeout=300, check=False)
    assert (made.stdout, made.returncode) == (expected, 0), made.stderr.decode()
    check = subprocess.run([*syx, "replay", "--check", str(recording)], capture_output=True,
                           timeout=300, check=False)
    assert check.returncode == 0, check.stderr.decode()
    assert b"the program exited with status 0, as recorded" in check.stdout, check.stdout
