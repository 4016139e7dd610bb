"""The test programs on the 32-bit ARM and RISC-V 64 machines, against qemu-user.

Shared by ``test_arch_arm.py`` and ``test_arch_riscv64.py``: the cases of
``tests/linux/test_linux_programs.py`` (every program of tests/programs that reads no clock
or host entropy into its output; sortalloc once: a billion instructions), run under
``syxdbg run`` exactly as a user does and under ``qemu-arm`` / ``qemu-riscv64``, with the
same argv[0], environment and working directory.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import progs

SRC_DATA = bytes(range(256)) * 13 + b"the end\n"

CASES: list[tuple[str, tuple[str, ...], bytes]] = [
    ("hello", (), b""),
    ("hello", ("--exit=42", "two words", ""), b""),
    ("filecopy", ("src.bin", "dst.bin"), b""),
    ("filecopy", ("missing.bin", "dst.bin"), b""),
    ("sortalloc", (), b""),
    ("fpsimd", (), b""),
    ("readstdin", (), b"Hello, World!\n  two  words \n\tlast line without newline"),
    ("readstdin", ("--fgets",), b"x" * 70 + b"\nshort\n\n"),
    ("segv", (), b""),
    ("segv", ("unmapped",), b""),
    ("segv", ("ill",), b""),
    ("segv", ("exit",), b""),
    ("corrupt", (), b""),
    ("corrupt", ("--fixed",), b""),
    ("loop", (), b""),
    ("timeclock", (), b""),
]


def case_id(case: tuple[str, tuple[str, ...], bytes]) -> str:
    prog, args, stdin = case
    return "-".join([prog, *(a.strip("-") or "empty" for a in args)]) + ("-stdin" if stdin else "")


def syxdbg_run(exe: Path, args: tuple[str, ...], *, stdin: bytes, env: dict[str, str],
               argv0: str, cwd: Path) -> progs.Result:
    cmd = [sys.executable, "-m", "syxdbg", "run", "--clear-env"]
    for name, value in env.items():
        cmd += ["-E", f"{name}={value}"]
    cmd += ["--argv0", argv0, str(exe), *args]
    p = subprocess.run(cmd, input=stdin, capture_output=True, cwd=cwd, timeout=600,
                       check=False)
    return progs.Result(p.stdout, p.stderr, p.returncode)


def check_case(exe: Path, case: tuple[str, tuple[str, ...], bytes], tmp_path: Path) -> None:
    """Run ``case`` natively (qemu-user) and under syxdbg: same stdout and status; same
    stderr unless a signal killed it (qemu-user prints its own line then)."""
    prog, args, stdin = case
    env = {**progs.DEFAULT_ENV, "SYXDBG_TEST_VAR": "value with spaces"}
    runs = []
    for name in ("native", "emu"):
        d = tmp_path / name
        d.mkdir()
        (d / "src.bin").write_bytes(SRC_DATA)
        if name == "native":
            runs.append(progs.native_run(exe, list(args), stdin=stdin, env=env,
                                         argv0=f"./{prog}", cwd=d))
        else:
            runs.append(syxdbg_run(exe, args, stdin=stdin, env=env, argv0=f"./{prog}", cwd=d))
    native, emu = runs
    what = f"{prog} {' '.join(args)} ({exe.name})"
    assert emu.stdout == native.stdout, f"{what}: stdout differs"
    assert emu.status == native.status, (
        f"{what}: native {native.describe()}, syxdbg status {emu.status}; "
        f"syxdbg stderr: {emu.stderr.decode(errors='replace')}")
    if native.signal is None:
        assert emu.stderr == native.stderr, f"{what}: stderr differs"
    if prog == "filecopy" and native.status == 0:
        assert (tmp_path / "emu" / "dst.bin").read_bytes() == SRC_DATA


def record_and_check(exe: Path, args: tuple[str, ...], tmp_path: Path) -> str:
    """``syxdbg record`` then ``syxdbg replay --check``; returns the replay's output."""
    rec = tmp_path / "run.syxrec"
    p = subprocess.run([sys.executable, "-m", "syxdbg", "record", "-q", "-o", str(rec),
                        str(exe), *args], capture_output=True, timeout=600, check=False,
                       cwd=tmp_path)
    assert rec.exists(), p.stderr.decode(errors="replace")
    p = subprocess.run([sys.executable, "-m", "syxdbg", "replay", "--check", str(rec)],
                       capture_output=True, text=True, timeout=600, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout + p.stderr
