"""The ``syxdbg`` command line: one module per subcommand (``run``, ``record``, ``replay``,
``demo``, ``plugins``, ``serve``, ``gdb``, ``shell``) over a typed program spec
(:class:`~syxdbg.cli.spec.ProgramSpec`).

Importing this package is cheap on purpose: :func:`main` installs the Ctrl-C handling of
start-up before anything heavy (Unicorn, the plugins, the subcommands) is imported.
"""

from .entry import main

__all__ = ["main"]
