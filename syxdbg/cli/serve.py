"""``syxdbg serve``: serve a program (or a replay) to gdb over the remote protocol.

Who can connect is who can reach the address: the default is the IPv4 loopback address,
reachable only from this machine. Any other address gets a warning, since a gdb client can
make the program read and write this user's files. The address is resolved and a bind is
tried before the program is loaded, so a bad host or port is one error line and status 2.
"""

from __future__ import annotations

import argparse
import ipaddress
import shlex
import socket
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import sigint
from ..errors import SyxdbgError
from . import args as types
from .spec import (
    ProgramSpec,
    add_output_options,
    add_pid_option,
    add_program_options,
    apply_follow,
    open_session,
    output_options,
)

if TYPE_CHECKING:
    import pluggy

    from gdbstub import GdbServer

    from ..gdb_target import SessionTarget
    from ..session import Session

#: The address ``serve`` and ``replay --port`` bind unless told otherwise.
DEFAULT_HOST = "127.0.0.1"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve", help="serve a program to gdb over the remote protocol",
        description="Load PROG and wait for gdb to connect (target remote HOST:PORT). The "
        "port is printed on stderr. One connection at a time; gdb may disconnect and "
        "reconnect, the program keeps its state. 'kill' in gdb ends the server.",
    )
    p.add_argument("--port", type=types.port, default=0, metavar="N",
                   help="TCP port (default 0: pick a free one)")
    p.add_argument("--host", default=DEFAULT_HOST, metavar="H",
                   help=f"address or name to bind, IPv4 or IPv6 (default {DEFAULT_HOST}; "
                   "a non-loopback address exposes the debugger, and through it this "
                   "user's files, to the network)")
    add_pid_option(p)
    add_output_options(p)
    add_program_options(p)
    p.set_defaults(handler=_handle)


@dataclass(frozen=True)
class Endpoint:
    """Where to listen: ``host`` as given, the numeric ``address`` it resolved to."""

    host: str
    address: str
    port: int
    family: socket.AddressFamily

    @property
    def loopback(self) -> bool:
        return is_loopback(self.address)

    @classmethod
    def resolve(cls, host: str, port: int) -> Endpoint:
        """Resolve ``host`` (IPv4 preferred for names) and check that ``port`` can be bound
        there; any failure is a :class:`SyxdbgError` of one line."""
        if not 0 <= port <= 65535:
            raise SyxdbgError(f"--port {port}: not a TCP port (0 to 65535)")
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
        except (socket.gaierror, UnicodeError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise SyxdbgError(f"--host {host}: cannot resolve it ({reason})") from None
        infos.sort(key=lambda info: info[0] != socket.AF_INET)
        family, _, _, _, sockaddr = infos[0]
        address = str(sockaddr[0])
        ip = ipaddress.ip_address(address.partition("%")[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            family, address = socket.AF_INET, str(ip.ipv4_mapped)  # what the user means
        endpoint = cls(host, address, port, family)
        endpoint.probe()
        return endpoint

    def probe(self) -> None:
        """Bind once, and let go: a port in use or an address that is not this machine's
        fails here, before the program is loaded."""
        try:
            with socket.socket(self.family, socket.SOCK_STREAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((self.address, self.port))
        except OSError as exc:
            raise SyxdbgError(f"cannot listen on {self.display(self.port)}: "
                              f"{exc.strerror or exc}") from None

    def display(self, port: int) -> str:
        """``127.0.0.1:1234`` or ``[::1]:1234``, as gdb's ``target remote`` takes it."""
        host = f"[{self.address}]" if self.family == socket.AF_INET6 else self.address
        return f"{host}:{port}"

    def warn_if_exposed(self) -> None:
        if not self.loopback:
            print(f"syxdbg: warning: listening on {self.address}, not a loopback address: "
                  "anyone who can reach it can read and write this process's files through "
                  "the program", file=sys.stderr)


def is_loopback(address: str) -> bool:
    """True for loopback addresses (127.0.0.0/8, ::1, IPv4-mapped loopback) and the name
    localhost; False for anything else, including unparsable text."""
    if address == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def _handle(ns: argparse.Namespace, pm: pluggy.PluginManager) -> int:
    endpoint = Endpoint.resolve(ns.host, ns.port)
    endpoint.warn_if_exposed()
    with open_session(ProgramSpec.from_args(ns), pm, **output_options(ns)) as session:
        apply_follow(session)
        return serve(session, endpoint)


def listen(target: SessionTarget, endpoint: Endpoint) -> GdbServer:
    """The listening server (one error line if the address cannot be bound)."""
    from gdbstub import GdbServer

    try:
        return GdbServer.listen(target, endpoint.address, endpoint.port)
    except OSError as exc:
        raise SyxdbgError(f"cannot listen on {endpoint.display(endpoint.port)}: "
                          f"{exc.strerror or exc}") from None


def serve(session: Session, endpoint: Endpoint) -> int:
    """Serve ``session`` at ``endpoint`` until gdb kills it (or Ctrl-C); status 0."""
    from gdbstub import SessionEnd

    from ..gdb_target import SessionTarget

    target = SessionTarget(session)
    try:
        with listen(target, endpoint) as server:
            where = endpoint.display(server.port)
            print(f"syxdbg: listening on {where}", file=sys.stderr)
            print(f"syxdbg: in gdb: {' '.join(symbol_commands(session))} "
                  f"target remote {where}", file=sys.stderr, flush=True)
            sigint.startup_done()
            end = server.serve()
        if end is SessionEnd.KILLED:
            print("syxdbg: killed by gdb", file=sys.stderr)
        return 0
    finally:
        target.close()


def symbol_commands(session: Session) -> list[str]:
    """How gdb gets the program's symbols (a hint line for ``serve``)."""
    image = session.image
    if image.kind == "raw":
        return [f"(gdb) set architecture {session.machine.arch.gdb_arch};"]
    if image.load_bias:
        return [f"(gdb) symbol-file -o {image.load_bias:#x} {shlex.quote(image.path)};"]
    return [f"(gdb) file {shlex.quote(image.path)};"]
