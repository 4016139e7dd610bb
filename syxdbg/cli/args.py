"""Argument types of the command line: numbers, sizes, ``NAME=VALUE`` pairs and TCP ports.

Each is an argparse ``type=`` callable: bad text becomes argparse's one-line usage error
(status 2), never a traceback.
"""

from __future__ import annotations

import argparse
import os


def number(text: str) -> int:
    """An integer in any base Python accepts (``4096``, ``0x1000``, ``0o10``)."""
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def size(text: str) -> int:
    """A byte count: a number with an optional K, M or G suffix (powers of 1024)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = units.get(t[-1:], 1)
    try:
        value = int(t[:-1] if scale > 1 else t, 0) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 512M, 2G)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive: {text!r}")
    return value


def env_pair(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` (the value may be empty or contain ``=``)."""
    name, eq, value = text.partition("=")
    if not eq or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def directory(text: str) -> str:
    """An existing directory (``--sysroot``)."""
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"not a directory: {text!r}")
    return text


def port(text: str) -> int:
    """A TCP port, 0 (pick a free one) to 65535."""
    value = number(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text!r} (0 to 65535)")
    return value
