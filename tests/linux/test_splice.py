"""splice (issue 16): between a file and a pipe (with and without offsets), pipe to pipe,
waiting for a writer, SPLICE_F_NONBLOCK and Linux's errors, on every machine against the
native run of the same program (``programs/splice.c``), and recorded + replayed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import progs
import pytest
from linux_helpers import assert_recording_replays


@pytest.fixture(scope="module")
def splice_native(build_probe: Callable[[str, str], Path]) -> progs.Result:
    native = progs.native_run(build_probe("splice", "gcc"))
    assert native.status == 0, native.describe()
    assert b"file from 40: 7: fgh0123\n" in native.stdout, native.stdout
    assert b"pipe -> file, waiting for the writer: 4\n" in native.stdout
    return native


@pytest.mark.parametrize("toolchain", ("gcc", "musl", "aarch64", "arm", "riscv64"))
def test_splice_as_natively(build_probe: Callable[[str, str], Path],
                            emu_run: Callable[..., progs.Result],
                            splice_native: progs.Result, toolchain: str) -> None:
    emu = emu_run(build_probe("splice", toolchain))
    assert (emu.stdout.decode(), emu.status) == (splice_native.stdout.decode(), 0), \
        emu.stderr.decode()
    assert emu.stderr == b""


def test_a_recording_of_splices_replays(build_probe: Callable[[str, str], Path],
                                        splice_native: progs.Result, tmp_path: Path) -> None:
    assert_recording_replays(build_probe("splice", "gcc"), splice_native.stdout,
                             tmp_path / "splice.syxrec")
