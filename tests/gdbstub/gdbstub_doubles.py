"""Test doubles for the gdbstub protocol layer (NOT an emulator).

``ToyTarget`` is a register file plus a bytearray memory and a deliberately made-up "CPU" with
four opcodes, just enough to make the stub's run control observable: the pc advances, a store
can hit a watchpoint, a jump can loop forever (for Ctrl-C), and an exit opcode ends the program.
The register *layout* is x86-64's (as GDB numbers it) only so that a real gdb accepts the
target description in the end-to-end test; the opcodes have nothing to do with x86.

Toy opcodes (at ``pc``):
    90          nop                      pc += 1
    01 a32 v8   store byte v8 at a32     pc += 6   (little-endian a32)
    02 r8       jump pc + 2 + r8         (signed r8; ``02 fe`` loops forever)
    03          exit with status rax & 0xff
    anything else: stops with SIGILL
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gdbstub import (
    ArchInfo,
    DoneStep,
    Exited,
    GdbServer,
    GdbStub,
    HwBreak,
    MemoryTransport,
    ReplayLogBegin,
    ResumeAction,
    ResumeKind,
    SessionEnd,
    Signal,
    StopReason,
    SwBreak,
    TargetError,
    Watch,
    WatchKind,
)
from gdbstub.packet import Packet, PacketReader, encode_packet

NOP, STORE, JUMP, EXIT = 0x90, 0x01, 0x02, 0x03
SIGILL = 4

_GPRS = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp"] + [f"r{i}" for i in range(8, 16)]
_X87_CONTROL = ["fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop"]
# (name, size in bytes, gdb type) in GDB regnum order for org.gnu.gdb.i386.core (amd64).
REGISTERS: list[tuple[str, int, str]] = (
    [(name, 8, "int64") for name in _GPRS]
    + [("rip", 8, "code_ptr"), ("eflags", 4, "int32")]
    + [(seg, 4, "int32") for seg in ("cs", "ss", "ds", "es", "fs", "gs")]
    + [(f"st{i}", 10, "i387_ext") for i in range(8)]
    + [(name, 4, "int") for name in _X87_CONTROL]
)
REGNUM = {name: i for i, (name, _, _) in enumerate(REGISTERS)}
PC, SP, FP = REGNUM["rip"], REGNUM["rsp"], REGNUM["rbp"]

# NOTE(gdb): GDB 13 rejects an amd64 description without the x87 registers (gdb-rsp.md §1.7).
TARGET_XML = (
    '<?xml version="1.0"?>\n<!DOCTYPE target SYSTEM "gdb-target.dtd">\n<target version="1.0">\n'
    "  <architecture>i386:x86-64</architecture>\n"
    '  <feature name="org.gnu.gdb.i386.core">\n'
    + "".join(
        f'    <reg name="{name}" bitsize="{size * 8}" type="{kind}"/>\n'
        for name, size, kind in REGISTERS
    )
    + "  </feature>\n</target>\n"
)

MEM_BASE = 0x400000
MEM_SIZE = 0x10000


@dataclass
class History:
    """One executed instruction, enough to undo it (for the reverse capability)."""

    regs: list[bytes]
    mem_undo: list[tuple[int, int]] = field(default_factory=list)


class ToyTarget:
    """Base + Resume capabilities only (no breakpoints, no reverse, no monitor)."""

    def __init__(self, code: bytes = b"", *, chunk_insns: int = 500) -> None:
        self.regs: list[bytes] = [bytes(size) for _, size, _ in REGISTERS]
        self.mem = bytearray(MEM_SIZE)
        self.mem[: len(code)] = code
        self.set_reg("rip", MEM_BASE)
        self.set_reg("rsp", MEM_BASE + MEM_SIZE - 0x100)
        self.chunk_insns = chunk_insns
        self.action: ResumeAction | str | None = None
        self.step_range: tuple[int, int] = (0, 0)  # for the "range" action (RangeStepping)
        self._fresh = False  # first instruction of a continue: step off a breakpoint
        self.sw_bps: set[int] = set()
        self.hw_bps: set[int] = set()
        self.watches: dict[tuple[int, int], WatchKind] = {}
        self.history: list[History] = []
        self.executed = 0
        self.chunks = 0
        self.signals: list[int | None] = []
        self.first_chunk = threading.Event()

    # helpers for tests
    def set_reg(self, name: str, value: int) -> None:
        size = len(self.regs[REGNUM[name]])
        self.regs[REGNUM[name]] = value.to_bytes(size, "little")

    def reg(self, name: str) -> int:
        return int.from_bytes(self.regs[REGNUM[name]], "little")

    # BaseTarget
    def arch(self) -> ArchInfo:
        return ArchInfo(pc_regnum=PC, sp_regnum=SP, fp_regnum=FP, byteorder="little")

    def read_registers(self) -> Sequence[bytes]:
        return list(self.regs)

    def write_registers(self, data: bytes) -> None:
        sizes = [len(r) for r in self.regs]
        if len(data) != sum(sizes):
            raise TargetError(0x16, "G: wrong size")
        pos = 0
        for i, size in enumerate(sizes):
            self.regs[i] = data[pos : pos + size]
            pos += size

    def read_register(self, regnum: int) -> bytes | None:
        return self.regs[regnum] if 0 <= regnum < len(self.regs) else None

    def write_register(self, regnum: int, value: bytes) -> None:
        if not 0 <= regnum < len(self.regs) or len(value) != len(self.regs[regnum]):
            raise TargetError(0x16, "P: bad register")
        self.regs[regnum] = value

    def read_memory(self, addr: int, length: int) -> bytes:
        start = addr - MEM_BASE
        if not 0 <= start < MEM_SIZE:
            return b""
        return bytes(self.mem[start : start + length])

    def write_memory(self, addr: int, data: bytes) -> None:
        start = addr - MEM_BASE
        if not (start >= 0 and start + len(data) <= MEM_SIZE):
            raise TargetError(0x14, "write outside memory")
        self.mem[start : start + len(data)] = data

    def description_xml(self, annex: str) -> str | None:
        return TARGET_XML if annex == "target.xml" else None

    # ResumeTarget
    def resume(self, action: ResumeAction) -> None:
        self.action = action
        self.signals.append(action.signal)
        self._fresh = True

    def run_chunk(self, deadline: float) -> StopReason | None:
        self.chunks += 1
        self.first_chunk.set()
        action = self.action
        if action is None:
            return Signal(5)
        if action == "reverse-step":
            return self._undo() or DoneStep()
        if action == "reverse-continue":
            return self._reverse_chunk()
        if action == "range":
            return self._range_chunk(deadline)
        assert isinstance(action, ResumeAction)
        if action.kind is ResumeKind.STEP:
            self.action = None
            return self._execute() or DoneStep()
        for _ in range(self.chunk_insns):
            if not self._fresh and self._pc() in self.sw_bps:
                return SwBreak()
            if not self._fresh and self._pc() in self.hw_bps:
                return HwBreak()
            self._fresh = False
            stop = self._execute()
            if stop is not None:
                return stop
            if time.monotonic() >= deadline:
                break
        return None

    def _range_chunk(self, deadline: float) -> StopReason | None:
        """``vCont;r``: one step, then on while pc is in the range (breakpoints stop first)."""
        start, end = self.step_range
        for _ in range(self.chunk_insns):
            if not self._fresh:
                if not start <= self._pc() < end:
                    self.action = None
                    return DoneStep()
                if self._pc() in self.sw_bps:
                    return SwBreak()
                if self._pc() in self.hw_bps:
                    return HwBreak()
            self._fresh = False
            stop = self._execute()
            if stop is not None:
                return stop
            if time.monotonic() >= deadline:
                break
        return None

    # the toy "CPU"
    def _pc(self) -> int:
        return self.reg("rip")

    def _fetch(self, pc: int, n: int) -> bytes:
        return self.read_memory(pc, n)

    def _execute(self) -> StopReason | None:
        pc = self._pc()
        op = self._fetch(pc, 1)
        entry = History(list(self.regs))
        self.executed += 1
        if op == bytes([NOP]):
            self.set_reg("rip", pc + 1)
        elif op == bytes([STORE]):
            operands = self._fetch(pc + 1, 5)
            addr, value = int.from_bytes(operands[:4], "little"), operands[4]
            entry.mem_undo.append((addr, self.read_memory(addr, 1)[0]))
            self.write_memory(addr, bytes([value]))
            self.set_reg("rip", pc + 6)
            self.history.append(entry)
            for (waddr, length), kind in self.watches.items():
                if kind is not WatchKind.READ and waddr <= addr < waddr + length:
                    return Watch(kind, addr)
            return None
        elif op == bytes([JUMP]):
            rel = int.from_bytes(self._fetch(pc + 1, 1), "little", signed=True)
            self.set_reg("rip", pc + 2 + rel)
        elif op == bytes([EXIT]):
            return Exited(self.reg("rax") & 0xFF)
        else:
            self.executed -= 1
            return Signal(SIGILL)
        self.history.append(entry)
        return None

    def _undo(self) -> StopReason | None:
        self.action = None
        if not self.history:
            return ReplayLogBegin()
        entry = self.history.pop()
        self.regs = entry.regs
        for addr, old in reversed(entry.mem_undo):
            self.write_memory(addr, bytes([old]))
        return None

    def _reverse_chunk(self) -> StopReason | None:
        for _ in range(self.chunk_insns):
            self.action = "reverse-continue"
            stop = self._undo()
            if stop is not None:
                return stop
            if self._pc() in self.sw_bps:
                self.action = None
                return SwBreak()
        return None


class FullToyTarget(ToyTarget):
    """Every capability: range stepping, breakpoints, watchpoints, reverse, monitor,
    interrupt, kill."""

    def __init__(self, code: bytes = b"", **kwargs: int) -> None:
        super().__init__(code, **kwargs)
        self.interrupted = 0
        self.killed = False

    def add_sw_breakpoint(self, addr: int, kind: int) -> bool:
        self.sw_bps.add(addr)
        return True

    def remove_sw_breakpoint(self, addr: int, kind: int) -> bool:
        self.sw_bps.discard(addr)
        return True

    def add_hw_breakpoint(self, addr: int, kind: int) -> bool:
        self.hw_bps.add(addr)
        return True

    def remove_hw_breakpoint(self, addr: int, kind: int) -> bool:
        self.hw_bps.discard(addr)
        return True

    def add_watchpoint(self, addr: int, length: int, kind: WatchKind) -> bool:
        if length == 0:
            return False
        self.watches[(addr, length)] = kind
        return True

    def remove_watchpoint(self, addr: int, length: int, kind: WatchKind) -> bool:
        return self.watches.pop((addr, length), None) is not None

    def range_step(self, start: int, end: int) -> None:
        self.action = "range"
        self.step_range = (start, end)
        self._fresh = True

    def reverse_step(self) -> None:
        self.action = "reverse-step"

    def reverse_continue(self) -> None:
        self.action = "reverse-continue"

    def monitor_command(self, command: str, output: Callable[[str], None]) -> None:
        if command == "fail":
            raise TargetError(0x16, "monitor failed")
        if command == "crash":
            raise RuntimeError("monitor crashed")
        output(f"you said: {command}\n")
        output("done\n")

    def interrupt(self) -> None:
        self.interrupted += 1
        self.action = None

    def kill(self) -> None:
        self.killed = True


class CrashingTarget(FullToyTarget):
    """Every access raises an unexpected exception (robustness tests)."""

    def read_registers(self) -> Sequence[bytes]:
        raise RuntimeError("registers exploded")

    def read_memory(self, addr: int, length: int) -> bytes:
        raise RuntimeError("memory exploded")

    def run_chunk(self, deadline: float) -> StopReason | None:
        raise RuntimeError("cpu exploded")


def program(*instructions: bytes) -> bytes:
    return b"".join(instructions)


def store(addr: int, value: int) -> bytes:
    return bytes([STORE]) + addr.to_bytes(4, "little") + bytes([value])


def jump(rel: int) -> bytes:
    return bytes([JUMP, rel & 0xFF])


# --- conversation helpers ---------------------------------------------------------------


def replies(sent: bytes) -> list[bytes]:
    """The packet payloads in a server's output (acks dropped)."""
    return [e.data for e in PacketReader(1 << 20).feed(sent) if isinstance(e, Packet)]


@dataclass
class Conversation:
    stub: GdbStub
    end: SessionEnd
    sent: bytes
    replies: list[bytes] = field(default_factory=list)


def converse(stub: GdbStub, *packets: bytes, raw: bytes = b"") -> Conversation:
    """Send each packet (framed) as one chunk, then ``raw``, then end-of-stream."""
    chunks = [encode_packet(p) for p in packets] + ([raw] if raw else [])
    transport = MemoryTransport(chunks)
    end = stub.serve_connection(transport)
    sent = bytes(transport.sent)
    return Conversation(stub, end, sent, replies(sent))


class Client:
    """A minimal blocking RSP client over a real socket (acks on, as GDB starts)."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.reader = PacketReader(1 << 20)
        self.pending: list[Packet] = []

    def send(self, payload: bytes) -> None:
        self.sock.sendall(encode_packet(payload))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_packet(self) -> bytes:
        while not self.pending:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("server closed the connection")
            self.pending += [e for e in self.reader.feed(data) if isinstance(e, Packet)]
        return self.pending.pop(0).data

    def request(self, payload: bytes) -> bytes:
        self.send(payload)
        return self.recv_packet()

    def wait_closed(self) -> bool:
        """True once the server closes the connection (reads until EOF)."""
        while self.sock.recv(65536):
            pass
        return True

    def read_all(self) -> bytes:
        """Everything the server sends until it closes the connection."""
        data = bytearray()
        while chunk := self.sock.recv(65536):
            data += chunk
        return bytes(data)

    def close(self) -> None:
        self.sock.close()


@dataclass
class RunningServer:
    server: GdbServer
    thread: threading.Thread
    result: list[SessionEnd]

    @property
    def port(self) -> int:
        return self.server.port

    def connect(self) -> Client:
        return Client(self.port, self.server.address[0])


class RefusingTarget(FullToyTarget):
    """Refuses what a real emulator refuses: the last address as a breakpoint (TargetError
    for Z0, False for Z1), a segment register value (TargetError), and an unexpected crash
    when writing rbx (a target bug)."""

    TOP = (1 << 64) - 1

    def add_sw_breakpoint(self, addr: int, kind: int) -> bool:
        if addr == self.TOP:
            raise TargetError(0x16, "no breakpoint at the last address")
        return super().add_sw_breakpoint(addr, kind)

    def add_hw_breakpoint(self, addr: int, kind: int) -> bool:
        return addr != self.TOP and super().add_hw_breakpoint(addr, kind)

    def write_register(self, regnum: int, value: bytes) -> None:
        if regnum == REGNUM["fs"] and any(value):
            raise TargetError(0x16, "fs is not writable")
        if regnum == REGNUM["rbx"]:
            raise RuntimeError("emulator refused the register write")
        super().write_register(regnum, value)

    def write_registers(self, data: bytes) -> None:
        raise RuntimeError("emulator refused the register file")


class BlockingMonitorTarget(FullToyTarget):
    """``monitor spin`` runs (blocks) until :meth:`interrupt`, like ``monitor goto`` on an
    endless loop; ``started`` is set once it runs."""

    def __init__(self, code: bytes = b"", **kwargs: int) -> None:
        super().__init__(code, **kwargs)
        self.started = threading.Event()
        self.stop = threading.Event()
        self.monitor_thread: threading.Thread | None = None

    def monitor_command(self, command: str, output: Callable[[str], None]) -> None:
        if command != "spin":
            super().monitor_command(command, output)
            return
        self.monitor_thread = threading.current_thread()
        output("spinning\n")
        self.started.set()
        self.stop.wait(60)  # a safety net only: interrupt() ends it
        output("interrupted\n" if self.stop.is_set() else "gave up\n")

    def interrupt(self) -> None:
        super().interrupt()
        self.stop.set()
