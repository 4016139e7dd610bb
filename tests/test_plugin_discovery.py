"""Entry-point plugins are found without importlib.metadata (issue 19, start-up).

``syxdbg.plugins.find_entry_points`` reads the ``*.dist-info``/``*.egg-info`` directories on
sys.path itself (importlib.metadata's import and scan cost ~20 ms of every start-up). It
must answer exactly what ``importlib.metadata.entry_points(group=...)`` answers: checked
in fresh interpreters on this installation and on directories of real and edge-case
metadata (two distributions of one name, one without entry points, extras, an egg-info, a
zip file on sys.path, which goes through importlib.metadata). ``tests/test_plugins.py``
installs plugins with pip into a virtual environment and runs them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

_COMPARE = """
import json, sys
from syxdbg.plugins import find_entry_points
from importlib import metadata
ours = [(e.name, e.value, e.distribution()) for e in find_entry_points("syxdbg")]
theirs = [(e.name, e.value, (e.dist.metadata["name"], e.dist.version) if e.dist else None)
          for e in metadata.entry_points(group="syxdbg")]
print(json.dumps({"ours": ours, "theirs": theirs}))
"""


def _compare(*path: Path) -> tuple[list[list[object]], list[list[object]]]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, path), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", _COMPARE], capture_output=True, text=True,
                          env=env, timeout=120, check=True)
    got = json.loads(proc.stdout)
    return got["ours"], got["theirs"]


def _dist(root: Path, dirname: str, name: str, version: str, entry_points: str | None,
          *, metadata_file: str = "METADATA") -> None:
    d = root / dirname
    d.mkdir(parents=True)
    (d / metadata_file).write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                   "Summary: a: colon\n\nName: not-a-header\n")
    if entry_points is not None:
        (d / "entry_points.txt").write_text(textwrap.dedent(entry_points))


def test_this_installation_is_read_as_importlib_metadata_reads_it() -> None:
    ours, theirs = _compare()
    assert ours == theirs
    assert any(name == "linux" for name, _, _ in ours)


def test_edge_cases_match_importlib_metadata(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    _dist(first, "Syxdbg_Alpha-1.0.dist-info", "syxdbg-alpha", "1.0", """
        [console_scripts]
        alpha = alpha:main

        [syxdbg]
        alpha = alpha_plugin:plugin
        alpha.extra = alpha_plugin:plugin.inner [fast, small]
        # a comment
        [other]
        not_ours = x
    """)
    _dist(first, "no_points-2.0.dist-info", "no-points", "2.0", None)
    _dist(first, "old_style.egg-info", "old-style", "0.3", "[syxdbg]\nold=old_mod\n",
          metadata_file="PKG-INFO")
    # The same distribution name again, later on sys.path: importlib.metadata skips it.
    _dist(second, "syxdbg.alpha-9.9.dist-info", "syxdbg-alpha", "9.9", "[syxdbg]\nshadow=x\n")
    _dist(second, "no_points-3.0.dist-info", "no-points", "3.0", "[syxdbg]\nlate=y\n")
    _dist(second, "beta-0.1.dist-info", "beta", "0.1", "[syxdbg]\n  beta = beta:plugin\n"
          "[ syxdbg ]\nspaced = not:this\n")
    ours, theirs = _compare(first, second)
    assert ours == theirs
    names = [name for name, _, _ in ours]
    assert {"alpha", "alpha.extra", "old", "beta"} <= set(names)
    assert "shadow" not in names and "late" not in names and "not_ours" not in names
    # A zip file on sys.path: read through importlib.metadata, the same answer.
    archive = tmp_path / "plugins.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("gamma-1.0.dist-info/METADATA", "Name: gamma\nVersion: 1.0\n")
        z.writestr("gamma-1.0.dist-info/entry_points.txt", "[syxdbg]\ngamma = gamma:p\n")
    ours, theirs = _compare(first, archive)
    assert ours == theirs and "gamma" in [name for name, _, _ in ours]


def test_an_entry_point_plugin_loads_with_its_attribute_path(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "delta_plugin").mkdir(parents=True)
    (site / "delta_plugin" / "__init__.py").write_text(textwrap.dedent("""
        from syxdbg import hookimpl

        class Holder:
            class plugin:
                @staticmethod
                @hookimpl
                def syxdbg_addoption(parser):
                    parser.add_argument("--delta-flag", action="store_true")
    """))
    _dist(site, "delta-4.5.dist-info", "syxdbg-delta", "4.5",
          "[syxdbg]\ndelta = delta_plugin:Holder.plugin [extra]\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site),
                                                       os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "syxdbg", "plugins"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.split()[:1] == ["delta"])
    assert line.split()[1] == "4.5" and "syxdbg-delta" in line, line
    proc = subprocess.run([sys.executable, "-m", "syxdbg", "run", "--help"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert "--delta-flag" in proc.stdout, proc.stdout


def test_lazy_first_party_plugins_declare_exactly_their_hooks() -> None:
    """``LAZY_PLUGINS`` names every hook the module implements, each with pluggy's default
    options (a lazy plugin registers forwarders with the defaults)."""
    import importlib

    from syxdbg.firstparty import DEFAULT_PLUGINS, LAZY_PLUGINS

    modules = dict(DEFAULT_PLUGINS)
    for name, hooks in LAZY_PLUGINS.items():
        module = importlib.import_module(modules[name])
        found = {attr: getattr(getattr(module, attr), "syxdbg_impl", None)
                 for attr in dir(module) if attr.startswith("syxdbg_")}
        implemented = {attr: opts for attr, opts in found.items() if opts is not None}
        assert set(implemented) == set(hooks), (name, implemented)
        for opts in implemented.values():
            assert not any(opts.get(k) for k in ("wrapper", "hookwrapper", "optionalhook",
                                                 "tryfirst", "trylast", "specname")), opts


def test_a_lazy_plugin_is_imported_by_its_first_hook_call() -> None:
    code = textwrap.dedent("""
        import sys
        from syxdbg.plugins import make_plugin_manager, LazyPlugin
        pm = make_plugin_manager()
        assert isinstance(pm.get_plugin("timeline"), LazyPlugin)
        assert "syxdbg_plugins.timeline" not in sys.modules
        from syxdbg.commands import CommandRegistry
        registry = CommandRegistry(None)  # (no session needed to register commands)
        pm.hook.syxdbg_register_commands(registry=registry)
        assert "syxdbg_plugins.timeline" in sys.modules
        print(sorted(registry.names()))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "timeline" in proc.stdout and "trace" in proc.stdout, proc.stdout
