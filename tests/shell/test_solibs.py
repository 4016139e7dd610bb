"""The shell names shared-library code (issue 15): ``libc.so.6:malloc``.

The suite's sortalloc built the default way (``gcc``: a dynamic PIE; aarch64 against
/usr/aarch64-linux-gnu). Library symbols come from the loader's link map at the current
position (commands/solibs.py) and each library's file (its separate debug file by build id
when the file has no .symtab). The callers below malloc are the ones gdb shows for the same
stop (tests/gdb/test_gdb_solibs.py); memset's name on x86_64 comes from libc's debug file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import syxdbg
from syxdbg.commands import CommandError, CommandRegistry, make_registry

TOOLCHAINS = {"x86_64": "gcc-dyn", "aarch64": "aarch64-dyn"}
LIBC = {"x86_64": "/lib/x86_64-linux-gnu/libc.so.6", "aarch64": "/lib/libc.so.6"}
INTERP = {"x86_64": "/lib64/ld-linux-x86-64.so.2", "aarch64": "/lib/ld-linux-aarch64.so.1"}
RET = {"x86_64": "rax", "aarch64": "x0"}


@pytest.fixture(params=list(TOOLCHAINS))
def arch(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def shell(arch: str, build_program: Callable[..., Path]
          ) -> Iterator[tuple[syxdbg.Session, CommandRegistry]]:
    exe = build_program("sortalloc", TOOLCHAINS[arch])
    session = syxdbg.open(str(exe))
    try:
        yield session, make_registry(session, frontend="shell")
    finally:
        session.close()


def test_info_sharedlibrary_follows_the_link_map(
        shell: tuple[syxdbg.Session, CommandRegistry], arch: str) -> None:
    """At the first instruction only the loader is there; at main libc too, with its
    symbols; going back in time the list goes back with it."""
    session, r = shell
    first = r.run_text("info sharedlibrary").splitlines()
    assert len(first) == 2 and INTERP[arch] in first[1], first
    r.run_text("break main")
    r.run_text("continue")
    rows = r.run_text("info sharedlibrary").splitlines()
    assert rows[0].split() == ["From", "To", "Syms", "Shared", "Object", "Library"]
    libc = next(row for row in rows if f" {LIBC[arch]}" in row)
    start, end, syms = libc.split()[:3]
    assert int(start, 16) < int(end, 16) and syms == "Yes"
    if arch == "aarch64":  # the host file, from the sysroot
        assert "(/usr/aarch64-linux-gnu/lib/libc.so.6)" in libc
    r.run_text("goto 0")
    assert r.run_text("info sharedlibrary").splitlines() == first


def test_bt_x_and_last_write_name_library_functions(
        shell: tuple[syxdbg.Session, CommandRegistry], arch: str) -> None:
    """``break malloc`` (a library symbol, known once libc is loaded) stops in libc; ``bt``
    unwinds through it with libc's CFI to heap_churn and main; ``x/i`` names it; the
    block's first byte was last written by libc's memset, called from sortalloc.c:131."""
    session, r = shell
    r.run_text("break main")
    r.run_text("continue")
    assert "<libc.so.6:malloc>" in r.run_text("break malloc")
    assert "<libc.so.6:malloc>" in r.run_text("continue")
    bt = r.run_text("bt").splitlines()
    assert bt[0].endswith(" in libc.so.6:malloc ()"), bt
    assert " in heap_churn () at sortalloc.c:" in bt[1], bt
    assert " in main () at sortalloc.c:158" in bt[2], bt
    assert "<libc.so.6:malloc>:" in r.run_text("x/i $pc")
    code = r.run_text("context").split("── code")[1]
    assert "<libc.so.6:malloc>" in code and "<libc.so.6:malloc+0x" in code, code
    r.run_text("delete")
    assert "Run till exit from" in r.run_text("finish")
    block = int(session.regs[RET[arch]])
    r.run_text("break sortalloc.c:132")
    r.run_text("continue")
    out = r.run_text(f"last-write {block:#x}")
    assert out.startswith(f"last write to {block:#x}"), out
    bt = r.run_text("bt 2").splitlines()
    assert " in heap_churn () at sortalloc.c:131" in bt[1], bt
    pc = int(session.regs.pc)
    lib = r.ctx.debuginfo.library_at(pc)
    assert lib is not None and lib.obj.name == LIBC[arch]
    if arch == "x86_64":  # libc6's debug file names the implementation memset chose
        assert "<libc.so.6:__memset_" in out and " in libc.so.6:__memset_" in bt[0], out
    else:  # aarch64's memset variants are local symbols: the library and the offset
        assert f"<libc.so.6+{pc - lib.obj.base:#x}>" in out, out


def test_qualified_library_symbol(shell: tuple[syxdbg.Session, CommandRegistry]) -> None:
    session, r = shell
    r.run_text("break main")
    r.run_text("continue")
    out = r.run_text("break libc.so.6:free")
    assert "<libc.so.6:free>" in out, out
    with pytest.raises(CommandError):
        r.run_text("break libnothere.so:free")


def test_musl_loader_is_the_libc(build_program: Callable[..., Path]) -> None:
    """musl's ld-musl is also its libc and names the program in the link map's head entry
    (glibc leaves it empty): the program is not a library. musl is built without unwind
    tables, so bt at malloc's first instruction takes the return address from the stack."""
    exe = build_program("sortalloc", "musl-dyn")
    session = syxdbg.open(str(exe))
    try:
        r = make_registry(session, frontend="shell")
        r.run_text("break main")
        r.run_text("continue")
        libs = r.run_text("info sharedlibrary").splitlines()
        assert len(libs) == 2 and libs[1].endswith(" /lib/ld-musl-x86_64.so.1"), libs
        r.run_text("break malloc")
        assert "<ld-musl-x86_64.so.1:malloc>" in r.run_text("continue")
        bt = r.run_text("bt").splitlines()
        assert bt[0].endswith(" in ld-musl-x86_64.so.1:malloc ()"), bt
        assert " in heap_churn () at sortalloc.c:122" in bt[1], bt
        assert " in main () at sortalloc.c:158" in bt[2], bt
    finally:
        session.close()
