"""Whole shell sessions through prompt_toolkit pipe input, and the ``syxdbg shell`` CLI."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

import syxdbg
from syxdbg.shell.app import Shell

Driven = Any  # tests/shell/conftest.py: Driven (printed, screen, status, shell)


def positions(text: str) -> list[int]:
    return [int(m) for m in re.findall(r"^position (\d+) \(frontier", text, re.M)]


def test_a_session_steps_repeats_and_goes_back(drive: Callable[[str], Driven]) -> None:
    d = drive("break record_history\nrun\nwhen\nstepi\n\n\nwhen\nrsi\nwhen\nquit\n")
    out = d.printed
    assert d.status == 0
    assert "Breakpoint 1 at" in out and "Breakpoint 1, 0x" in out
    p0, p3, p2 = positions(out)
    assert p3 == p0 + 3  # stepi, then two empty lines repeated it
    assert p2 == p0 + 2  # reverse-stepi
    for pane in ("── regs", "── code", "── source", "── stack", "── timeline"):
        assert pane in out
    assert "replaying" in out.split("── timeline")[-1]


def test_errors_are_one_line_and_the_session_continues(drive: Callable[[str], Driven]) -> None:
    d = drive("bogus\nx/4gx 0\nbreak nowhere\nstepi\nwhen\n")  # ends with Ctrl-D (EOF)
    out = d.printed
    assert "Traceback" not in d.screen
    errors = [ln for ln in out.splitlines() if ln.startswith("error: ")]
    assert errors == ["error: unknown command 'bogus' (try 'help')",
                      "error: cannot access memory at 0x0",
                      "error: no symbol or register 'nowhere'"]
    assert positions(out) == [1]
    assert d.status == 0


def test_an_empty_line_after_a_non_repeatable_command_does_nothing(
        drive: Callable[[str], Driven]) -> None:
    d = drive("stepi\nbreak main\n\nwhen\n")
    assert positions(d.printed) == [1]
    assert d.printed.count("Breakpoint 1 at") == 1


def test_x_repeats_from_where_it_stopped(drive: Callable[[str], Driven]) -> None:
    d = drive("x/2xb ledger\n\n")
    lines = [ln for ln in d.printed.splitlines() if "<ledger" in ln]
    assert lines[0].startswith("0x4") and "<ledger>:" in lines[0]
    assert "<ledger+0x2>:" in lines[1]


def test_the_shell_prompt_uses_the_registry_completer(session) -> None:
    # (Tab through a pipe races prompt_toolkit's asynchronous completion: the tmux test
    # presses it for real.)
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    with create_pipe_input() as pipe:
        shell = Shell(session, input=pipe, output=DummyOutput())
        completer = shell.prompt_session.completer
        assert completer is not None
        got = [c.text for c in completer.get_completions(Document("info breakp"),
                                                          CompleteEvent())]
        assert got == ["breakpoints"]


def test_the_corruption_hunt_in_the_shell(drive: Callable[[str], Driven]) -> None:
    d = drive("run\nlast-write ledger.balance\nbt 2\nsnapshot save guilty\nstepi\n"
              "snapshot diff guilty\nsnapshot restore guilty\nwhen\n")
    out = d.printed
    assert "exited with status 1" in out
    assert "last write to 0x" in out and "record_history" in out and "corrupt.c:65" in out
    assert "#1" in out and "audit" in out
    assert re.search(r"memory: 1 page\(s\), [1-8] byte\(s\) differ", out)
    assert "<ledger+0x80>" in out  # the balance is the byte that changed


def test_batch_prints_what_an_interactive_session_prints(session, corrupt_exe: Path) -> None:
    script = ["break audit", "run", "next", "bt", "rsi 2", "info breakpoints", "x/2gx $rsp",
              "bogus", "when"]
    with create_pipe_input() as pipe:
        pipe.send_text("\n".join(script) + "\n")
        pipe.close()
        interactive = Shell(session, input=pipe, output=DummyOutput(), record=True)
        interactive.cmdloop()
    with syxdbg.open(str(corrupt_exe), env={}) as other, create_pipe_input() as pipe:
        batch = Shell(other, input=pipe, output=DummyOutput(), record=True)
        assert batch.run_lines(script) == 1  # one command failed
    assert interactive.transcript is not None and batch.transcript is not None
    assert interactive.transcript[1:] == batch.transcript  # minus the banner


def test_context_output_can_go_elsewhere(drive: Callable[[str], Driven], tmp_path: Path) -> None:
    target = tmp_path / "ctx.txt"
    d = drive(f"set context.output {target}\nstepi\n")
    assert "── regs" not in d.printed
    assert "── regs" in target.read_text()


def syxdbg_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syxdbg", *args], input=stdin,
                          capture_output=True, text=True, timeout=300)


def test_cli_shell_ex_and_batch(corrupt_exe: Path, tmp_path: Path) -> None:
    proc = syxdbg_cli("shell", "-ex", "break record_history", "-ex", "run", "-ex", "bt 3",
                      str(corrupt_exe))
    assert proc.returncode == 0, proc.stderr
    assert "Breakpoint 1, 0x" in proc.stdout and "#2 " in proc.stdout
    assert "\x1b[" not in proc.stdout  # no escape sequences into a pipe
    script = tmp_path / "cmds.syx"
    script.write_text("# comments and blank lines are skipped\n\nrun\nnonsense\n"
                      "last-write ledger.balance\n")
    proc = syxdbg_cli("shell", "--batch", str(script), "-ex", "when", str(corrupt_exe))
    assert proc.returncode == 1  # 'nonsense' failed; the rest still ran
    assert "error: unknown command 'nonsense'" in proc.stdout
    assert "record_history" in proc.stdout and "position" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert proc.stdout.index("record_history") < proc.stdout.index("(frontier")  # in order


def test_cli_shell_errors(tmp_path: Path) -> None:
    proc = syxdbg_cli("shell", "--batch", str(tmp_path / "missing"), "/bin/true")
    assert proc.returncode == 2 and proc.stderr.startswith("syxdbg: error: --batch")
    assert "shell" in syxdbg_cli("--help").stdout
    assert "-ex CMD" in syxdbg_cli("shell", "--help").stdout
