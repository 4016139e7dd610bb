"""Helpers shared by test modules (import this, never ``conftest``: several conftest.py
files exist in the tree and the name ``conftest`` is ambiguous)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest


def in_ci() -> bool:
    """True when running under CI (env var CI set to anything but '', 0, false, no)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def tool_missing(reason: str) -> None:
    """Skip the current test on a developer machine, fail it under CI."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: every tool must be installed)", pytrace=False)
    pytest.skip(reason)


#: Cross tools that turn an assembly snippet into raw machine code, per architecture.
ASM_TOOLS = {"x86_64": ("gcc", "objcopy"),
             "aarch64": ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-objcopy")}


def assemble(arch: str, source: str, workdir: Path, *, name: str = "code",
             flags: Sequence[str] = ()) -> Path:
    """Assemble ``source`` for ``arch`` into ``workdir/NAME.bin`` (its .text section, raw).

    ``workdir/NAME.o`` stays beside it for symbol look-ups. A missing tool skips the test on
    a developer machine and fails it under CI.
    """
    cc, objcopy = ASM_TOOLS[arch]
    src, obj, out = (workdir / f"{name}{ext}" for ext in (".S", ".o", ".bin"))
    src.write_text(source)
    try:
        subprocess.run([cc, *flags, "-c", str(src), "-o", str(obj)], check=True)
        subprocess.run([objcopy, "-O", "binary", "-j", ".text", str(obj), str(out)], check=True)
    except FileNotFoundError as exc:
        tool_missing(f"{exc.filename} is not installed")
    return out
