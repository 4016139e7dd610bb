"""``--memory-limit``: the guest sees ENOMEM as under a cgroup limit, and exits cleanly.

memhog.c allocates 1 MiB chunks until malloc returns NULL, then checks that sbrk leaves the
break where it was (Linux's brk never fails; it used to return an error code here, which
crashed malloc) and that a big mmap fails with ENOMEM. The limit is kernel state: a
recording carries it and its replay uses it, whatever the replaying host has.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from syxdbg_plugins.linux import get_kernel, parse_size
from syxdbg_plugins.linux.kernel import default_memory_limit

import syxdbg

SYXDBG = [sys.executable, "-m", "syxdbg"]
TOOLCHAINS = ("gcc", "musl", "aarch64")


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SYXDBG, *args], capture_output=True, text=True, cwd=cwd,
                          stdin=subprocess.DEVNULL, timeout=600, check=False)


def _check_memhog(out: str) -> None:
    lines = out.splitlines()
    m = re.fullmatch(r"malloc returned NULL after (\d+) MiB \(about \d+\)", lines[0])
    assert m is not None, out
    assert 40 <= int(m.group(1)) < 64, out  # 64M minus the image, stack and heap headers
    assert lines[1:] == ["sbrk beyond the limit: ENOMEM, break unchanged",
                         "mmap beyond the limit: ENOMEM", "small malloc after that: ok"], out


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_malloc_returns_null_at_the_limit(toolchain: str,
                                          build_probe: Callable[[str, str], Path],
                                          tmp_path: Path) -> None:
    exe = build_probe("memhog", toolchain)
    res = _run("run", "--memory-limit", "64M", str(exe), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    _check_memhog(res.stdout)


def test_a_recording_replays_with_its_own_limit(build_probe: Callable[[str, str], Path],
                                                tmp_path: Path) -> None:
    exe = build_probe("memhog", "musl")
    rec = tmp_path / "hog.syxrec"
    res = _run("record", "-q", "--memory-limit", "64M", "-o", str(rec), str(exe), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    _check_memhog(res.stdout)
    # No --memory-limit at replay (the host default would let malloc go on): same run.
    res = _run("replay", "--check", str(rec), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "the program exited with status 0, as recorded" in res.stdout
    with syxdbg.replay(str(rec)) as s:
        kernel = get_kernel(s)
        assert kernel is not None and kernel.s.memory_limit == 64 << 20


def test_the_default_limit_is_half_the_host_memory(build_program: Callable[..., Path]) -> None:
    s = syxdbg.open(str(build_program("hello", "gcc")), [], env={})
    try:
        kernel = get_kernel(s)
        assert kernel is not None
        assert kernel.s.memory_limit == default_memory_limit(kernel.host.memory_total()) > 0
    finally:
        s.close()


@pytest.mark.parametrize(("text", "size"), [("512M", 512 << 20), ("2G", 2 << 30),
                                             ("1.5g", 3 << 29), ("1048576", 1 << 20),
                                             ("64MiB", 64 << 20), ("none", 0)])
def test_sizes_parse(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["12Q", "-5M", "", "1k", "1000T", "M"])
def test_a_bad_size_is_one_clear_error(bad: str, build_program: Callable[..., Path],
                                       tmp_path: Path) -> None:
    res = _run("run", "--memory-limit", bad, str(build_program("hello", "gcc")), cwd=tmp_path)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert "--memory-limit" in res.stderr.splitlines()[-1]
