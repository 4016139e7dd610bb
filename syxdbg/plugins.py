"""The plugin manager: first-party plugins, entry points, ``-p no:NAME``.

Each :class:`~syxdbg.session.Session` owns its own manager (made by
:func:`make_plugin_manager`), so sessions never share plugin state.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pluggy

from . import hookspecs
from .errors import SyxdbgError
from .firstparty import DEFAULT_PLUGINS, LAZY_PLUGINS
from .version import __version__

__all__ = ["DEFAULT_PLUGINS", "PluginLoadError", "PluginManager", "describe_plugins",
           "make_plugin_manager"]

ENTRY_POINT_GROUP = "syxdbg"


class PluginLoadError(SyxdbgError):
    pass


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus where each plugin came from (for ``syxdbg plugins``)."""

    def __init__(self) -> None:
        super().__init__("syxdbg")
        #: plugin name -> (version, origin)
        self.origins: dict[str, tuple[str, str]] = {}


def make_plugin_manager(disabled: Iterable[str] = (), *, entry_points: bool = True
                        ) -> PluginManager:
    """A manager with the hookspecs, the default plugins and the entry-point plugins.

    ``disabled`` names plugins to block (the CLI's ``-p no:NAME``).
    """
    pm = PluginManager()
    pm.add_hookspecs(hookspecs)
    for name in disabled:
        pm.set_blocked(name)
    for name, modname in DEFAULT_PLUGINS:
        if pm.is_blocked(name):
            continue
        if name in LAZY_PLUGINS:
            pm.register(LazyPlugin(name, modname, LAZY_PLUGINS[name]), name)
            pm.origins[name] = (__version__, f"builtin ({modname})")
            continue
        try:
            module = importlib.import_module(modname)
        except Exception as exc:
            raise PluginLoadError(f"plugin {name!r} ({modname}) failed to load: {exc}") from exc
        pm.register(module, name)
        pm.origins[name] = (__version__, f"builtin ({modname})")
    if entry_points:
        for ep in find_entry_points(ENTRY_POINT_GROUP):
            if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginLoadError(
                    f"plugin {ep.name!r} (entry point {ep.value}) failed to load: {exc}"
                ) from exc
            pm.register(plugin, ep.name)
            dist = ep.distribution()
            if dist is not None:
                pm.origins[ep.name] = (dist[1], f"entry point of {dist[0]}")
            else:
                pm.origins[ep.name] = ("", f"entry point {ep.value}")
    return pm


# -- entry points -------------------------------------------------------------------------------
# importlib.metadata costs ~20 ms of every start-up (its import pulls in email, zipfile,
# csv...; then it reads every installed distribution's metadata) to find the one or two
# plugins of the "syxdbg" group. The common case is read here directly: the
# ``*.dist-info``/``*.egg-info`` directories of the directories on sys.path, their
# ``entry_points.txt``, with importlib.metadata's rules (sys.path order, the first
# distribution of a name wins). Anything else (a zip file on sys.path, an import hook that
# provides distributions) goes through importlib.metadata.

@dataclass(frozen=True)
class EntryPoint:
    """One entry point: ``name = value`` (``module`` or ``module:attr``) of a group."""

    name: str
    value: str
    #: The distribution's metadata directory (None: from importlib.metadata, see ``dist``).
    path: str | None = None
    dist: Any = None

    def load(self) -> Any:
        """Import the module and return the object the value names (as importlib.metadata's
        ``EntryPoint.load``: extras in brackets are ignored)."""
        module, _, attr = self.value.split("[", 1)[0].partition(":")
        obj = importlib.import_module(module.strip())
        for part in attr.strip().split("."):
            if part:
                obj = getattr(obj, part)
        return obj

    def distribution(self) -> tuple[str, str] | None:
        """(name, version) of the distribution that declares it, if known."""
        if self.dist is not None:
            return str(self.dist.metadata["name"]), str(self.dist.version)
        if self.path is None:
            return None
        headers: dict[str, str] = {}
        for filename in ("METADATA", "PKG-INFO"):
            try:
                with open(os.path.join(self.path, filename), encoding="utf-8") as f:
                    for line in f:
                        if not line.strip():
                            break
                        key, sep, value = line.partition(":")
                        if sep and key in ("Name", "Version"):
                            headers.setdefault(key, value.strip())
            except OSError:
                continue
            break
        if "Name" not in headers:
            return None
        return headers["Name"], headers.get("Version", "")


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _parse_entry_points(text: str, group: str) -> Iterator[tuple[str, str]]:
    """``(name, value)`` of ``group`` in an ``entry_points.txt`` (an INI file)."""
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line.strip("[]")
            continue
        if current == group:
            name, sep, value = line.partition("=")
            if sep:
                yield name.strip(), value.strip()


def _simple_path() -> bool:
    """Whether importlib.metadata would find distributions only in the directories of
    sys.path (no zip files on it, no import hook that provides distributions)."""
    from importlib.machinery import PathFinder

    for finder in sys.meta_path:
        if finder is not PathFinder and hasattr(finder, "find_distributions"):
            return False
    return not any(entry and (os.path.isfile(entry) or entry.lower().endswith(".egg"))
                   for entry in sys.path)


def find_entry_points(group: str) -> list[EntryPoint]:
    """The entry points of ``group`` of the installed distributions, in the order
    ``importlib.metadata.entry_points(group=...)`` gives them."""
    if not _simple_path():
        from importlib import metadata

        return [EntryPoint(ep.name, ep.value, dist=ep.dist)
                for ep in metadata.entry_points(group=group)]
    seen: set[str] = set()
    found: list[EntryPoint] = []
    for entry in sys.path:
        directory = entry or "."
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            low = name.lower()
            if not low.endswith((".dist-info", ".egg-info")):
                continue
            key = _normalized(low.rpartition(".")[0].partition("-")[0])
            if key in seen:
                continue
            seen.add(key)
            path = os.path.join(directory, name)
            try:
                with open(os.path.join(path, "entry_points.txt"), encoding="utf-8") as f:
                    text = f.read()
            except OSError:
                continue
            if f"[{group}]" not in text:
                continue
            found += [EntryPoint(n, v, path) for n, v in _parse_entry_points(text, group)]
    return found


class LazyPlugin:
    """A first-party plugin registered by the hooks it implements; its module is imported
    when one of them is first called, and the call goes to the module's function (with the
    arguments that function takes, as pluggy would pass them)."""

    def __init__(self, name: str, modname: str, hooks: Iterable[str]) -> None:
        self.name = name
        self.modname = modname
        self._module: Any = None
        for hook in hooks:
            setattr(self, hook, self._forwarder(hook))

    def module(self) -> Any:
        """The plugin's module (imported on first use)."""
        if self._module is None:
            try:
                self._module = importlib.import_module(self.modname)
            except Exception as exc:
                raise PluginLoadError(f"plugin {self.name!r} ({self.modname}) failed to "
                                      f"load: {exc}") from exc
        return self._module

    def _forwarder(self, hook: str) -> Any:
        import inspect

        spec = getattr(hookspecs, hook)
        names = tuple(inspect.signature(spec).parameters)

        def forward(*args: Any) -> Any:
            real = getattr(self.module(), hook)
            given = dict(zip(names, args, strict=True))
            return real(*(given[n] for n in inspect.signature(real).parameters))

        forward.__name__ = forward.__qualname__ = hook
        forward.__signature__ = inspect.signature(spec)  # type: ignore[attr-defined]
        return hookspecs.hookimpl(forward)

    def __repr__(self) -> str:
        return f"<LazyPlugin {self.name} ({self.modname})>"


def describe_plugins(pm: pluggy.PluginManager) -> list[tuple[str, str, str]]:
    """(name, version, origin) for every registered plugin, in registration order.

    Origin is "builtin" for first-party plugins, the distribution for entry-point plugins,
    and the module otherwise (plugin objects registered at run time by other plugins).
    """
    origins = getattr(pm, "origins", {})
    out = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue  # blocked
        if name in origins:
            version, origin = origins[name]
            out.append((name, version, origin))
        else:
            module = getattr(plugin, "__module__", None) or getattr(plugin, "__name__", "?")
            out.append((name, "", f"registered at run time ({module})"))
    return out
