"""The shared libraries of a dynamically linked program, as its dynamic loader lists them.

glibc's and musl's loaders keep the SVR4 link map in guest memory: ``struct r_debug``
(``r_version``, ``r_map``, ``r_brk``...), found through the program's ``DT_DEBUG`` dynamic
entry (the loader stores its address there), heads a list of ``struct link_map``
(``l_addr``, ``l_name``, ``l_ld``, ``l_next``, ``l_prev``). The first entry is the program
itself (empty name), then the loader's ``DT_NEEDED`` libraries, the loader itself and what
``dlopen`` added. It is read from memory at each question (a handful of words), so it is
right at every position in time, before the loader ran (empty) as after a ``dlclose``.

Used by gdb's ``qXfer:libraries-svr4:read`` (:mod:`syxdbg.gdb_target`) and by the shell's
symbols (:class:`~syxdbg.commands.debuginfo.DebugInfo`) and ``info sharedlibrary``
(:mod:`syxdbg.commands.libraries`). Imports nothing of the command layer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..session import Session

PT_DYNAMIC = 2
PT_PHDR = 6
DT_NULL = 0
DT_DEBUG = 21
#: At most this many link-map entries are walked (a corrupt list must not hang a stop).
MAX_ENTRIES = 4096
_WORD = 8  # both architectures are 64-bit little-endian


@dataclass(frozen=True)
class LinkMapEntry:
    """One ``struct link_map``: ``name`` as the guest names the file, ``lm`` the entry's own
    address, ``l_addr`` the load displacement, ``l_ld`` the address of its dynamic section,
    ``prev`` its ``l_prev``."""

    name: str
    lm: int
    l_addr: int
    l_ld: int
    prev: int


def _word(session: Session, address: int) -> int | None:
    data = session.mem.read_partial(address, _WORD)
    return int.from_bytes(data, "little") if len(data) == _WORD else None


def _cstring(session: Session, address: int, limit: int = 4096) -> str:
    out = b""
    while len(out) < limit:
        chunk = session.mem.read_partial(address + len(out), 256)
        if not chunk:
            break
        nul = chunk.find(b"\0")
        if nul >= 0:
            out += chunk[:nul]
            break
        out += chunk
    return out.decode("utf-8", errors="surrogateescape")


def dynamic_section(session: Session) -> int | None:
    """The guest address of the program's ``PT_DYNAMIC`` segment (None: static, raw)."""
    image = session.image
    if image.kind != "elf" or not image.phdr or not image.phnum:
        return None
    phdrs = session.mem.read_partial(image.phdr, image.phnum * image.phent)
    dyn = phdr_vaddr = None
    for i in range(len(phdrs) // image.phent):
        ph = phdrs[i * image.phent:(i + 1) * image.phent]
        p_type = int.from_bytes(ph[0:4], "little")
        p_vaddr = int.from_bytes(ph[16:24], "little")
        if p_type == PT_DYNAMIC:
            dyn = p_vaddr
        elif p_type == PT_PHDR:
            phdr_vaddr = p_vaddr
    if dyn is None:
        return None
    # The displacement as gdb computes it: AT_PHDR against PT_PHDR's link address.
    bias = image.phdr - phdr_vaddr if phdr_vaddr is not None else image.load_bias
    return dyn + bias


def r_debug(session: Session) -> int | None:
    """The address of the loader's ``struct r_debug``: the program's ``DT_DEBUG`` entry
    (filled in by the loader), else the loader's exported ``_r_debug`` (a program linked
    without ``DT_DEBUG``); None for a static program or raw blob, or while neither is set."""
    dyn = dynamic_section(session)
    if dyn is None:
        return None
    for i in range(1024):
        tag = _word(session, dyn + 16 * i)
        if tag is None or tag == DT_NULL:
            break
        if tag == DT_DEBUG:
            value = _word(session, dyn + 16 * i + 8)
            if value:
                return value
            break
    image = session.image
    offset = _interp_r_debug(image.interp_path) if image.interp_path else None
    return image.interp_base + offset if offset is not None else None


_R_DEBUG: dict[str, int | None] = {}


def _interp_r_debug(path: str) -> int | None:
    """The link address of ``_r_debug`` in the dynamic loader's ``.dynsym`` (glibc's ld.so
    exports it; musl's does not), cached per file."""
    if path not in _R_DEBUG:
        found = None
        try:
            from elftools.elf.elffile import ELFFile
            from elftools.elf.sections import SymbolTableSection

            with open(path, "rb") as f:
                table = ELFFile(f).get_section_by_name(".dynsym")
                syms = table.get_symbol_by_name("_r_debug") \
                    if isinstance(table, SymbolTableSection) else None
                if syms:
                    found = int(syms[0]["st_value"]) or None
        except Exception:  # unreadable loader: no fallback
            found = None
        _R_DEBUG[path] = found
    return _R_DEBUG[path]


def link_map(session: Session, start: int | None = None) -> list[LinkMapEntry]:
    """The link map from ``start`` (default: its head, ``r_debug.r_map``), in list order;
    empty while the loader has not set it up (``r_version`` 0)."""
    if start is None:
        r = r_debug(session)
        if r is None:
            return []
        version = session.mem.read_partial(r, 4)
        if len(version) < 4 or int.from_bytes(version, "little") == 0:
            return []
        start = _word(session, r + _WORD)
    out: list[LinkMapEntry] = []
    seen: set[int] = set()
    lm = start
    while lm and lm not in seen and len(out) < MAX_ENTRIES:
        seen.add(lm)
        fields = session.mem.read_partial(lm, 5 * _WORD)
        if len(fields) < 5 * _WORD:
            break
        l_addr, l_name, l_ld, l_next, l_prev = (
            int.from_bytes(fields[i:i + _WORD], "little") for i in range(0, 5 * _WORD, _WORD))
        name = _cstring(session, l_name) if l_name else ""
        out.append(LinkMapEntry(name, lm, l_addr, l_ld, l_prev))
        lm = l_next
    return out


def files_root(session: Session) -> str:
    """Where the program's library files are on this machine: the session's sysroot (``/``
    for the host's own). A replay runs on a private root holding the recorded interpreter
    and, for recordings that carry them, the recorded libraries: the recording's own
    sysroot is preferred when its interpreter there still has the recorded contents (the
    same machine, or the same C library: ld.so and libc ship together), since its debug
    files (libc6-dbg) are found there too; else the private root."""
    root = session.image.sysroot or "/"
    rec = session.recording
    if rec is None:
        return root
    meta = getattr(rec, "meta", None)
    info = meta.get("interp") if isinstance(meta, dict) else None
    stored = getattr(rec, "stored_interp", None)
    if isinstance(info, dict) and stored is not None:
        recorded_root = str(info.get("sysroot") or "/")
        path = str(info.get("path") or "")
        try:
            st = os.stat(path) if path and os.path.isdir(recorded_root) else None
            if st is not None:
                key = (str(getattr(stored, "digest", "")), path, st.st_size, st.st_mtime_ns)
                if key not in _SAME_INTERP:
                    _SAME_INTERP[key] = bool(stored.matches_file(path))
                if _SAME_INTERP[key]:
                    return recorded_root
        except Exception:  # an unreadable file: keep the private root
            pass
    return root


#: Whether a recorded interpreter (by digest) is the file at a path (by size and mtime).
_SAME_INTERP: dict[tuple[str, str, int, int], bool] = {}


def host_path(session: Session, name: str) -> str:
    """The host file the guest opened as ``name``: the kernel's qemu ``-L`` rule (the
    sysroot's copy if it exists, else the host's own path)."""
    root = files_root(session)
    if root not in ("", "/") and name.startswith("/"):
        candidate = os.path.join(root, name.lstrip("/"))
        if os.path.exists(candidate):
            return candidate
    return name


@dataclass(frozen=True)
class SharedObject:
    """A loaded ELF file other than the program: guest ``name``, host ``path``, load
    displacement ``base`` (``l_addr``) and the address range its segments occupy."""

    name: str
    path: str
    base: int
    start: int
    end: int

    @property
    def short(self) -> str:
        """The file name without directories (``libc.so.6``): how symbols are prefixed."""
        return os.path.basename(self.name)


def _span(path: str, base: int) -> tuple[int, int] | None:
    try:
        from elftools.elf.elffile import ELFFile

        with open(path, "rb") as f:
            loads = [s for s in ELFFile(f).iter_segments() if s["p_type"] == "PT_LOAD"]
    except Exception:  # missing, unreadable or not ELF: the object is left out
        return None
    if not loads:
        return None
    lo = min(s["p_vaddr"] for s in loads)
    hi = max(s["p_vaddr"] + s["p_memsz"] for s in loads)
    return base + lo, base + hi


_SPANS: dict[tuple[str, int, int, int], tuple[int, int] | None] = {}


def shared_objects(session: Session) -> list[SharedObject]:
    """The loaded libraries with their host files and address ranges (the interpreter
    included, also before it has listed itself), by address."""
    # The head entry is the program itself (glibc leaves its name empty, musl does not).
    entries = [(e.name, e.l_addr) for e in link_map(session) if e.name and e.prev]
    image = session.image
    if image.interp and not any(name == image.interp for name, _ in entries):
        entries.insert(0, (image.interp, image.interp_base))
    out: list[SharedObject] = []
    for name, base in entries:
        path = image.interp_path if name == image.interp and image.interp_path \
            else host_path(session, name)
        try:
            st = os.stat(path)
        except OSError:
            continue  # not on this machine (a replay elsewhere): no symbols for it
        key = (path, base, st.st_size, st.st_mtime_ns)
        if key not in _SPANS:
            _SPANS[key] = _span(path, base)
        span = _SPANS[key]
        if span is not None:
            out.append(SharedObject(name, path, base, *span))
    out.sort(key=lambda o: o.start)
    return out

