"""The scripting entry points: :func:`open` a program, :func:`replay` a recording.

They sit above the :class:`~syxdbg.session.Session`: they make the plugin manager (first-party
plugins, entry points, ``disable_plugins``) and, for a replay, the recorded history, then
open the session on them. The Session itself knows neither the plugin registry nor the
recording format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pluggy

from .plugins import make_plugin_manager
from .session import Session


def open(path: str, args: Sequence[str] = (), *, env: Mapping[str, str] | None = None,
         arch: str | None = None, raw: bool = False, base: int | None = None,
         entry: int | None = None, argv0: str | None = None, sysroot: str | None = None,
         disable_plugins: Sequence[str] = (), options: Mapping[str, Any] | None = None,
         plugins: pluggy.PluginManager | None = None) -> Session:
    """Load a program and return its :class:`~syxdbg.session.Session`; nothing runs yet.

    ``args`` are argv[1:]; ``env`` defaults to this process's environment; ``argv0``
    replaces argv[0] (default: ``path``). ``raw=True`` loads a firmware blob at ``base``
    (needs ``arch``; ``entry`` defaults to ``base``). ``sysroot`` is where a dynamic
    program's libraries are found. ``disable_plugins`` names plugins to leave out
    (``-p no:NAME``); ``plugins`` is a ready plugin manager instead. ``options`` become
    ``session.options``.
    """
    pm = plugins if plugins is not None else make_plugin_manager(disable_plugins)
    return Session.open(path, args, env=env, arch=arch, raw=raw, base=base, entry=entry,
                        argv0=argv0, sysroot=sysroot, plugins=pm, options=options)


def replay(path: str, **kwargs: Any) -> Session:
    """Open recording ``path`` (made by ``syxdbg record``) for replay: a session whose
    history is the recording (keywords: see :func:`syxdbg.recording.open_replay`)."""
    from .recording import open_replay

    return open_replay(path, **kwargs)
