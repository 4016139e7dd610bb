"""Fixtures for the gdbstub protocol tests: a loopback TCP server on port 0 in a thread.

Test doubles and conversation helpers live in ``gdbstub_doubles.py`` next to this file.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

# The test doubles live next to this file; make them importable whatever the import mode.
if os.path.dirname(__file__) not in sys.path:
    sys.path.insert(0, os.path.dirname(__file__))

from gdbstub_doubles import RunningServer  # noqa: E402

from gdbstub import BaseTarget, GdbServer, SessionEnd  # noqa: E402


@pytest.fixture
def serve() -> Iterator[Callable[..., RunningServer]]:
    """Start ``GdbServer.serve()`` for a target in a thread; shut it down afterwards."""
    started: list[RunningServer] = []

    def start(target: BaseTarget, chunk_seconds: float = 0.05, host: str = "127.0.0.1",
              idle_timeout: float | None = 10.0) -> RunningServer:
        server = GdbServer.listen(target, host, 0, chunk_seconds=chunk_seconds,
                                  idle_timeout=idle_timeout)
        result: list[SessionEnd] = []
        thread = threading.Thread(target=lambda: result.append(server.serve()), daemon=True)
        thread.start()
        running = RunningServer(server, thread, result)
        started.append(running)
        return running

    yield start
    for running in started:
        running.server.close()
        running.thread.join(timeout=10)
        assert not running.thread.is_alive(), "server thread did not stop"
        running.server.__exit__(None, None, None)
