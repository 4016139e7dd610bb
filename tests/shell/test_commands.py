"""Generated tests over the registry (pwndbg style): every command has help and runs on a
sample program; gdb's ``monitor`` sees the same registry; ``last-write`` finds the bug."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from syxdbg.commands import Command, CommandError, CommandRegistry, make_registry, to_text
from syxdbg.session import Session
from syxdbg.shell.app import Shell

#: A sample invocation of every command (and subcommand), run on corrupt.c stopped in
#: record_history (corrupt.c:65) with a snapshot "s1" saved, and a regular expression its
#: output must contain. A new command without a sample fails
#: test_every_command_runs_on_a_sample_program.
AT_65 = r"<record_history\+0x7> at corrupt\.c:65"
SAMPLES: dict[str, list[tuple[str, str]]] = {
    "run": [("run", r"^Breakpoint \d+, 0x[0-9a-f]+ <record_history")],
    "continue": [("continue", r"^\[program exited with status 1 at position \d+\]")],
    "stepi": [("stepi", r"<record_history\+0xe> at corrupt\.c:65"),
              ("si 3", r"<record_history\+0x16> at corrupt\.c:67")],
    "nexti": [("nexti 2", r"<record_history\+0x12> at corrupt\.c:66")],
    "step": [("step", r"at corrupt\.c:66")],
    "next": [("next 2", r"at corrupt\.c:67")],
    "finish": [("finish", r"^Run till exit from 0x40165c <record_history\+0x7>\n"
                          r"0x[0-9a-f]+ <audit\+0x[0-9a-f]+> at corrupt\.c:7\d")],
    "reverse-stepi": [("reverse-stepi", r"<record_history> at corrupt\.c:64"),
                      ("rsi 4", r"<audit\+0x[0-9a-f]+> at corrupt\.c:7\d")],
    "reverse-nexti": [("rni 2", r"<audit\+0x[0-9a-f]+> at corrupt\.c:76")],
    "reverse-step": [("reverse-step", r"<record_history> at corrupt\.c:64")],
    "reverse-next": [("reverse-next", r"<record_history> at corrupt\.c:64")],
    "reverse-finish": [("reverse-finish", r"<audit\+0x[0-9a-f]+> at corrupt\.c:76")],
    "reverse-continue": [("reverse-continue",
                          r"^No more reverse-execution history: at the beginning of history\.")],
    "break": [("break main", r"^Breakpoint \d+ at 0x[0-9a-f]+ <main> at corrupt\.c:103"),
              ("b corrupt.c:83 if $rdi > 500",
               r"^Breakpoint \d+ at 0x[0-9a-f]+ <apply_transaction\+0x[0-9a-f]+> at "
               r"corrupt\.c:83 if \$rdi > 500"),
              ("break *0x401000", r"^Breakpoint \d+ at 0x401000 <_init>")],
    "tbreak": [("tbreak audit", r"^Temporary breakpoint \d+ at 0x[0-9a-f]+ <audit")],
    "delete": [("delete", r"^no breakpoints"), ("delete 9999999", r"^deleted 1 breakpoint")],
    "watch": [("watch ledger.balance", r"^Watchpoint \d+: ledger\.balance \(0x[0-9a-f]+, "
                                       r"8 bytes\)")],
    "rwatch": [("rwatch ledger.tx_count 8", r"^Read watchpoint \d+: ledger\.tx_count")],
    "awatch": [("awatch ledger+0x88", r"^Access watchpoint \d+: ledger\+0x88 \(0x[0-9a-f]+, "
                                      r"8 bytes\)")],
    "regs": [("regs", r"(?m)^rip\s+0x000000000040165c\s+<record_history\+0x7>"),
             ("regs rip rsp", r"^rip\s+0x000000000040165c .*\nrsp\s+0x")],
    "x": [("x/4gx $rsp", r"^0x[0-9a-f]+:\t0x[0-9a-f]{16}\t0x[0-9a-f]{16}\n"),
          ("x/8xb ledger", r"^0x[0-9a-f]+ <ledger>:(\t0x[0-9a-f]{2}){8}"),
          ("x/s 0x479004", r'^0x479004:\t"--fixed"'),
          ("x/3i $pc", r"^=> 0x40165c <record_history\+0x7>:\tlea"),
          ("x/2dw $rsp", r"^0x[0-9a-f]+:\t\d+\t\d+"), ("x", r"^0x[0-9a-f]+:\t")],
    "print": [("print $rsp + 8", r"^0x7fffeffffc00 \(\d+\)"),
              ("p u64(ledger.balance)", r"^0x[0-9a-f]+ \(\d+\)")],
    "disas": [("disas", r"(?m)^=> 0x40165c <record_history\+0x7>:"),
              ("disas main", r"^   0x[0-9a-f]+ <main>:\tpush"),
              ("disas $pc 3", r"^=> 0x40165c .*\n.*\n.*\n$")],
    "bt": [("bt", r"^#0  0x000000000040165c in record_history \(\) at corrupt\.c:65\n"
                  r"#1  0x[0-9a-f]+ in audit \(\)"),
           ("bt 2", r"^#0 .*record_history.*\n#1 .*audit.*\n$")],
    "regions": [("regions", r"(?m)^0x000000400000-0x000000401000 r-- ")],
    "goto": [("goto 100", r"^0x[0-9a-f]+ <"), ("goto s1", AT_65),
             ("goto +10", r"<record_history\+0x[0-9a-f]+> at corrupt\.c:\d+"),
             ("goto -5", r"<audit\+0x[0-9a-f]+> at corrupt\.c:7\d")],
    "when": [("when", r"^position 10313 \(frontier \d+, origin 0; replaying\)")],
    "position": [("position", r"^10313\n$")],
    "coverage": [("coverage /dev/null", r"^coverage of positions 0\.\.\d+ .* blocks"),
                 ("coverage /dev/null origin s1", r"^coverage of positions 0\.\.10313 ")],
    "trace": [("trace /dev/null -20", r"^trace of positions 10293\.\.10313 written to "
                                      r"/dev/null: 20 lines"),
              ("trace /dev/null 0 30", r"^trace of positions 0\.\.30 written .*: 30 lines")],
    "timeline": [("timeline /dev/null --watch ledger.balance",
                  r"^timeline of positions 0\.\.\d+: \d+ system calls, \d+ functions .*"
                  r"3 writes to ledger\.balance")],
    "recording": [("recording", r"^not replaying a recording")],
    "last-write": [("last-write ledger.balance",
                    r"^last write to 0x[0-9a-f]+ <ledger\+0x80> \(8 bytes at 0x[0-9a-f]+\): "
                    r"position \d+\n  0x[0-9a-f]+ <apply_transaction\+0x4> at corrupt\.c:82"),
                   ("last-write ledger+0x80 8", r"<apply_transaction\+0x4> at corrupt\.c:82")],
    "snapshot": [("snapshot list", r"^\* s1 +position 10313 ")],
    "snapshot save": [("snapshot save s2", r"^snapshot 's2' at position 10313 ")],
    "snapshot restore": [("snapshot restore s1", AT_65)],
    "snapshot list": [("snapshot list", r"^\* s1 +position 10313 ")],
    "snapshot diff": [("snapshot diff s1", r"^diff s1 \(position 10313\) -> now \(position "
                                           r"10313\)\nregisters: 0 differ\nmemory: 0 page"),
                      ("snapshot diff s1 s1", r"^diff s1 .* -> s1 ")],
    "checkpoints": [("checkpoints", r"(?m)^  #0 +position 0 ")],
    "info": [("info", r"(?m)^arch: +x86_64\nposition: +10313\n")],
    "info breakpoints": [("info breakpoints", r"^No breakpoints or watchpoints\.")],
    "info registers": [("info registers", r"(?m)^rsp +0x00007fff"),
                       ("info registers rax", r"^rax +0x[0-9a-f]{16}  \d+\n$")],
    "info mappings": [("info mappings", r"(?m)^0x000000401000-0x000000479000 r-x ")],
    "info sharedlibrary": [("info sharedlibrary",
                            r"^No shared libraries loaded at this time\.\n$")],
    "info threads": [("info threads", r"(?m)^\* 1 +\d+ +running +main +0x40165c <record_history")],
    "threads": [("threads", r"^ +Id +Tid +State +Started in +Where\n\* 1 +\d+ +running +main ")],
    "processes": [("processes", r"^ +pid +ppid +pgid +threads +state +program\n\* (\d+) +\d+ "
                                r"+\1 +1 +running +\S+\n$")],
    "info processes": [("info processes", r"^ +pid +ppid.*\n\* \d+ .* running ")],
    "follow": [("follow", r"^Following process \d+\.\n$"),
               ("follow any", r"^Following every process\.\n$"),
               ("follow first", r"^Following process \d+\.\n$")],
    "process": [("process", r"^process \d+: \S+\n  parent \d+, group \d+, running\n"
                            r"  threads: \d+\n$")],
    "thread": [("thread", r"^\[Current thread is \d+ \(main, running\) at 0x40165c " + AT_65),
               ("thread 1", r"^\[Current thread is \d+ \(main, running\)")],
    "info symbols": [("info symbols ^record", r"^0x0000000000401655 +67  record_history\n$"),
                     ("info symbols", r"(?m) main$")],
    "info checkpoints": [("info checkpoints", r"^position 10313, frontier \d+, origin 0\n")],
    "info line": [("info line", r"^0x40165c <record_history\+0x7> is at .*corrupt\.c:65"),
                  ("info line main", r"^0x[0-9a-f]+ <main> is at .*corrupt\.c:\d+")],
    "help": [("help", r"^syxdbg commands:\nrunning:"), ("help x", r"^x -- examine memory"),
             ("help info breakpoints", r"^info breakpoints -- list breakpoints"),
             ("help snapshot", r"(?m)^  snapshot save +name the current point in time")],
    "show": [("show", r"(?m)^context\.code-lines = \d+"),
             ("show context.panes", r"^context\.panes = ")],
    "set": [("set context.code-lines 4", r"^context\.code-lines = 4"),
            ("set reg rax 0x1234", r"^rax = 0x1234\n"), ("set $rbx = 7", r"^rbx = 0x7")],
    "context": [("context", r"regs"), ("context code timeline", r"code.*\n(.*\n)* → 0x40165c")],
    "echo": [("echo hello", r"^hello\n?$")],
    "keys": [("keys", r"(?m)^  f5 +run 'continue'")],
    "quit": [("quit", r"^$")],
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
    for line in ("delete", "break corrupt.c:65", "run", "snapshot save s1", "delete"):
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
        for line, want in SAMPLES[name]:
            prepare(shell)
            shell.ctx.quit_requested = False
            if line == "delete 9999999":  # numbers are per registry: make that one exist
                shell.ctx.next_number = 9999999
                shell.registry.execute("break main")
            if line == "run":
                shell.registry.execute("break corrupt.c:65")
            try:
                result = shell.registry.execute(line)
            except CommandError as exc:  # a user-level error is fine, a crash is not
                pytest.fail(f"{line!r}: {exc}")
            text = to_text(result.output)
            assert re.search(want, text), f"{line!r} printed:\n{text}"


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
        listed = re.search(rf"(?m)^  {re.escape(cmd.name)}\b(?!-)", listing) is not None
        assert listed == (not cmd.shell_only), cmd.name
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
    # gdb breaks at the entry of optimised code (its CU has location lists): no prologue
    # skip (tests/shell/test_prologue.py compares with gdb itself)
    assert "corrupt.c:64" in registry.run_text("info line")
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
    assert lines == ["81", "82", "83"], lines  # from the entry (gdb's break, -O1)
    for expected in (starts[1], starts[0]):
        registry.run("reverse-next")
        assert s.position == expected
    registry.run("next")
    assert "corrupt.c:82" in registry.run_text("info line")
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
