"""``syxdbg demo``: run the bundled ledger, then find by time travel who corrupted it."""

from __future__ import annotations

import argparse
import os
import sys
from importlib import resources
from typing import TYPE_CHECKING, Any

from .. import sigint
from .report import report_end

if TYPE_CHECKING:
    import pluggy


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo", help="run the bundled example program",
        description="Run the bundled example program (a ledger whose balance gets "
        "corrupted) under emulation, then find by time travel the store that corrupted it.")
    p.set_defaults(handler=_handle)


def _handle(ns: argparse.Namespace, pm: pluggy.PluginManager) -> int:
    return demo()


def demo() -> int:
    """Run the bundled ledger, then find by time travel who corrupted its balance."""
    from .. import api
    from ..commands.debuginfo import DebugInfo

    example = resources.files("syxdbg").joinpath("examples", "ledger-x86_64")
    with resources.as_file(example) as path:
        print(f"syxdbg demo: running the bundled example {path.name} under emulation, "
              "recording its history\n", file=sys.stderr)
        sys.stdout.flush()
        with api.open(str(path), (), env={}, argv0="ledger") as session:
            sigint.startup_done()
            end = session.run()
            status = report_end(session, end)
            sys.stdout.flush()
            balance = session.symbols["ledger"] + 16 * 8  # struct ledger: history[16], balance
            final = int.from_bytes(session.mem.read(balance, 8), "little", signed=True)
            print(f"\nsyxdbg demo: the program exited with status {status} after "
                  f"{end.position} instructions; ledger.balance ends as {final}.",
                  file=sys.stderr)
            print("syxdbg demo: who wrote ledger.balance last, and when? Going back in "
                  "time...", file=sys.stderr)
            found = session.last_write(balance, 8)
            if found is None:
                print("syxdbg demo: no write to ledger.balance in the recorded history",
                      file=sys.stderr)
                return 1
            before = int.from_bytes(session.mem.read(balance, 8), "little", signed=True)
            insn = session.machine.disassemble(found.pc, 1)
            text = f"{insn[0][1]} {insn[0][2]}".strip() if insn else "?"
            where = session.image.symbolize(found.pc) or "?"
            row = DebugInfo(session).line_at(found.pc)
            line = f"{os.path.basename(row.file)}:{row.line}" if row else "no line information"
            print(f"""
  the last write to ledger.balance ({balance:#x}) is
    instruction  {found.pc:#x}: {text}
    function     {where}
    source       {line}
    position     {found.position} (of {end.position} instructions)
    value        {before} before it, {final} after it

  Explore it yourself (the binary is {path}):
    syxdbg gdb {path}
        (gdb) watch ledger.balance
        (gdb) continue             # ... until the program exits
        (gdb) reverse-continue     # lands on the store above
    syxdbg shell {path}
        > run
        > last-write ledger.balance 8
""", file=sys.stderr)
    return 0
