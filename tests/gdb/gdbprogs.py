"""The C programs of tests/gdb/programs built by one toolchain (glibc, musl, aarch64) and
debugged by the gdb that fits it, served by syxdbg: shared by the process and signal tests
(importable: tests/gdb is on sys.path)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import progs
import pytest
from gdbmi import Gdb, Served, served
from support import in_ci

#: toolchain -> the gdb that debugs its programs.
GDBS = {"gcc": shutil.which("gdb"), "musl": shutil.which("gdb"),
        "aarch64": shutil.which("gdb-multiarch")}


def line_of(source: Path, marker: str) -> int:
    """The 1-based line of ``source`` that contains ``marker``."""
    for n, text in enumerate(source.read_text().splitlines(), 1):
        if marker in text:
            return n
    raise AssertionError(marker)


def build(source: Path, toolchain: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``source`` built by ``toolchain`` as ``STEM-TOOLCHAIN`` (its name says which gdb)."""
    tc = progs.toolchain_for(toolchain)
    if not tc.available() or GDBS[toolchain] is None:
        if in_ci():
            raise AssertionError(f"{tc.cc} or its gdb is missing")
        pytest.skip(f"{tc.cc} or its gdb is missing")
    exe = tmp_path_factory.mktemp(source.stem) / f"{source.stem}-{toolchain}"
    subprocess.run(tc.command(source, exe), check=True, capture_output=True)
    return exe


def gdb_for(exe: Path) -> str:
    gdb = GDBS[exe.name.rpartition("-")[2]]
    assert gdb is not None
    return gdb


@contextmanager
def debugged(exe: Path, target: str = "remote", argv0: str | None = None
             ) -> Iterator[tuple[Gdb, Served]]:
    """``exe`` served by syxdbg on a free port and a real gdb connected to it."""
    with served(str(exe), argv0=argv0) as srv:
        g = Gdb(gdb_for(exe), str(exe))
        try:
            g.cli(f"set sysroot {srv.session.image.sysroot or '/'}")
            g.cli(f"target {target} 127.0.0.1:{srv.port}")
            yield g, srv
        finally:
            g.close()
