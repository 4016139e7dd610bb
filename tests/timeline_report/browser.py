"""Headless Chromium for the timeline report's tests: the DOM after the page's script ran,
every console message (errors and uncaught exceptions included), and screenshots decoded
with zlib and struct (no image library).

Chromium is the Debian package ``chromium`` (CI installs it, see .ci/run); a missing one
skips on a developer machine and fails under CI (``support.tool_missing``).
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from support import tool_missing

#: A console message as ``--enable-logging=stderr`` prints it (any level: console.log,
#: console.error and uncaught exceptions all appear as CONSOLE lines).
CONSOLE = re.compile(r":CONSOLE[:(]\d+\)?\] (.*)$", re.M)


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    tool_missing("chromium is not installed (apt-get install chromium)")
    raise AssertionError("unreachable")


@dataclass
class Page:
    dom: str
    console: list[str]


def _run(url: str, extra: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="syxdbg-chromium-") as profile:
        # --no-sandbox: CI runs as root; --disable-dev-shm-usage: containers' small /dev/shm.
        argv = [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions",
                "--hide-scrollbars",
                f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *extra, url]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)


def load(path: Path, fragment: str = "") -> Page:
    """The DOM of ``path`` (``#fragment``) once loaded (scripts run) and the console
    messages it logged."""
    url = path.resolve().as_uri() + (f"#{fragment}" if fragment else "")
    res = _run(url, ["--dump-dom"])
    assert res.returncode == 0, res.stderr[-2000:]
    return Page(res.stdout, CONSOLE.findall(res.stderr))


def screenshot(path: Path, out: Path, width: int = 1400, height: int = 900) -> list[str]:
    """Write a PNG of ``path`` to ``out``; the console messages logged meanwhile."""
    res = _run(path.resolve().as_uri(), [f"--window-size={width},{height}",
                                          f"--screenshot={out}"])
    assert res.returncode == 0 and out.exists(), res.stderr[-2000:]
    return CONSOLE.findall(res.stderr)


@dataclass
class Image:
    width: int
    height: int
    pixels: list[bytes]  # one row each: RGB triples

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        r = self.pixels[y]
        return r[3 * x], r[3 * x + 1], r[3 * x + 2]

    def colours(self, step: int = 3) -> dict[tuple[int, int, int], int]:
        """How often each colour occurs (every ``step``-th pixel each way)."""
        out: dict[tuple[int, int, int], int] = {}
        for y in range(0, self.height, step):
            for x in range(0, self.width, step):
                c = self.pixel(x, y)
                out[c] = out.get(c, 0) + 1
        return out


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def read_png(path: Path) -> Image:
    """Decode an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes) to RGB rows."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, bytearray(), None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    assert header is not None, "no IHDR"
    width, height, depth, ctype, _comp, _filt, interlace = header
    assert depth == 8 and ctype in (2, 6) and interlace == 0, header
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(bytes(idat))
    stride = width * bpp
    prev = bytearray(stride)
    rows: list[bytes] = []
    for y in range(height):
        off = y * (stride + 1)
        ftype = raw[off]
        line = bytearray(raw[off + 1:off + 1 + stride])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + ((a + b) >> 1)) & 0xFF
            elif ftype == 4:
                line[i] = (line[i] + _paeth(a, b, c)) & 0xFF
        prev = line
        if bpp == 4:
            rgb = bytearray()
            for x in range(width):
                rgb += line[4 * x:4 * x + 3]
            rows.append(bytes(rgb))
        else:
            rows.append(bytes(line))
    return Image(width, height, rows)
