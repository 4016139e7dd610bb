"""tests/firmware: this directory on sys.path (fwbuild), as tests/conftest.py does for tests/."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from support import tool_missing

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


@pytest.fixture(scope="module")
def gdb_multiarch() -> str:
    """The gdb that debugs Cortex-M firmware (the firmware gdb tests)."""
    path = shutil.which("gdb-multiarch")
    if path is None:
        tool_missing("gdb-multiarch is not installed")
    assert path is not None
    return path
