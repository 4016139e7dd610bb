"""Fixtures for the Linux plugin's tests.

* ``emu_run(binary, args=(), *, stdin=b"", env=None, cwd=None, argv0=None) -> progs.Result``
  runs a program with the real `syxdbg run` command in a subprocess, so the guest's
  stdout/stderr are real fds; ``status`` is shell style (128+N for signal N).
* ``build_probe(name, toolchain) -> Path`` compiles ``tests/linux/programs/<name>.c``.
* ``syscaller(toolchain) -> SysCaller``: a real session (stopped at the entry point of
  ``hello``) whose kernel is driven one syscall at a time.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import progs
import pytest
from linux_helpers import SysCaller

import syxdbg

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def emu_run() -> Callable[..., progs.Result]:
    def run(binary: Path | str, args: tuple[str, ...] | list[str] = (), *, stdin: bytes = b"",
            env: dict[str, str] | None = None, cwd: Path | str | None = None,
            argv0: str | None = None, timeout: float = 600) -> progs.Result:
        guest_env = dict(progs.DEFAULT_ENV if env is None else env)
        # The real command line, exactly as a user runs it.
        cmd = [sys.executable, "-m", "syxdbg", "run", "--clear-env"]
        for name, value in guest_env.items():
            cmd += ["-E", f"{name}={value}"]
        cmd += ["--argv0", argv0 if argv0 is not None else str(binary), str(binary), *args]
        p = subprocess.run(cmd, input=stdin, capture_output=True, cwd=cwd, timeout=timeout,
                           check=False)
        return progs.Result(p.stdout, p.stderr, p.returncode)

    return run


@pytest.fixture(scope="session")
def build_probe(tmp_path_factory: pytest.TempPathFactory,
                require_tool: Callable[[str], str]) -> Callable[[str, str], Path]:
    cache: dict[tuple[str, str], Path] = {}
    out_dir = tmp_path_factory.mktemp("linux-probes")

    def build(name: str, toolchain: str) -> Path:
        key = (name, toolchain)
        if key not in cache:
            tc = progs.toolchain_for(toolchain)
            require_tool(tc.cc)
            exe = out_dir / f"{name}-{tc.name}"
            cmd = tc.command(HERE / "programs" / f"{name}.c", exe)
            p = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if p.returncode:
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stderr}")
            cache[key] = exe
        return cache[key]

    return build


@pytest.fixture
def syscaller(build_program: Callable[..., Path]) -> Iterator[Callable[[str], SysCaller]]:
    sessions: list[Any] = []

    def make(toolchain: str) -> SysCaller:
        exe = build_program("hello", toolchain)
        session = syxdbg.open(str(exe), [], env=dict(progs.DEFAULT_ENV))
        sessions.append(session)
        return SysCaller(session)

    yield make
    for s in sessions:
        s.close()
