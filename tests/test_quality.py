"""Static checks are part of the suite: ruff on everything, mypy on the pure-Python packages,
the layer contracts of .importlinter and no import cycle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_is_clean() -> None:
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_is_clean() -> None:
    proc = subprocess.run([sys.executable, "-m", "mypy", "syxdbg", "gdbstub", "plugins"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_layer_contracts_hold() -> None:
    """docs/architecture.md's layer rules, as .importlinter contracts (layers, a stub that
    imports nothing of syxdbg, the machine below time and front ends, Unicorn owned by the
    machine, plugins on the public API)."""
    proc = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import "
                           "lint_imports_command as c; sys.exit(c())"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout, proc.stdout


def _import_cycles(packages: tuple[str, ...]) -> list[list[str]]:
    """Strongly connected components (more than one module) of the import graph: every
    import statement counts, type-only and function-level ones included."""
    import grimp

    graph = grimp.build_graph(*packages)
    mods = sorted(m for m in graph.modules if m.split(".")[0] in packages)
    edges = {m: sorted(set(graph.find_modules_directly_imported_by(m)) & set(mods))
             for m in mods}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in mods:  # Tarjan's algorithm, iteratively (no recursion limit)
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            if i < len(edges[node]):
                work.append((node, i + 1))
                nxt = edges[node][i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return out


def test_no_import_cycles() -> None:
    """No circle anywhere in syxdbg/, gdbstub/ or plugins/ (issue 12): each layer has one
    owner and one way in."""
    assert _import_cycles(("syxdbg", "gdbstub", "syxdbg_plugins")) == []


def test_cycle_finder_finds_a_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "cyc"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .c import x\n")
    (pkg / "c.py").write_text("from .a import TYPE_CHECKING as x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _import_cycles(("cyc",)) == [["cyc.a", "cyc.b", "cyc.c"]]
