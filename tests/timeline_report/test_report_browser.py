"""``syxdbg timeline`` on a real recording, looked at in a real browser (headless Chromium).

The suite's ``corrupt`` program (a ledger whose balance a bug overwrites with 777) is
recorded; ``syxdbg timeline --watch ledger.balance`` makes its report. Chromium then loads
it: the DOM holds the system calls and the watched writes at the positions the debugger
itself finds (``last-write`` from the end of the replay), the screenshot is not blank and
shows the lanes' colours, and the page logs nothing to the console. With
``SYXDBG_UPDATE_DOCS=1`` the screenshot becomes docs/images/timeline.png.
"""

from __future__ import annotations

import html
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from browser import load, read_png, screenshot
from support import tool_missing

import syxdbg
from syxdbg.commands import make_registry

ROOT = Path(__file__).resolve().parents[2]
DOCS_IMAGE = ROOT / "docs" / "images" / "timeline.png"


def syxdbg_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syxdbg", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=300, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def corrupt_report(build_program: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
                   ) -> tuple[Path, Path]:
    """(recording, report) of the corrupt program, made by the command line."""
    exe = build_program("corrupt", "gcc")
    tmp = tmp_path_factory.mktemp("timeline")
    rec = tmp / "corrupt.syxrec"
    res = syxdbg_cli("record", "-q", "-o", str(rec), "--clear-env", str(exe), cwd=tmp)
    assert res.returncode == 1, res.stderr  # the corrupted ledger: status 1
    res = syxdbg_cli("timeline", "--watch", "ledger.balance", "-o", "run.html", str(rec),
                     cwd=tmp)
    assert res.returncode == 0, res.stderr
    assert "41 writes to ledger.balance" in res.stderr, res.stderr
    return rec, tmp / "run.html"


def test_the_page_is_self_contained(corrupt_report: tuple[Path, Path]) -> None:
    _, report = corrupt_report
    text = report.read_text()
    # Nothing is fetched at view time: no external script, style, image or font.
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:|//)', text)
    assert "@import" not in text and "url(" not in text
    assert "default-src 'none'" in text  # and the page forbids it itself


def test_dom_holds_the_system_calls_and_the_watched_writes(
        corrupt_report: tuple[Path, Path]) -> None:
    rec, report = corrupt_report
    page = load(report)
    assert page.console == [], page.console
    dom = page.dom
    assert 'data-ready="1"' in dom  # the script ran to its end
    calls = re.findall(r'<tr class="syscall" data-position="(\d+)" data-name="([^"]+)">(.*?)</tr>',
                       dom, re.S)
    names = [name for _, name, _ in calls]
    assert names[0] == "brk" and names[-1] == "exit_group", names
    assert {"brk", "arch_prctl", "set_tid_address", "write", "exit_group"} <= set(names)
    write = next(html.unescape(row) for _, name, row in calls if name == "write")
    assert "balance: 777" in write and "(1, " in write  # fd 1, the buffer's text
    exit_row = next(html.unescape(row) for _, name, row in calls if name == "exit_group")
    assert "exit_group(1)" in exit_row and "does not return" in exit_row

    # The writes, at the positions the debugger's own last-write finds.
    writes = re.findall(r'<tr class="write" data-position="(\d+)">(.*?)</tr>', dom, re.S)
    assert len(writes) == 41
    with syxdbg.replay(str(rec)) as s:
        end = s.recording.end_position
        s.seek(end)
        last = s.last_write(make_registry(s).ctx.evaluate("ledger.balance"), 8)
        assert last is not None
        guilty = last.position
    positions = [int(position) for position, _ in writes]
    assert positions == sorted(positions) and positions[-1] == guilty
    last_row = html.unescape(writes[-1][1])
    assert "record_history" in last_row and ">5968<" in last_row and ">777<" in last_row
    assert f"monitor goto {guilty}" in last_row and str(rec) in last_row
    first_row = html.unescape(writes[0][1])
    assert "apply_transaction" in first_row and ">0<" in first_row and ">120<" in first_row

    # Syscall positions are exact: going there puts pc on the system call instruction.
    with syxdbg.replay(str(rec)) as s:
        for position, name, _row in calls[-2:]:
            s.seek(int(position))
            assert s.machine.disassemble(s.regs.pc, 1)[0][1] == "syscall", name

    marks = re.findall(r'<li class="(checkpoint|end)" data-position="(\d+)"', dom)
    assert ("end", str(end)) in marks and ("checkpoint", "0") in marks


def test_screenshot_is_not_blank_and_shows_the_lanes(corrupt_report: tuple[Path, Path],
                                                     tmp_path: Path) -> None:
    _, report = corrupt_report
    shot = tmp_path / "timeline.png"
    console = screenshot(report, shot, 1280, 800)
    assert console == [], console
    image = read_png(shot)
    assert (image.width, image.height) == (1280, 800)
    colours = image.colours()
    total = sum(colours.values())
    white = sum(n for c, n in colours.items() if min(c) >= 245)
    assert white < total * 0.97, "the page is (almost) blank"
    assert len(colours) > 20

    def near(rgb: tuple[int, int, int], tol: int = 40) -> int:
        return sum(n for c, n in colours.items()
                   if all(abs(a - b) <= tol for a, b in zip(c, rgb, strict=True)))

    # The lanes' colours: system calls (blue), watched writes (red), functions (green).
    assert near((0x25, 0x63, 0xEB)) > 0, "no system call marks"
    assert near((0xDC, 0x26, 0x26)) > 0, "no watched-write marks"
    assert near((0x05, 0x96, 0x69), 60) > 20, "no function activity"
    if os.environ.get("SYXDBG_UPDATE_DOCS") == "1":
        DOCS_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_IMAGE)


def test_console_capture_sees_errors(tmp_path: Path) -> None:
    # The control of the "no console errors" checks: a page that throws is caught.
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><p id=x>x</p><script>console.error('bad thing');"
                   "null.foo;</script>")
    page = load(bad)
    assert any("bad thing" in m for m in page.console), page.console
    assert any("Uncaught TypeError" in m for m in page.console), page.console
    # and a truncated report (its data cut short) fails loudly too.
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><script type='application/json' id='timeline-data'>"
                      "{\"start\":</script><script>JSON.parse(document.getElementById("
                      "'timeline-data').textContent)</script>")
    assert any("SyntaxError" in m for m in load(broken).console)


def test_monitor_timeline_under_real_gdb(corrupt_report: tuple[Path, Path],
                                         tmp_path: Path) -> None:
    rec, _ = corrupt_report
    if shutil.which("gdb") is None:
        tool_missing("gdb is not installed")
    outdir = tmp_path / "out"
    outdir.mkdir()
    res = syxdbg_cli("replay", "--output-dir", str(outdir), "--batch",
                     "--ex", "monitor timeline g.html --watch ledger.balance",
                     "--ex", f"monitor timeline {tmp_path / 'escape.html'}",
                     "--ex", "monitor when", str(rec), cwd=tmp_path)
    text = res.stdout + res.stderr
    assert "41 writes to ledger.balance" in text and "written to g.html" in text, text
    assert "give a relative name" in text, text
    assert "position 0 (frontier" in text, text  # gdb's position is unchanged
    assert not (tmp_path / "escape.html").exists()
    page = load(outdir / "g.html")
    assert page.console == [] and page.dom.count('<tr class="write"') == 41


def test_hovering_shows_position_instruction_and_command(
        corrupt_report: tuple[Path, Path]) -> None:
    rec, report = corrupt_report
    page = load(report, "selftest")  # the page hovers its last write and system call
    assert page.console == [], page.console
    m = re.search(r'<pre id="selftest-hover" hidden="">(.*?)</pre>', page.dom, re.S)
    assert m is not None
    syscall, write = html.unescape(m.group(1)).split("\n---\n")
    assert syscall.startswith("exit_group(1) = (does not return)\nposition ")
    assert ": syscall" in syscall and "monitor goto" in syscall
    assert write.startswith("write to ledger.balance (0x")
    assert "5968 \u2192 777" in write and "<record_history+" in write
    guilty = re.search(r"\nposition ([\d,]+)\n", write)
    assert guilty is not None
    n = guilty.group(1).replace(",", "")
    assert f"$ syxdbg replay --ex 'monitor goto {n}' {rec}" in write


def test_the_pages_command_goes_to_the_write(corrupt_report: tuple[Path, Path]) -> None:
    rec, report = corrupt_report
    rows = re.findall(r'<tr class="write" data-position="(\d+)">(.*?)</tr>',
                      load(report).dom, re.S)
    position, row = rows[-1]
    commands = re.findall(r"<code>(syxdbg replay [^<]*)</code>", row)
    assert commands == [f"syxdbg replay --ex 'monitor goto {position}' {rec}"]
    # Its shell form (the selection panel shows both), run as the user would, plus a look.
    argv = shlex.split(commands[0].replace("syxdbg replay --ex 'monitor goto",
                                           "syxdbg replay --shell --ex 'goto"))
    assert argv[:3] == ["syxdbg", "replay", "--shell"]
    res = syxdbg_cli(*argv[1:-1], "--batch", "--ex", "x/i $pc", "--ex", "position",
                     argv[-1], cwd=rec.parent)
    assert res.returncode == 0, res.stderr
    assert "<record_history+" in res.stdout and "mov qword ptr" in res.stdout, res.stdout
    assert f"\n{position}\n" in res.stdout or res.stdout.rstrip().endswith(position), \
        res.stdout[-300:]
