"""Run one static program under syxdbg in this process, like the CLI would (test helper).

Usage: python linux_runner.py ENV_JSON ARGV0 PROGRAM [ARG...]

The guest's environment is exactly ENV_JSON (a JSON object); its stdin/stdout/stderr are
this process's. Exit status: the guest's exit status, or 128+N when it died of signal N
(killed or faulted), as a shell reports it.
"""

from __future__ import annotations

import json
import sys

import syxdbg
from syxdbg.machine import Exited, Fault, Killed


def main(argv: list[str]) -> int:
    env = json.loads(argv[1])
    argv0, program, args = argv[2], argv[3], argv[4:]
    with syxdbg.open(program, args, env=env, argv0=argv0) as session:
        event = session.run()
    if isinstance(event, Exited):
        return event.status
    if isinstance(event, (Killed, Fault)):
        return 128 + event.signal
    print(f"linux_runner: unexpected stop {event}", file=sys.stderr)
    return 255


if __name__ == "__main__":
    sys.exit(main(sys.argv))
