"""Faults of ARM-state (not Thumb) code reach the guest's handlers at the faulting
instruction (tests/linux/programs/faults.c built -marm; qemu-arm as the oracle).

A store Unicorn's slow path refuses used to be reported only after the rest of its
translation block ran (the store skipped, a stale pc when no TLB fill had synced it): the
handler of the faults.c "repaired" case returned to the wrong instruction in the wrong
state. The snapshot journal's TLB now refuses such stores, which Unicorn raises precisely.
"""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import progs
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "linux"))
from linux_helpers import assert_reverse_invariant, recorded_states  # noqa: E402
from syxdbg_plugins.linux import get_kernel, sigframe  # noqa: E402

import syxdbg  # noqa: E402
from syxdbg.machine import Fault  # noqa: E402
from syxdbg.timeline import FORWARD  # noqa: E402

FAULTS_C = Path(__file__).resolve().parent / "linux" / "programs" / "faults.c"


@pytest.fixture(scope="module")
def faults_arm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tc = progs.toolchain_for("arm")
    progs.require_tool(tc.cc)
    exe = tmp_path_factory.mktemp("armfaults") / "faults"
    subprocess.run(tc.command(FAULTS_C, exe), check=True, capture_output=True)
    return exe


def test_arm_state_faults_go_to_handlers_as_under_qemu(faults_arm: Path) -> None:
    native = progs.native_run(faults_arm, argv0="faults")
    assert native.status == 128 + 11, native.describe()
    assert b"repaired: faults=1 code=2 addr_ok=1 value=42" in native.stdout
    p = subprocess.run([sys.executable, "-m", "syxdbg", "run", "--clear-env",
                        *(f"-E{k}={v}" for k, v in progs.DEFAULT_ENV.items()),
                        "--argv0", "faults", str(faults_arm)],
                       capture_output=True, timeout=300, check=False)
    assert (p.stdout, p.returncode) == (native.stdout, native.status), p.stderr.decode()
    assert "warning" not in p.stderr.decode()


def test_arm_state_fault_frames_and_going_backwards(faults_arm: Path) -> None:
    """Each fault is the faulting load or store, in ARM state; the frame the handler gets
    holds that pc and an ARM-state CPSR; its first instruction has the next position; and
    the reverse invariant holds across the deliveries."""
    delivered: list[tuple[int, int]] = []
    env = dict(progs.DEFAULT_ENV)
    with syxdbg.open(str(faults_arm), [], env=env, argv0="faults") as s:
        kernel = get_kernel(s)
        assert kernel is not None

        def spy(machine: syxdbg.Machine, fault: Fault) -> bool:
            thumb = machine.thumb
            insn = machine.disassemble(fault.pc, 1)[0]
            given = kernel.handle_fault(machine, fault)
            if given:
                assert not thumb and insn[1].startswith(("ldr", "str", "push")), insn
                assert fault.position == machine.position
                frame = machine.regs["sp"] + (sigframe.SIGINFO_SIZE if machine.regs["r1"]
                                              == machine.regs["sp"] else 0)
                gregs = struct.unpack_from(
                    "<17I", machine.mem.read(frame, sigframe.ARM_UCONTEXT),
                    sigframe.ARM_SIGCONTEXT + 12)
                assert gregs[15] == fault.pc and not gregs[16] & sigframe.ARM_CPSR_T
                delivered.append((fault.position, fault.pc))
            return given

        s.machine.set_fault_handler(spy)
        end = s.cont(FORWARD)
        assert isinstance(end, Fault) and end.address == 0x20, end
    assert len(delivered) == 5, delivered  # read, write, read-only, repaired, overflow
    wanted = sorted({q for p, _ in delivered[:4] for q in (p - 1, p, p + 1, p + 2)})
    with syxdbg.open(str(faults_arm), [], env=env, argv0="faults",
                     options={"timeline.interval": 5_000}) as s:
        recorded = recorded_states(s, wanted)
        assert isinstance(s.cont(FORWARD), Fault)
        assert_reverse_invariant(s, recorded)
