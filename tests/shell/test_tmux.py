"""The real shell in a real terminal (tmux): prompt, tab completion, the context display, Ctrl-C
interrupting a long ``continue`` without leaving the shell, the bottom toolbar, the history
file. Waits only by polling ``tmux capture-pane`` against a deadline."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

DEADLINE = 120.0  # seconds for any one expected screen (generous: slow CI machines)


class Tmux:
    def __init__(self, socket: str, name: str) -> None:
        self.socket = socket
        self.name = name

    def cmd(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True,
                              capture_output=True, text=True).stdout

    def screen(self) -> str:
        return self.cmd("capture-pane", "-p", "-J", "-S", "-200", "-t", self.name)

    def send(self, *keys: str) -> None:
        self.cmd("send-keys", "-t", self.name, *keys)

    def wait_for(self, predicate: Callable[[str], bool], what: str) -> str:
        end = time.monotonic() + DEADLINE
        while True:
            screen = self.screen()
            if predicate(screen):
                return screen
            if time.monotonic() > end:
                pytest.fail(f"timed out waiting for {what}; screen:\n{screen}")
            time.sleep(0.05)  # polling interval, not a wait for an event


@pytest.fixture
def tmux(require_tool: Callable[[str], str]) -> Iterator[Callable[[str], Tmux]]:
    require_tool("tmux")
    socket = f"syxdbg-test-{uuid.uuid4().hex[:8]}"
    started: list[Tmux] = []

    def start(command: str) -> Tmux:
        t = Tmux(socket, "shell")
        subprocess.run(["tmux", "-L", socket, "-f", "/dev/null", "new-session", "-d", "-s",
                        "shell", "-x", "120", "-y", "50", command], check=True)
        started.append(t)
        return t

    yield start
    if started:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)


def test_the_shell_in_a_terminal(tmux: Callable[[str], Tmux],
                                 build_program: Callable[..., Path], tmp_path: Path) -> None:
    loop = build_program("loop")
    history = tmp_path / "history"
    done = tmp_path / "done"
    command = (f"{shlex.quote(sys.executable)} -m syxdbg shell --history {history} "
               f"{loop} 100000000; echo shell-exited-$? > {done}; sleep 600")
    t = tmux(command)
    t.wait_for(lambda s: "(syxdbg)" in s and "not started" in s, "the prompt and toolbar")

    # Tab completion, for real.
    t.send("info breakp", "Tab")
    t.wait_for(lambda s: "info breakpoints" in s, "tab completion")
    t.send("Enter")
    t.wait_for(lambda s: "No breakpoints or watchpoints." in s, "info breakpoints")

    t.send("break main", "Enter")
    t.send("run", "Enter")
    t.wait_for(lambda s: "Breakpoint 1, 0x" in s and "── timeline" in s, "the context display")

    # A long continue, interrupted by Ctrl-C once it is visibly running.
    t.send("continue", "Enter")
    t.wait_for(lambda s: "continue: position" in s, "the progress line of continue")
    t.send("C-c")
    screen = t.wait_for(lambda s: "interrupted at position" in s, "the interrupt")
    assert "Traceback" not in screen
    t.wait_for(lambda s: s.rstrip().splitlines()[-2:] and "recording" in s, "the toolbar")

    # Still in the shell: time travel works after the interrupt.
    t.send("rsi", "Enter")
    t.wait_for(lambda s: "replaying" in s, "the toolbar after a reverse step")
    t.send("when", "Enter")
    t.wait_for(lambda s: "; replaying)" in s, "when")

    t.send("quit", "Enter")
    end = time.monotonic() + DEADLINE
    while not done.exists():
        if time.monotonic() > end:
            pytest.fail(f"the shell did not exit; screen:\n{t.screen()}")
        time.sleep(0.05)
    assert done.read_text().strip() == "shell-exited-0"
    assert "continue" in history.read_text() and "info breakpoints" in history.read_text()
