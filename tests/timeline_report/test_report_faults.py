"""Faults in the middle of a run on the timeline (issue 18): ``tests/linux/programs/faults.c``
gives seven faults to its signal handlers (SIGSEGV read, write, read-only write and a
repaired store, a stack overflow on the alternate stack, SIGILL, SIGFPE), then dies of an
eighth. The report marks the seven where they happened and the eighth as the run's end; at
each mark's position a replaying Session stands on the faulting instruction, and one step
later it is in the handler."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import progs
import pytest
from browser import load

import syxdbg
from syxdbg.commands import make_registry

FAULTS = Path(__file__).resolve().parents[1] / "linux" / "programs" / "faults.c"
HANDLERS = ("jumper", "repair", "overflow_handler")


@pytest.fixture(scope="module")
def faults_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    tmp = tmp_path_factory.mktemp("timeline-faults")
    exe = tmp / "faults-gcc"
    subprocess.run(progs.toolchain_for("gcc").command(FAULTS, exe), check=True,
                   capture_output=True)
    rec = tmp / "faults.syxrec"
    cmd = [sys.executable, "-m", "syxdbg"]
    res = subprocess.run([*cmd, "record", "-q", "-o", str(rec), "--clear-env", str(exe)],
                         cwd=tmp, capture_output=True, text=True, timeout=300)
    assert res.returncode == 128 + 11, res.stderr  # the last fault has no handler
    res = subprocess.run([*cmd, "timeline", "-o", "faults.html", str(rec)], cwd=tmp,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return rec, tmp / "faults.html", res.stderr


def test_faults_given_to_handlers_are_marked_where_they_happened(
        faults_report: tuple[Path, Path, str]) -> None:
    rec, report, summary = faults_report
    assert "7 faults that did not end the run" in summary, summary
    page = load(report)
    assert page.console == [], page.console
    faults = re.findall(r'<li class="fault" data-position="(\d+)" data-signal="(\w+)" '
                        r'data-lane="0" data-handled="1">(.*?)</li>', page.dom, re.S)
    assert [sig for _, sig, _ in faults] == ["SIGSEGV"] * 5 + ["SIGILL", "SIGFPE"], faults
    end = re.search(r'<li class="end" data-position="(\d+)" data-kind="fault">', page.dom)
    assert end is not None
    positions = [int(p) for p, _, _ in faults]
    assert positions == sorted(positions) and positions[-1] < int(end.group(1))
    texts = [html.unescape(t) for _, _, t in faults]
    assert "(read from unmapped memory): to its handler" in texts[0], texts[0]
    assert "(invalid instruction)" in texts[5] and "ud2" in texts[5], texts[5]
    with syxdbg.replay(str(rec)) as s:
        ctx = make_registry(s).ctx
        for position, text in zip(positions, texts, strict=True):
            assert f"syxdbg replay --ex 'monitor goto {position}' {rec}" in text
            s.seek(position)
            pc = s.regs.pc
            assert f"{pc:#x} <{ctx.symbolize(pc)}>" in text, (text, hex(pc))
            s.step()
            assert (ctx.symbolize(s.regs.pc) or "").split("+")[0] in HANDLERS, position
