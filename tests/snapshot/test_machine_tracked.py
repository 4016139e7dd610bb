"""tests/test_machine.py again, with the snapshot journal attached and a root snapshot taken.

The virtual-TLB fill hook decides the permissions of every page, so faults, breakpoints,
positions and self-checks of the machine must be exactly as without tracking.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import pytest
import support
import test_machine as tm
from test_machine import assemble  # noqa: F401 (the fixture the machine tests use)

from syxdbg.machine import Machine


def _cases() -> list[Any]:
    out = []
    for name, fn in vars(tm).items():
        if not (name.startswith("test_") and inspect.isfunction(fn)):
            continue
        combos: list[dict[str, Any]] = [{}]
        for mark in getattr(fn, "pytestmark", []):
            if mark.name == "parametrize":
                argname, values = mark.args
                combos = [{**c, argname: v} for c in combos for v in values]
        out += [pytest.param(name, c, id=f"{name}-{'-'.join(map(str, c.values()))}")
                for c in combos]
    return out


@pytest.mark.parametrize("mode", ["tlb", "hook"])
@pytest.mark.parametrize(("name", "params"), _cases())
def test_machine_suite_with_tracking(name: str, params: dict[str, Any], mode: str,
                                     monkeypatch: pytest.MonkeyPatch,
                                     request: pytest.FixtureRequest) -> None:
    core = importlib.import_module("syxdbg.snapshot.core")  # built by pip install: no skip
    built: list[Machine] = []

    class Tracked(Machine):
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, **k)
            core.attach(self, mode)
            self._snap = core.CoreSyxSnapshot.new(self)
            assert self._snap.tracker.engine.mode == mode
            built.append(self)

    # The machine tests build machines directly and through support.toy_machine: both must
    # build tracked ones.
    monkeypatch.setattr(tm, "Machine", Tracked)
    monkeypatch.setattr(support, "MACHINE_FACTORY", Tracked)
    fn = getattr(tm, name)
    kwargs = {p: params[p] if p in params else request.getfixturevalue(p)
              for p in inspect.signature(fn).parameters}
    fn(**kwargs)
    assert built, f"{name} ran on no tracked machine"
    for m in built:  # ... and the journal really was in the machine's TLB or hooks
        engine = m._snap.tracker.engine  # type: ignore[attr-defined]
        assert engine.mode == mode and (mode != "tlb" or m.tlb_owner is engine)
