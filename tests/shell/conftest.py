"""Fixtures for the shell tests: the corruption program, a session on it, a registry, and
``drive(lines)`` which runs a whole shell session through prompt_toolkit pipe input."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output.plain_text import PlainTextOutput

import syxdbg
from syxdbg.commands import CommandRegistry, make_registry
from syxdbg.session import Session
from syxdbg.shell.app import Shell


@pytest.fixture(scope="session")
def corrupt_exe(build_program: Callable[..., Path]) -> Path:
    return build_program("corrupt")


@pytest.fixture
def session(corrupt_exe: Path) -> Iterator[Session]:
    s = syxdbg.open(str(corrupt_exe), env={})
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def registry(session: Session) -> CommandRegistry:
    return make_registry(session)


class Driven:
    """The result of a piped shell session."""

    def __init__(self, shell: Shell, screen: str, status: int) -> None:
        self.shell = shell
        self.screen = screen  # everything the terminal received (prompts included)
        self.status = status

    @property
    def printed(self) -> str:
        """What the shell printed (command output and context), without prompt noise."""
        assert self.shell.transcript is not None
        return "".join(self.shell.transcript)


@pytest.fixture
def drive(session: Session) -> Callable[[str], Driven]:
    def run(text: str) -> Driven:
        buf = io.StringIO()
        with create_pipe_input() as pipe:
            pipe.send_text(text)
            pipe.close()  # then EOF, as Ctrl-D would give
            shell = Shell(session, input=pipe, output=PlainTextOutput(buf), record=True)
            status = shell.cmdloop()
        return Driven(shell, buf.getvalue(), status)

    return run
