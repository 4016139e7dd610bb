"""``syxdbg shell``: the interactive debugger, a prompt_toolkit REPL over the command registry.

:class:`Shell` takes injectable ``input``/``output`` (tests drive it through
``create_pipe_input()``), runs each line through the session's
:class:`~syxdbg.commands.CommandRegistry`, prints what the command returned and, after a
command that moved in time, the context display. Errors are one line and the session
goes on. ``--batch FILE`` / ``-ex CMD`` run the same code without a prompt
(:meth:`Shell.run_lines`); the ``syxdbg shell`` subcommand is :mod:`syxdbg.cli.shell`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.formatted_text import (
    FormattedText,
    StyleAndTextTuples,
    fragment_list_to_text,
)
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.output import Output as PtOutput
from prompt_toolkit.output import create_output
from prompt_toolkit.shortcuts import print_formatted_text

from ..commands import CommandRegistry, make_registry, theme
from ..commands.panes import render_context
from ..commands.registry import Args, Command, Output
from ..errors import SyxdbgError
from ..machine.events import Exited
from ..session import Session
from .completion import ShellCompleter
from .history import DEFAULT_HISTORY
from .keys import key_help, load_key_bindings

PROMPT = "(syxdbg) "


class Shell:
    """The REPL. ``input``/``output`` default to the terminal; ``history_file`` None keeps
    history in memory only; ``record`` keeps a plain-text :attr:`transcript`."""

    def __init__(self, session: Session, *, input: Input | None = None,
                 output: PtOutput | None = None, history_file: str | None = None,
                 registry: CommandRegistry | None = None, record: bool = False) -> None:
        self.session = session
        self.registry = registry if registry is not None else make_registry(session)
        self.ctx = self.registry.ctx
        self.input = input
        self.output = output if output is not None else create_output(stdout=sys.stdout)
        self.style = theme.style()
        self.last_repeat: str | None = None
        self.interactive = False
        self.errors = 0
        #: With ``record=True``, the plain text of everything printed (for tests).
        self.transcript: list[str] | None = [] if record else None
        self.key_bindings = load_key_bindings()
        self._progress_shown = False
        # Progress lines only on a real terminal (not under pipes and test doubles).
        self._tty = input is None and output is None and sys.stdout.isatty()
        self.ctx.progress = self._progress
        self.registry.add(Command(
            "keys", self._keys, "the key bindings of the shell", "support", (), (),
            "Function keys run stepping commands on an empty line; the list comes from the "
            "bindings' own docstrings.", shell_only=True))
        history: History = (FileHistory(os.path.expanduser(history_file)) if history_file
                            else InMemoryHistory())
        self.prompt_session: PromptSession[str] = PromptSession(
            PROMPT, input=input, output=self.output, history=history,
            completer=ShellCompleter(self.registry), complete_while_typing=False,
            key_bindings=self.key_bindings, bottom_toolbar=self.toolbar, style=self.style,
        )

    # -- output ---------------------------------------------------------------------------------
    def print(self, out: Output) -> None:
        frags: StyleAndTextTuples = [("", out)] if isinstance(out, str) else list(out)
        if not frags:
            return
        if self.transcript is not None:
            self.transcript.append(fragment_list_to_text(frags))
        print_formatted_text(FormattedText(frags), style=self.style, output=self.output,
                             end="")
        self.output.flush()

    def _progress(self, text: str) -> None:
        if not (self.interactive and self._tty) or not self.registry.settings["progress"]:
            return
        self.output.write_raw("\r\x1b[K" + text)
        self.output.flush()
        self._progress_shown = True

    def _clear_progress(self) -> None:
        if self._progress_shown:
            self.output.write_raw("\r\x1b[K")
            self.output.flush()
            self._progress_shown = False

    def toolbar(self) -> StyleAndTextTuples:
        """The bottom toolbar: position / frontier, recording or replaying, checkpoint."""
        s = self.session
        try:
            if not s.has_timeline:
                return [("", f" position {s.position} · not started · pc "
                         f"{self.ctx.where(s.regs.pc, line=False)} ")]
            w = s.when()
            mode = w.mode
            cps = [c for c in s.checkpoints() if c.position <= w.position]
            cp = f" · checkpoint #{cps[-1].index}@{cps[-1].position}" if cps else ""
            return [("", f" position {w.position} / {w.frontier} · {mode}{cp} · pc "
                     f"{self.ctx.where(s.regs.pc, line=False)} ")]
        except SyxdbgError:
            return [("", " no program ")]

    def _keys(self, ctx: Any, args: Args) -> str:
        return key_help(self.key_bindings)

    # -- running commands -------------------------------------------------------------------
    def execute(self, line: str) -> tuple[StyleAndTextTuples, bool]:
        """Run one line: its output (and the context display after a stop) and success.
        Never raises for a command's failure: that is a one-line error."""
        self.ctx.width = max(40, self.output.get_size().columns)
        try:
            with self._sigint_interrupts():
                result = self.registry.execute(line)
        except SyxdbgError as exc:
            self._clear_progress()
            self.last_repeat = None
            return [("class:error", f"error: {exc}\n")], False
        except KeyboardInterrupt:
            self._clear_progress()
            return [("class:error", "error: interrupted\n")], False
        except Exception as exc:  # a bug: still one line, the session goes on
            self._clear_progress()
            if os.environ.get("SYXDBG_SHELL_TRACEBACK"):
                import traceback
                traceback.print_exc()
            text = str(exc).splitlines()[0] if str(exc) else ""
            return [("class:error", f"error: internal error: {type(exc).__name__}: "
                     f"{text}\n")], False
        self._clear_progress()
        cmd = result.command
        out = result.output
        frags: StyleAndTextTuples = [("", out)] if isinstance(out, str) else list(out)
        if cmd.moves and self.registry.settings["context.auto"] \
                and not isinstance(self.ctx.last_event, Exited):
            frags += self._context()
        self.last_repeat = self._repeat_line(cmd, line)
        return frags, True

    def _context(self) -> StyleAndTextTuples:
        try:
            ctx_frags = render_context(self.ctx, self.registry.panes, width=self.ctx.width)
        except SyxdbgError as exc:
            return [("class:error", f"(context: {exc})\n")]
        target = self.registry.settings["context.output"]
        if target:
            try:
                with open(target, "w", encoding="utf-8") as f:
                    out = create_output(stdout=f)
                    print_formatted_text(FormattedText(ctx_frags), style=self.style,
                                         output=out, end="")
                    out.flush()
                return []
            except OSError as exc:
                return [("class:error", f"(context.output: {exc.strerror})\n")] + ctx_frags
        return ctx_frags

    @staticmethod
    def _repeat_line(cmd: Command, line: str) -> str | None:
        if not cmd.repeat:
            return None
        if cmd.slash:  # x/8xb ADDR repeats as x/8xb: continue after the last unit shown
            return line.split()[0] if line.split() else line
        return line

    def onecmd(self, line: str) -> bool:
        """Run a line (empty: repeat the last repeatable command) and print its output.
        Returns False once the shell should end."""
        if not line.strip():
            if self.last_repeat is None:
                return not self.ctx.quit_requested
            line = self.last_repeat
        frags, ok = self.execute(line)
        if not ok:
            self.errors += 1
        self.print(frags)
        return not self.ctx.quit_requested

    @contextmanager
    def _sigint_interrupts(self) -> Iterator[None]:
        """While a command runs, Ctrl-C interrupts it instead of killing the shell.

        Python signal handlers cannot run while the main thread is inside Unicorn, so a
        thread reads the signal wakeup fd and calls the thread-safe interrupt
        (``syxdbg.sigint``).
        """
        from ..sigint import sigint_calls

        with sigint_calls(self.ctx.interrupt):
            yield

    # -- loops ----------------------------------------------------------------------------------
    def banner(self) -> str:
        s = self.session
        image = s.image
        return (f"syxdbg: {image.path} ({s.machine.arch.name}, {image.kind}) loaded at "
                f"position {s.position}, pc {self.ctx.where(s.regs.pc)}.\n"
                "Type 'help' for the commands, 'keys' for the key bindings, Ctrl-D to quit.\n")

    def cmdloop(self) -> int:
        """The interactive loop; returns the exit status (0)."""
        self.interactive = True
        self.print(self.banner())
        while True:
            try:
                line = self.prompt_session.prompt()
            except KeyboardInterrupt:
                continue
            except EOFError:
                break
            if not self.onecmd(line):
                break
        return 0

    def run_lines(self, lines: Iterable[str]) -> int:
        """Batch mode: run each line (``#`` comments and blank lines skipped, blank lines do
        not repeat); 0 when every command succeeded, else 1."""
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if not self.onecmd(line):
                break
        return 1 if self.errors else 0


__all__ = ["DEFAULT_HISTORY", "PROMPT", "Shell"]
