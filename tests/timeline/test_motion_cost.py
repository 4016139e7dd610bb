"""Stepping costs what a step costs: stops take checkpoints only as the interval policy
needs, a compound motion is one motion (one checkpoint, one syxdbg_stop)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from timeline_helpers import open_session

from syxdbg import hookimpl
from syxdbg.timeline import BACKWARD, FORWARD, STOP_GAP


def test_a_thousand_stepi_take_no_checkpoint_each(build_program: Callable[..., Path]) -> None:
    with open_session(build_program("loop", "gcc"), ["100000"]) as s:
        s.step(FORWARD)
        before = len(s.checkpoints())
        for _ in range(1000):
            s.step(FORWARD)
        assert len(s.checkpoints()) <= before + 1000 // STOP_GAP + 1
        # and going back still works, exactly
        here = s.position
        assert s.step(BACKWARD).position == here - 1


def test_a_compound_motion_fires_syxdbg_stop_once(build_program: Callable[..., Path]
                                                  ) -> None:
    stops: list[int] = []

    class Spy:
        @hookimpl
        def syxdbg_stop(self, session, event) -> None:  # type: ignore[no-untyped-def]
            stops.append(event.position)

    with open_session(build_program("corrupt", "gcc")) as s:
        s.plugins.register(Spy(), "spy")
        s.step(FORWARD)
        assert len(stops) == 1
        stops.clear()
        with s.motion():
            for _ in range(50):
                s.step(FORWARD)
            s.seek(s.position - 10)
        assert stops == [s.position]
        stops.clear()
        from syxdbg.commands import make_registry

        r = make_registry(s)
        r.run_text("break record_history")
        r.run_text("continue")
        stops.clear()
        r.run_text("next")  # several range steps and a finish: one motion
        assert stops == [s.position]
