"""``syxdbg plugins``: the plugins syxdbg loads, with their version and origin."""

from __future__ import annotations

import argparse
from typing import Any

import pluggy

from ..plugins import describe_plugins
from .spec import add_plugin_switch, disabled_plugins


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "plugins", help="list the loaded plugins",
        description="List the plugins syxdbg loads: first-party ones and those of the "
        "'syxdbg' entry-point group, with their version and origin.")
    add_plugin_switch(p)
    p.set_defaults(handler=_handle)


def _handle(ns: argparse.Namespace, pm: pluggy.PluginManager) -> int:
    disabled_plugins(ns.plugin_opts)  # the same check as for every command: -p no:NAME
    return list_plugins(pm)


def list_plugins(pm: pluggy.PluginManager) -> int:
    """Print one line per plugin of ``pm``: name, version, origin."""
    rows = describe_plugins(pm)
    width = max([len(r[0]) for r in rows] + [4])
    for name, version, origin in rows:
        print(f"{name:<{width}}  {version or '-':<8}  {origin}")
    if not rows:
        print("no plugins loaded")
    return 0
