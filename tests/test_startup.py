"""Start-up cost (issues 15 and 19): what each command line loads before the guest runs.

Timing belongs in benchmarks (benchmarks/dynamic_startup.py); these tests pin the *structure* that
makes start-up fast, so a stray module-level import cannot silently undo it: building the
parser (``--help``, ``--version``, every bad-usage error) loads no emulator, disassembler,
ELF/DWARF reader, terminal UI or gdb stub, and ``syxdbg run`` loads neither the shell's
terminal UI nor the gdb stub.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

#: Top-level packages that cost start-up time and that a command only loads when it needs.
HEAVY = ("unicorn", "capstone", "elftools", "prompt_toolkit", "gdbstub")
#: Modules that no command loads before the guest runs (issue 19): importlib.metadata (the
#: plugin entry points are read directly, syxdbg.plugins.find_entry_points) and the plugins
#: that only add commands (syxdbg.firstparty.LAZY_PLUGINS).
LAZY = ("importlib.metadata", "syxdbg_plugins.timeline", "syxdbg_plugins.trace")

_PROBE = """
import json, sys
from syxdbg.cli.entry import {what}
{call}
mods = sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r}
              or m in ("syxdbg.session", "syxdbg.timeline", "syxdbg.machine.core")
              or m in {lazy!r} or m.startswith("syxdbg.cli.") and {commands!r})
sys.stderr.write("\\nMODULES " + json.dumps(mods) + "\\n")
"""


def _loaded(what: str, call: str, *, commands: bool = False) -> list[str]:
    """The heavy or lazy modules loaded by ``call`` (and the syxdbg.cli modules with
    ``commands``)."""
    code = _PROBE.format(what=what, call=call, heavy=HEAVY, lazy=LAZY, commands=commands)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("MODULES ")]
    assert line, proc.stderr
    return list(json.loads(line[-1][len("MODULES "):]))


def test_parser_loads_no_emulator_ui_or_stub() -> None:
    loaded = _loaded("build_parser", "from syxdbg.plugins import make_plugin_manager\n"
                     "build_parser(make_plugin_manager())")
    assert loaded == []


def test_version_and_usage_errors_load_nothing_heavy() -> None:
    for argv in (["--version"], ["run", "--no-such-option"], ["serve", "--port", "x"]):
        call = (f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass")
        assert _loaded("main", call) == [], argv


def test_run_loads_no_terminal_ui_or_gdb_stub(build_program) -> None:
    hello: Path = build_program("hello", "gcc")
    loaded = _loaded("main", f"status = main(['run', {str(hello)!r}, '--exit=7'])\n"
                     "assert status == 7, status", commands=True)
    assert "unicorn" in loaded and "syxdbg.session" in loaded  # it did run the guest
    for package in ("prompt_toolkit", "gdbstub", "elftools", *LAZY):
        assert not [m for m in loaded if m.split(".")[0] == package or m == package], (
            package, loaded)
    # Only the subcommand that runs is built: the other commands' modules are not imported.
    from syxdbg.cli.entry import COMMANDS

    others = [f"syxdbg.cli.{name}" for name in COMMANDS if name != "run"]
    assert "syxdbg.cli.run" in loaded and not set(others) & set(loaded), loaded
