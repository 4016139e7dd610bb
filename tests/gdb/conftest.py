"""Fixtures for the gdb tests: raw guest blobs (see blobs.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from blobs import assemble


@pytest.fixture(scope="session")
def blob(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Path]:
    """``blob(arch, name) -> Path`` of a raw binary to load at ``blobs.BASE``."""
    cache: dict[tuple[str, str], Path] = {}
    workdir = tmp_path_factory.mktemp("blobs")

    def build(arch: str, name: str) -> Path:
        key = (arch, name)
        if key not in cache:
            cache[key] = assemble(arch, name, workdir)
        return cache[key]

    return build
