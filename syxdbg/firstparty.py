"""syxdbg's own plugins, by name and module: a constant that imports nothing.

The plugin manager registers them (:mod:`syxdbg.plugins`); the recording decoder imports
them so that their state classes can be rebuilt (:mod:`syxdbg.recording`), without either
one importing the other.
"""

#: First-party plugins, registered in this order under these names.
DEFAULT_PLUGINS: tuple[tuple[str, str], ...] = (
    ("linux", "syxdbg_plugins.linux"),
    ("trace", "syxdbg_plugins.trace"),
    ("coverage", "syxdbg_plugins.coverage"),
    ("timeline", "syxdbg_plugins.timeline"),
    ("firmware", "syxdbg_plugins.firmware"),
)

#: First-party plugins imported only when one of their hooks is first called, with the hooks
#: they implement (all with pluggy's default options; ``tests/test_plugin_discovery.py``
#: checks this against the modules). They add shell and monitor commands only, so a
#: ``syxdbg run`` never imports them (the timeline plugin's HTML report: ~8 ms).
LAZY_PLUGINS: dict[str, tuple[str, ...]] = {
    "trace": ("syxdbg_register_commands",),
    "timeline": ("syxdbg_register_commands",),
}
