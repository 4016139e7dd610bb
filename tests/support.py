"""Helpers shared by test modules (import this, never ``conftest``: several conftest.py
files exist in the tree and the name ``conftest`` is ambiguous)."""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    """True when running under CI (env var CI set to anything but '', 0, false, no)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def tool_missing(reason: str) -> None:
    """Skip the current test on a developer machine, fail it under CI."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: every tool must be installed)", pytrace=False)
    pytest.skip(reason)
