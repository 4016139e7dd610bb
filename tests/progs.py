"""Build the C test programs in tests/programs/ and run them natively (the oracle).

Importable without pytest::

    from progs import build, native_run          # with tests/ on sys.path
    exe = build("hello", "gcc")                  # cached static binary
    res = native_run(exe, ["a", "b"])            # Result(stdout, stderr, returncode)
    assert res.returncode == 3 and res.status == 3

Toolchains (see ``TOOLCHAINS``):

* ``gcc``      x86_64 glibc, ``gcc -static -O1 -g -Wall``
* ``gcc-pie``  x86_64 glibc static-PIE (ET_DYN), ``gcc -static-pie -fPIE -O1 -g -Wall``
* ``musl``     x86_64 musl, ``musl-gcc -static -O1 -g -Wall``
* ``aarch64``  aarch64 glibc, ``aarch64-linux-gnu-gcc -static -O1 -g -Wall``
* ``aarch64-pie`` aarch64 glibc static-PIE
* ``gcc-dyn``  x86_64 glibc, dynamically linked PIE (gcc's default), ``gcc -O1 -g -Wall``
* ``musl-dyn`` x86_64 musl, dynamically linked (``/lib/ld-musl-x86_64.so.1``)
* ``aarch64-dyn`` aarch64 glibc, dynamically linked against ``/usr/aarch64-linux-gnu``
  (the oracle runs it with ``qemu-aarch64 -L /usr/aarch64-linux-gnu``)
* ``arm``      32-bit ARM (ARMv7-A hard-float) glibc, ``arm-linux-gnueabihf-gcc -static -marm``
* ``thumb``    the same in Thumb-2 (``-mthumb``; glibc's own code stays as Debian built it)
* ``riscv64``  RV64GC glibc, ``riscv64-linux-gnu-gcc -static``
* ``arm-dyn``, ``riscv64-dyn`` the same, dynamically linked against ``/usr/<triplet>``

Every toolchain links with ``-lm``.

``build(..., pie=True)`` selects the static-PIE variant of a toolchain (``gcc`` ->
``gcc-pie``, ``aarch64`` -> ``aarch64-pie``; ``musl`` raises ValueError: Debian's
musl-gcc cannot link static-PIE).

Binaries are cached in ``$SYXDBG_TEST_BUILD_DIR`` or, by default, in
``<tempdir>/syxdbg-test-build-<uid>``; the file name contains a hash of the source, the
compiler command and the compiler version, so a rebuild happens only when one of them
changes. Concurrent builds (pytest-xdist, two terminals) are safe: each compiles to a
unique temporary name and publishes with ``os.replace``.

``native_run`` runs x86_64 binaries directly and the others under ``qemu-aarch64``,
``qemu-arm`` or ``qemu-riscv64``
(chosen from the ELF header's e_machine; any guest that does not match the host uses
``qemu-<arch>``).
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BASE_TOOLCHAINS",
    "DEFAULT_ENV",
    "PROGRAMS",
    "PROGRAMS_DIR",
    "TOOLCHAINS",
    "BuildError",
    "Result",
    "Toolchain",
    "ToolchainMissing",
    "build",
    "build_dir",
    "build_log",
    "elf_machine",
    "has_tool",
    "native_run",
    "qemu_for",
    "require_tool",
    "shell_status",
    "toolchain_for",
]

PROGRAMS_DIR = Path(__file__).resolve().parent / "programs"

#: Every program in tests/programs/ (without the .c suffix).
PROGRAMS: tuple[str, ...] = (
    "hello",
    "filecopy",
    "sortalloc",
    "fpsimd",
    "readstdin",
    "segv",
    "corrupt",
    "loop",
    "timeclock",
    "entropy",
    "spin",
    "racecount",
)

#: Environment used by ``native_run`` when ``env`` is None. Emulator tests that compare
#: against the oracle should pass the same environment to the emulated program.
DEFAULT_ENV: Mapping[str, str] = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}

# Hint printed when a tool is missing: Debian/Ubuntu package providing it.
_APT_PACKAGE = {
    "gcc": "gcc",
    "musl-gcc": "musl-tools",
    "aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu libc6-dev-arm64-cross",
    "arm-linux-gnueabihf-gcc": "gcc-arm-linux-gnueabihf libc6-dev-armhf-cross",
    "riscv64-linux-gnu-gcc": "gcc-riscv64-linux-gnu libc6-dev-riscv64-cross",
    "qemu-arm": "qemu-user",
    "qemu-riscv64": "qemu-user",
    "qemu-aarch64": "qemu-user",
    "qemu-x86_64": "qemu-user",
    "gdb": "gdb",
    "gdb-multiarch": "gdb-multiarch",
}


class ToolchainMissing(RuntimeError):
    """A compiler or emulator needed for a build/run is not installed."""

    def __init__(self, tool: str, purpose: str = "") -> None:
        self.tool = tool
        pkg = _APT_PACKAGE.get(tool)
        hint = f" (apt-get install {pkg})" if pkg else ""
        what = f" needed for {purpose}" if purpose else ""
        super().__init__(f"tool {tool!r}{what} not found on PATH{hint}")


class BuildError(RuntimeError):
    """The compiler failed; the message contains the command and its output."""


@dataclass(frozen=True)
class Toolchain:
    name: str
    cc: str
    #: Architecture of the produced binaries, as in ``elf_machine``.
    arch: str
    #: Compile+link flags (everything except sources, -o and libraries).
    cflags: tuple[str, ...]
    pie: bool = False
    libs: tuple[str, ...] = ("-lm",)
    #: Whether ``with_pie`` can produce a real static-PIE (Debian's musl-gcc cannot:
    #: it has no rcrt1.o and links against ld-musl instead).
    pie_supported: bool = True

    def command(self, source: Path | str, output: Path | str) -> list[str]:
        return [self.cc, *self.cflags, "-o", str(output), str(source), *self.libs]

    def available(self) -> bool:
        return has_tool(self.cc)

    def with_pie(self) -> Toolchain:
        if self.pie:
            return self
        if not self.pie_supported:
            raise ValueError(f"toolchain {self.name!r} cannot build static-PIE binaries")
        flags = tuple(f for f in self.cflags if f != "-static")
        return Toolchain(
            name=f"{self.name}-pie",
            cc=self.cc,
            arch=self.arch,
            cflags=("-static-pie", "-fPIE", *flags),
            pie=True,
            libs=self.libs,
        )


_COMMON = ("-O1", "-g", "-Wall")

TOOLCHAINS: dict[str, Toolchain] = {
    "gcc": Toolchain("gcc", "gcc", "x86_64", ("-static", *_COMMON)),
    "musl": Toolchain("musl", "musl-gcc", "x86_64", ("-static", *_COMMON), pie_supported=False),
    "aarch64": Toolchain("aarch64", "aarch64-linux-gnu-gcc", "aarch64", ("-static", *_COMMON)),
}
TOOLCHAINS["arm"] = Toolchain("arm", "arm-linux-gnueabihf-gcc", "arm",
                              ("-static", "-marm", *_COMMON))
TOOLCHAINS["thumb"] = Toolchain("thumb", "arm-linux-gnueabihf-gcc", "arm",
                                ("-static", "-mthumb", *_COMMON))
TOOLCHAINS["riscv64"] = Toolchain("riscv64", "riscv64-linux-gnu-gcc", "riscv64",
                                  ("-static", *_COMMON))
TOOLCHAINS["arm-dyn"] = Toolchain("arm-dyn", "arm-linux-gnueabihf-gcc", "arm", _COMMON,
                                  pie_supported=False)
TOOLCHAINS["riscv64-dyn"] = Toolchain("riscv64-dyn", "riscv64-linux-gnu-gcc", "riscv64",
                                      _COMMON, pie_supported=False)
TOOLCHAINS["gcc-pie"] = TOOLCHAINS["gcc"].with_pie()
TOOLCHAINS["aarch64-pie"] = TOOLCHAINS["aarch64"].with_pie()
TOOLCHAINS["gcc-dyn"] = Toolchain("gcc-dyn", "gcc", "x86_64", _COMMON, pie_supported=False)
TOOLCHAINS["musl-dyn"] = Toolchain("musl-dyn", "musl-gcc", "x86_64", _COMMON, pie_supported=False)
TOOLCHAINS["aarch64-dyn"] = Toolchain("aarch64-dyn", "aarch64-linux-gnu-gcc", "aarch64",
                                      _COMMON, pie_supported=False)

#: Where qemu-user finds a dynamic foreign program's libraries (``-L``), per architecture.
QEMU_SYSROOTS: Mapping[str, str] = {"aarch64": "/usr/aarch64-linux-gnu",
                                    "x86_64": "/usr/x86_64-linux-gnu",
                                    "arm": "/usr/arm-linux-gnueabihf",
                                    "riscv64": "/usr/riscv64-linux-gnu"}

#: The three basic (non-PIE) toolchains every program is built with.
BASE_TOOLCHAINS: tuple[str, ...] = ("gcc", "musl", "aarch64")


def toolchain_for(toolchain: str | Toolchain, *, pie: bool = False) -> Toolchain:
    """Resolve a toolchain name (``gcc``, ``gcc-pie``, ``musl``, ``aarch64``)."""
    if isinstance(toolchain, Toolchain):
        tc = toolchain
    else:
        try:
            tc = TOOLCHAINS[toolchain]
        except KeyError:
            raise ValueError(
                f"unknown toolchain {toolchain!r}; known: {', '.join(TOOLCHAINS)}"
            ) from None
    return tc.with_pie() if pie else tc


def has_tool(name: str) -> bool:
    """True if the executable ``name`` is on PATH."""
    return shutil.which(name) is not None


def require_tool(name: str, purpose: str = "") -> str:
    """Return the full path of ``name`` or raise ``ToolchainMissing``."""
    path = shutil.which(name)
    if path is None:
        raise ToolchainMissing(name, purpose)
    return path


def build_dir() -> Path:
    """The binary cache directory (created on first use, private to the user)."""
    env = os.environ.get("SYXDBG_TEST_BUILD_DIR")
    if env:
        d = Path(env)
        d.mkdir(parents=True, exist_ok=True)
        return d
    uid = os.getuid() if hasattr(os, "getuid") else os.getpid()
    d = Path(tempfile.gettempdir()) / f"syxdbg-test-build-{uid}"
    d.mkdir(mode=0o700, exist_ok=True)
    st = d.stat()
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise RuntimeError(f"{d} is owned by another user; set SYXDBG_TEST_BUILD_DIR")
    return d


@functools.cache
def _compiler_identity(cc: str) -> str:
    """Version + target of a compiler, part of the cache key (cached per process)."""
    path = require_tool(cc, "building test programs")
    out = []
    for flag in ("-dumpfullversion", "-dumpmachine"):
        try:
            p = subprocess.run(
                [path, flag], capture_output=True, text=True, timeout=60, check=False
            )
            out.append(p.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            out.append("?")
    st = os.stat(path)
    # musl-gcc is a wrapper script around gcc: its spec file also matters, but the
    # script path + mtime + gcc version is a good enough identity.
    return f"{path}|{st.st_size}|{int(st.st_mtime)}|{'|'.join(out)}"


def _source(program: str) -> Path:
    src = PROGRAMS_DIR / f"{program}.c"
    if not src.is_file():
        raise FileNotFoundError(
            f"no test program {program!r} ({src}); known: {', '.join(PROGRAMS)}"
        )
    return src


def build(
    program: str,
    toolchain: str | Toolchain = "gcc",
    *,
    pie: bool = False,
    out_dir: Path | str | None = None,
) -> Path:
    """Compile ``tests/programs/<program>.c`` with ``toolchain``; return the binary's path.

    Cached: returns immediately if an up-to-date binary exists. The compiler's stderr
    (warnings) is kept next to the binary; see ``build_log``.

    Raises ``ToolchainMissing`` if the compiler is not installed and ``BuildError`` if
    compilation fails.
    """
    tc = toolchain_for(toolchain, pie=pie)
    src = _source(program)
    ident = _compiler_identity(tc.cc)  # raises ToolchainMissing
    source_bytes = src.read_bytes()
    key_cmd = tc.command(f"{program}.c", "OUT")
    h = hashlib.sha256()
    for part in (source_bytes, "\0".join(key_cmd).encode(), ident.encode()):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    digest = h.hexdigest()[:16]

    d = Path(out_dir) if out_dir is not None else build_dir()
    d.mkdir(parents=True, exist_ok=True)
    exe = d / f"{program}-{tc.name}-{digest}"
    if exe.is_file() and os.access(exe, os.X_OK):
        return exe

    fd, tmp_name = tempfile.mkstemp(prefix=f".{exe.name}.", suffix=".tmp", dir=d)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # Compile in the source directory with a relative source name so DWARF paths
        # are stable (DW_AT_name "hello.c", DW_AT_comp_dir tests/programs).
        cmd = tc.command(src.name, tmp)
        cmd[0] = require_tool(tc.cc, "building test programs")
        try:
            p = subprocess.run(cmd, cwd=PROGRAMS_DIR, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired as e:
            raise BuildError(f"compiler timed out: {' '.join(cmd)}") from e
        if p.returncode != 0:
            raise BuildError(
                f"building {program} with {tc.name} failed (exit {p.returncode}):\n"
                f"  cd {PROGRAMS_DIR} && {' '.join(cmd)}\n{p.stdout}{p.stderr}"
            )
        _write_atomic(_log_path(exe), p.stderr)
        os.chmod(tmp, 0o755)
        os.replace(tmp, exe)
    finally:
        if tmp.exists():
            tmp.unlink()
    return exe


def _log_path(exe: Path) -> Path:
    return exe.with_name(exe.name + ".log")


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise


def build_log(binary: Path | str) -> str:
    """Compiler stderr (warnings) recorded when ``binary`` was built ('' if clean)."""
    p = _log_path(Path(binary))
    return p.read_text() if p.exists() else ""


# --------------------------------------------------------------------------- running

_EM_NAMES = {
    0x03: "i386",
    0x28: "arm",
    0x3E: "x86_64",
    0xB7: "aarch64",
    0xF3: "riscv64",
}

_HOST_ARCH = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "aarch64": "aarch64",
    "arm64": "aarch64",
}


def elf_machine(binary: Path | str) -> str:
    """Architecture of an ELF file from its header: 'x86_64', 'aarch64', ..."""
    with open(binary, "rb") as f:
        hdr = f.read(20)
    if len(hdr) < 20 or hdr[:4] != b"\x7fELF":
        raise ValueError(f"{binary}: not an ELF file")
    order = "little" if hdr[5] == 1 else "big"
    em = int.from_bytes(hdr[18:20], order)
    return _EM_NAMES.get(em, f"em{em}")


def is_dynamic(binary: Path | str) -> bool:
    """True if ``binary`` (a little-endian ELF) has a PT_INTERP program header."""
    import struct

    with open(binary, "rb") as f:
        head = f.read(64)
        if head[4] == 1:  # ELFCLASS32
            phoff, = struct.unpack_from("<I", head, 28)
            phentsize, phnum = struct.unpack_from("<HH", head, 42)
        else:
            phoff, = struct.unpack_from("<Q", head, 32)
            phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return any(struct.unpack_from("<I", table, i * phentsize)[0] == 3 for i in range(phnum))


def qemu_for(binary: Path | str) -> str | None:
    """Name of the qemu-user binary needed to run ``binary`` here, or None if native."""
    arch = elf_machine(binary)
    host = _HOST_ARCH.get(platform.machine().lower(), platform.machine().lower())
    if arch == host:
        return None
    return f"qemu-{arch}"


@dataclass(frozen=True)
class Result:
    stdout: bytes
    stderr: bytes
    #: As subprocess reports it: exit status, or -N when killed by signal N.
    returncode: int

    @property
    def status(self) -> int:
        """Shell-style status: the exit status, or 128+N when killed by signal N."""
        return shell_status(self.returncode)

    @property
    def signal(self) -> int | None:
        """The signal number that killed the process, or None if it exited."""
        return -self.returncode if self.returncode < 0 else None

    @property
    def text(self) -> str:
        """stdout decoded as UTF-8 (with replacement characters)."""
        return self.stdout.decode("utf-8", "replace")

    def describe(self) -> str:
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = f"signal {self.signal}"
            return f"killed by {name} (status {self.status})"
        return f"exited with status {self.returncode}"


def shell_status(returncode: int) -> int:
    """Convert a subprocess returncode (-N for signal N) to a shell status (128+N)."""
    return 128 - returncode if returncode < 0 else returncode


def native_run(
    binary: Path | str,
    args: Iterable[str | bytes] = (),
    *,
    stdin: bytes = b"",
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    timeout: float = 60,
    argv0: str | bytes | None = None,
) -> Result:
    """Run ``binary`` with ``args`` natively (or under qemu-user for a foreign arch).

    ``env`` is the program's complete environment; None means ``DEFAULT_ENV``.
    ``argv0`` overrides argv[0] (default: the binary path as given). Under qemu-user
    argv[0] is passed through with ``-0`` so the guest sees the same argv as natively.
    Core dumps are disabled in the child (RLIMIT_CORE=0).
    Raises ``subprocess.TimeoutExpired`` on timeout and ``ToolchainMissing`` if qemu
    is needed but not installed.
    """
    binary = Path(binary)
    argv: list[str | bytes] = [str(binary), *args]
    a0: str | bytes = argv0 if argv0 is not None else str(binary)
    qemu = qemu_for(binary)
    run_env = dict(DEFAULT_ENV if env is None else env)
    if qemu is not None:
        qemu_path = require_tool(qemu, f"running {elf_machine(binary)} binaries")
        a0s = a0.decode() if isinstance(a0, bytes) else a0
        root = QEMU_SYSROOTS.get(elf_machine(binary), "")
        sysroot = ["-L", root] if is_dynamic(binary) else []
        cmd: Sequence[str | bytes] = [qemu_path, *sysroot, "-0", a0s, *argv]
        executable = None
    else:
        cmd = [a0, *argv[1:]]
        executable = str(binary.resolve())  # never a PATH lookup
    p = subprocess.run(
        cmd,
        executable=executable,
        input=stdin,
        capture_output=True,
        env=run_env,
        cwd=cwd,
        timeout=timeout,
        check=False,
        preexec_fn=_no_core_dumps,
    )
    return Result(p.stdout, p.stderr, p.returncode)


def _no_core_dumps() -> None:
    """In the child: RLIMIT_CORE=0, so segv tests never leave core / qemu_*.core files."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, OSError, ValueError):
        pass
