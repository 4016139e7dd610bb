"""Shared libraries in gdb (issue 15): dynamically linked programs under real gdb.

The suite's programs built the default way (``gcc``: a dynamic PIE; ``aarch64-linux-gnu-gcc``
against /usr/aarch64-linux-gnu, served to gdb-multiarch with that sysroot). gdb learns the
libraries from the stub (``qXfer:auxv:read``, ``qXfer:exec-file:read``,
``qXfer:libraries-svr4:read``) and follows the link map through its own breakpoint on the
loader's ``_dl_debug_state`` (an ordinary ``Z0``), forward and in reverse.

Oracles: x86_64 backtraces and ``finish`` out of ``malloc`` are compared with native gdb on
the same binary (addresses of libraries and the stack masked: the layouts differ); heap
watchpoint values are the ones sortalloc.c writes (memset of ``s + n``, then free's tcache
link); the lazily bound GOT slot is read from the binary's relocations.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import progs
import pytest
from gdbmi import Gdb, Served, normalize, served
from rsp import RspClient
from support import in_ci

import syxdbg
from syxdbg.loader.elf import AT_BASE, AT_ENTRY, AT_PHDR

GDB = shutil.which("gdb")
GDB_MULTIARCH = shutil.which("gdb-multiarch")
needs_gdb = pytest.mark.skipif(GDB is None and not in_ci(), reason="gdb is not installed")

ARCHES = {"x86_64": ("gcc-dyn", GDB), "aarch64": ("aarch64-dyn", GDB_MULTIARCH)}
LIBC = {"x86_64": "/lib/x86_64-linux-gnu/libc.so.6", "aarch64": "/lib/libc.so.6"}

#: Lazy binding forced (Debian links with -z now only for hardened builds, but be explicit).
LAZY = {
    "x86_64": progs.Toolchain("gcc-dyn-lazy", "gcc", "x86_64",
                              ("-O1", "-g", "-Wall", "-Wl,-z,lazy"), pie_supported=False),
    "aarch64": progs.Toolchain("aarch64-dyn-lazy", "aarch64-linux-gnu-gcc", "aarch64",
                               ("-O1", "-g", "-Wall", "-Wl,-z,lazy"), pie_supported=False),
}


def _gdb_for(arch: str) -> str:
    gdb = ARCHES[arch][1]
    if gdb is None:
        if in_ci():
            raise AssertionError(f"no gdb for {arch}")
        pytest.skip(f"no gdb for {arch}")
    return gdb


@contextmanager
def syxdbg_gdb(exe: Path, arch: str, args: tuple[str, ...] = ()
               ) -> Iterator[tuple[Gdb, Served]]:
    """gdb connected to syxdbg, with the sysroot ``syxdbg gdb`` would give it."""
    with served(str(exe), args) as srv:
        g = Gdb(_gdb_for(arch), str(exe))
        try:
            g.cli(f"set sysroot {srv.session.image.sysroot or '/'}")
            g.cli(f"target remote 127.0.0.1:{srv.port}")
            yield g, srv
        finally:
            g.close()


def _native(exe: Path, commands: list[str]) -> list[str]:
    """Native gdb on the same binary: break main, run, then ``commands``."""
    assert GDB is not None
    g = Gdb(GDB, str(exe))
    try:
        g.cli("break main")
        g.cli("run")
        return [g.cli(c, check=False) for c in commands]
    finally:
        g.close()


_LIB_ADDR = re.compile(r"0x0*7ff[0-9a-f]{9}\b")


def _mask(text: str) -> str:
    """normalize() plus: a hit on a breakpoint with several locations names the location."""
    return re.sub(r"Breakpoint (\d+)\.\d+,", r"Breakpoint \1,", _LIB_ADDR.sub("ADDR",
                                                                              normalize(text)))


@pytest.fixture(scope="module")
def dyn(build_program: Callable[..., Path]) -> Callable[[str, str], Path]:
    return lambda name, arch: build_program(name, ARCHES[arch][0])


@pytest.fixture(scope="module")
def lazy(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Path]:
    out = tmp_path_factory.mktemp("lazy")

    def build(name: str, arch: str) -> Path:
        try:
            return progs.build(name, LAZY[arch], out_dir=out)
        except progs.ToolchainMissing as e:
            if in_ci():
                raise
            pytest.skip(str(e))

    return build


# -- packets ---------------------------------------------------------------------------------

def _xfer(c: RspClient, obj: str, annex: str = "") -> bytes:
    data = b""
    while True:
        chunk = c.ask(b"qXfer:%s:read:%s:%x,200" % (obj.encode(), annex.encode(), len(data)))
        assert chunk[:1] in (b"m", b"l"), chunk
        data += chunk[1:]
        if chunk[:1] == b"l":
            return data


@pytest.mark.parametrize("arch", ARCHES)
def test_packets_auxv_exec_file_and_link_map(dyn: Callable[[str, str], Path],
                                             arch: str) -> None:
    """The three objects are advertised and hold the loader's facts: the auxiliary vector
    (AT_ENTRY, AT_BASE, AT_PHDR), the program's path, and the link map, empty before the
    loader ran and listing libc (with its link_map chained from main-lm) at main."""
    exe = dyn("hello", arch)
    with served(str(exe)) as srv:
        image = srv.session.image
        c = RspClient(srv.port)
        sup = c.ask(b"qSupported:multiprocess+;swbreak+;hwbreak+;qRelocInsn+")
        for feature in (b"qXfer:auxv:read+", b"qXfer:exec-file:read+",
                        b"qXfer:libraries-svr4:read+"):
            assert feature in sup
        auxv = _xfer(c, "auxv")
        words = [int.from_bytes(auxv[i:i + 8], "little") for i in range(0, len(auxv), 8)]
        pairs = dict(zip(words[::2], words[1::2], strict=True))
        assert words[-2:] == [0, 0]
        assert pairs[AT_ENTRY] == image.entry and pairs[AT_BASE] == image.interp_base != 0
        assert pairs[AT_PHDR] == image.phdr
        assert _xfer(c, "exec-file", "1").decode() == os.path.abspath(exe)
        # At the first instruction (the loader's) there is no link map yet.
        assert _xfer(c, "libraries-svr4") == b'<library-list-svr4 version="1.0"/>'
        main = srv.session.symbols["main"]
        assert c.ask(b"Z0,%x,1" % main) == b"OK"
        assert c.ask(b"vCont;c").startswith(b"T05")
        doc = ET.fromstring(_xfer(c, "libraries-svr4"))
        names = [lib.get("name") for lib in doc]
        assert LIBC[arch] in names and image.interp in names
        main_lm = int(doc.get("main-lm", "0"), 16)
        mem = srv.session.mem
        # main-lm's l_next is the first library listed; each entry's l_prev is the previous.
        first = int.from_bytes(mem.read(main_lm + 24, 8), "little")
        assert int(doc[0].get("lm", ""), 16) == first
        libc = next(lib for lib in doc if lib.get("name") == LIBC[arch])
        l_addr = int(libc.get("l_addr", ""), 16)
        assert any(r.start <= l_addr < r.end or r.start == l_addr
                   for r in mem.regions()), hex(l_addr)
        # gdb's incremental form: start at an entry, prev = its predecessor.
        second = doc[1]
        tail = ET.fromstring(_xfer(c, "libraries-svr4",
                                   f"start={second.get('lm')[2:]};prev={doc[0].get('lm')[2:]}"))
        assert [lib.get("name") for lib in tail] == names[1:]
        assert tail.get("main-lm") is None
        # malformed annexes are E01 from the parser; unknown fields are ignored
        for bad in (b"qXfer:libraries-svr4:read:start=zz:0,100",
                    b"qXfer:libraries-svr4:read:start:0,100", b"qXfer:auxv:read:x:0,10",
                    b"qXfer:exec-file:read:pid:0,10"):
            assert c.ask(bad) == b"E01", bad
        assert ET.fromstring(_xfer(c, "libraries-svr4", "lmid=0;x=1")).get("main-lm")


@pytest.mark.parametrize("arch", ARCHES)
def test_link_map_without_dt_debug_uses_the_loaders_r_debug(
        dyn: Callable[[str, str], Path], arch: str) -> None:
    """A program without a DT_DEBUG entry (here: its tag overwritten at main, after the
    loader used it) still has its link map, through ld.so's exported ``_r_debug``."""
    from syxdbg.commands import solibs

    exe = dyn("hello", arch)
    with served(str(exe)) as srv:
        session = srv.session
        session.cont(until=session.symbols["main"])
        before = srv.target.libraries_svr4(None, None)
        assert LIBC[arch] in [lib.name for lib in before.libraries]
        dyn_addr = solibs.dynamic_section(session)
        assert dyn_addr is not None
        for i in range(64):
            if int.from_bytes(session.mem.read(dyn_addr + 16 * i, 8), "little") == \
                    solibs.DT_DEBUG:
                session.write_memory(dyn_addr + 16 * i, (0x60000000).to_bytes(8, "little"))
                break
        else:
            raise AssertionError("no DT_DEBUG")
        assert srv.target.libraries_svr4(None, None) == before


def test_static_program_has_no_libraries(build_program: Callable[..., Path]) -> None:
    exe = build_program("hello", "gcc")
    with served(str(exe)) as srv:
        c = RspClient(srv.port)
        c.ask(b"qSupported")
        assert _xfer(c, "libraries-svr4") == b'<library-list-svr4 version="1.0"/>'
        assert _xfer(c, "exec-file").decode() == os.path.abspath(exe)


# -- gdb ---------------------------------------------------------------------------------------

MALLOC_COMMANDS = ["break malloc", "continue", "bt", "finish"]


@needs_gdb
def test_break_malloc_bt_finish_match_native_gdb(dyn: Callable[[str, str], Path]) -> None:
    """``info sharedlibrary`` lists libc and ld.so; ``break malloc`` (set at main) stops in
    libc's malloc; ``bt`` goes through it to heap_churn and main; ``finish`` returns the
    pointer: the same text as native gdb, library addresses masked."""
    exe = dyn("sortalloc", "x86_64")
    with syxdbg_gdb(exe, "x86_64") as (g, _):
        g.cli("break main")
        g.cli("continue")
        libs = g.cli("info sharedlibrary")
        assert "/lib/x86_64-linux-gnu/libc.so.6" in libs and "ld-linux-x86-64.so.2" in libs
        assert re.search(r"Yes\s+/lib/x86_64-linux-gnu/libc.so.6", libs), libs
        ours = [g.cli(c) for c in MALLOC_COMMANDS]
    native = _native(exe, MALLOC_COMMANDS)
    assert [_mask(t) for t in ours] == [_mask(t) for t in native]
    bt = ours[2]
    assert "malloc" in bt.splitlines()[0] and " in main (" in bt
    assert "Value returned is" in ours[3] and "heap_churn" in ours[3]


def test_aarch64_break_malloc_bt_finish(dyn: Callable[[str, str], Path]) -> None:
    """The same through gdb-multiarch with the cross sysroot: libc's symbols come from
    /usr/aarch64-linux-gnu/lib/libc.so.6, the file the guest mapped."""
    exe = dyn("sortalloc", "aarch64")
    with syxdbg_gdb(exe, "aarch64") as (g, _):
        g.cli("break main")
        g.cli("continue")
        libs = g.cli("info sharedlibrary")
        assert re.search(r"Yes.*\s/usr/aarch64-linux-gnu/lib/libc.so.6", libs), libs
        assert "/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1" in libs
        g.cli("break malloc")
        hit = g.cli("continue")
        assert "in malloc () from /usr/aarch64-linux-gnu/lib/libc.so.6" in hit, hit
        bt = g.cli("bt").splitlines()
        assert " in malloc () from /usr/aarch64-linux-gnu/lib/libc.so.6" in bt[0]
        assert "heap_churn () at sortalloc.c:122" in bt[1]
        assert " in main (" in bt[2] and "sortalloc.c:158" in bt[2]
        out = g.cli("finish")
        assert "Run till exit from #0" in out and "heap_churn () at sortalloc.c:122" in out
        assert "heap_churn" in g.cli("bt 1")


@pytest.mark.parametrize("arch", ARCHES)
def test_reverse_continue_to_watchpoint_on_libc_heap_object(
        dyn: Callable[[str, str], Path], arch: str) -> None:
    """A watchpoint on the first byte of the first block heap_churn gets from malloc: its
    writes are libc's (memset of ``s + n``, then free's tcache link); reverse-continue from
    the second goes back to the first with the values swapped, then further back to none."""
    exe = dyn("sortalloc", arch)
    with syxdbg_gdb(exe, arch) as (g, _):
        g.cli("break main")
        g.cli("continue")
        g.cli("break malloc")
        g.cli("continue")
        g.cli("delete")
        ret = "$" if arch == "x86_64" else "$x0"  # no debug info for aarch64's libc
        g.cli("finish")
        g.cli(f"set $p = (unsigned char *) {ret}")
        block = int(g.cli("p/x $p").split("=")[1], 16)
        assert block > 0x1000
        g.cli("watch -l *$p")
        first = g.cli("continue")
        assert "Old value = 0 '\\000'\nNew value = 6 '\\006'" in first, first
        caller = g.cli("bt 2").splitlines()
        assert "heap_churn () at sortalloc.c:131" in caller[1], caller  # the memset
        assert "libc.so.6" in first or "memset" in first, first
        second = g.cli("continue")
        new = re.search(r"Old value = 6 '\\006'\nNew value = (\d+)", second)
        assert new is not None, second
        assert "free" in g.cli("bt 3") or "tcache_put" in second
        back = g.cli("reverse-continue")
        assert f"Old value = {new.group(1)}" in back and "New value = 6 '\\006'" in back, back
        back = g.cli("reverse-continue")
        assert "Old value = 6 '\\006'\nNew value = 0 '\\000'" in back, back
        assert "heap_churn () at sortalloc.c:131" in g.cli("bt 2")
        assert int(g.cli("p/x *$p").split("=")[1], 16) == 0


def _got(exe: Path, name: str) -> int:
    from elftools.elf.elffile import ELFFile
    from elftools.elf.relocation import RelocationSection

    with open(exe, "rb") as f:
        elf = ELFFile(f)
        for sec in elf.iter_sections():
            if isinstance(sec, RelocationSection) and sec.name in (".rela.plt", ".rel.plt"):
                symtab = elf.get_section(sec["sh_link"])
                for rel in sec.iter_relocations():
                    if symtab.get_symbol(rel["r_info_sym"]).name == name:
                        return int(rel["r_offset"])
    raise AssertionError(f"no PLT relocation for {name}")


@pytest.mark.parametrize("arch", ARCHES)
def test_reverse_step_back_into_lazily_bound_call(lazy: Callable[[str, str], Path],
                                                  arch: str) -> None:
    """hello.c's first printf goes through its PLT slot, resolved by the loader on this
    call (-z lazy). After ``next`` over it the GOT slot holds libc's printf; going back into
    the call (reverse-step on x86_64, where libc has line information; reverse-stepi on
    aarch64) lands in libc's printf with main below; reverse-finish returns to the call with
    the slot unresolved again; ``next`` resolves it again and prints nothing twice."""
    exe = lazy("hello", arch)
    out = subprocess.run(["readelf", "-d", str(exe)], capture_output=True, text=True).stdout
    assert "BIND_NOW" not in out and "NOW" not in re.sub(r"\bNOWRITE\b", "", out)
    with syxdbg_gdb(exe, arch) as (g, srv):
        slot = _got(exe, "printf") + srv.session.image.load_bias

        image = srv.session.image

        def slot_symbol() -> str:
            return g.cli(f"info symbol *(long *) {slot:#x}")

        def in_program(value: int) -> bool:  # the lazy slot points back into the PLT
            return image.load_bias <= value < image.brk

        g.cli("break hello.c:33")
        g.cli("continue")
        unresolved = int(g.cli(f"p/x *(long *) {slot:#x}").split("=")[1], 16)
        assert in_program(unresolved), hex(unresolved)
        assert "hello.c:34" in g.cli("next") or "34\t" in g.cli("frame")
        assert re.match(r"printf in section \.text of .*libc\.so\.6", slot_symbol()), \
            slot_symbol()
        if arch == "x86_64":
            g.cli("reverse-step")
        else:
            # No line information in the cross libc: reverse-step would step back over
            # printf. Go back before the call, stepi to its PLT stub, finish (through the
            # loader's resolver and printf), then reverse-stepi into printf's return.
            g.cli("reverse-next")
            while "printf@plt" not in g.cli("bt 1"):
                g.cli("stepi")
            g.cli("finish")
            g.cli("reverse-stepi")
        bt = g.cli("bt").splitlines()
        assert "printf" in bt[0] and "libc.so.6" in g.cli("info symbol $pc"), bt
        assert " in main (" in bt[1] and "hello.c:33" in bt[1], bt
        g.cli("reverse-finish")
        frame = g.cli("bt")
        assert frame.startswith("#0 ") and "main (" in frame and "hello.c:33" in frame, frame
        assert int(g.cli(f"p/x *(long *) {slot:#x}").split("=")[1], 16) == unresolved
        g.cli("next")
        assert "hello.c:34" in g.cli("frame")
        assert re.match(r"printf in section \.text of .*libc\.so\.6", slot_symbol())


@pytest.mark.parametrize("arch", ARCHES)
def test_link_map_changes_followed_forward_and_in_reverse(
        dyn: Callable[[str, str], Path], arch: str) -> None:
    """gdb puts its shlib-event breakpoint on the loader's _dl_debug_state through Z0;
    reverse-continue to the start of history passes it backwards (libc leaves the list),
    continuing forward loads libc again."""
    exe = dyn("hello", arch)
    with syxdbg_gdb(exe, arch) as (g, srv):
        inserted: list[int] = []
        target = srv.target
        original = target.add_sw_breakpoint

        def spy(addr: int, kind: int) -> bool:
            inserted.append(addr)
            return original(addr, kind)

        target.add_sw_breakpoint = spy  # type: ignore[method-assign]
        g.cli("break main")
        g.cli("continue")
        assert "libc.so.6" in g.cli("info sharedlibrary")
        events = g.cli("maint info breakpoints")
        m = re.search(r"shlib events\s+keep y\s+(0x[0-9a-f]+) <[^>]*_dl_debug_state>", events)
        assert m is not None, events
        assert int(m.group(1), 16) in inserted
        assert "No more reverse-execution history" in g.cli("reverse-continue")
        libs = g.cli("info sharedlibrary")
        assert "libc.so.6" not in libs and "ld-linux" in libs, libs
        assert "Breakpoint 1, main" in g.cli("continue")
        assert "libc.so.6" in g.cli("info sharedlibrary")


def test_syxdbg_gdb_sets_the_sysroot(dyn: Callable[[str, str], Path]) -> None:
    """``syxdbg gdb`` on the aarch64 dynamic program: gdb is told the cross sysroot and
    reads libc's symbols from the file the guest ran."""
    if GDB_MULTIARCH is None:
        if in_ci():
            raise AssertionError("gdb-multiarch is missing")
        pytest.skip("gdb-multiarch is not installed")
    exe = dyn("sortalloc", "aarch64")
    from syxdbg.cli.gdb import gdb_command_line

    with syxdbg.open(str(exe)) as session:
        argv = gdb_command_line(session, 1, "gdb")
        assert argv[argv.index("set sysroot /usr/aarch64-linux-gnu") - 1] == "-ex"
    p = subprocess.run(
        [sys.executable, "-m", "syxdbg", "gdb", "--batch", "--ex", "break main", "--ex", "continue",
         "--ex", "info sharedlibrary", "--ex", "break malloc", "--ex", "continue",
         "--ex", "bt 2", str(exe)],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert re.search(r"Yes.*\s/usr/aarch64-linux-gnu/lib/libc.so.6", p.stdout), p.stdout
    assert "malloc () from /usr/aarch64-linux-gnu/lib/libc.so.6" in p.stdout, p.stdout
    assert "heap_churn () at sortalloc.c:122" in p.stdout


@needs_gdb
def test_syxdbg_gdb_relocates_pie_programs_from_auxv(build_program: Callable[..., Path]
                                                     ) -> None:
    """``syxdbg gdb`` loads position-independent programs with a plain ``file`` (no
    ``symbol-file -o``): gdb relocates them from AT_ENTRY, static-PIE and dynamic PIE alike,
    and the host's programs get ``set sysroot /``."""
    from syxdbg.cli.gdb import gdb_command_line

    for toolchain in ("gcc-pie", "gcc-dyn"):
        exe = build_program("hello", toolchain)
        with syxdbg.open(str(exe)) as session:
            argv = gdb_command_line(session, 1, "gdb")
            assert "set sysroot /" in argv and f"file {exe}" in argv, argv
            assert not any(a.startswith("symbol-file") for a in argv)
        p = subprocess.run(
            [sys.executable, "-m", "syxdbg", "gdb", "--batch", "--ex", "break main",
             "--ex", "continue", "--ex", "bt", "--ex", "info sharedlibrary", str(exe)],
            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert re.search(r"^#0  main \(argc=1, argv=0x[0-9a-f]+\) at hello.c:\d+$",
                         p.stdout, re.M), p.stdout + p.stderr
        assert "Load new symbol table" not in p.stdout + p.stderr
        if toolchain == "gcc-dyn":
            assert "/lib/x86_64-linux-gnu/libc.so.6" in p.stdout
        else:
            assert "No shared libraries loaded at this time." in p.stdout


@needs_gdb
def test_replayed_recording_shows_the_libraries(dyn: Callable[[str, str], Path],
                                                tmp_path: Path) -> None:
    """A replay runs on a private root holding only the recorded ld.so (the libraries come
    from the recording's events); gdb and the shell still find libc's file through the
    recording's own sysroot, whose ld.so has the recorded contents (this machine)."""
    exe = dyn("sortalloc", "x86_64")
    out = tmp_path / "s.syxrec"
    rec = subprocess.run([sys.executable, "-m", "syxdbg", "record", "-o", str(out), str(exe)],
                         capture_output=True, timeout=300, stdin=subprocess.DEVNULL)
    assert rec.returncode == 0, rec.stderr
    with syxdbg.replay(str(out)) as session:
        from syxdbg.cli.gdb import gdb_command_line
        from syxdbg.commands import solibs

        assert "replay-root" in session.image.sysroot
        assert solibs.files_root(session) == "/"
        assert "set sysroot /" in gdb_command_line(session, 1, "gdb")
    p = subprocess.run(
        [sys.executable, "-m", "syxdbg", "replay", "--batch", "--ex", "break main",
         "--ex", "continue", "--ex", "info sharedlibrary", "--ex", "break malloc",
         "--ex", "continue", "--ex", "bt 2", "--ex", "monitor bt 2", str(out)],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert re.search(r"Yes\s+/lib/x86_64-linux-gnu/libc.so.6", p.stdout), p.stdout + p.stderr
    assert "Could not load shared library symbols" not in p.stdout + p.stderr
    assert re.search(r"#0 .*malloc.*\n#1 .* in heap_churn \(\) at sortalloc.c:122", p.stdout), \
        p.stdout
    # monitor output (O packets) is printed by gdb on its stderr
    assert re.search(r"#0 +0x[0-9a-f]+ in libc.so.6:malloc \(\)\n#1 .* in heap_churn \(\)",
                     p.stderr), p.stderr
