"""Validate the oracle: the test programs build everywhere and behave as documented.

Every program in tests/programs/ is built with every toolchain (gcc, musl, aarch64 and
static-PIE variants for some) and run natively / under qemu-aarch64. Where possible the
expected output is computed independently in Python (loop, sortalloc, filecopy,
readstdin); otherwise it is checked against the documented conventions and for
identity across toolchains and architectures.
"""

from __future__ import annotations

import concurrent.futures
import math
import os
import signal
import struct
from pathlib import Path

import progs
import pytest
import support

BASE = progs.BASE_TOOLCHAINS  # gcc, musl, aarch64
PIE_BUILDS = [
    ("hello", "gcc-pie"),
    ("filecopy", "gcc-pie"),
    ("fpsimd", "gcc-pie"),
    ("segv", "gcc-pie"),
    ("corrupt", "gcc-pie"),
    ("hello", "aarch64-pie"),
    ("fpsimd", "aarch64-pie"),
    ("corrupt", "aarch64-pie"),
]
ALL_BUILDS = [(p, tc) for p in progs.PROGRAMS for tc in BASE] + PIE_BUILDS
# Toolchains whose outputs must agree byte for byte (x86_64 vs aarch64, glibc vs musl).
CROSS = (*BASE, "gcc-pie", "aarch64-pie")

ET_EXEC, ET_DYN = 2, 3
PT_INTERP = 3


def _elf_info(path: Path) -> tuple[int, bool]:
    """(e_type, has PT_INTERP) of a little-endian ELF64 file."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, "ELF64 LE expected"
    e_type = struct.unpack_from("<H", data, 16)[0]
    e_phoff = struct.unpack_from("<Q", data, 32)[0]
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 54)
    types = [struct.unpack_from("<I", data, e_phoff + i * e_phentsize)[0] for i in range(e_phnum)]
    return e_type, PT_INTERP in types


# ------------------------------------------------------------------ Python models


def fnv1a32(data: bytes) -> int:
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


M64 = (1 << 64) - 1


def loop_model(iters: int) -> str:
    table = [(k * 2654435761) & 0xFFFFFFFF for k in range(4096)]
    x, s = 88172645463325252, 0
    for _ in range(iters):
        x ^= (x << 13) & M64
        x ^= x >> 7
        x ^= (x << 17) & M64
        k = x & 4095
        table[k] = (table[k] + (x >> 32)) & 0xFFFFFFFF
        s = (s + table[(k + 1) & 4095]) & M64
    for v in table:
        s = (s * 31 + v) & M64
    return f"iterations: {iters}\nchecksum: {s:016x}\n"


def sortalloc_model(n: int) -> str:
    state = 0x2545F4914F6CDD1D

    def lcg() -> int:
        nonlocal state
        state = (state * 6364136223846793005 + 1442695040888963407) & M64
        return state >> 33

    def mix(h: int, v: int) -> int:
        return h ^ ((v + 0x9E3779B97F4A7C15 + (h << 6) + (h >> 2)) & M64)

    big = [100, 4096, 65536, 131073, 200 * 1024, 1024 * 1024, 3 * 1024 * 1024 + 7]
    size = [0] * 64
    h = 0
    for _ in range(2000):
        s = lcg() % 64
        r = lcg()
        if size[s]:
            h = mix(h, size[s])
        if r % 7 == 0:
            sz = big[(r >> 8) % len(big)]
        elif r % 3 == 0:
            sz = 1 + (r >> 4) % 64
        else:
            sz = 1 + (r >> 4) % 4000
        if (r >> 20) % 4 == 0:
            size[s] = 0
            continue
        size[s] = sz
        h = mix(h, sz)
    out = [f"alloc digest: {h:016x}", "sorted: ok"]
    recs = sorted((lcg() % 100000, i) for i in range(n))
    h = 0
    for key, i in recs:
        h = mix(h, key)
        h = mix(h, i)
        h = mix(h, ord("0") + (i % 100000) % 10)
    out += [f"sort digest: {h:016x}", f"min: {recs[0][0]} max: {recs[-1][0]}", f"records: {n}"]
    return "\n".join(out) + "\n"


def readstdin_model(data: bytes) -> bytes:
    out = data.upper()
    if data and not data.endswith(b"\n"):
        out += b"\n"
    lines = data.count(b"\n")
    return out + f"lines={lines} words={len(data.split())} bytes={len(data)}\n".encode()


# ------------------------------------------------------------------ builds


@pytest.mark.parametrize(("program", "toolchain"), ALL_BUILDS)
def test_builds_static_and_warning_free(build_program, program, toolchain):
    exe = build_program(program, toolchain)
    tc = progs.TOOLCHAINS[toolchain]
    assert exe.is_file() and os.access(exe, os.X_OK)
    assert progs.elf_machine(exe) == tc.arch
    e_type, has_interp = _elf_info(exe)
    assert e_type == (ET_DYN if tc.pie else ET_EXEC)
    assert not has_interp, "test programs must be fully static (no PT_INTERP)"
    assert progs.build_log(exe) == "", f"compiler warnings:\n{progs.build_log(exe)}"


def test_all_program_sources_listed():
    on_disk = {p.stem for p in progs.PROGRAMS_DIR.glob("*.c")}
    assert on_disk == set(progs.PROGRAMS)
    for name in progs.PROGRAMS:
        head = (progs.PROGRAMS_DIR / f"{name}.c").read_text()[:200]
        assert head.startswith(f"/*\n * {name}.c - "), f"{name}.c needs a header comment"


# ------------------------------------------------------------------ per-program behaviour


@pytest.mark.parametrize("toolchain", BASE)
def test_hello(build_program, run_native, toolchain):
    exe = build_program("hello", toolchain)
    env = {**progs.DEFAULT_ENV, "SYXDBG_TEST_VAR": "forty two"}
    r = run_native(exe, ["alpha", "two words", ""], env=env, argv0="hello")
    assert r.returncode == 3 and r.status == 3 and r.signal is None
    assert r.text == (
        "argc=4\nargv[0]=hello\nargv[1]=alpha\nargv[2]=two words\nargv[3]=\n"
        "SYXDBG_TEST_VAR=forty two\nSYXDBG_TEST_VAR2=(unset)\n"
    )
    assert r.stderr == b"hello: to stderr\n"

    r = run_native(exe, ["--exit=42", "x"])
    assert r.returncode == 42
    assert f"argv[0]={exe}\n" in r.text  # default argv[0] is the binary path
    assert "SYXDBG_TEST_VAR=(unset)" in r.text
    assert run_native(exe, ["--exit=0"]).returncode == 0


@pytest.mark.parametrize("toolchain", BASE)
def test_filecopy(build_program, run_native, tmp_path, toolchain):
    exe = build_program("filecopy", toolchain)
    data = bytes(range(256)) * 41 + b"tail without newline"
    (tmp_path / "src.bin").write_bytes(data)
    r = run_native(exe, ["src.bin", "dst.bin"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    n = len(data)
    assert r.text == (
        f"getcwd: ok\naccess src: ok\nsize: {n}\ncopied: {n}\nseek end: {n}\n"
        "seek cur: ok\npread: ok\npwrite: ok\nverify: ok\ntmp unlink: ok\n"
        f"checksum: {fnv1a32(data):08x}\n"
    )
    assert (tmp_path / "dst.bin").read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst.bin", "src.bin"]

    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    r = run_native(exe, [str(empty), str(tmp_path / "empty.out")])
    assert r.returncode == 0 and "size: 0\n" in r.text
    assert f"checksum: {fnv1a32(b''):08x}\n" in r.text

    r = run_native(exe, ["does-not-exist", "x"], cwd=tmp_path)
    assert r.returncode == 1 and b"access src" in r.stderr
    assert run_native(exe, ["only-one"]).returncode == 2


@pytest.mark.parametrize("toolchain", BASE)
def test_sortalloc(build_program, run_native, toolchain):
    exe = build_program("sortalloc", toolchain)
    r = run_native(exe)
    assert r.returncode == 0, r.stderr
    assert r.text == sortalloc_model(3000)
    assert run_native(exe, ["57"]).text == sortalloc_model(57)


@pytest.mark.parametrize("toolchain", BASE)
def test_fpsimd(build_program, run_native, toolchain):
    exe = build_program("fpsimd", toolchain)
    r = run_native(exe)
    assert r.returncode == 0, r.stderr
    lines = dict(line.split(" = ", 1) for line in r.text.splitlines())
    assert lines["sqrt(2)   "] == f"{math.sqrt(2):.6f}"
    assert lines["sin(1)    "] == f"{math.sin(1):.6f}"
    assert lines["exp(3)    "] == f"{math.exp(3):.6f}"
    assert lines["atan2     "] == f"{math.atan2(1, -7.25):.6f}"
    assert lines["sum sqrt  "] == f"{math.fsum(math.sqrt(i) for i in range(1, 1001)):.6f}"
    assert lines["simd d    "] == f"{math.sqrt(2 * 10 + 1):.6f} 1.500000"
    assert lines["simd s    "] == "3 -8 18928 22144 -30536 -17536 63 -80"
    assert lines["simd cvt  "] == "-7 12345"
    expected_path = {"x86_64": "sse2", "aarch64": "neon"}[progs.TOOLCHAINS[toolchain].arch]
    assert r.stderr == f"simd path: {expected_path}\n".encode()


READSTDIN_INPUTS = {
    "simple": b"hello world\nfoo  bar\tbaz\n",
    "no-final-newline": b"first line\nsecond line, no newline",
    "empty": b"",
    "long-lines": b"a first line that is much longer than sixteen bytes\n"
    + b"x" * 100
    + b"\n\n  \t leading space\r\nmixed Case 123 !@#\n",
    "big": b"".join(b"line %d of the big input: lorem ipsum\n" % i for i in range(3000)),
}


@pytest.mark.parametrize("mode", ["read", "fgets"])
@pytest.mark.parametrize("case", sorted(READSTDIN_INPUTS))
@pytest.mark.parametrize("toolchain", BASE)
def test_readstdin(build_program, run_native, toolchain, case, mode):
    exe = build_program("readstdin", toolchain)
    data = READSTDIN_INPUTS[case]
    r = run_native(exe, ["--fgets"] if mode == "fgets" else [], stdin=data)
    assert r.returncode == 0, r.stderr
    assert r.stdout == readstdin_model(data)


def test_readstdin_counts_literal(build_program, run_native):
    r = run_native(build_program("readstdin"), stdin=b"one two\nthree\n\nfour five six")
    assert r.stdout.splitlines()[-1] == b"lines=3 words=6 bytes=28"


SEGV_MODES = {
    "null": -signal.SIGSEGV,
    "read": -signal.SIGSEGV,
    "unmapped": -signal.SIGSEGV,
    "ill": -signal.SIGILL,
}


@pytest.mark.parametrize("mode", [*SEGV_MODES, "default"])
@pytest.mark.parametrize("toolchain", [*BASE, "gcc-pie"])
def test_segv(build_program, run_native, tmp_path, toolchain, mode):
    exe = build_program("segv", toolchain)
    r = run_native(exe, [] if mode == "default" else [mode], cwd=tmp_path)
    shown = "null" if mode == "default" else mode
    expected = SEGV_MODES[shown]
    assert r.returncode == expected, r.describe()
    assert r.status == 128 - expected  # 139 (SIGSEGV) or 132 (SIGILL)
    assert r.text == f"segv: mode={shown}\nsegv: about to fault\n"
    assert list(tmp_path.iterdir()) == [], "no core files expected"


@pytest.mark.parametrize("toolchain", BASE)
def test_segv_control_modes(build_program, run_native, toolchain):
    exe = build_program("segv", toolchain)
    r = run_native(exe, ["exit"])
    assert (r.returncode, r.text) == (0, "segv: mode=exit\nsegv: no fault\n")
    r = run_native(exe, ["bogus"])
    assert r.returncode == 2 and b"usage" in r.stderr


@pytest.mark.parametrize("toolchain", [*BASE, "gcc-pie", "aarch64-pie"])
def test_corrupt(build_program, run_native, toolchain):
    exe = build_program("corrupt", toolchain)
    r = run_native(exe)
    assert r.returncode == 1
    assert r.text == (
        "transactions: 40\nlarge: 17\nbalance: 777\nexpected: 5968\nledger CORRUPTED\n"
    )
    r = run_native(exe, ["--fixed"])
    assert r.returncode == 0
    assert r.text == "transactions: 40\nlarge: 17\nbalance: 5968\nexpected: 5968\nledger ok\n"


@pytest.mark.parametrize("toolchain", BASE)
def test_loop(build_program, run_native, toolchain):
    exe = build_program("loop", toolchain)
    for iters in (0, 1, 1000):
        r = run_native(exe, [str(iters)])
        assert (r.returncode, r.text) == (0, loop_model(iters))
    r = run_native(exe)  # default: 5e6 iterations (~1e8 instructions)
    assert r.returncode == 0
    assert r.text.startswith("iterations: 5000000\nchecksum: ")


@pytest.mark.parametrize("toolchain", BASE)
def test_timeclock(build_program, run_native, toolchain):
    exe = build_program("timeclock", toolchain)
    r = run_native(exe)
    assert r.returncode == 0, (r.text, r.stderr)
    assert r.text == (
        "clock monotonic: ok\nnanosleep: ok\nclock realtime: ok\ntime: ok\n"
        "gettimeofday: ok\ngetrandom: 16 bytes\ngetpid: ok\ngetuid: ok\n"
        "uname sysname: Linux\nuname machine: ok\nuname release: ok\n"
    )


# ------------------------------------------------------------------ cross-toolchain identity

CROSS_CASES = {
    "fpsimd": ([], b""),
    "sortalloc": ([], b""),
    "corrupt": ([], b""),
    "loop": (["20000"], b""),
    "timeclock": ([], b""),
    "readstdin": ([], READSTDIN_INPUTS["long-lines"]),
    "hello": (["a", "b"], b""),
}


@pytest.mark.parametrize("program", sorted(CROSS_CASES))
def test_outputs_identical_across_toolchains(build_program, run_native, program):
    args, stdin = CROSS_CASES[program]
    results = {}
    for tc in CROSS:
        if program not in ("fpsimd", "corrupt", "hello") and tc.endswith("-pie"):
            continue
        r = run_native(build_program(program, tc), args, stdin=stdin, argv0=program)
        results[tc] = (r.returncode, r.stdout)
    reference = results["gcc"]
    for tc, res in results.items():
        assert res == reference, f"{program}: {tc} differs from gcc"


# ------------------------------------------------------------------ progs.py machinery


def test_shell_status_and_result():
    assert progs.shell_status(0) == 0
    assert progs.shell_status(3) == 3
    assert progs.shell_status(-11) == 139
    assert progs.shell_status(-4) == 132
    r = progs.Result(b"x", b"", -11)
    assert (r.signal, r.status) == (11, 139)
    assert "SIGSEGV" in r.describe()
    assert progs.Result(b"", b"", 3).signal is None


def test_elf_machine_and_qemu(build_program):
    assert progs.qemu_for(build_program("hello", "aarch64")) in (None, "qemu-aarch64")
    with pytest.raises(ValueError):
        progs.elf_machine(progs.PROGRAMS_DIR / "hello.c")


def test_build_is_cached(build_program):
    exe = build_program("hello")
    mtime = exe.stat().st_mtime_ns
    assert progs.build("hello", "gcc") == exe
    assert progs.build("hello", pie=True) == progs.build("hello", "gcc-pie")
    assert exe.stat().st_mtime_ns == mtime


def test_concurrent_builds_in_env_dir(monkeypatch, tmp_path, require_tool):
    require_tool("gcc")
    monkeypatch.setenv("SYXDBG_TEST_BUILD_DIR", str(tmp_path / "cache"))
    assert progs.build_dir() == tmp_path / "cache"
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        paths = list(pool.map(lambda _: progs.build("hello", "gcc"), range(4)))
    assert len(set(paths)) == 1 and paths[0].parent == tmp_path / "cache"
    assert progs.native_run(paths[0]).returncode == 3
    leftovers = [p.name for p in (tmp_path / "cache").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_build_errors():
    bogus = progs.Toolchain("bogus", "no-such-compiler-syxdbg", "x86_64", ("-static",))
    with pytest.raises(progs.ToolchainMissing, match="no-such-compiler-syxdbg"):
        progs.build("hello", bogus)
    with pytest.raises(ValueError, match="static-PIE"):
        progs.build("hello", "musl", pie=True)
    with pytest.raises(ValueError, match="unknown toolchain"):
        progs.build("hello", "tcc")
    with pytest.raises(FileNotFoundError):
        progs.build("no-such-program")


def test_missing_tool_fails_under_ci_and_skips_otherwise(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        support.tool_missing("gcc missing")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        support.tool_missing("gcc missing")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        support.tool_missing("gcc missing")
