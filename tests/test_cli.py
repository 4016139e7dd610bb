"""The command line: help, version, exit statuses and one-line errors for bad input."""

from __future__ import annotations

import os
import re
import signal
import struct
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

import syxdbg


def syxdbg_cli(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None,
               cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "syxdbg", *args], input=stdin,
                          capture_output=True, env=env, cwd=cwd, timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess[bytes], message: str) -> None:
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("syxdbg: error: ") and message in lines[0], err


def test_version_and_help() -> None:
    proc = syxdbg_cli("--version")
    assert proc.returncode == 0 and proc.stdout.decode().strip() == f"syxdbg {syxdbg.__version__}"
    top = syxdbg_cli("--help").stdout.decode()
    assert "run" in top and "demo" in top
    run = syxdbg_cli("run", "--help").stdout.decode()
    for word in ("PROG", "--raw", "--arch", "--base", "--entry", "--max-insns", "-p no:NAME"):
        assert word in run
    # The console script is installed and is the same program.
    script = subprocess.run(["syxdbg", "--version"], capture_output=True, text=True)
    assert script.stdout.strip() == f"syxdbg {syxdbg.__version__}"


def test_no_command_prints_help_and_fails() -> None:
    proc = syxdbg_cli()
    assert proc.returncode == 2 and b"usage:" in proc.stderr


def test_bad_programs_give_one_error_line_and_status_2(build_program, tmp_path: Path) -> None:
    hello = build_program("hello", "gcc")
    (tmp_path / "script.sh").write_text("#!/bin/sh\n")
    (tmp_path / "trunc").write_bytes(hello.read_bytes()[:64])
    blob = bytearray(hello.read_bytes())
    blob[18:20] = struct.pack("<H", 8)  # EM_MIPS (arm, 40, is supported since issue 17)
    (tmp_path / "mips").write_bytes(bytes(blob))
    dyn = tmp_path / "dyn"
    subprocess.run(["gcc", "-O1", "-o", str(dyn), str(Path(__file__).parent / "programs" /
                                                     "hello.c")], check=True)
    cases = [
        (["run", str(tmp_path / "script.sh")], "not an ELF file"),
        (["run", str(tmp_path / "trunc")], "truncated"),
        (["run", str(tmp_path / "mips")], "unsupported machine"),
        (["run", "--sysroot", str(tmp_path), str(dyn)], "not found in sysroot"),
        (["run", str(tmp_path / "nope")], "no such file"),
        (["run"], "no program given"),
        (["run", "--raw", str(hello)], "--raw needs --arch"),
        (["run", "--raw", str(hello), "--arch", "mips", "--base", "0x1000"],
         "unknown architecture 'mips'"),
        (["run", "--base", "0x1000", str(hello)], "raw blobs"),
        (["run", "-p", "linux", str(hello)], "-p expects no:NAME"),
    ]
    for args, message in cases:
        assert_one_line_error(syxdbg_cli(*args), message)


def _blob(tmp_path: Path, code: bytes) -> str:
    path = tmp_path / "blob.bin"
    path.write_bytes(code)
    return str(path)


def test_raw_blob_fault_and_instruction_limit(tmp_path: Path) -> None:
    # mov rax, [0x1234] -> SIGSEGV, reported on one line, status 128+11.
    proc = syxdbg_cli("run", "--raw", _blob(tmp_path, bytes.fromhex("488b042534120000")),
                      "--arch", "x86_64", "--base", "0x10000")
    assert proc.returncode == 128 + 11
    err = proc.stderr.decode()
    assert "SIGSEGV at pc 0x10000" in err and "0x1234" in err and "Traceback" not in err
    # jmp . -> runs until --max-insns, status 124 with the position.
    proc = syxdbg_cli("run", "--max-insns", "100000", "--raw", _blob(tmp_path, b"\xeb\xfe"),
                      "--arch", "x86_64", "--base", "0x10000")
    assert proc.returncode == 124
    assert "stopped after 100000 instructions at pc 0x10000" in proc.stderr.decode()
    # aarch64: udf #0 -> SIGILL at the entry point.
    proc = syxdbg_cli("run", "--raw", _blob(tmp_path, b"\0\0\0\0"), "--arch", "aarch64",
                      "--base", "0x400000")
    assert proc.returncode == 128 + 4
    assert "SIGILL at pc 0x400000" in proc.stderr.decode()
    # A system call in a blob: there is no OS below a raw blob, and the error says so.
    proc = syxdbg_cli("run", "--raw", _blob(tmp_path, b"\x0f\x05"), "--arch", "x86_64",
                      "--base", "0x10000")
    assert_one_line_error(proc, "no syscall layer")


@pytest.fixture(scope="module")
def spin_program(build_program: Callable[..., Path]) -> Path:
    """tests/programs/spin.c: prints "ready" (flushed), then loops forever."""
    return build_program("spin")


def test_sigint_interrupts_a_running_program(spin_program: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "syxdbg", "run", str(spin_program)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    # Deterministic: the program has printed, so it is running in the emulator's loop now.
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = err.decode().strip().splitlines()
    # At pc in main's loop, or still in write() when the signal overtook its return.
    assert len(lines) == 1 and re.match(r"syxdbg: interrupted at pc 0x[0-9a-f]+ \(\w+"
                                        r"(\+0x[0-9a-f]+)?\) after \d+ instructions$",
                                        lines[0]), err


def test_demo_finds_the_corrupting_store_by_time_travel(tmp_path: Path) -> None:
    proc = syxdbg_cli("demo", cwd=tmp_path)
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 0, err
    assert "balance: 777" in out and "ledger CORRUPTED" in out  # the program ran once
    assert out.count("ledger CORRUPTED") == 1  # re-execution repeated no output
    assert "function     record_history" in err
    assert "ledger.c:65" in err  # ledger.history[pos] = amount; /* BUG ... */
    assert "5968 before it, 777 after it" in err
    assert "syxdbg gdb" in err and "syxdbg shell" in err


def test_bundled_example_is_built_from_the_shipped_source(build_program, run_native) -> None:
    from importlib import resources

    bundled = resources.files("syxdbg").joinpath("examples", "ledger-x86_64")
    fresh = build_program("corrupt", "musl")  # tests/programs/corrupt.c -> examples/ledger.c
    for args in ((), ("--fixed",)):
        a, b = run_native(str(bundled), args), run_native(str(fresh), args)
        assert (a.stdout, a.returncode) == (b.stdout, b.returncode)


def test_snapshot_budget_option_reaches_the_timeline(build_program) -> None:
    from syxdbg.cli.entry import build_parser
    from syxdbg.cli.spec import ProgramSpec, open_session

    ns = build_parser().parse_args(["run", "--snapshot-budget", "64M",
                                    str(build_program("hello", "musl"))])
    spec = ProgramSpec.from_args(ns)
    assert spec.options["timeline.budget"] == 64 << 20
    with open_session(spec) as session:
        session.run()
        assert session.timeline.budget == 64 << 20
    bad = syxdbg_cli("run", "--snapshot-budget", "lots", "x")
    assert bad.returncode == 2 and b"not a size: 'lots'" in bad.stderr


ROOT = Path(__file__).resolve().parents[1]


def build_inputs(root: Path) -> set[str]:
    """Every file setup.py's extensions need: their .pyx sources, the .pxd files they
    cimport (with the packages' __init__.pxd) and the files they include, transitively."""
    need = {"setup.py", "pyproject.toml", "README.md"}
    todo = re.findall(r'"(syxdbg/[\w/]+\.pyx)"', (root / "setup.py").read_text())
    assert todo, "no extension sources found in setup.py"
    while todo:
        path = todo.pop()
        if path in need:
            continue
        need.add(path)
        text = (root / path).read_text()
        found = []
        for m in re.finditer(r"^\s*(?:from\s+(syxdbg[\w.]*)\s+cimport|cimport\s+(syxdbg[\w.]*))",
                             text, re.M):
            parts = (m.group(1) or m.group(2)).split(".")
            for i in range(1, len(parts)):
                init = "/".join(parts[:i]) + "/__init__.pxd"
                if (root / init).exists():
                    found.append(init)
            module = "/".join(parts)
            found.append(f"{module}.pxd" if (root / f"{module}.pxd").exists()
                         else f"{module}/__init__.pxd")
        for m in re.finditer(r'^\s*include\s+"([^"]+)"', text, re.M):
            found.append(str((Path(path).parent / m.group(1)).as_posix()))
        todo += [str(Path(os.path.normpath(f)).as_posix()) for f in found]
    return need


def test_sdist_ships_what_the_build_needs_and_builds_a_wheel(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(tmp_path),
                    "sdist", "-d", str(tmp_path)], cwd=ROOT, check=True, capture_output=True)
    tarball = next(tmp_path.glob("syxdbg-*.tar.gz"))
    with tarfile.open(tarball) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        tar.extractall(tmp_path / "src", filter="data")
    needed = build_inputs(ROOT)
    assert "syxdbg/machine/_shared.pxd" in needed and "syxdbg/includes/ucapi.pxi" in needed
    assert needed - names == set()
    # The sdist alone builds: a wheel, offline, with the three extensions compiled.
    source = next((tmp_path / "src").iterdir())
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation",
                            "--no-deps", "-q", "-w", str(tmp_path / "wheels"), str(source)],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout + build.stderr
    wheel = next((tmp_path / "wheels").glob("syxdbg-*.whl"))
    assert wheel.name.startswith(f"syxdbg-{syxdbg.__version__}-")
    with zipfile.ZipFile(wheel) as whl:
        files = set(whl.namelist())
    for ext in ("syxdbg/machine/_native", "syxdbg/machine/_probes", "syxdbg/snapshot/_core"):
        assert any(f.startswith(ext) and f.endswith(".so") for f in files), ext
    assert {"syxdbg/cli/entry.py", "syxdbg/version.py", "syxdbg_plugins/linux/__init__.py",
            "gdbstub/server.py"} <= files


def test_output_dir_options_reach_the_session(build_program, tmp_path: Path) -> None:
    from syxdbg.cli.entry import build_parser
    from syxdbg.cli.spec import ProgramSpec, open_session, output_options

    exe = str(build_program("hello", "musl"))
    for command in (["serve"], ["gdb"]):
        ns = build_parser().parse_args([*command, "--output-dir", str(tmp_path),
                                        "--allow-overwrite", exe])
        with open_session(ProgramSpec.from_args(ns), **output_options(ns)) as session:
            assert session.options["output_dir"] == str(tmp_path)
            assert session.options["output_overwrite"] is True
    ns = build_parser().parse_args(["replay", "--port", "0", "x.syxrec"])
    assert output_options(ns) == {"output_dir": os.getcwd(), "output_overwrite": False}
    bad = syxdbg_cli("serve", "--output-dir", str(tmp_path / "missing"), exe)
    assert_one_line_error(bad, "not a directory")
