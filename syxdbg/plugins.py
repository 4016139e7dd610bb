"""The plugin manager: first-party plugins, entry points, ``-p no:NAME``.

Each :class:`~syxdbg.session.Session` owns its own manager (made by
:func:`make_plugin_manager`), so sessions never share plugin state.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from importlib import metadata

import pluggy

from . import hookspecs
from .errors import SyxdbgError
from .firstparty import DEFAULT_PLUGINS
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
        try:
            module = importlib.import_module(modname)
        except Exception as exc:
            raise PluginLoadError(f"plugin {name!r} ({modname}) failed to load: {exc}") from exc
        pm.register(module, name)
        pm.origins[name] = (__version__, f"builtin ({modname})")
    if entry_points:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginLoadError(
                    f"plugin {ep.name!r} (entry point {ep.value}) failed to load: {exc}"
                ) from exc
            pm.register(plugin, ep.name)
            dist = ep.dist
            if dist is not None:
                pm.origins[ep.name] = (dist.version, f"entry point of {dist.metadata['name']}")
            else:
                pm.origins[ep.name] = ("", f"entry point {ep.value}")
    return pm


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
