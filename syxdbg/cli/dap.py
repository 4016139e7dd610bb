"""``syxdbg dap``: a Debug Adapter Protocol server for editors (VS Code, nvim-dap, Emacs
dape), over stdio (the default) or a TCP port on the loopback address. The program comes in
the client's ``launch`` request, not on the command line (docs/ide.md)."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from typing import IO, Any, cast

import pluggy

from .. import sigint
from ..errors import SyxdbgError
from . import args as types
from .serve import DEFAULT_HOST, Endpoint


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "dap", help="serve the Debug Adapter Protocol to an editor (VS Code, nvim-dap...)",
        description="Speak the Debug Adapter Protocol on stdin/stdout (or, with --port, to "
        "one client connecting to 127.0.0.1:PORT; 0 picks a free port, printed on stderr). "
        "The editor's launch request names the program (or a recording) to debug; see "
        "docs/ide.md. The guest's stdout and stderr become output events; its stdin is "
        "/dev/null or the launch configuration's stdin file.",
    )
    p.add_argument("--port", type=types.port, default=None, metavar="N",
                   help="listen on 127.0.0.1:N for one client instead of using stdio "
                   "(0: pick a free port)")
    p.add_argument("--host", default=DEFAULT_HOST, metavar="H",
                   help=f"with --port: the address to bind (default {DEFAULT_HOST})")
    p.add_argument("--snapshot-budget", type=types.size, metavar="SIZE",
                   help="memory for recorded history (default 1G)")
    p.set_defaults(handler=_handle)


def _handle(ns: argparse.Namespace, pm: pluggy.PluginManager) -> int:
    options: dict[str, Any] = {}
    if ns.snapshot_budget:
        options["timeline.budget"] = ns.snapshot_budget
    if ns.port is None:
        return serve_stdio(options)
    endpoint = Endpoint.resolve(ns.host, ns.port)
    endpoint.warn_if_exposed()
    return serve_tcp(endpoint, options)


def serve_stdio(options: dict[str, Any]) -> int:
    """DAP on this process's stdin/stdout; the guest gets other streams (GuestStdio)."""
    from ..dap import Connection, DapServer, GuestStdio  # imported when used: fast --help

    stdio = GuestStdio(keep_protocol=True)
    assert stdio.protocol_in is not None and stdio.protocol_out is not None
    reader = os.fdopen(stdio.protocol_in, "rb", buffering=0)
    writer = os.fdopen(stdio.protocol_out, "wb")
    sigint.startup_done()
    try:
        DapServer(Connection(reader, writer), stdio=stdio, options=options).serve()
    finally:
        stdio.close()
    return 0


def serve_tcp(endpoint: Endpoint, options: dict[str, Any]) -> int:
    """Listen at ``endpoint``, serve the first client that connects, then exit."""
    from ..dap import Connection, DapServer, GuestStdio  # imported when used: fast --help

    try:
        listener = socket.socket(endpoint.family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((endpoint.address, endpoint.port))
        listener.listen(1)
    except OSError as exc:
        raise SyxdbgError(f"cannot listen on {endpoint.display(endpoint.port)}: "
                          f"{exc.strerror or exc}") from None
    with listener:
        port = listener.getsockname()[1]
        print(f"syxdbg: DAP server listening on {endpoint.display(port)}", file=sys.stderr,
              flush=True)
        sigint.startup_done()
        conn, _ = listener.accept()
    stdio = GuestStdio(keep_protocol=False)
    with conn:
        reader = cast(IO[bytes], conn.makefile("rb", buffering=0))
        writer = cast(IO[bytes], conn.makefile("wb"))
        try:
            DapServer(Connection(reader, writer), stdio=stdio, options=options).serve()
        finally:
            stdio.close()
    return 0
