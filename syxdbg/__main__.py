"""``python -m syxdbg`` and the ``syxdbg`` console script (:func:`run`).

Ctrl-C can come at any moment of start-up. Before anything else is imported, :func:`run`
makes it end the process at once with one line and status 130 (nothing needs cleaning up
yet); :func:`syxdbg.cli.main` then installs the start-up handler that unwinds cleanly.
"""

import contextlib
import os
import signal
import sys
from types import FrameType
from typing import NoReturn


def _interrupted(signum: int, frame: FrameType | None) -> NoReturn:
    os.write(2, b"syxdbg: interrupted\n")
    os._exit(128 + signum)


def run() -> int:
    """The command line, with Ctrl-C handled from its first line (unless the caller
    started us with SIGINT ignored, as a shell does for a background job: it stays so)."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _interrupted)
    from . import sigint
    from .cli import main

    status = main()
    if sigint.interrupted_at_start_up():
        # The command has cleaned up and reported. Leave now: a KeyboardInterrupt that
        # Python swallowed on the way (one raised inside a C callback during an import) makes
        # the interpreter end by killing itself with SIGINT instead of exiting with 130.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                stream.flush()
        os._exit(status)
    return status


if __name__ == "__main__":
    sys.exit(run())
