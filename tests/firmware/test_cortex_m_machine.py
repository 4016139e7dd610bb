"""The cortex-m machine: the facts of Unicorn 2.1.4 that syxdbg/machine/arch/cortex_m.py
rests on, measured on real code (arm-none-eabi-as), and the machine's exception entry and
return frames."""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from support import tool_missing

from syxdbg.machine import Machine, Perm, get_arch
from syxdbg.machine.arch import cortex_m as cm
from syxdbg.machine.events import Stopped

CODE = 0x1000
RAM = 0x2000_0000
IO = 0x4000_0000


def assemble(tmp_path: Path, source: str) -> bytes:
    as_, objcopy = shutil.which("arm-none-eabi-as"), shutil.which("arm-none-eabi-objcopy")
    if as_ is None or objcopy is None:
        tool_missing("arm-none-eabi binutils are not installed (gcc-arm-none-eabi)")
    assert as_ is not None and objcopy is not None
    src = tmp_path / "code.s"
    src.write_text(".syntax unified\n.thumb\n" + source + "\n")
    subprocess.run([as_, "-mcpu=cortex-m4", "-mthumb", str(src), "-o", str(tmp_path / "c.o")],
                   check=True)
    subprocess.run([objcopy, "-O", "binary", str(tmp_path / "c.o"), str(tmp_path / "c.bin")],
                   check=True)
    return (tmp_path / "c.bin").read_bytes()


def machine(code: bytes) -> Machine:
    m = Machine(get_arch("cortex-m"))
    m.mem.map(CODE, 0x1000, Perm.RX, "flash")
    m.mem.map(RAM, 0x1000, Perm.RW, "sram")
    m.mem.write(CODE, code)
    m.regs.sp = RAM + 0x1000
    m.regs.pc = CODE
    return m


def test_registers_and_aliases() -> None:
    m = Machine(get_arch("cortex-m"))
    assert m.arch.register("cpsr") is m.arch.register("xpsr")
    assert m.regs.xpsr == cm.XPSR_T  # Thumb, Thread mode
    m.regs.pc = 0x100  # an even pc keeps the Thumb state (there is no ARM state)
    assert m.thumb and m.regs.xpsr & cm.XPSR_T
    assert get_arch("cortex-m4") is get_arch("cortex-m")
    nums = {r.name: r.regnum for r in m.arch.registers}
    assert nums["xpsr"] == 25 and nums["msp"] == 26 and nums["control"] == 31


def test_svc_and_wfi_reach_the_layer_above_without_an_exception_entry(tmp_path: Path
                                                                       ) -> None:
    code = assemble(tmp_path, "movs r0, #1\nsvc #5\nmovs r1, #2\nwfi\nmovs r2, #3\nb .")
    m = machine(code)
    seen: list[tuple[int, int, int]] = []
    idle: list[int] = []

    def on_exception(machine: Machine, intno: int) -> Callable[[], None] | None:
        seen.append((intno, machine.pc, cm.current_exception(machine)))
        return None if intno != cm.EXCP_SWI else (lambda: None)

    def on_idle(machine: Machine) -> bool:
        idle.append(machine.position)
        return False

    m.set_exception_handler(on_exception, on_idle)
    ev = m.run(count=6)
    # svc: exception 2 with pc after it and nothing stacked (still Thread mode).
    assert seen == [(cm.EXCP_SWI, CODE + 4, 0)]
    assert m.regs.sp == RAM + 0x1000
    # wfi ends the emulation after itself (4 instructions retired): the idle handler.
    assert idle == [4]
    assert isinstance(ev, Stopped) and ev.position == 4 and m.pc == CODE + 8


def test_mmio_accesses_have_exact_positions(tmp_path: Path) -> None:
    code = assemble(tmp_path, "ldr r3, =0x40000000\nmovs r0, #7\nldr r1, [r3]\nmovs r0, #8\n"
                    "str r0, [r3, #4]\nstr r0, [r3, #8]\nb .\n.ltorg")
    m = machine(code)
    log: list[tuple[str, int, int, int]] = []

    def read(off: int, size: int, pos: int, pc: int) -> int:
        log.append(("r", off, pos, pc))
        return 0x55

    cm.map_mmio(m, IO, 0x1000, read,
                lambda off, size, value, pos, pc: log.append(("w", off, pos, pc)))
    m.run(count=6)
    # (ldr r3, =... is a 4-byte mov.w)
    assert log == [("r", 0, 2, CODE + 6), ("w", 4, 4, CODE + 10), ("w", 8, 5, CODE + 12)]
    assert m.regs.r1 == 0x55


def test_exception_entry_and_return_frames(tmp_path: Path) -> None:
    m = machine(assemble(tmp_path, "nop\nnop"))
    vtor = RAM
    m.mem.write(vtor + 4 * cm.SYSTICK, struct.pack("<I", CODE + 2 | 1))
    for i in range(4):
        m.regs[f"r{i}"] = 0x10 + i
    m.regs.r12, m.regs.lr = 0x1C, 0x1234
    m.regs.sp = RAM + 0x804  # not 8-byte aligned: the frame is realigned
    m.regs.xpsr = cm.XPSR_T | 0x2000_0000  # C flag
    handler = cm.exception_entry(m, cm.SYSTICK, CODE, vtor)
    assert handler == CODE + 2 and m.pc == CODE + 2
    assert cm.current_exception(m) == cm.SYSTICK
    assert m.regs.lr == 0xFFFF_FFF9 and m.regs.sp == RAM + 0x804 - 4 - 32
    frame = struct.unpack("<8I", m.mem.read(m.regs.sp, 32))
    assert frame == (0x10, 0x11, 0x12, 0x13, 0x1C, 0x1234, CODE,
                     cm.XPSR_T | 0x2000_0000 | cm.XPSR_ALIGN)
    for i in range(4):
        m.regs[f"r{i}"] = 0
    number, pc = cm.exception_return(m, 0xFFFF_FFF9)
    assert (number, pc) == (0, CODE) and m.pc == CODE
    assert m.regs.sp == RAM + 0x804 and m.regs.lr == 0x1234 and m.regs.r3 == 0x13
    assert m.regs.xpsr == cm.XPSR_T | 0x2000_0000


def test_process_stack_entry_switches_to_the_main_stack(tmp_path: Path) -> None:
    m = machine(assemble(tmp_path, "nop\nnop"))
    m.mem.write(RAM + 4 * cm.PENDSV, struct.pack("<I", CODE + 3))
    cm.set_special(m, "MSP", RAM + 0xF00)
    cm.set_special(m, "PSP", RAM + 0x800)
    cm.set_special(m, "CONTROL", cm.CONTROL_SPSEL)
    assert m.regs.sp == RAM + 0x800  # Thread mode on the process stack
    cm.exception_entry(m, cm.PENDSV, CODE, RAM)
    assert m.regs.lr == 0xFFFF_FFFD
    assert m.regs.sp == RAM + 0xF00 and cm.special(m, "PSP") == RAM + 0x800 - 32
    cm.exception_return(m, 0xFFFF_FFFD)
    assert m.regs.sp == RAM + 0x800 and cm.special(m, "CONTROL") & cm.CONTROL_SPSEL


@pytest.mark.parametrize("source", ["push {lr}\npop {pc}", "bx lr"])
def test_exc_return_reaches_the_hook_as_exception_exit(tmp_path: Path, source: str) -> None:
    m = machine(assemble(tmp_path, source))
    seen: list[tuple[int, int]] = []

    def on_exception(machine: Machine, intno: int) -> Callable[[], None] | None:
        seen.append((intno, machine.pc))
        return None

    m.set_exception_handler(on_exception)
    m.regs.xpsr = cm.XPSR_T | cm.SVCALL  # Handler mode
    m.regs.lr = 0xFFFF_FFF9
    m.run(count=2)
    assert seen and seen[0] == (cm.EXCP_EXCEPTION_EXIT, 0xFFFF_FFF8)


def test_special_register_moves_count_as_instructions(tmp_path: Path) -> None:
    # capstone decodes mrs/msr of the M profile's registers only in MCLASS mode: a block
    # holding them must still count every instruction (exact positions, stepping).
    code = assemble(tmp_path, "mrs r0, psp\nmovs r1, #0x40\nmsr basepri, r1\nmovs r2, #2\n"
                    "mrs r3, primask\nb .")
    m = machine(code)
    ev = m.run(count=4)
    assert ev.position == 4 and m.pc == CODE + 12 and m.regs.r2 == 2
    assert cm.special(m, "BASEPRI") == 0x40
    assert [i[1] for i in m.disassemble(CODE, 3)] == ["mrs", "movs", "msr"]


def test_prigroup_splits_preemption_from_subpriority() -> None:
    from syxdbg_plugins.firmware.board import load_board
    from syxdbg_plugins.firmware.kernel import FirmwareKernel

    m = Machine(get_arch("cortex-m"))
    k = FirmwareKernel(m, load_board(None), live=False)
    k.priority.update({16: 0x40, 17: 0x60, 18: 0x50})
    k.active = [17]  # in the handler of priority 0x60
    assert k._execution_priority() == 0x60
    assert k._group(0x40) < k._execution_priority()  # PRIGROUP 0: 0x40 preempts
    k.regs[0xD0C] = 5 << 8  # PRIGROUP 5: group = bits 7:6
    assert k._group(0x40) == k._group(0x60) == 0x40 and k._execution_priority() == 0x40
    assert not k._group(0x40) < k._execution_priority()  # same group: no preemption
    k.active = []
    k.pending = {16, 18}
    k.enabled = {16, 17, 18}
    assert min(k._takeable(), key=lambda n: (k._prio(n), n)) == 16  # subpriority orders
