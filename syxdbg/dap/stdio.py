"""The guest's standard streams under ``syxdbg dap``.

The Linux plugin gives the guest this process's fds 0, 1 and 2. A debug adapter talking DAP
over stdio cannot let the guest write into its protocol stream, so :class:`GuestStdio`
moves the protocol to duplicates of fds 0/1 and gives the guest:

* fd 0: ``/dev/null``, or the launch configuration's ``stdin`` file (:meth:`set_stdin`);
* fds 1 and 2: pipes, read here and sent to the client as ``output`` events (categories
  ``stdout`` and ``stderr``), flushed before every ``stopped`` event;
* syxdbg's own messages (``sys.stderr``, ``sys.stdout``) go to the original stderr (the
  editor's adapter log).

Output is produced once, when the guest runs live: replaying history (behind the frontier,
or a recording) does not repeat it.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import select
import sys
import threading
from collections.abc import Callable


class GuestStdio:
    """Own this process's fds 0/1/2 for the guest (see the module docstring).

    ``keep_protocol``: duplicate the original fds 0/1 first (:attr:`protocol_in`,
    :attr:`protocol_out`) for a DAP stream over stdio.
    """

    def __init__(self, *, keep_protocol: bool) -> None:
        self.protocol_in: int | None = os.dup(0) if keep_protocol else None
        self.protocol_out: int | None = os.dup(1) if keep_protocol else None
        sys.stdout.flush()
        sys.stderr.flush()
        self._log_fd = os.dup(2)
        log = open(self._log_fd, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stdout = sys.stderr = log
        self.set_stdin(None)
        self._pipes: dict[int, tuple[str, codecs.IncrementalDecoder]] = {}
        for fd, category in ((1, "stdout"), (2, "stderr")):
            r, w = os.pipe()
            os.dup2(w, fd)
            os.close(w)
            os.set_blocking(r, False)
            self._pipes[r] = (category, codecs.getincrementaldecoder("utf-8")("replace"))
        #: Receives (category, text) of the guest's output.
        self.sink: Callable[[str, str], None] | None = None
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="syxdbg-dap-output",
                                        daemon=True)
        self._thread.start()

    @staticmethod
    def set_stdin(path: str | None) -> None:
        """Make the guest's stdin ``path`` (None: ``/dev/null``). Raises OSError."""
        fd = os.open(path or os.devnull, os.O_RDONLY)
        try:
            os.dup2(fd, 0)
        finally:
            os.close(fd)

    def drain(self) -> None:
        """Send everything the guest has written so far."""
        with self._lock:
            for r, (category, decoder) in self._pipes.items():
                while True:
                    try:
                        chunk = os.read(r, 65536)
                    except BlockingIOError:
                        break
                    except OSError:
                        break
                    if not chunk:
                        break
                    text = decoder.decode(chunk)
                    if text and self.sink is not None:
                        self.sink(category, text)

    def _pump(self) -> None:
        while not self._closed.is_set():
            try:
                ready, _, _ = select.select(list(self._pipes), [], [], 0.2)
            except (OSError, ValueError):
                return
            if ready:
                self.drain()

    def close(self) -> None:
        self.drain()
        self._closed.set()
        with contextlib.suppress(RuntimeError):
            self._thread.join(1.0)
