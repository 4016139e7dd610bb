"""Drive a real gdb through pygdbmi, and serve syxdbg sessions to it (test helpers).

No sleeps: every wait is for a specific MI record (a command's result, ``*stopped``), read
as soon as gdb prints it. CLI commands run through ``-interpreter-exec console`` so the
captured text is exactly what a user sees.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pygdbmi.gdbcontroller import GdbController

import syxdbg
from gdbstub import GdbServer, SessionEnd
from syxdbg.gdb_target import SessionTarget

TIMEOUT = 120.0


class GdbError(AssertionError):
    pass


class Gdb:
    """One gdb process in MI mode; :meth:`cli` runs a console command and returns its text."""

    def __init__(self, gdb: str, *args: str) -> None:
        self.ctl = GdbController(
            command=[gdb, "--interpreter=mi3", "-nx", "-q", *args],
            time_to_check_for_additional_output_sec=1e-6,
        )
        self._token = 0
        self.log: list[dict[str, Any]] = []
        self.stops = 0
        self.runs = 0
        self._pending = 0
        self._start_stops = 0
        self.cli("set pagination off")
        self.cli("set width 0")
        self.cli("set confirm off")

    def _records(self, until: float, text: list[str]) -> list[dict[str, Any]]:
        left = until - time.monotonic()
        if left <= 0:
            raise GdbError("gdb did not answer in time; last records:\n" +
                           "\n".join(map(str, self.log[-20:])))
        out = self.ctl.get_gdb_response(timeout_sec=left, raise_error_on_timeout=False)
        self.log += out
        for rec in out:
            if rec["type"] in ("console", "log") and rec["payload"] is not None:
                text.append(rec["payload"])
            elif rec["type"] == "notify" and rec["message"] == "stopped":
                self.stops += 1
            elif rec["type"] == "notify" and rec["message"] == "running":
                self.runs += 1
        return out

    def _write(self, line: str) -> int:
        self._token += 1
        self.ctl.write(f"{self._token}{line}", read_response=False)
        return self._token

    def _wait_result(self, token: int, until: float, text: list[str]) -> dict[str, Any]:
        while True:
            for rec in self._records(until, text):
                if rec["type"] == "result" and rec["token"] == token:
                    return rec

    def _console(self, command: str) -> int:
        quoted = command.replace("\\", "\\\\").replace('"', '\\"')
        return self._write(f'-interpreter-exec console "{quoted}"')

    def _flush(self, until: float, text: list[str]) -> None:
        # A no-op command: once its result arrives, every earlier record has been read.
        self._wait_result(self._console("echo"), until, text)

    def cli(self, command: str, *, timeout: float = TIMEOUT, check: bool = True) -> str:
        """Run a console command; for run-control commands wait until the target stops."""
        until = time.monotonic() + timeout
        text: list[str] = []
        stops = self.stops
        result = self._wait_result(self._console(command), until, text)
        if result["message"] == "error":
            if check:
                raise GdbError(f"{command!r} failed: {result['payload']}\n{''.join(text)}")
            text.append(f"error: {result['payload'].get('msg', '')}\n")
        elif result["message"] == "running":
            while self.stops == stops:
                self._records(until, text)
        self._flush(until, text)
        return "".join(text)

    def start(self, command: str) -> None:
        """Send a run command; return once gdb reports the target running."""
        until = time.monotonic() + TIMEOUT
        runs = self.runs
        self._pending = self._console(command)
        text: list[str] = []
        while self.runs == runs:
            self._records(until, text)
        self._start_stops = self.stops

    def interrupt_and_wait(self) -> str:
        """Ctrl-C, as from the terminal (SIGINT to gdb); returns the stop text."""
        import signal

        assert self.ctl.gdb_process is not None
        until = time.monotonic() + TIMEOUT
        text: list[str] = []
        self.ctl.gdb_process.send_signal(signal.SIGINT)
        while self.stops == self._start_stops:
            self._records(until, text)
        self._flush(until, text)
        return "".join(text)

    def close(self) -> None:
        self.ctl.exit()


class Served:
    """A syxdbg session served over TCP on a free port from a background thread."""

    def __init__(self, session: syxdbg.Session) -> None:
        self.session = session
        self.target = SessionTarget(session)
        self.server = GdbServer.listen(self.target, "127.0.0.1", 0)
        self.port = self.server.port
        self.ends: list[SessionEnd] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            end = self.server.serve_one()
            self.ends.append(end)
            if end in (SessionEnd.KILLED, SessionEnd.CLOSED):
                return

    def close(self) -> None:
        self.server.close()
        self.thread.join(timeout=TIMEOUT)
        self.server.__exit__(None, None, None)
        self.target.close()
        self.session.close()


@contextmanager
def served(path: str, args: tuple[str, ...] = (), **kw: Any) -> Iterator[Served]:
    s = Served(syxdbg.open(path, args, **kw))
    try:
        yield s
    finally:
        s.close()


# Stack addresses: native x86_64 and syxdbg's x86_64 stack (0x7ff...), syxdbg's aarch64
# stack (0xffffef...) and qemu-aarch64's (0x55008...).
_STACK = re.compile(r"0x0*(7ff[0-9a-f]{9}|ffffef[0-9a-f]{6}|55008[0-9a-f]{5})\b")
_NOISE = re.compile(
    r"^(Starting program:|Continuing\.$|\[Inferior 1 \(|warning: |Remote debugging|Reading |"
    r"Download failed|\[Thread |Using host libthread_db|0x[0-9a-f]+ in _start \(\))"
)


#: What gdb prints when a forward motion reaches the end of syxdbg's history (the exit).
END_OF_HISTORY = "No more reverse-execution history."


def past_end(gdb: Gdb, command: str, output: str) -> str:
    """syxdbg stops at the end of history before the program's exit (a stop gdb can reverse
    from); native gdb reports the exit at once. For a comparison with native behaviour, a
    forward ``continue`` that stopped there continues once more (which reports the exit)."""
    if END_OF_HISTORY in output and command in ("continue", "c"):
        return gdb.cli("continue", check=False)
    return output


def normalize(text: str) -> str:
    """Mask what legitimately differs between a native and an emulated process.

    Stack addresses differ (the emulated stack lives elsewhere), and so do the lines about
    starting or attaching to a process. Everything else must be identical.
    """
    lines = []
    for line in text.splitlines():
        if _NOISE.match(line):
            continue
        lines.append(_STACK.sub("STACK", line))
    return "\n".join(lines).strip()


def running_event(srv: Served) -> threading.Event:
    """An event set once the target starts running the next move (its first run_chunk):
    gdb then waits for the stop, so a Ctrl-C reaches the target as 0x03."""
    event = threading.Event()
    target = srv.target
    original = target.run_chunk

    def run_chunk(deadline: float) -> Any:
        event.set()
        target.run_chunk = original  # type: ignore[method-assign]
        return original(deadline)

    target.run_chunk = run_chunk  # type: ignore[method-assign]
    return event
