"""Recorders that watch the machine execute: basic-block coverage and instruction traces.

A recorder is created attached (:meth:`Machine.block_recorder`,
:meth:`Machine.insn_tracer`) and costs nothing once detached: its C hooks (``_probes``) are
deleted and, for the tracer, every translated block is dropped so none keeps calling them.
Use them as context managers::

    with machine.block_recorder() as rec:
        machine.run(count=1000)
    rec.blocks()              # [(start, byte size), ...] of the code that ran

    with open("t.log", "wb") as f, machine.insn_tracer(f.fileno(), ["rax", "rbx"],
                                                        pc_name="rip") as tr:
        machine.run(count=1000)
    tr.lines                  # == 1000, one line per retired instruction

What they record matches what *retired*: the machine reports every stop to its recorders
(:meth:`Machine.run`), so a block cut short by a breakpoint, a bounded run or a fault
counts only up to the stop, and the trace has exactly one line per retired instruction (x86
``rep`` instructions: one per iteration, as positions count them).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import SyxdbgError
from ._probes import BlockCore, IndexCore, TraceCore
from ._probes import ranges_overlap as ranges_overlap
from ._probes import ranges_pack as ranges_pack
from ._probes import ranges_union as ranges_union
from ._probes import ranges_unpack as ranges_unpack

if TYPE_CHECKING:
    from .arch import ArchSpec
    from .memory import Memory
    from .registers import Registers

#: Host writes (system call results) larger than this are left out of traces: file
#: mappings would put megabytes of hex on one line.
HOST_WRITE_MAX = 64 * 1024


class Probe(Protocol):
    """What the machine calls on an attached recorder (see :meth:`Machine.run`)."""

    def _attach(self) -> None: ...
    def _release(self) -> None: ...
    def _at_stop(self, pc: int, inside: bool) -> None: ...
    def _settled(self, position: int) -> None: ...
    def _rewound(self, position: int) -> None: ...
    def detach(self) -> None: ...


class Machine(Protocol):
    """What a recorder needs of the machine it records (the machine's public API plus the
    detach call): recorders do not import the machine module, so the machine may import
    them without an import circle."""

    @property
    def position(self) -> int: ...
    @property
    def uc(self) -> Any: ...
    @property
    def native_core(self) -> Any: ...
    @property
    def probes(self) -> list[Probe]: ...
    regs: Registers
    arch: ArchSpec
    mem: Memory

    def _detach_probe(self, probe: Probe) -> None: ...


class TraceError(SyxdbgError):
    """A trace could not be recorded completely (no memory, a write error, rewound)."""


class _Recorder(abc.ABC):
    def __init__(self, machine: Machine) -> None:
        self._machine = machine
        #: The position recording started at.
        self.start = machine.position
        self._position = machine.position  # where the last stop settled
        #: Set when the machine's state was replaced while attached (a checkpoint restore):
        #: the recording then no longer describes one stretch of execution.
        self.rewound_at: int | None = None

    @property
    def attached(self) -> bool:
        return self in self._machine.probes

    def detach(self) -> None:
        """Stop recording (idempotent). What was recorded stays readable."""
        self._machine._detach_probe(self)

    def __enter__(self) -> _Recorder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.detach()

    def _at_stop(self, pc: int, inside: bool) -> None:  # noqa: B027 - optional override
        """The machine stopped at ``pc`` (``inside`` the current block); default: nothing."""

    def _settled(self, position: int) -> None:
        self._position = position

    def _rewound(self, position: int) -> None:
        if position != self._position and self.rewound_at is None:
            self.rewound_at = position
        self._position = position

    @abc.abstractmethod
    def _attach(self) -> None:
        """Install the C hooks (each recorder kind has its own)."""

    @abc.abstractmethod
    def _release(self) -> None:
        """Remove the C hooks."""


class BlockRecorder(_Recorder):
    """The basic blocks executed while attached, as (start, byte size) pairs.

    Blocks are Unicorn's translation blocks (straight-line code ending at a branch), or the
    part of one that ran when execution stopped inside it.
    """

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self._core = BlockCore(machine.uc, machine.native_core)

    def __enter__(self) -> BlockRecorder:
        return self

    def blocks(self) -> list[tuple[int, int]]:
        """Sorted (start, size) of every distinct block executed so far."""
        if self._core.out_of_memory:
            raise SyxdbgError("the block recorder ran out of memory")
        return self._core.blocks()

    def __len__(self) -> int:
        return len(self._core)

    @property
    def entries(self) -> int:
        """How many times a block was entered (including re-entries)."""
        return int(self._core.entries)

    def _attach(self) -> None:
        self._core.attach()

    def _release(self) -> None:
        self._core.detach()

    def _at_stop(self, pc: int, inside: bool) -> None:
        self._core.at_stop(pc, inside)

    def _settled(self, position: int) -> None:
        super()._settled(position)
        # Anything entered after the stop (the machine re-running a faulting instruction to
        # locate its address) did not execute.
        self._core.forget()

    def _rewound(self, position: int) -> None:
        super()._rewound(position)
        self._core.forget()


class InsnTracer(_Recorder):
    """A Tenet-format text trace (one line per retired instruction) written to ``fd``.

    Each line holds the registers of ``registers`` that changed since the previous line
    (all of them on the first), then ``pc_name=0x...``, then the memory the *previous*
    instruction read (``mr=ADDR:HEX``) and wrote (``mw=ADDR:HEX``), as Tenet's own tracers
    write it. Memory written by the host during an instruction (a system call filling a
    buffer) appears as ``mw`` too. The caller owns ``fd`` (it is not closed).
    """

    def __init__(self, machine: Machine, fd: int, registers: Sequence[str], *,
                 pc_name: str = "pc") -> None:
        super().__init__(machine)
        ids = []
        for name in registers:
            info = machine.regs.info(name)
            # A 32-bit register (arm) lands in the low half of the tracer's 64-bit slot,
            # whose high half nothing ever writes (little-endian hosts and guests).
            if info.uc_id is None or info.size not in (4, 8):
                raise ValueError(f"register {name!r} cannot be traced (32- and 64-bit "
                                 f"registers Unicorn models only)")
            ids.append(info.uc_id)
        self._core = TraceCore(machine.uc, machine.native_core, fd, ids,
                                       [n.lower() for n in registers], pc_name)
        if machine.arch.name in ("arm", "cortex-m"):
            # Thumb IT blocks: a line for each instruction whose condition fails too.
            from unicorn.arm_const import UC_ARM_REG_CPSR

            self._core.track_it_blocks(UC_ARM_REG_CPSR)

    def __enter__(self) -> InsnTracer:
        return self

    @property
    def lines(self) -> int:
        """Lines recorded so far (one per retired instruction)."""
        return int(self._core.lines)

    @property
    def accesses(self) -> int:
        return int(self._core.accesses)

    @property
    def error(self) -> str | None:
        """Why the trace is incomplete, or None."""
        if self.rewound_at is not None:
            return f"the machine jumped to position {self.rewound_at} while tracing"
        err = self._core.error
        if err is None:
            return None
        if err == "memory":
            return "out of memory"
        if err == "inconsistent":
            return ("the trace lost track of the retired instructions (self-modifying code "
                    "or a stop it could not follow)")
        import os

        return f"write error: {os.strerror(int(err))}"

    def check(self) -> None:
        """Raise :class:`TraceError` if the trace is incomplete."""
        if self.error is not None:
            raise TraceError(self.error)

    def _attach(self) -> None:
        self._core.attach()
        self._machine.mem.write_observers.append(self._host_write)

    def _release(self) -> None:
        obs = self._machine.mem.write_observers
        if self._host_write in obs:
            obs.remove(self._host_write)
        self._core.detach()

    def _host_write(self, address: int, size: int) -> None:
        if size <= HOST_WRITE_MAX:
            self._core.host_write(address, size)

    def _settled(self, position: int) -> None:
        super()._settled(position)
        self._core.settle(position - self.start)  # a mismatch is reported by .error

    def _rewound(self, position: int) -> None:
        super()._rewound(position)
        if self.rewound_at is not None:
            self._core.mark_broken()


class CodeIndex:
    """The code executed per checkpoint interval (the timeline's indexed reverse search).

    Not a recorder: nothing per stop. The machine's run core tells it of every block it
    counts (C, no Python); :meth:`take` returns the byte ranges of every block entered since
    the last :meth:`take` or :meth:`reset` as range-set bytes (sorted disjoint [lo, hi)
    pairs of native uint64; see :func:`ranges_overlap` and :func:`ranges_union`). The ranges
    are a superset of the instructions executed (a block left early counts whole), so an
    address outside them was not executed in the interval.
    """

    def __init__(self, machine: Machine) -> None:
        self._core = IndexCore(machine.native_core)
        self._core.attach()

    @property
    def usable(self) -> bool:
        """False once a block could not be recorded (no memory): summaries are then wrong."""
        return self._core.attached and not self._core.out_of_memory

    def peek(self) -> bytes:
        return self._core.peek()

    def take(self) -> bytes:
        return self._core.take()

    def reset(self) -> None:
        self._core.reset()

    def close(self) -> None:
        self._core.detach()
