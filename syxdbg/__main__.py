"""``python -m syxdbg`` and the ``syxdbg`` console script (:func:`run`).

Ctrl-C can come at any moment of start-up. Before anything else is imported, :func:`run`
makes it end the process at once with one line and status 130 (nothing needs cleaning up
yet); :func:`syxdbg.cli.main` then installs the start-up handler that unwinds cleanly.
"""

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
    from .cli import main

    return main()


if __name__ == "__main__":
    sys.exit(run())
