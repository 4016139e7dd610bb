"""Instruction traces in the text format of the Tenet trace explorer (IDA Pro, Binary Ninja).

``trace FILE FROM TO`` (shell and gdb's ``monitor``) re-executes positions [FROM, TO) with a
C tracer attached (:meth:`syxdbg.machine.Machine.insn_tracer`) and writes one line per
instruction, then comes back to the current position. ``trace FILE +N`` traces the next N
instructions from here, ``trace FILE -N`` the N before here, ``trace FILE P`` those between
here and P. Nothing runs until a trace is asked for.

The format (Tenet's ``tracers/README.md``, its parser ``tenet/trace/file.py``, and the
reference tracers' convention): line k describes the state before the instruction at
position FROM+k: the registers that changed since line k-1 as ``name=0xVALUE`` (every
register on the first line), the program counter, then the memory the instruction at
FROM+k-1 read (``mr=0xADDR:HEXBYTES``) and wrote (``mw=...``). Tenet reads a line's memory
as part of the step into that line's state, so an instruction's accesses appear on the next
line and those of the last traced instruction (TO-1) on none: trace to TO+1 to see them.
Registers: Tenet's x86-64 set (rax..r15, rip); for aarch64 x0..x30, sp and pc (Tenet ships no
AArch64 architecture module; docs/plugins.md shows the one to add).

Threads: FILE is the whole program's instructions in the order they ran. When more than one
thread ran in the range, ``FILE.TID`` is also written for each: that thread's instructions
only, a Tenet trace of its own (``threads.py``).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from typing import IO, TYPE_CHECKING, BinaryIO

from syxdbg import hookimpl
from syxdbg.commands import Arg, CommandError

from .. import _replay
from ..coverage.output import output_file
from .threads import SwitchSpy, split

if TYPE_CHECKING:
    from syxdbg.commands import Args, CommandRegistry, Context
    from syxdbg.machine import InsnTracer, Machine

__all__ = ["DEFAULT_LIMIT", "tenet_registers", "trace_command"]


def tenet_registers() -> dict[str, tuple[tuple[str, ...], str]]:
    """Per architecture: the registers on each line and the name of the program counter,
    from the ArchSpec (``trace_registers``; x86_64's is Tenet's ArchAMD64 exactly, since a
    name Tenet does not know, rflags..., would make it reject the line). Read when a trace
    is written: loading the plugin does not load the machine's architectures."""
    from syxdbg.machine import ARCHES

    return {name: (spec.trace_registers, spec.pc) for name, spec in ARCHES.items()
            if spec.trace_registers}

#: Tenet's recommended maximum trace length (its README: about 10 million instructions).
DEFAULT_LIMIT = 10_000_000


def _range(ctx: Context, first: str, second: str | None) -> tuple[int, int]:
    s = ctx.session
    here = s.position
    if second is not None:
        return _replay.parse_position(s, first), _replay.parse_position(s, second)
    other = _replay.parse_position(s, first)
    return (here, other) if other >= here else (other, here)


DESCRIPTION = (
    "Re-executes positions [FROM, TO) with a C tracer attached and writes one line per "
    "instruction in the Tenet trace explorer's text format, then comes back to the current "
    "position; nothing traces while no trace is asked for. With one position: +N (the next N "
    "instructions), -N (the N before here) or P (between here and P). Positions as in "
    "coverage. Past the frontier execution is live, as with goto. Line k is the state before "
    "the instruction at FROM+k (changed registers, pc) plus the memory the instruction before "
    "it read (mr) and wrote (mw), Tenet's convention. Refuses more than trace.limit "
    "instructions (Tenet handles about 10 million). When several threads ran, FILE.TID is also "
    "written for each: its own instructions only."
)


class _Traced:
    """The tracer and the switch watcher, attached and detached together."""

    def __init__(self, tracer: InsnTracer, spy: SwitchSpy) -> None:
        self.tracer = tracer
        self.spy = spy
        self.rewound_at: int | None = None

    def detach(self) -> None:
        self.spy.detach()
        self.tracer.detach()
        self.rewound_at = self.tracer.rewound_at


def _per_thread(ctx: Context, path: str, raw: BinaryIO, start: int,
                stretches: list[tuple[int, int, int]]) -> dict[int, int]:
    """When several threads ran: ``path.TID`` for each, its own lines (threads.py)."""
    if len({tid for _, _, tid in stretches}) < 2:
        return {}
    raw.seek(0)
    with contextlib.ExitStack() as stack:
        def open_out(tid: int) -> IO[str]:
            out = stack.enter_context(output_file(ctx, f"{path}.{tid}"))
            return io.TextIOWrapper(out, encoding="ascii", newline="\n")

        source = io.TextIOWrapper(raw, encoding="ascii", newline="\n")
        try:
            return split(source, start, stretches, open_out)
        finally:
            source.detach()


def trace_command(ctx: Context, args: Args) -> str:
    """The ``trace`` command (see DESCRIPTION)."""
    s = ctx.session
    arch = s.machine.arch.name
    tenet = tenet_registers()
    if arch not in tenet:
        raise CommandError(f"trace: no register set for {arch}")
    start, end = _range(ctx, args["from"], args.to)
    _replay.check_range(s, start, end, allow_live=True)
    limit = int(ctx.settings["trace.limit"])
    if limit > 0 and end - start > limit:
        raise CommandError(f"{end - start} instructions is more than trace.limit ({limit}; "
                           f"Tenet handles about 10 million): narrow the range or "
                           f"'set trace.limit N' (0: no limit)")
    registers, pc_name = tenet[arch]
    path = args.file
    # From gdb, only under the server's output directory (see coverage/output.py).
    with output_file(ctx, path) as f, tempfile.TemporaryFile("w+b") as raw:
        def attach(machine: Machine) -> _Traced:
            return _Traced(machine.insn_tracer(raw.fileno(), registers, pc_name=pc_name),
                           SwitchSpy(s))

        traced, r = _replay.replay(ctx, start, end, attach, "trace")
        tracer = traced.tracer
        raw.seek(0)
        shutil.copyfileobj(raw, f)
        stretches = traced.spy.stretches(start, r.reached)
        per_thread = _per_thread(ctx, path, raw, start, stretches)
    error = tracer.error
    if error is not None:
        raise CommandError(f"trace: {path} is incomplete: {error}")
    if tracer.lines != r.reached - start:
        raise CommandError(f"trace: {path} has {tracer.lines} lines for "
                           f"{r.reached - start} instructions")
    text = (f"trace of positions {start}..{r.reached} written to {path}: {tracer.lines} lines "
            f"(Tenet format)")
    if per_thread:
        text += f"; {len(stretches)} stretches of {len(per_thread)} threads, one trace each: " \
            + ", ".join(f"{path}.{tid} ({n} lines)" for tid, n in sorted(per_thread.items()))
    if r.live_from is not None and r.reached > r.live_from:
        text += f"; executed live past the frontier (was {r.live_from})"
    if not r.complete:
        text += f"\n  incomplete: {_replay.stopped_early(r)}"
    return text + "\n"


@hookimpl
def syxdbg_register_commands(registry: CommandRegistry) -> None:
    registry.command(
        "trace", "write a Tenet instruction trace of positions FROM..TO (or +N, -N from "
        "here) to FILE", category="history", description=DESCRIPTION,
        args=(Arg("file", "text", help="output file (Tenet text trace; from gdb: a name "
                  "under the server's output directory)"),
              Arg("from", "position", help="first position, or +N/-N/P with no TO"),
              Arg("to", "position", optional=True,
                  help="position after the last instruction")),
    )(trace_command)
    registry.settings.declare("trace.limit", DEFAULT_LIMIT,
                              "most instructions trace writes without complaint (0: no limit)")
