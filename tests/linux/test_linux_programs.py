"""Every test program under syxdbg behaves exactly as natively (qemu-user for aarch64).

stdout, stderr and the exit status (shell style: 128+N when killed by signal N) must be
equal. For runs that die of a signal only stdout and the status are compared: qemu-user
prints its own "uncaught target signal" line on stderr.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import progs
import pytest

TOOLCHAINS = ("gcc", "musl", "aarch64")

SRC_DATA = bytes(range(256)) * 13 + b"the end\n"

CASES: list[tuple[str, tuple[str, ...], bytes]] = [
    ("hello", (), b""),
    ("hello", ("--exit=42", "two words", ""), b""),
    ("filecopy", ("src.bin", "dst.bin"), b""),
    ("filecopy", ("missing.bin", "dst.bin"), b""),
    ("filecopy", (), b""),
    ("sortalloc", (), b""),
    ("sortalloc", ("40000",), b""),
    ("fpsimd", (), b""),
    ("readstdin", (), b"Hello, World!\n  two  words \n\tlast line without newline"),
    ("readstdin", ("--fgets",), b"x" * 70 + b"\nshort\n\n"),
    ("readstdin", (), b""),
    ("segv", (), b""),
    ("segv", ("read",), b""),
    ("segv", ("unmapped",), b""),
    ("segv", ("ill",), b""),
    ("segv", ("exit",), b""),
    ("segv", ("bogus",), b""),
    ("corrupt", (), b""),
    ("corrupt", ("--fixed",), b""),
    ("loop", (), b""),
    ("timeclock", (), b""),
]


def _case_id(case: tuple[str, tuple[str, ...], bytes]) -> str:
    prog, args, stdin = case
    return "-".join([prog, *(a.strip("-") or "empty" for a in args)]) + ("-stdin" if stdin else "")


def _same(native: progs.Result, emu: progs.Result, what: str) -> None:
    assert emu.stdout == native.stdout, f"{what}: stdout differs"
    assert emu.status == native.status, (
        f"{what}: native {native.describe()}, syxdbg status {emu.status}; "
        f"syxdbg stderr: {emu.stderr.decode(errors='replace')}")
    if native.signal is None:
        assert emu.stderr == native.stderr, f"{what}: stderr differs"


def _fresh_dir(base: Path, name: str) -> Path:
    d = base / name
    d.mkdir()
    (d / "src.bin").write_bytes(SRC_DATA)
    return d


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_program_matches_native(case: tuple[str, tuple[str, ...], bytes], toolchain: str,
                                build_program: Callable[..., Path], run_native: Callable,
                                emu_run: Callable, tmp_path: Path) -> None:
    prog, args, stdin = case
    exe = build_program(prog, toolchain)
    env = {**progs.DEFAULT_ENV, "SYXDBG_TEST_VAR": "value with spaces"}
    argv0 = f"./{prog}"  # same argv[0] for both runs (hello prints it)
    native = run_native(exe, list(args), stdin=stdin, env=env, argv0=argv0,
                        cwd=_fresh_dir(tmp_path, "native"))
    emu_dir = _fresh_dir(tmp_path, "emu")
    emu = emu_run(exe, args, stdin=stdin, env=env, argv0=argv0, cwd=emu_dir)
    _same(native, emu, f"{prog} {' '.join(args)} ({toolchain})")
    if prog == "filecopy" and native.status == 0:
        assert (emu_dir / "dst.bin").read_bytes() == SRC_DATA
        assert not (emu_dir / "dst.bin.tmp").exists()


@pytest.mark.parametrize("toolchain", ["gcc-pie", "aarch64-pie"])
@pytest.mark.parametrize("prog", ["hello", "sortalloc"])
def test_static_pie_matches_native(prog: str, toolchain: str,
                                   build_program: Callable[..., Path], run_native: Callable,
                                   emu_run: Callable, tmp_path: Path) -> None:
    exe = build_program(prog, toolchain)
    native = run_native(exe, [], argv0=prog, cwd=tmp_path)
    emu = emu_run(exe, (), argv0=prog, cwd=tmp_path)
    _same(native, emu, f"{prog} ({toolchain})")


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
@pytest.mark.parametrize("mode", ["", "abort", "raise", "ignore"])
def test_sysprobe_matches_native(mode: str, toolchain: str,
                                 build_probe: Callable[[str, str], Path],
                                 run_native: Callable, emu_run: Callable,
                                 tmp_path: Path) -> None:
    exe = build_probe("sysprobe", toolchain)
    results = []
    for who in ("native", "emu"):
        cwd = tmp_path / who
        (cwd / "scratch").mkdir(parents=True)
        runner = run_native if who == "native" else emu_run
        results.append(runner(exe, ["scratch", mode], argv0=str(exe), cwd=cwd))
    native, emu = results
    assert b"FAILED" not in native.stdout, native.stdout.decode()
    _same(native, emu, f"sysprobe {mode} ({toolchain})")
    expected = {"abort": 134, "raise": 143}.get(mode, 0)
    assert emu.status == expected


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_procself_reads_the_guest_not_the_debugger(toolchain: str,
                                                   build_probe: Callable[[str, str], Path],
                                                   run_native: Callable, emu_run: Callable,
                                                   tmp_path: Path) -> None:
    # /proc/self is the guest's: cmdline, environ, exe, maps, mem, auxv, fd, stat, status.
    exe = build_probe("procself", toolchain)
    emu = emu_run(exe, ["one", "two words"], argv0=str(exe), cwd=tmp_path)
    lines = emu.stdout.decode().splitlines()
    assert emu.status == 0 and len(lines) == 25, emu.stdout.decode() + emu.stderr.decode()
    assert all(line.endswith(": ok") for line in lines), emu.stdout.decode()
    if toolchain != "aarch64":  # qemu-user passes some of /proc/self through to the host
        native = run_native(exe, ["one", "two words"], argv0=str(exe), cwd=tmp_path)
        _same(native, emu, f"procself ({toolchain})")


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_procself_cannot_reach_the_host(toolchain: str,
                                        build_probe: Callable[[str, str], Path],
                                        emu_run: Callable, tmp_path: Path) -> None:
    # Other processes' /proc, a symlink into the host's /proc/self (mem, a descriptor).
    exe = build_probe("procself", toolchain)
    (tmp_path / "escape-mem").symlink_to("/proc/self/mem")
    (tmp_path / "escape-fd").symlink_to("/proc/self/fd/0")
    emu = emu_run(exe, ["isolation"], argv0=str(exe), cwd=tmp_path)
    lines = emu.stdout.decode().splitlines()
    assert emu.status == 0 and len(lines) == 8, emu.stdout.decode() + emu.stderr.decode()
    assert all(line.endswith(": ok") for line in lines), emu.stdout.decode()


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_bad_pointer_semantics_match_native(toolchain: str,
                                            build_probe: Callable[[str, str], Path],
                                            run_native: Callable, emu_run: Callable,
                                            tmp_path: Path) -> None:
    # read at EOF into a bad pointer is 0, writev stops at the first bad iovec (issue 16).
    exe = build_probe("errsem", toolchain)
    # qemu-user checks the buffer before reading (EFAULT even at EOF): the oracle for
    # aarch64 is Linux itself, i.e. the x86_64 build run natively.
    oracle = build_probe("errsem", "gcc") if toolchain == "aarch64" else exe
    native = run_native(oracle, [], argv0=str(exe), cwd=tmp_path)
    emu = emu_run(exe, (), argv0=str(exe), cwd=tmp_path)
    _same(native, emu, f"errsem ({toolchain})")
