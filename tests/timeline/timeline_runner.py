"""Travel back and forth over a whole program run in this process (a test helper).

Usage: python timeline_runner.py REPORT_JSON PROGRAM [ARG...]

The guest's stdin/stdout/stderr are this process's, so a test can pipe stdin and check that
the program's output appears exactly once even though it is re-executed several times. The
report (positions, states, event-log statistics) goes to REPORT_JSON.
"""

from __future__ import annotations

import json
import sys

from timeline_helpers import capture, open_session

from syxdbg.machine import Exited
from syxdbg.timeline import BACKWARD, FORWARD


def main(argv: list[str]) -> int:
    report_path, program, args = argv[1], argv[2], argv[3:]
    report: dict[str, object] = {}
    with open_session(program, args, interval=5_000) as s:
        first = s.cont(FORWARD)
        assert isinstance(first, Exited), first
        end = first.position
        marks = sorted({end // 4, end // 2, (3 * end) // 4, end - 1, end})
        states = {}
        # Back to the start and forward again, recording states on the way (a replay).
        s.seek(0)
        for p in marks:
            s.seek(p)
            states[p] = capture(s)
        # Back to the middle by reverse-continue to the origin, then reverse steps.
        assert s.cont(BACKWARD).position == 0
        replay_end = s.cont(FORWARD)
        mismatches = []
        for p in reversed(marks):
            s.seek(p + 1 if p < end else p)
            if p < end:
                s.step(BACKWARD)
            diff = capture(s).diff(states[p])
            if diff:
                mismatches.append((p, diff))
        # A second full replay from the origin.
        s.seek(0)
        again = s.cont(FORWARD)
        report.update(
            end=end, status=first.status, replay_end=replay_end.position,
            replay_status=getattr(replay_end, "status", None), again_end=again.position,
            mismatches=mismatches, eventlog=s.eventlog.stats(),
            frontier=s.when().frontier,
        )
    with open(report_path, "w") as f:
        json.dump(report, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
