"""``syxdbg dap``: a Debug Adapter Protocol server on the Session (docs/ide.md).

:class:`~syxdbg.dap.server.DapServer` serves one client over a
:class:`~syxdbg.dap.protocol.Connection` (stdio or a TCP socket); :mod:`.stdio` keeps the
guest's standard streams out of the protocol stream.
"""

from __future__ import annotations

from .protocol import Connection, ProtocolError, encode, read_message
from .server import CAPABILITIES, THREAD_ID, DapServer, LaunchConfig
from .stdio import GuestStdio

__all__ = ["CAPABILITIES", "THREAD_ID", "Connection", "DapServer", "GuestStdio",
           "LaunchConfig", "ProtocolError", "encode", "read_message"]
