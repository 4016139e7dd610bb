"""Safe serialization of recording chunks: zlib-compressed pickles read back by a
restricted unpickler, with every decompression bounded before it happens.

The unpickler only builds data: frozen dataclasses, enums and tuples defined at the top level
of already imported modules of trusted packages (syxdbg, its first-party plugins and the
loaded plugins' packages), plus a few builtins. It never imports a module (importing runs
code), so loading a recording never runs code chosen by the file.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import enum
import io
import os
import pickle
import signal
import sys
import zlib
from typing import Any

import pluggy

from ._format import MAX_CHUNK, MAX_DEPTH, RecordingError

_SAFE_BUILTINS = frozenset({"set", "frozenset", "bytearray", "complex"})
_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("os", "stat_result"): os.stat_result,
    ("posix", "stat_result"): os.stat_result,
    ("signal", "Signals"): signal.Signals,
}
#: The packages trusted without any plugin loaded.
FIRST_PARTY = frozenset({"syxdbg", "syxdbg_plugins"})


def dumps(obj: Any) -> bytes:
    return zlib.compress(pickle.dumps(obj, protocol=5), 6)


def _data_class(obj: object) -> bool:
    """A class whose instances are plain data: a frozen dataclass, an enum or a tuple."""
    if not isinstance(obj, type):
        return False
    if dataclasses.is_dataclass(obj):
        params = getattr(obj, "__dataclass_params__", None)
        return bool(getattr(params, "frozen", False))
    return issubclass(obj, enum.Enum | tuple)


def _allowed_classes(trusted: frozenset[str]) -> dict[tuple[str, str], type]:
    """Every data class defined at the top level of an already imported module of a trusted
    package. Nothing is imported to build it (importing runs module code)."""
    out: dict[tuple[str, str], type] = {}
    for modname, module in list(sys.modules.items()):
        if module is None or modname.split(".")[0] not in trusted:
            continue
        for name, obj in list(vars(module).items()):
            if _data_class(obj) and obj.__module__ == modname and obj.__qualname__ == name:
                out[modname, name] = obj
    return out


def import_first_party() -> None:
    """Import syxdbg's own plugins (a fixed list, never names read from a file)."""
    import importlib

    from ..firstparty import DEFAULT_PLUGINS

    for _, modname in DEFAULT_PLUGINS:
        with contextlib.suppress(ImportError):
            importlib.import_module(modname)


class _Unpickler(pickle.Unpickler):
    """Builds only data: syxdbg's and the trusted plugins' frozen dataclasses, enums and
    tuples (looked up, never imported), and a few builtins."""

    def __init__(self, data: bytes, allowed: dict[tuple[str, str], type]) -> None:
        super().__init__(io.BytesIO(data))
        self.allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        if module == "builtins" and name in _SAFE_BUILTINS:
            return getattr(builtins, name)
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[module, name]
        cls = self.allowed.get((module, name))
        if cls is not None:
            return cls
        raise RecordingError(f"the recording refers to {module}.{name}, which recordings "
                             "may not contain (or a plugin that is not loaded)")


def inflate(data: bytes | memoryview, limit: int, what: str) -> bytes:
    """zlib-decompress at most ``limit`` bytes: inflating stops there (more is a corrupted
    recording), so a small forged chunk never expands in memory."""
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, limit)
    except zlib.error as exc:
        raise RecordingError(f"corrupted recording: cannot decompress {what} ({exc})") from None
    if d.unconsumed_tail or not d.eof:
        raise RecordingError(f"corrupted recording: {what} is larger than it may be "
                             f"({limit} bytes) or incomplete")
    return out


def check_depth(obj: Any, limit: int = MAX_DEPTH) -> None:
    """Refuse containers nested deeper than ``limit`` (walked without recursion): code that
    later compares, prints or copies such a value would die of a RecursionError."""
    stack: list[tuple[Any, int]] = [(obj, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            raise RecordingError(f"corrupted recording: data nested more than {limit} deep")
        if isinstance(value, dict):
            children: Any = [*value.keys(), *value.values()]
        elif isinstance(value, list | tuple | set | frozenset):
            children = value
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            children = [getattr(value, f.name, None) for f in dataclasses.fields(value)]
        else:
            continue
        stack.extend((c, depth + 1) for c in children)


def loads(data: bytes | memoryview, trusted: frozenset[str], limit: int = MAX_CHUNK) -> Any:
    """Decode one pickled chunk (inflated to at most ``limit`` bytes, data classes of the
    ``trusted`` packages only, nested at most :data:`MAX_DEPTH` deep)."""
    return loads_sized(data, trusted, limit)[0]


def loads_sized(data: bytes | memoryview, trusted: frozenset[str], limit: int = MAX_CHUNK
                ) -> tuple[Any, int]:
    """:func:`loads`, and how many bytes the chunk inflated to."""
    raw = inflate(data, limit, "a chunk")
    try:
        obj = _Unpickler(raw, _allowed_classes(trusted)).load()
    except RecordingError:
        raise
    except Exception as exc:  # noqa: BLE001 - any malformed pickle is one clear error
        raise RecordingError(f"corrupted recording: undecodable chunk "
                             f"({type(exc).__name__})") from None
    check_depth(obj)
    return obj, len(raw)


def trusted_roots(pm: pluggy.PluginManager) -> frozenset[str]:
    """Top-level packages whose classes may appear in a recording: syxdbg, its first-party
    plugins and the packages of the plugins loaded in ``pm``."""
    roots = set(FIRST_PARTY)
    for _, plugin in pm.list_name_plugin():
        mod = getattr(plugin, "__module__", None)
        if not isinstance(mod, str) or mod == "builtins":
            mod = getattr(plugin, "__name__", None)
        if isinstance(mod, str):
            roots.add(mod.split(".")[0])
    return frozenset(roots)
