"""Cortex-M firmware on a board: output through the UART model, interrupts, last-write into
an interrupt handler, reverse execution out of it, record + replay --check, raw images.

The firmware (tests/firmware/fw/hello.c) prints through the UART, counts SysTick ticks in
its handler (which has the bug: ``samples[ticks % 10]`` on an 8-entry array overwrites
``message``), takes the timer peripheral's interrupt, an SVCall and a PendSV, and exits
through semihosting.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fwbuild import BOARD, build_firmware, firmware_binary

import syxdbg
from syxdbg.machine.arch import cortex_m as cm
from syxdbg.machine.events import Exited

#: What the firmware prints: 12 SysTick periods of 1000 cycles, the timer's 2500-cycle
#: period 4 times in them; the message lost its first bytes (0x08, then NULs).
HELLO_OUT = b"hello\nticks 12 timer 4 svc 1 pendsv 1\nmessage \x08\n"


@pytest.fixture(scope="module")
def hello() -> Path:
    return build_firmware("hello")


def syxdbg_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "syxdbg", *args], capture_output=True,
                          timeout=300, cwd=cwd, check=False)


def test_uart_output_and_exit_status(hello: Path) -> None:
    p = syxdbg_cli("run", "--board", str(BOARD), str(hello))
    assert p.stdout == HELLO_OUT, p.stderr
    assert p.returncode == 0, p.stderr


def test_raw_image_on_the_default_board(hello: Path, tmp_path: Path) -> None:
    # The default board has the same UART and timer addresses and SRAM at 0x20000000.
    raw = ("--raw", str(firmware_binary(hello)), "--arch", "cortex-m", "--base", "0")
    p = syxdbg_cli("run", *raw)
    assert p.stdout == HELLO_OUT, p.stderr
    assert p.returncode == 0
    rec = tmp_path / "raw.syxrec"
    p = syxdbg_cli("record", "-o", str(rec), *raw)
    assert p.returncode == 0 and p.stdout == HELLO_OUT, p.stderr
    p = syxdbg_cli("replay", "--check", str(rec))
    assert p.returncode == 0 and b"as recorded" in p.stdout, p.stdout + p.stderr


def test_uart_output_to_a_file(hello: Path, tmp_path: Path) -> None:
    board = tmp_path / "board.toml"
    board.write_text(BOARD.read_text().replace('irq = 1\n', 'irq = 1\noutput = "uart.txt"\n'))
    p = syxdbg_cli("run", "--board", str(board), str(hello), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout == b""
    assert (tmp_path / "uart.txt").read_bytes() == HELLO_OUT


def test_bad_board_files_are_one_line_errors(hello: Path, tmp_path: Path) -> None:
    cases = {
        "name = ": "not a valid TOML board file",
        "[[memory]]\nname='a'\nbase=0\nsize=0x1000\n[[memory]]\nname='b'\nbase=0\n"
        "size=0x2000\n": "overlap",
        "[[memory]]\nname='a'\nbase=0x100\nsize=0x1000\n": "multiples of 4 KiB",
        "[[memory]]\nname='a'\nbase=0\nsize=0x1000\n[[memory]]\nname='s'\nbase=0x20000000\n"
        "size=0x1000\n[[peripheral]]\nname='u'\nbase=0x40000000\nmodel='nosuch'\n":
        "unknown peripheral model",
    }
    for text, message in cases.items():
        board = tmp_path / "bad.toml"
        board.write_text(text)
        p = syxdbg_cli("run", "--board", str(board), str(hello))
        err = p.stderr.decode()
        assert p.returncode == 2 and message in err, (text, err)
        assert len(err.strip().splitlines()) == 1, err


def open_hello(hello: Path) -> syxdbg.Session:
    return syxdbg.open(str(hello), options={"board": str(BOARD)})


def test_last_write_finds_the_interrupt_handler(hello: Path) -> None:
    with open_hello(hello) as s:
        assert s.machine.arch.name == "cortex-m"
        # Reset from the vector table: the initial SP and the reset handler.
        assert s.regs.sp == 0x2001_0000 and s.regs.pc == s.symbols["Reset_Handler"]
        end = s.run()
        assert isinstance(end, Exited) and end.status == 0
        assert s.mem.read(s.symbols["message"], 4) == b"\x08\0\0\0"
        hit = s.last_write("message", 4)
        assert hit is not None
        assert str(s.image.symbolize(s.regs.pc)).startswith("SysTick_Handler")
        assert cm.current_exception(s.machine) == cm.SYSTICK
        # Before the store: the message is intact until this tick (ticks == 8).
        assert s.mem.read(s.symbols["message"], 4) == b"hell"
        assert int.from_bytes(s.mem.read(s.symbols["ticks"], 4), "little") == 8
        # Back out of the handler: the instruction before its first one is main's wfi,
        # in Thread mode on the main stack, with the exception frame gone.
        entry = s.symbols["SysTick_Handler"]
        while s.regs.pc != entry:
            s.step("backward")
        handler_sp = s.regs.sp
        s.step("backward")
        assert str(s.image.symbolize(s.regs.pc)).startswith("main")
        assert s.machine.disassemble(s.regs.pc, 1)[0][1] == "wfi"
        assert cm.current_exception(s.machine) == 0
        assert s.regs.sp == handler_sp + 32  # the basic frame
        # And forward again into the same handler, at the same position.
        pos = s.position
        s.step()
        assert s.regs.pc == entry and s.position == pos + 1
        assert s.regs.lr == 0xFFFF_FFF9


def test_reverse_execution_is_exact_across_interrupts(hello: Path) -> None:
    """Registers and positions of every stop met going forward are met again when
    seeking back to them (each interrupt is taken at the same position)."""
    with open_hello(hello) as s:
        seen = []
        for _ in range(60):
            s.run(count=23)
            seen.append((s.position, s.regs.snapshot()))
        for pos, regs in reversed(seen[::7]):
            s.seek(pos)
            assert s.regs.snapshot() == regs, pos


def test_record_and_replay_check(hello: Path, tmp_path: Path) -> None:
    rec = tmp_path / "fw.syxrec"
    p = syxdbg_cli("record", "-o", str(rec), "--board", str(BOARD), str(hello))
    assert p.returncode == 0, p.stderr
    assert p.stdout == HELLO_OUT
    p = syxdbg_cli("replay", "--check", str(rec))
    assert p.returncode == 0, p.stderr
    assert b"exited with status 0, as recorded" in p.stdout
    # The firmware's output is not printed again: it came from the UART model, which a
    # replay does not run (every value it gave is in the recording).
    assert b"hello" not in p.stdout + p.stderr
    with syxdbg.replay(str(rec)) as s:
        s.run()
        hit = s.last_write("message", 4)
        assert hit is not None
        assert str(s.image.symbolize(s.regs.pc)).startswith("SysTick_Handler")


def test_sleeping_forever_is_reported(tmp_path: Path) -> None:
    p = syxdbg_cli("run", "--board", str(BOARD), str(build_firmware("idle")))
    err = p.stderr.decode()
    assert p.returncode == 128 + 9, err
    assert "waits for an interrupt (wfi at 0x" in err and "(Reset_Handler+" in err
    assert "that nothing can raise; it is killed (SIGKILL)" in err


def test_faults_stop_or_go_to_the_hardfault_handler(tmp_path: Path) -> None:
    fault = str(build_firmware("fault"))
    p = syxdbg_cli("run", "--board", str(BOARD), fault)
    assert p.returncode == 128 + 11 and p.stdout == b"before\n"
    assert b"SIGSEGV at pc 0x" in p.stderr and b"(main+" in p.stderr
    assert b"read from unmapped memory at 0x30000010" in p.stderr
    board = tmp_path / "board.toml"
    board.write_text(BOARD.read_text().replace('cpu = "cortex-m4"\n',
                                               'cpu = "cortex-m4"\nfaults = "handler"\n'))
    p = syxdbg_cli("run", "--board", str(board), fault)
    # CFSR: PRECISERR | BFARVALID; HFSR: FORCED; BFAR: the address; SYS_EXIT_EXTENDED 3.
    assert p.stdout == b"before\nhardfault cfsr 00008200 hfsr 40000000 bfar 30000010\n"
    assert p.returncode == 3, p.stderr
    with syxdbg.open(fault, options={"board": str(board)}) as s:
        s.run()
        # The handler is entered at the faulting load, which did not retire: it returns
        # to the load, and one step back is the instruction before it, in Thread mode.
        entry = s.symbols["HardFault_Handler"]
        s.seek(0)
        s.run(until=entry)
        frame_pc = int.from_bytes(s.mem.read(s.regs.sp + 24, 4), "little")
        assert s.machine.disassemble(frame_pc, 1)[0][1] == "ldr"
        assert str(s.image.symbolize(frame_pc)).startswith("main")
        s.step("backward")
        assert s.regs.pc < frame_pc and cm.current_exception(s.machine) == 0
        s.step()
        assert s.regs.pc == frame_pc  # about to fault
        s.step()
        assert str(s.image.symbolize(s.regs.pc)).startswith("HardFault_Handler")
        assert cm.current_exception(s.machine) == cm.HARDFAULT


def test_every_model_value_is_an_event_log_input(hello: Path) -> None:
    with open_hello(hello) as s:
        s.run()
        events = [e for e in s.timeline.eventlog.events() if e.source == "firmware"]
        calls = {(e.call, e.key[0]) for e in events if e.call != "semihost_write"}
        assert calls == {("read", "uart0"), ("write", "uart0"), ("write", "timer0"),
                         ("event", "timer0")}
        # A read's event holds the value the firmware got (STATUS: ready to send) and
        # the interrupts the model raised (none); a timer event its time and its IRQ.
        status = [e for e in events if e.call == "read" and e.key[1] == 4]
        assert status and all(e.result == (2, ()) for e in status)
        ticks = [e for e in events if e.call == "event"]
        assert len(ticks) == 4 and all(e.result[1] == (0,) for e in ticks)
        assert [e.result[0] for e in ticks] == [2500 * (i + 1) + ticks[0].result[0] - 2500
                                                for i in range(4)]
        # No SysTick or NVIC access is logged: the system control space is deterministic
        # state, re-executed.
        assert not any(e.key[0] == "scs" for e in events)


def test_uart_input_by_interrupt(tmp_path: Path) -> None:
    fw = str(build_firmware("rxirq"))
    p = subprocess.run([sys.executable, "-m", "syxdbg", "run", "--board", str(BOARD), fw],
                       input=b"stressed\n", capture_output=True, timeout=300, check=False)
    assert p.stdout == b"desserts\n" and p.returncode == 0, p.stderr
    # Input that ends without a newline: the UART stops polling, nothing can wake the
    # firmware any more.
    p = subprocess.run([sys.executable, "-m", "syxdbg", "run", "--board", str(BOARD), fw],
                       input=b"abc", capture_output=True, timeout=300, check=False)
    assert p.returncode == 128 + 9 and b"waits for an interrupt" in p.stderr
    rec = tmp_path / "rx.syxrec"
    p = subprocess.run([sys.executable, "-m", "syxdbg", "record", "-o", str(rec), "--board",
                        str(BOARD), fw], input=b"stressed\n", capture_output=True,
                       timeout=300, check=False)
    assert p.returncode == 0 and p.stdout == b"desserts\n"
    p = syxdbg_cli("replay", "--check", str(rec))
    assert p.returncode == 0, p.stdout + p.stderr


def test_nvic_and_board_commands(hello: Path) -> None:
    from syxdbg.commands import make_registry

    with open_hello(hello) as s:
        s.run(until="SysTick_Handler")
        s.run(count=1)
        for frontend in ("shell", "gdb"):  # the shell and gdb's monitor
            r = make_registry(s, frontend=frontend)
            text = r.run_text("nvic")
            assert "mode: Handler, SysTick; PRIMASK 0" in text
            assert "active: 15 SysTick (priority 0x00)" in text
            assert "SysTick: running, reload 999, next wrap at cycle" in text
            assert "enabled IRQs: 16 IRQ0 (priority 0x00)" in text
            board = r.run_text("board")
            assert "0x40004000-0x40005000  uart0        model uart, IRQ 1" in board
            assert "0x08000000-0x08040000  flash-alias  alias of flash" in board
