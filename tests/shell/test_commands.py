"""Generated tests over the registry (pwndbg style): every command has help and runs on a
sample program; gdb's ``monitor`` sees the same registry; ``last-write`` finds the bug."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from syxdbg.commands import Command, CommandError, CommandRegistry, make_registry, to_text
from syxdbg.session import Session
from syxdbg.shell.app import Shell

#: A sample invocation of every command (and subcommand), run on corrupt.c stopped in
#: record_history with a snapshot "s1" saved. A new command without a sample fails
#: test_every_command_runs_on_a_sample_program.
SAMPLES: dict[str, list[str]] = {
    "run": ["run"],
    "continue": ["continue"],
    "stepi": ["stepi", "si 3"],
    "nexti": ["nexti 2"],
    "step": ["step"],
    "next": ["next 2"],
    "finish": ["finish"],
    "reverse-stepi": ["reverse-stepi", "rsi 4"],
    "reverse-nexti": ["rni 2"],
    "reverse-step": ["reverse-step"],
    "reverse-next": ["reverse-next"],
    "reverse-finish": ["reverse-finish"],
    "reverse-continue": ["reverse-continue"],
    "break": ["break main", "b corrupt.c:83 if $rdi > 500", "break *0x401000"],
    "tbreak": ["tbreak audit"],
    "delete": ["delete", "delete 9999999"],
    "watch": ["watch ledger.balance"],
    "rwatch": ["rwatch ledger.tx_count 8"],
    "awatch": ["awatch ledger+0x88"],
    "regs": ["regs", "regs rip rsp"],
    "x": ["x/4gx $rsp", "x/8xb ledger", "x/s 0x479004", "x/3i $pc", "x/2dw $rsp", "x"],
    "print": ["print $rsp + 8", "p u64(ledger.balance)"],
    "disas": ["disas", "disas main", "disas $pc 3"],
    "bt": ["bt", "bt 2"],
    "regions": ["regions"],
    "goto": ["goto 100", "goto s1", "goto +10", "goto -5"],
    "when": ["when"],
    "position": ["position"],
    "coverage": ["coverage /dev/null", "coverage /dev/null origin s1"],
    "trace": ["trace /dev/null -20", "trace /dev/null 0 30"],
    "recording": ["recording"],
    "last-write": ["last-write ledger.balance", "last-write ledger+0x80 8"],
    "snapshot": ["snapshot list"],
    "snapshot save": ["snapshot save s2"],
    "snapshot restore": ["snapshot restore s1"],
    "snapshot list": ["snapshot list"],
    "snapshot diff": ["snapshot diff s1", "snapshot diff s1 s1"],
    "checkpoints": ["checkpoints"],
    "info": ["info"],
    "info breakpoints": ["info breakpoints"],
    "info registers": ["info registers", "info registers rax"],
    "info mappings": ["info mappings"],
    "info symbols": ["info symbols ^record", "info symbols"],
    "info checkpoints": ["info checkpoints"],
    "info line": ["info line", "info line main"],
    "help": ["help", "help x", "help info breakpoints", "help snapshot"],
    "show": ["show", "show context.panes"],
    "set": ["set context.code-lines 4", "set reg rax 0x1234", "set $rbx = 7"],
    "context": ["context", "context code timeline"],
    "echo": ["echo hello"],
    "keys": ["keys"],
    "quit": ["quit"],
}


def all_commands(r: CommandRegistry) -> Iterator[Command]:
    for cmd in r:
        yield cmd
        seen = set()
        for sub in cmd.subcommands.values():
            if id(sub) not in seen:
                seen.add(id(sub))
                yield sub


@pytest.fixture
def shell(session: Session) -> Iterator[Shell]:
    with create_pipe_input() as pipe:
        yield Shell(session, input=pipe, output=DummyOutput())


def prepare(shell: Shell) -> None:
    for line in ("break record_history", "run", "snapshot save s1", "delete"):
        frags, ok = shell.execute(line)
        assert ok, frags


def test_every_command_has_help(shell: Shell) -> None:
    r = shell.registry
    for cmd in all_commands(r):
        assert cmd.help and "\n" not in cmd.help, cmd.full_name
        text = r.run_text(f"help {cmd.full_name}")
        assert text.startswith(f"{cmd.full_name} -- {cmd.help}"), text
        assert "usage: " in text
    listing = r.run_text("help")
    for cmd in r:
        assert f"  {cmd.name}" in listing


def test_every_command_runs_on_a_sample_program(shell: Shell) -> None:
    names = [c.full_name for c in all_commands(shell.registry)]
    missing = [n for n in names if n not in SAMPLES]
    assert not missing, f"add samples for {missing}"
    for name in names:
        for line in SAMPLES[name]:
            prepare(shell)
            shell.ctx.quit_requested = False
            if line == "delete 9999999":  # numbers are per registry: make that one exist
                shell.ctx.next_number = 9999999
                shell.registry.execute("break main")
            try:
                result = shell.registry.execute(line)
            except CommandError as exc:  # a user-level error is fine, a crash is not
                pytest.fail(f"{line!r}: {exc}")
            assert isinstance(to_text(result.output), str)


def test_shell_reports_errors_in_one_line(shell: Shell) -> None:
    for line in ("bogus", "x/4gx", "x/zz 0", "break nosuchsymbol", "stepi many",
                 "snapshot restore nope", "goto banana", "set reg nosuch 1", "info nosuch",
                 "regs nosuch", "delete 99", "x/4gx 0", "set context.auto maybe", "help nope",
                 "context nosuch", "print 1/0", "print (", "watch"):
        frags, ok = shell.execute(line)
        text = "".join(t for _, t, *_ in frags)
        assert not ok and text.startswith("error: ") and text.count("\n") == 1, (line, text)


def test_gdb_monitor_sees_the_same_registry(session: Session) -> None:
    shell_r = make_registry(session)
    gdb_r = make_registry(session, frontend="gdb")
    assert {c.name for c in gdb_r} == {c.name for c in shell_r}
    listing = gdb_r.run_text("help")
    assert listing.startswith("syxdbg monitor commands:")
    for cmd in shell_r:
        assert (f"  {cmd.name}" in listing) == (not cmd.shell_only), cmd.name
    with pytest.raises(CommandError, match="shell command"):
        gdb_r.run("stepi")
    assert "position:  0" in gdb_r.run_text("info")


def test_plugins_register_commands_and_panes(corrupt_exe) -> None:
    import syxdbg
    from syxdbg import hookimpl

    class Plugin:
        @hookimpl
        def syxdbg_register_commands(self, registry: CommandRegistry) -> None:
            @registry.command("hello", "say hello", category="support")
            def hello(ctx, args):  # type: ignore[no-untyped-def]
                return f"hello at {ctx.session.position}\n"

        @hookimpl
        def syxdbg_register_panes(self, registry) -> None:  # type: ignore[no-untyped-def]
            registry.add("hello", lambda ctx, width: [[("", "hello pane")]], "a greeting")

    with syxdbg.open(str(corrupt_exe), env={}) as s:
        s.plugins.register(Plugin(), "hello-plugin")
        r = make_registry(s)
        assert r.run_text("hello") == "hello at 0\n"
        assert "hello pane" in r.run_text("context hello")
        other = make_registry(s)
        assert other is not r and "hello" in other  # one registry per owner, no globals


def test_last_write_finds_the_guilty_store(registry: CommandRegistry) -> None:
    out = registry.run_text("run")
    assert "exited with status 1" in out
    text = registry.run_text("last-write ledger.balance")
    assert "record_history" in text and "corrupt.c:65" in text
    s = registry.session
    # Before the store: pc at the writing instruction, the old balance still in memory.
    assert s.image.symbolize(s.regs.pc).startswith("record_history")
    balance = s.symbols["ledger"] + 16 * 8
    assert int.from_bytes(s.mem.read(balance, 8), "little") != 777
    assert int(s.regs.rdi) == 777  # the amount being stored into history[16]
    bt = registry.run_text("bt")
    assert [ln.split(" in ")[1].split()[0] for ln in bt.splitlines()[:6]] == [
        "record_history", "audit", "apply_transaction", "process_batch", "run_day", "main"]
    registry.run("stepi")
    assert int.from_bytes(s.mem.read(balance, 8), "little") == 777


def test_reverse_continue_to_watchpoint_and_back(registry: CommandRegistry) -> None:
    registry.run("watch ledger.balance")
    registry.run("continue")  # first write, in apply_transaction
    out = registry.run_text("continue")
    assert "Watchpoint 1" in out and "apply_transaction" in out
    registry.run("delete")
    registry.run("continue")
    registry.run("watch ledger.balance")
    out = registry.run_text("reverse-continue")
    assert "Watchpoint 2" in out and "record_history" in out and "backward" in out
    out = registry.run_text("reverse-finish")
    assert "audit" in out
    assert "reverse" not in registry.run_text("when")


def test_source_line_stepping_both_ways(registry: CommandRegistry) -> None:
    s = registry.session
    registry.run("break record_history")
    registry.run("run")
    registry.run("delete")
    assert "corrupt.c:65" in registry.run_text("info line")  # break skipped the prologue
    assert "corrupt.c:64" in registry.run_text("reverse-step")
    out = registry.run_text("reverse-step")  # back out of record_history to the call
    assert "audit" in out and "corrupt.c:76" in out
    at_call_line = s.position
    assert "corrupt.c:75" in registry.run_text("reverse-step")
    assert "corrupt.c:76" in registry.run_text("step")
    assert s.position == at_call_line
    out = registry.run_text("step")  # into the call, past the prologue
    assert "record_history" in out and "corrupt.c:6" in out
    assert "audit" in registry.run_text("finish")
    # next and reverse-next retrace the same line starts, calls stepped over as a whole.
    registry.run("break apply_transaction")
    registry.run("continue")
    registry.run("delete")
    starts = [s.position]
    lines = [registry.run_text("info line").rsplit(":", 1)[1].strip()]
    for _ in range(2):
        registry.run("next")
        starts.append(s.position)
        lines.append(registry.run_text("info line").rsplit(":", 1)[1].strip())
    assert lines == ["82", "83", "84"], lines
    for expected in (starts[1], starts[0]):
        registry.run("reverse-next")
        assert s.position == expected
    registry.run("next")
    assert "corrupt.c:83" in registry.run_text("info line")
    out = registry.run_text("reverse-finish")  # to the call of apply_transaction
    assert "process_batch" in out and "corrupt.c:91" in out


def test_set_register_in_the_past_discards_the_future(registry: CommandRegistry) -> None:
    registry.run("break main")
    registry.run("run")
    registry.run("stepi 5")
    registry.run("rsi 3")
    out = registry.run_text("set reg rax 7")
    assert "rax = 0x7" in out and "discarded the recorded future" in out
    assert "recording" in registry.run_text("when")


def test_aarch64_backtrace_last_write_and_repeated_reverse_continue(build_program) -> None:
    import syxdbg

    exe = build_program("corrupt", "aarch64")
    with syxdbg.open(str(exe), env={}) as s:
        r = make_registry(s)
        r.run("run")
        assert "corrupt.c:65" in r.run_text("last-write ledger.balance")
        bt = r.run_text("bt 3")
        names = [ln.split(" in ")[1].split()[0] for ln in bt.splitlines()]
        assert names == ["record_history", "audit", "apply_transaction"]
        r.run("goto +1")
        r.run("watch ledger.balance")
        seen = []
        for _ in range(3):  # each reverse-continue finds an older store, never the same one
            out = r.run_text("reverse-continue")
            assert "stopped before it" in out
            seen.append(s.position)
        assert seen[0] > seen[1] > seen[2]
