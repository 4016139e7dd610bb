"""Symbols of exec'd programs are parsed when something asks for them (issue 19).

An exec used to spend ~6.5 ms parsing the new program's symbol tables, which nothing that
runs the program needs. The loader now keeps the raw tables (read while the file is open,
so what is parsed later is what was loaded) and parses them on first use; equal tables
are parsed once per session. These tests run ``programs/procs.c`` (it execs itself) for
real and check that no image's symbols were parsed, then that asking gives the table a
reference parser (pyelftools) reads from the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import progs
import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection
from syxdbg_plugins.linux import get_kernel

import syxdbg
from syxdbg.loader import load_elf
from syxdbg.machine import Exited, Machine, get_arch


def _reference_functions(path: Path, bias: int, thumb: bool) -> dict[str, int]:
    """Global defined functions of ``.symtab``, relocated, as pyelftools reads them."""
    out: dict[str, int] = {}
    with open(path, "rb") as f:
        for section in ELFFile(f).iter_sections():
            if not isinstance(section, SymbolTableSection) or section.name != ".symtab":
                continue
            for sym in section.iter_symbols():
                if (sym["st_info"]["type"] == "STT_FUNC" and sym["st_shndx"] != "SHN_UNDEF"
                        and sym["st_info"]["bind"] == "STB_GLOBAL"):
                    out[sym.name] = (sym["st_value"] & (~1 if thumb else ~0)) + bias
    return out


@pytest.mark.parametrize("toolchain", ("gcc", "thumb"))
def test_exec_parses_no_symbols_until_asked(build_probe: Callable[[str, str], Path],
                                            toolchain: str) -> None:
    exe = build_probe("procs", toolchain)
    session = syxdbg.open(str(exe), env=progs.DEFAULT_ENV, argv0=str(exe))
    stop = session.run()
    assert isinstance(stop, Exited) and stop.status == 0, stop
    kernel = get_kernel(session)
    assert kernel is not None
    images = [image for image in kernel.process.images.values() if image is not None]
    assert len(images) >= 3, images  # the session's and the exec'd copies that ran last
    assert not any(image.symbols_parsed for image in images)
    reference = _reference_functions(exe, 0, toolchain == "thumb")
    assert len(reference) > 500
    for image in images:
        assert {name: image.symbols[name] for name in reference} == reference
        assert image.symbols_parsed
        main = image.symbols["main"]
        assert image.symbolize(main) == "main"
        assert image.symbolize(main + 2) == "main+0x2"
    # Parsed once per content, handed out as each image's own table.
    images[0].symbols["main"] += 1
    assert images[1].symbols["main"] == reference["main"]


def test_symbols_come_from_the_bytes_that_were_loaded(build_program: Callable[..., Path],
                                                      tmp_path: Path) -> None:
    """The program file replaced after loading (a rebuild while debugging): the symbols
    asked for later are the loaded program's."""
    hello, corrupt = build_program("hello", "gcc"), build_program("corrupt", "gcc")
    target = tmp_path / "prog"
    target.write_bytes(hello.read_bytes())
    image = load_elf(Machine(get_arch("x86_64")), str(target), [str(target)], [])
    target.write_bytes(corrupt.read_bytes())
    assert not image.symbols_parsed
    assert image.symbols["main"] == _reference_functions(hello, 0, False)["main"]
    assert "record_history" not in image.symbols
