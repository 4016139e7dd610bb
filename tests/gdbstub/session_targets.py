"""Stubs over either target: the toy double, or syxdbg's real SessionTarget on a raw blob.

The stub's scripted conversations (test_gdbstub_session_target.py) and the hostile-input
suite (tests/hostile/stub_*) run against both, so what the stub promises is checked against
the real adapter too, not only against the double. gdbstub itself never imports syxdbg;
only these tests do.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from gdbstub_doubles import NOP, PC, FullToyTarget, jump

from gdbstub import GdbStub

_GDB_TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gdb")
if _GDB_TESTS not in sys.path:
    sys.path.insert(0, _GDB_TESTS)

from blobs import BASE, COUNTER, assemble  # noqa: E402

KINDS = ("toy", "session")


@dataclass
class StubUnderTest:
    """A stub plus the facts a target-independent conversation needs."""

    kind: str
    stub: GdbStub
    pc_regnum: int
    entry: int  # pc at the start
    writable: int  # an address that can be read and written (8 bytes)
    unreadable: int  # an address nothing is mapped at


#: ``make(program)`` -> StubUnderTest, for program "steps" (straight-line code that ends
#: badly) or "spin" (an endless loop).
MakeStub = Callable[[str], StubUnderTest]


def stub_factory(kind: str, workdir: Path, stack: ExitStack) -> MakeStub:
    """A factory of fresh stubs of ``kind``; sessions are closed when ``stack`` closes."""
    built: dict[str, Path] = {}

    def make(program: str) -> StubUnderTest:
        if kind == "toy":
            code = jump(-2) if program == "spin" else bytes([NOP] * 12)
            return StubUnderTest(kind, GdbStub(FullToyTarget(code)), PC, 0x400000,
                                 0x400100, 0x500000)
        import syxdbg
        from syxdbg.gdb_target import SessionTarget

        if program not in built:
            built[program] = assemble("x86_64", program, workdir)
        session = syxdbg.open(str(built[program]), raw=True, arch="x86_64", base=BASE)
        stack.callback(session.close)
        target = SessionTarget(session)
        stack.callback(target.close)
        return StubUnderTest(kind, GdbStub(target), 0x10, BASE, COUNTER, 0x10)

    return make


def stubs(kind: str, workdir: Path) -> Iterator[MakeStub]:
    """Generator for a pytest fixture: yields the factory, closes the sessions after."""
    with ExitStack() as stack:
        yield stub_factory(kind, workdir, stack)
