"""The shell's threads (issue 13): ``threads``/``info threads``, ``thread N``, the threads
pane, and what selecting a thread does to ``bt``, ``regs`` and ``stepi``.

On ``tests/programs/racecount.c`` (three workers racing on a counter), stopped by a
breakpoint on the racy write in the second worker to reach it; the session's scheduler is
the oracle for which thread runs.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output.plain_text import PlainTextOutput

import syxdbg
from syxdbg.commands import CommandRegistry, make_registry
from syxdbg.session import Session
from syxdbg.shell.app import Shell

SOURCE = Path(__file__).resolve().parent.parent / "programs" / "racecount.c"
WRITE_LINE = next(n for n, t in enumerate(SOURCE.read_text().splitlines(), 1)
                  if "the racy write" in t)


@pytest.fixture(scope="module")
def racecount(build_program: Callable[..., Path]) -> Path:
    return build_program("racecount")


@pytest.fixture
def session(racecount: Path) -> Iterator[Session]:
    s = syxdbg.open(str(racecount), env={})
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def registry(session: Session) -> CommandRegistry:
    r = make_registry(session)
    r.run_text(f"break racecount.c:{WRITE_LINE}")
    r.run_text("continue")
    r.run_text("continue")  # the second worker, before its write
    return r


def rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"[* ] \d+ ", line)]


def test_threads_lists_every_thread(session: Session, registry: CommandRegistry) -> None:
    text = registry.run_text("threads")
    assert text == registry.run_text("info threads")
    listed = rows(text)
    threads = sorted(session.threads, key=lambda t: t.tid)
    assert len(listed) == len(threads) == 4, text
    for i, (line, t) in enumerate(zip(listed, threads, strict=True), 1):
        assert re.match(rf"[* ] {i} +{t.tid} +{t.state} ", line), line
    main = next(line for line, t in zip(listed, threads, strict=True) if t.leader)
    assert re.search(r" blocked +main +0x[0-9a-f]+ <.*>  \[futex wait on 0x", main), main
    mine = next(line for line in listed if line.startswith("*"))
    assert f" {session.current_thread} " in mine
    where = rf"running +worker +0x[0-9a-f]+ <bump\+0x[0-9a-f]+> at racecount\.c:{WRITE_LINE}"
    assert re.search(where, mine), mine


def test_thread_selects_what_bt_and_regs_show(session: Session,
                                              registry: CommandRegistry) -> None:
    running = session.current_thread
    main = next(t for t in session.threads if t.leader)
    out = registry.run_text("thread 1")  # the list number of the main thread
    assert out.startswith(f"[Current thread is {main.tid} (main, blocked) at {main.pc:#x}"), out
    assert session.thread.tid == main.tid and session.current_thread == running
    bt = registry.run_text("bt")
    assert re.search(r"in main \(\) at racecount\.c:\d+", bt) and "bump" not in bt, bt
    assert f"{main.pc:#018x}" in registry.run_text("info registers rip")
    assert "*" in rows(registry.run_text("threads"))[0]
    with pytest.raises(syxdbg.SyxdbgError, match="read-only"):
        session.regs["rax"] = 1
    out = registry.run_text(f"thread {running}")  # a tid works too
    assert out.startswith(f"[Current thread is {running} (worker, running)"), out
    assert re.search(r"#0 +0x[0-9a-f]+ in bump \(\) at racecount\.c", registry.run_text("bt"))
    with pytest.raises(syxdbg.SyxdbgError, match="no thread 99"):
        registry.run("thread 99")


def test_stepi_steps_the_selected_thread(session: Session, registry: CommandRegistry) -> None:
    """A runnable worker, selected, is inside sched_yield: its stepi runs the others until
    it gets the CPU back (the breakpoint is deleted so nothing stops them first)."""
    registry.run_text("delete")
    waiting = next(t for t in session.threads if t.state == "runnable")
    registry.run_text(f"thread {waiting.tid}")
    before = session.position
    out = registry.run_text("stepi")
    assert session.current_thread == waiting.tid and session.thread.tid == waiting.tid, out
    assert session.machine.pc == waiting.pc and session.position > before + 1
    out = registry.run_text("stepi")  # now it runs: one instruction, nobody else
    assert session.position > before and session.current_thread == waiting.tid, out


def test_a_stop_in_another_thread_selects_it(session: Session,
                                            registry: CommandRegistry) -> None:
    """Stepping the main thread (blocked in pthread_join) runs the workers; one of them
    hits the breakpoint first: the stop is in that worker, which is selected."""
    main = next(t for t in session.threads if t.leader)
    registry.run_text(f"thread {main.tid}")
    out = registry.run_text("stepi")
    assert "Breakpoint 1" in out, out
    assert session.current_thread != main.tid
    assert session.thread.tid == session.current_thread


def test_context_display_shows_the_threads(session: Session) -> None:
    r = make_registry(session)
    assert r.run_text("context threads") == ""  # one thread: the pane is empty
    script = f"break racecount.c:{WRITE_LINE}\ncontinue\nthread 1\n"
    buf = io.StringIO()
    with create_pipe_input() as pipe:
        pipe.send_text(script)
        pipe.close()
        shell = Shell(session, input=pipe, output=PlainTextOutput(buf), record=True)
        shell.cmdloop()
    assert shell.transcript is not None
    printed = "".join(shell.transcript)
    panes = [m.start() for m in re.finditer(r"── threads ", printed)]
    assert len(panes) == 2, printed  # after continue, after thread 1
    first = printed[panes[0]:printed.index("── regs", panes[0])]
    assert re.search(rf"\* \d tid {session.current_thread} running +worker", first), first
    second = printed[panes[1]:printed.index("── regs", panes[1])]
    assert re.search(r"\* 1 tid \d+ blocked +main", second), second


def test_last_write_names_the_writing_thread(session: Session,
                                             registry: CommandRegistry) -> None:
    """The second worker stands before its racy write: the last write to the counter was
    the first worker's, and last-write lands in that thread and names it."""
    stopped = session.current_thread
    out = registry.run_text("last-write counter")
    writer = session.current_thread
    assert writer != stopped
    assert re.search(rf"position \d+ by thread {writer}\n", out), out
    assert f"racecount.c:{WRITE_LINE}" in out, out
