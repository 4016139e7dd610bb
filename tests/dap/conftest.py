"""Fixtures for the DAP tests: an in-process DapServer driven by the scripted client, and
the line numbers of the suite's programs."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contextlib

from dapclient import Client, pipe_pair  # noqa: E402

from syxdbg.dap import Connection, DapServer  # noqa: E402

PROGRAMS = Path(__file__).resolve().parents[1] / "programs"


def line_of(program: str, text: str) -> int:
    """The 1-based line of ``program``.c that contains ``text``."""
    for n, line in enumerate((PROGRAMS / f"{program}.c").read_text().splitlines(), 1):
        if text in line:
            return n
    raise AssertionError(f"{text!r} not in {program}.c")


class Adapter:
    """A DapServer on a thread of this process, and a client connected to it."""

    def __init__(self, options: dict | None = None) -> None:
        sr, sw, cr, cw = pipe_pair()
        self.server = DapServer(Connection(sr, sw), options=options)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.error: BaseException | None = None
        self.thread.start()
        self.client = Client(cr, cw)
        self._server_writer = sw

    def _serve(self) -> None:
        try:
            self.server.serve()
        except BaseException as exc:  # reported by close()
            self.error = exc
        finally:
            self._server_writer.close()

    def close(self) -> None:
        if not self.client.events("terminated") or self.thread.is_alive():
            with contextlib.suppress(AssertionError):
                self.client.request("disconnect", {}, timeout=60)
        self.thread.join(60)
        self.client.close()
        assert not self.thread.is_alive(), "the server did not stop"
        assert self.error is None, self.error
        assert not self.client.schema_errors, "\n".join(self.client.schema_errors)


@pytest.fixture
def adapter() -> Iterator[Callable[..., Client]]:
    made: list[Adapter] = []

    def make(options: dict | None = None) -> Client:
        """A client of a new in-process server (``options``: session options)."""
        a = Adapter(options)
        made.append(a)
        return a.client

    yield make
    for a in made:
        a.close()


def start(client: Client, launch: dict, *, breakpoints: dict[str, list[dict]] | None = None,
          functions: list[dict] | None = None) -> dict:
    """initialize, launch, breakpoints, configurationDone (VS Code's order); returns the
    initialize response's capabilities."""
    caps = client.body("initialize", {"adapterID": "syxdbg", "clientID": "tests",
                                      "linesStartAt1": True, "columnsStartAt1": True,
                                      "pathFormat": "path",
                                      "supportsProgressReporting": True})
    client.wait_event("initialized")
    client.request("launch", launch)
    for path, bps in (breakpoints or {}).items():
        body = client.body("setBreakpoints", {"source": {"path": path}, "breakpoints": bps})
        assert all(b["verified"] for b in body["breakpoints"]), body
    if functions is not None:
        client.body("setFunctionBreakpoints", {"breakpoints": functions})
    client.request("configurationDone")
    return caps
