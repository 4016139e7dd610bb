"""A scripted DAP client for the tests: real Content-Length framing over pipes (to a
DapServer thread in this process) or over a subprocess's stdin/stdout (``python -m syxdbg
dap``). Every message the server sends is validated against the official DAP JSON schema
(``debugProtocol.json`` from debugpy's wheel)."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import threading
import time
from pathlib import Path
from typing import IO, Any

import jsonschema

from syxdbg.dap.protocol import encode, read_message


@functools.lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    spec = importlib.util.find_spec("debugpy")
    assert spec is not None and spec.submodule_search_locations, "debugpy is not installed"
    root = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(root.rglob("debugProtocol.json"))
    assert found, f"no debugProtocol.json under {root}"
    return json.loads(found[0].read_text())


def _capitalised(name: str) -> str:
    return name[:1].upper() + name[1:]


@functools.cache
def _validator(definition: str) -> jsonschema.protocols.Validator:
    root = schema()
    sub = {"$ref": f"#/definitions/{definition}", "definitions": root["definitions"]}
    cls = jsonschema.validators.validator_for(root)
    return cls(sub)


def definition_for(msg: dict[str, Any]) -> str:
    """The schema definition a message the adapter sends must satisfy."""
    defs = schema()["definitions"]
    if msg.get("type") == "response":
        if not msg.get("success", True):
            return "ErrorResponse"
        name = f"{_capitalised(str(msg.get('command')))}Response"
        return name if name in defs else "Response"
    if msg.get("type") == "event":
        name = f"{_capitalised(str(msg.get('event')))}Event"
        return name if name in defs else "Event"
    return "ProtocolMessage"


def validate(msg: dict[str, Any]) -> list[str]:
    """Schema errors of one message (empty when valid)."""
    definition = definition_for(msg)
    errors = sorted(_validator(definition).iter_errors(msg), key=lambda e: list(e.path))
    return [f"{definition}: {'/'.join(map(str, e.path))}: {e.message}" for e in errors]


class DapError(AssertionError):
    pass


class Client:
    """Send requests, wait for responses and events; every server message is validated."""

    def __init__(self, reader: IO[bytes], writer: IO[bytes]) -> None:
        self.reader = reader
        self.writer = writer
        self.seq = 0
        self.messages: list[dict[str, Any]] = []
        self.schema_errors: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self._event_cursor = 0
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while True:
                msg = read_message(self.reader)
                if msg is None:
                    break
                errors = validate(msg)
                with self._cond:
                    self.schema_errors += [f"{e} in {json.dumps(msg)[:400]}" for e in errors]
                    self.messages.append(msg)
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()

    def send(self, command: str, arguments: dict[str, Any] | None = None) -> int:
        self.seq += 1
        msg: dict[str, Any] = {"seq": self.seq, "type": "request", "command": command}
        if arguments is not None:
            msg["arguments"] = arguments
        self.writer.write(encode(msg))
        self.writer.flush()
        return self.seq

    def response(self, seq: int, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for m in self.messages:
                    if m.get("type") == "response" and m.get("request_seq") == seq:
                        return m
                if self._eof:
                    raise DapError(f"connection closed before the response to {seq}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DapError(f"no response to request {seq} in {timeout} s")
                self._cond.wait(left)

    def request(self, command: str, arguments: dict[str, Any] | None = None, *,
                timeout: float = 60, ok: bool = True) -> dict[str, Any]:
        resp = self.response(self.send(command, arguments), timeout)
        if ok and not resp.get("success"):
            raise DapError(f"{command} failed: {resp.get('message')}")
        return resp

    def body(self, command: str, arguments: dict[str, Any] | None = None, **kw: Any
             ) -> dict[str, Any]:
        return dict(self.request(command, arguments, **kw).get("body") or {})

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        with self._cond:
            return [m for m in self.messages if m.get("type") == "event"
                    and (name is None or m.get("event") == name)]

    def wait_event(self, name: str, timeout: float = 120, **match: Any) -> dict[str, Any]:
        """The next event ``name`` (after the last one waited for) whose body matches."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(self._event_cursor, len(self.messages)):
                    m = self.messages[i]
                    if m.get("type") == "event" and m.get("event") == name and all(
                            (m.get("body") or {}).get(k) == v for k, v in match.items()):
                        self._event_cursor = i + 1
                        return m
                if self._eof:
                    raise DapError(f"connection closed while waiting for {name} event")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DapError(f"no {name} event in {timeout} s; got "
                                   f"{[m.get('event') for m in self.events()]}")
                self._cond.wait(left)

    def stopped(self, timeout: float = 120) -> dict[str, Any]:
        return dict(self.wait_event("stopped", timeout)["body"])

    def output(self, category: str | None = None) -> str:
        return "".join(str(e["body"].get("output", "")) for e in self.events("output")
                       if category is None or e["body"].get("category") == category)

    # -- conveniences -----------------------------------------------------------------------
    def frames(self) -> list[dict[str, Any]]:
        return list(self.body("stackTrace", {"threadId": 1})["stackFrames"])

    def scopes(self, frame_id: int) -> dict[str, int]:
        return {s["name"]: s["variablesReference"]
                for s in self.body("scopes", {"frameId": frame_id})["scopes"]}

    def variables(self, ref: int, **kw: Any) -> dict[str, dict[str, Any]]:
        return {v["name"]: v for v in self.body("variables", {"variablesReference": ref,
                                                              **kw})["variables"]}

    def evaluate(self, expression: str, context: str = "watch", frame_id: int | None = None,
                 **kw: Any) -> dict[str, Any]:
        args: dict[str, Any] = {"expression": expression, "context": context}
        if frame_id is not None:
            args["frameId"] = frame_id
        return self.request("evaluate", args, **kw)

    def close(self) -> None:
        for f in (self.writer,):
            with contextlib.suppress(OSError):
                f.close()
        self._thread.join(10)


def pipe_pair() -> tuple[IO[bytes], IO[bytes], IO[bytes], IO[bytes]]:
    """(server reader, server writer, client reader, client writer) over two OS pipes."""
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    return (os.fdopen(r1, "rb", buffering=0), os.fdopen(w2, "wb"),
            os.fdopen(r2, "rb", buffering=0), os.fdopen(w1, "wb"))
