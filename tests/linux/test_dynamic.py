"""Dynamically linked programs (issue 15): the suite's own programs built the default way
(``gcc prog.c``: a dynamic PIE; ``aarch64-linux-gnu-gcc prog.c`` against
/usr/aarch64-linux-gnu), real programs of this machine, what the loader hands the
interpreter (auxiliary vector, bases, sysroot) and what the guest sees of it in /proc.

The oracle is the native run (``qemu-aarch64 -L /usr/aarch64-linux-gnu`` for aarch64).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import progs
import pytest
from test_linux_programs import CASES, SRC_DATA, _case_id, _fresh_dir, _same

import syxdbg
from syxdbg.errors import LoadError
from syxdbg.loader.elf import AT_BASE, AT_ENTRY, AT_PHDR, default_sysroot, interp_base
from syxdbg.machine.events import Exited

DYN_TOOLCHAINS = ("gcc-dyn", "aarch64-dyn")
AT_SYSINFO_EHDR = 33
HERE = Path(__file__).resolve().parent


#: The static suite's cases, less the long compute-only run (the loader is not what it tests).
DYN_CASES = [c for c in CASES if c != ("sortalloc", ("40000",), b"")]


@pytest.mark.parametrize("toolchain", DYN_TOOLCHAINS)
@pytest.mark.parametrize("case", DYN_CASES, ids=_case_id)
def test_dynamic_program_matches_native(case: tuple[str, tuple[str, ...], bytes],
                                        toolchain: str, build_program: Callable[..., Path],
                                        run_native: Callable, emu_run: Callable,
                                        tmp_path: Path) -> None:
    prog, args, stdin = case
    exe = build_program(prog, toolchain)
    env = {**progs.DEFAULT_ENV, "SYXDBG_TEST_VAR": "value with spaces"}
    argv0 = f"./{prog}"
    native = run_native(exe, list(args), stdin=stdin, env=env, argv0=argv0,
                        cwd=_fresh_dir(tmp_path, "native"))
    emu = emu_run(exe, args, stdin=stdin, env=env, argv0=argv0,
                  cwd=_fresh_dir(tmp_path, "emu"))
    _same(native, emu, f"{prog} {' '.join(args)} ({toolchain})")


MUSL_CASES = [c for c in CASES if c[0] in ("hello", "filecopy", "readstdin", "fpsimd")]


@pytest.mark.parametrize("case", MUSL_CASES, ids=_case_id)
def test_dynamic_musl_program_matches_native(case: tuple[str, tuple[str, ...], bytes],
                                             build_program: Callable[..., Path],
                                             run_native: Callable, emu_run: Callable,
                                             tmp_path: Path) -> None:
    """musl's loader (ld-musl, which is also its libc) the same way."""
    prog, args, stdin = case
    exe = build_program(prog, "musl-dyn")
    argv0 = f"./{prog}"
    native = run_native(exe, list(args), stdin=stdin, argv0=argv0,
                        cwd=_fresh_dir(tmp_path, "native"))
    emu = emu_run(exe, args, stdin=stdin, argv0=argv0, cwd=_fresh_dir(tmp_path, "emu"))
    _same(native, emu, f"{prog} {' '.join(args)} (musl-dyn)")


@pytest.fixture(scope="module")
def dynprobe(tmp_path_factory: pytest.TempPathFactory,
             require_tool: Callable[[str], str]) -> Callable[[str], Path]:
    out = tmp_path_factory.mktemp("dynprobe")
    built: dict[str, Path] = {}

    def build(toolchain: str) -> Path:
        if toolchain not in built:
            tc = progs.toolchain_for(toolchain)
            require_tool(tc.cc)
            exe = out / f"dynprobe-{toolchain}"
            subprocess.run(tc.command(HERE / "programs" / "dynprobe.c", exe), check=True)
            built[toolchain] = exe
        return built[toolchain]

    return build


@pytest.mark.parametrize("toolchain", DYN_TOOLCHAINS)
def test_what_the_guest_sees_of_its_loading(toolchain: str, dynprobe: Callable[[str], Path],
                                            run_native: Callable, emu_run: Callable,
                                            tmp_path: Path) -> None:
    """auxv (AT_ENTRY, AT_PHDR, AT_BASE), /proc/self/{maps,auxv,exe,fd/N}, file mmaps
    (private copies, read-only shared, offsets, zeros past EOF, MAP_FIXED over a
    reservation, mprotect): the probe prints facts that hold wherever things are."""
    exe = dynprobe(toolchain)
    native = run_native(exe, [], cwd=_fresh_dir(tmp_path, "native"))
    emu = emu_run(exe, [], cwd=_fresh_dir(tmp_path, "emu"))
    assert native.returncode == 0, native.stderr
    assert b": 0" not in native.stdout.replace(b"mprotect of a file mapping: 0", b"")
    assert emu.stdout == native.stdout and emu.status == 0, emu.stderr.decode()
    assert emu.stderr == b""


@pytest.mark.parametrize("toolchain", DYN_TOOLCHAINS)
def test_loader_layout(toolchain: str, build_program: Callable[..., Path]) -> None:
    """The program at arch.pie_base, its interpreter at the documented base, the auxv as
    binfmt_elf builds it (no vDSO), the first instruction the interpreter's."""
    exe = build_program("hello", toolchain)
    with syxdbg.open(str(exe), [], env=dict(progs.DEFAULT_ENV)) as s:
        arch = s.machine.arch
        image = s.image
        assert image.is_pie and image.load_bias == arch.pie_base
        assert image.interp and image.interp_base == interp_base(arch) == arch.mmap_base
        auxv = image.auxv
        assert auxv[AT_BASE] == image.interp_base
        assert auxv[AT_ENTRY] == image.entry == image.symbols["_start"]
        assert image.segments[0].start <= auxv[AT_PHDR] < image.segments[-1].end
        assert AT_SYSINFO_EHDR not in auxv
        assert image.interp_segments[0].start <= s.regs.pc < image.interp_segments[-1].end
        assert image.sysroot == default_sysroot(arch)
        event = s.run()
        assert isinstance(event, Exited) and event.status == 3


def test_sysroot_rules(build_program: Callable[..., Path], tmp_path: Path) -> None:
    """No interpreter in the sysroot: one line naming --sysroot. A static program ignores
    the default sysroot (its paths are the host's, as before)."""
    dyn = build_program("hello", "aarch64-dyn")
    with pytest.raises(LoadError, match=r"interpreter /lib/ld-linux-aarch64.so.1 not found in "
                       r"sysroot .*--sysroot"):
        syxdbg.open(str(dyn), [], sysroot=str(tmp_path))
    static = build_program("hello", "aarch64")
    with syxdbg.open(str(static), []) as s:
        assert s.image.sysroot == "" and not s.image.interp


def test_no_default_sysroot_is_one_line_naming_the_option(
        build_program: Callable[..., Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from syxdbg.loader import elf

    dyn = build_program("hello", "aarch64-dyn")
    monkeypatch.setitem(elf.CROSS_SYSROOTS, "aarch64", str(tmp_path / "none"))
    with pytest.raises(LoadError, match=r"dynamically linked aarch64 program: no aarch64 "
                       r"libraries found \(install them or give --sysroot DIR\)"):
        syxdbg.open(str(dyn), [])


@pytest.mark.parametrize("command", ["run", "record", "serve", "gdb", "shell"])
def test_every_program_command_takes_sysroot(command: str) -> None:
    p = subprocess.run([sys.executable, "-m", "syxdbg", command, "--help"],
                       capture_output=True, text=True, timeout=60, check=True)
    assert "--sysroot DIR" in p.stdout


def test_explicit_sysroot_resolves_absolute_symlinks_inside_it(
        build_program: Callable[..., Path], emu_run: Callable, tmp_path: Path) -> None:
    """A sysroot made of a few files (the interpreter behind an absolute symlink, libc):
    the loader and the guest's library look-ups stay inside it."""
    exe = build_program("hello", "aarch64-dyn")
    root = tmp_path / "root"
    (root / "lib" / "aarch64-linux-gnu").mkdir(parents=True)
    src = Path("/usr/aarch64-linux-gnu/lib")
    shutil.copy(src / "ld-linux-aarch64.so.1", root / "lib" / "aarch64-linux-gnu" / "ld.so")
    os.symlink("/lib/aarch64-linux-gnu/ld.so", root / "lib" / "ld-linux-aarch64.so.1")
    shutil.copy(src / "libc.so.6", root / "lib" / "aarch64-linux-gnu" / "libc.so.6")
    cmd = [sys.executable, "-m", "syxdbg", "run", "--clear-env", "--sysroot", str(root),
           str(exe), "x"]
    p = subprocess.run(cmd, capture_output=True, timeout=300, check=False)
    assert p.returncode == 3, p.stderr.decode()
    assert b"argc=2" in p.stdout and p.stderr == b"hello: to stderr\n"


# -- real programs of this machine -------------------------------------------------------
REAL: list[tuple[str, list[str], bytes]] = [
    ("ls", ["-la", "tree"], b""),
    ("sort", ["-r", "words.txt"], b""),
    ("sha256sum", ["words.txt", "tree/b.bin"], b""),
    ("sed", ["-e", "s/o/0/g", "-e", "2d"], b"one\ntwo\nthree\nfour\n"),
    ("awk", ["-F:", "{ n += NF; print $1 } END { print n }"], b"a:b\nc:d:e\n\nlast\n"),
    ("python3", ["-c", "print(sum(range(10**6)))"], b""),
]


def _scene(base: Path, name: str) -> Path:
    d = base / name
    (d / "tree" / "sub").mkdir(parents=True)
    (d / "tree" / "a.txt").write_text("alpha\n")
    (d / "tree" / "b.bin").write_bytes(bytes(range(256)) * 40)
    os.symlink("a.txt", d / "tree" / "link")
    (d / "words.txt").write_text("pear\napple\nfig\nbanana\n")
    for p in [d, d / "tree", *(d / "tree").iterdir()]:
        os.utime(p, (1_700_000_000, 1_700_000_000), follow_symlinks=False)
    return d


def _machine_program(name: str) -> str:
    """The machine's own ``name``: /usr/bin's (the distribution's build) when it is an ELF
    file, else the first ELF file PATH leads to (a pyenv shim is a shell script)."""
    for candidate in (f"/usr/bin/{name}", f"/bin/{name}", shutil.which(name)):
        if candidate and os.path.isfile(candidate):
            real = os.path.realpath(candidate)
            with open(real, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    return real
    raise AssertionError(f"{name} is not installed as an ELF program")


@pytest.mark.parametrize("prog,args,stdin", REAL, ids=[r[0] for r in REAL])
def test_real_program_matches_native(prog: str, args: list[str], stdin: bytes,
                                     run_native: Callable, emu_run: Callable,
                                     tmp_path: Path) -> None:
    exe = _machine_program(prog)
    env = {**progs.DEFAULT_ENV, "TZ": "UTC"}
    native = run_native(exe, args, stdin=stdin, env=env, argv0=prog,
                        cwd=_scene(tmp_path, "native"))
    emu = emu_run(exe, args, stdin=stdin, env=env, argv0=prog, cwd=_scene(tmp_path, "emu"))
    assert native.returncode == 0, native.stderr
    assert emu.stdout == native.stdout, emu.stderr.decode()
    assert emu.status == 0, emu.stderr.decode()


# -- system calls the loaders and coreutils need ---------------------------------------
@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_statfs_xattr_fadvise_getcpu(toolchain: str, syscaller: Callable, tmp_path: Path
                                     ) -> None:
    import struct

    sc = syscaller(toolchain)
    f = tmp_path / "f.txt"
    f.write_text("x")
    path = sc.cstr(str(f))
    assert sc("statfs", path, sc.at(0x100)) == 0
    f_type, f_bsize = struct.unpack("<qq", sc.read(0x100, 16))
    native = os.statvfs(f)
    assert f_bsize == native.f_bsize and f_type != 0
    fd = sc("openat", -100, path, 0, 0)
    assert fd >= 0
    assert sc("fstatfs", fd, sc.at(0x200)) == 0 and sc.read(0x200, 16) == sc.read(0x100, 16)
    assert sc("fadvise64", fd, 0, 0, 2) == 0  # POSIX_FADV_SEQUENTIAL
    assert sc("fadvise64", fd, 0, 0, 99) == -22 and sc("fadvise64", 999, 0, 0, 0) == -9
    try:
        os.setxattr(f, "user.syxdbg", b"value")
        has_user_xattrs = True
    except OSError:
        has_user_xattrs = False
    name = sc.cstr("user.syxdbg", 0x300)
    if has_user_xattrs:
        assert sc("getxattr", path, name, 0, 0) == 5
        assert sc("getxattr", path, name, sc.at(0x400), 2) == -34  # ERANGE
        assert sc("lgetxattr", path, name, sc.at(0x400), 64) == 5
        assert sc.read(0x400, 5) == b"value"
        assert sc("fgetxattr", fd, name, sc.at(0x400), 64) == 5
        n = sc("listxattr", path, sc.at(0x500), 256)
        assert b"user.syxdbg\0" in sc.read(0x500, n)
    else:
        assert sc("getxattr", path, name, sc.at(0x400), 64) in (-61, -95)  # ENODATA/ENOTSUP
    assert sc("getxattr", sc.cstr("/proc/self/maps", 0x600), name, 0, 0) == -61
    assert sc("getcpu", sc.at(0x700), sc.at(0x704), 0) == 0
    assert sc.read(0x700, 8) == bytes(8)


# -- recordings ----------------------------------------------------------------------------
def _copy_sysroot(dst: Path, src: str, files: dict[str, str]) -> Path:
    """A throw-away sysroot: ``files`` maps guest paths to files under ``src``, copied."""
    for guest, real in files.items():
        target = dst / guest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.join(src, real.lstrip("/")), target)
    return dst


SYSROOT_FILES = {
    "gcc-dyn": ("/", {"/lib64/ld-linux-x86-64.so.2": "/lib64/ld-linux-x86-64.so.2",
                      "/lib/x86_64-linux-gnu/libc.so.6": "/lib/x86_64-linux-gnu/libc.so.6",
                      "/lib/x86_64-linux-gnu/libm.so.6": "/lib/x86_64-linux-gnu/libm.so.6"}),
    "aarch64-dyn": ("/usr/aarch64-linux-gnu",
                    {"/lib/ld-linux-aarch64.so.1": "/lib/ld-linux-aarch64.so.1",
                     "/lib/libc.so.6": "/lib/libc.so.6", "/lib/libm.so.6": "/lib/libm.so.6"}),
}


def _syxdbg(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "syxdbg", *args], capture_output=True,
                          timeout=600, check=False, cwd=cwd, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("toolchain", DYN_TOOLCHAINS)
def test_recording_replays_without_the_sysroot(toolchain: str,
                                               build_program: Callable[..., Path],
                                               tmp_path: Path) -> None:
    """Record with a sysroot that is a temporary copy of the needed files, delete it, replay:
    the interpreter comes from the recording (INTP chunk), the libraries the guest opened
    and mapped from the event log; --check verifies everything."""
    from syxdbg.recording import Recording

    exe = build_program("filecopy", toolchain)
    src, files = SYSROOT_FILES[toolchain]
    root = _copy_sysroot(tmp_path / "root", src, files)
    work = _fresh_dir(tmp_path, "work")
    rec = tmp_path / "run.syxrec"
    p = _syxdbg("record", "-q", "--clear-env", "--sysroot", str(root), "-o", str(rec),
                str(exe), "src.bin", "dst.bin", cwd=work)
    assert p.returncode == 0, p.stderr.decode()
    assert (work / "dst.bin").read_bytes() == SRC_DATA
    recording = Recording.open(str(rec))
    interp = next(g for g in files if "ld-linux" in g)
    assert recording.interp_name == interp
    assert recording.stored_interp is not None
    assert recording.stored_interp.read() == (root / interp.lstrip("/")).read_bytes()
    shutil.rmtree(root)
    shutil.rmtree(work)
    p = _syxdbg("replay", "--check", str(rec), cwd=tmp_path)
    assert p.returncode == 0, p.stderr.decode()
    assert b"the program exited with status 0, as recorded" in p.stdout
    assert f"the interpreter {interp} matched its digest".encode() in p.stdout
    with syxdbg.replay(str(rec)) as s:
        assert s.image.interp == interp
        assert not s.image.interp_path.startswith(str(root))
        s.run()  # to the end of the recording
        assert s.position == recording.end_position


def test_static_recordings_have_no_interpreter(build_program: Callable[..., Path],
                                               tmp_path: Path) -> None:
    from syxdbg.recording import Recording

    rec = tmp_path / "static.syxrec"
    p = _syxdbg("record", "-q", "-o", str(rec), str(build_program("hello", "gcc")))
    assert p.returncode == 3, p.stderr.decode()
    recording = Recording.open(str(rec))
    assert recording.stored_interp is None and "interp" not in recording.meta
    assert [t for t, _ in _chunks(rec)][:3] == [b"META", b"PROG", b"STAT"]


def _chunks(path: Path) -> list[tuple[bytes, bytes]]:
    from support import split_chunks

    return split_chunks(path.read_bytes())


def test_forged_interpreter_is_one_line(build_program: Callable[..., Path],
                                        tmp_path: Path) -> None:
    """A recording whose INTP chunk is missing, altered, or named outside the sysroot (the
    file digest made valid, as a forger would) fails with one line, never a traceback."""
    import json

    from support import join_chunks

    from syxdbg.recording._format import _HEADER

    rec = tmp_path / "dyn.syxrec"
    p = _syxdbg("record", "-q", "-o", str(rec), str(build_program("hello", "gcc-dyn")))
    assert p.returncode == 3, p.stderr.decode()
    header = rec.read_bytes()[:_HEADER.size]
    chunks = _chunks(rec)
    assert [t for t, _ in chunks][:3] == [b"META", b"PROG", b"INTP"]

    def forged(name: str, new: list[tuple[bytes, bytes]]) -> Path:
        out = tmp_path / f"{name}.syxrec"
        out.write_bytes(join_chunks(header, new))
        return out

    def meta_with(**interp: object) -> bytes:
        meta = json.loads(chunks[0][1])
        meta["interp"].update(interp)
        return json.dumps(meta).encode()

    intp = bytearray(chunks[2][1])
    intp[-40] ^= 0xFF
    cases = {
        "missing": ([chunks[0], chunks[1], *chunks[3:]], "INTP) is missing"),
        "altered": ([*chunks[:2], (b"INTP", bytes(intp)), *chunks[3:]], "interpreter"),
        "escape": ([(b"META", meta_with(name="/../../etc/x")), *chunks[1:]],
                   "malformed description (META 'interp')"),
        "nameless": ([(b"META", meta_with(name=5)), *chunks[1:]], "META 'interp'"),
    }
    for name, (new, message) in cases.items():
        p = _syxdbg("replay", "--check", str(forged(name, new)))
        err = p.stderr.decode()
        assert p.returncode != 0 and "Traceback" not in err, (name, err)
        assert message in err and len(err.strip().splitlines()) == 1, (name, err)


@pytest.mark.parametrize("toolchain", DYN_TOOLCHAINS)
def test_time_travel_through_the_dynamic_loader(toolchain: str,
                                                build_program: Callable[..., Path]) -> None:
    """Back into ld.so's work (file mmaps, relocations) and forward again: the same states;
    last-write finds the interpreter's store into the GOT slot of a libc function."""
    exe = build_program("hello", toolchain)
    with syxdbg.open(str(exe), ["x"], env=dict(progs.DEFAULT_ENV)) as s:
        end = s.run()
        assert isinstance(end, Exited) and end.status == 3
        final = s.position
        image = s.image
        libc_regions = [r for r in s.mem.regions() if r.name.endswith("libc.so.6")]
        assert libc_regions, [r.name for r in s.mem.regions()]
        mid = final // 3  # inside the loader's work
        s.seek(mid)
        pc_mid, regs_mid = s.regs.pc, s.regs["sp"]
        s.seek(final)
        assert s.position == final
        s.seek(mid)
        assert (s.regs.pc, s.regs["sp"]) == (pc_mid, regs_mid)
        # The GOT slot of printf is written by the interpreter's relocation code (Debian
        # links PIEs with -z now): last-write lands in ld.so, before main runs.
        slot = _got_slot(exe, "printf") + image.load_bias
        s.seek(final)
        hit = s.last_write(slot, 8)
        assert hit is not None and hit.position < final
        assert image.interp_segments[0].start <= hit.pc < image.interp_segments[-1].end
        s.seek(0)
        assert image.interp_segments[0].start <= s.regs.pc < image.interp_segments[-1].end


def _got_slot(exe: Path, name: str) -> int:
    """The link-time address of ``name``'s GOT slot (its JUMP_SLOT or GLOB_DAT relocation)."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.relocation import RelocationSection

    with open(exe, "rb") as f:
        elf = ELFFile(f)
        for sec in elf.iter_sections():
            if not isinstance(sec, RelocationSection):
                continue
            symtab = elf.get_section(sec["sh_link"])
            for rel in sec.iter_relocations():
                if rel["r_info_sym"] and symtab.get_symbol(rel["r_info_sym"]).name == name:
                    return int(rel["r_offset"])
    raise AssertionError(f"no relocation for {name} in {exe}")


def test_coreutils_that_change_files(emu_run: Callable, tmp_path: Path) -> None:
    """cp (copy_file_range), touch -d (utimensat), ln and ln -s (linkat, symlinkat),
    chmod (fchmodat) under syxdbg leave the files as the native commands do."""
    work = tmp_path / "w"
    work.mkdir()
    (work / "f.txt").write_bytes(b"payload\n" * 1000)
    steps = [("cp", ["f.txt", "g.txt"]), ("touch", ["-d", "@1700000000", "g.txt"]),
             ("ln", ["-s", "f.txt", "soft"]), ("ln", ["f.txt", "hard"]),
             ("chmod", ["640", "g.txt"]), ("touch", ["new.txt"])]
    for prog, args in steps:
        res = emu_run(_machine_program(prog), args, argv0=prog, cwd=work)
        assert res.status == 0 and res.stderr == b"", (prog, args, res.stderr)
    assert (work / "g.txt").read_bytes() == (work / "f.txt").read_bytes()
    st = (work / "g.txt").stat()
    assert int(st.st_mtime) == 1_700_000_000 and st.st_mode & 0o777 == 0o640
    assert os.readlink(work / "soft") == "f.txt"
    assert (work / "hard").stat().st_ino == (work / "f.txt").stat().st_ino
    assert (work / "new.txt").exists()


def test_library_bytes_are_recorded_once(build_program: Callable[..., Path],
                                         tmp_path: Path) -> None:
    """ld.so maps a library's whole span, then each segment over it: the segments that
    are the same file bytes at the same place come from memory, not from a second recorded
    read, so a recording holds each library about once."""
    from syxdbg.recording import Recording

    rec = tmp_path / "hello.syxrec"
    p = _syxdbg("record", "-q", "-o", str(rec), str(build_program("hello", "gcc-dyn")))
    assert p.returncode == 3, p.stderr.decode()
    read = sum(len(e.result) for e in Recording.open(str(rec)).events
               if e.call == "pread" and isinstance(e.result, bytes))
    files = os.path.getsize("/lib/x86_64-linux-gnu/libc.so.6")
    if os.path.exists("/etc/ld.so.cache"):
        files += os.path.getsize("/etc/ld.so.cache")
    assert files <= read < files * 1.1 + (256 << 10), (read, files)
