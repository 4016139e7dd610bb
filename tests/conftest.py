"""Shared pytest fixtures for syxdbg's tests.

Test programs (tests/programs/*.c) are built with ``progs.build`` and cached on disk
(see tests/progs.py). Fixtures:

* ``build_program(program, toolchain="gcc", *, pie=False) -> Path``
* ``run_native(binary, args=(), **kw) -> progs.Result`` (the oracle; qemu for aarch64)
* ``require_tool(name) -> str`` (full path of an executable)
* ``program_cache`` -- the session-wide {(program, toolchain): Path} dict behind
  ``build_program``.

Missing tools: on a developer machine a test that needs a missing compiler / qemu /
gdb is skipped with a reason. When the ``CI`` environment variable is set (CI installs
every tool) the test FAILS instead, so a broken CI image cannot silently skip tests.

Markers: ``slow`` (long-running; deselect with ``-m "not slow"``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:  # e.g. with --import-mode=importlib
    sys.path.insert(0, _TESTS_DIR)

import progs  # noqa: E402
from support import in_ci, tool_missing  # noqa: E402,F401


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long-running test (deselect with -m 'not slow')")


@pytest.fixture(scope="session")
def program_cache() -> dict[tuple[str, str], Path]:
    return {}


@pytest.fixture(scope="session")
def build_program(
    program_cache: dict[tuple[str, str], Path],
) -> Callable[..., Path]:
    """Return ``build(program, toolchain="gcc", *, pie=False) -> Path``.

    Skips (or fails under CI) when the toolchain is not installed.
    """

    def build(program: str, toolchain: str = "gcc", *, pie: bool = False) -> Path:
        tc = progs.toolchain_for(toolchain, pie=pie)
        key = (program, tc.name)
        exe = program_cache.get(key)
        if exe is not None and exe.exists():
            return exe
        try:
            exe = progs.build(program, tc)
        except progs.ToolchainMissing as e:
            tool_missing(str(e))
            raise  # unreachable: tool_missing always raises
        program_cache[key] = exe
        return exe

    return build


@pytest.fixture(scope="session")
def require_tool() -> Callable[[str], str]:
    """Return ``require(name) -> full path``; skips/fails (under CI) if missing."""

    def require(name: str) -> str:
        try:
            return progs.require_tool(name)
        except progs.ToolchainMissing as e:
            tool_missing(str(e))
            raise

    return require


@pytest.fixture(scope="session")
def run_native() -> Callable[..., progs.Result]:
    """Return ``progs.native_run``, skipping/failing (under CI) if qemu is missing."""

    def run(binary: Path | str, args=(), **kwargs) -> progs.Result:
        try:
            return progs.native_run(binary, args, **kwargs)
        except progs.ToolchainMissing as e:
            tool_missing(str(e))
            raise

    return run
