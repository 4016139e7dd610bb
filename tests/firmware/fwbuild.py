"""Build the test firmware of tests/firmware/fw with arm-none-eabi-gcc (cached like progs.py).

``build_firmware("hello") -> Path`` links ``startup.c`` and ``hello.c`` with ``link.ld``
(no vendor SDK); ``firmware_binary(elf)`` makes the raw image of it (objcopy)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from progs import build_dir
from support import tool_missing

FW_DIR = Path(__file__).resolve().parent / "fw"
BOARD = FW_DIR / "board.toml"
CC = "arm-none-eabi-gcc"
OBJCOPY = "arm-none-eabi-objcopy"
FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-O1", "-g", "-Wall", "-Werror", "-ffreestanding",
         "-nostdlib", "-fno-toplevel-reorder", "-T", "link.ld"]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        tool_missing(f"{name} is not installed (apt install gcc-arm-none-eabi)")
        raise AssertionError("unreachable")
    return path


def build_firmware(program: str) -> Path:
    """``fw/startup.c`` + ``fw/<program>.c`` -> a cached ELF."""
    cc = _tool(CC)
    sources = ["startup.c", f"{program}.c"]
    h = hashlib.sha256()
    for part in [*(FW_DIR / s for s in sources), FW_DIR / "link.ld"]:
        h.update(part.read_bytes())
    h.update("\0".join(FLAGS).encode())
    h.update(subprocess.run([cc, "-dumpfullversion"], capture_output=True, text=True,
                            check=False).stdout.encode())
    out = build_dir() / f"fw-{program}-{h.hexdigest()[:16]}.elf"
    if out.is_file():
        return out
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    try:
        p = subprocess.run([cc, *FLAGS, *sources, "-o", tmp], cwd=FW_DIR,
                           capture_output=True, text=True, timeout=300, check=False)
        if p.returncode != 0:
            raise AssertionError(f"building firmware {program} failed:\n{p.stderr}")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def firmware_binary(elf: Path) -> Path:
    """The raw flash image of ``elf`` (loadable with --raw --arch cortex-m --base 0)."""
    out = elf.with_suffix(".bin")
    if not out.is_file():
        tmp = out.with_name(f".{out.name}.{os.getpid()}")
        subprocess.run([_tool(OBJCOPY), "-O", "binary", str(elf), str(tmp)], check=True)
        os.replace(tmp, out)
    return out
