"""The program a command runs, as a typed value: :class:`ProgramSpec`.

The command line parses its options once, into a frozen :class:`ProgramSpec`; front ends and
subcommands take the spec (or the :class:`~syxdbg.session.Session` opened from it), never an
argparse namespace, so that they can be driven from code and tests without a parser.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..errors import SyxdbgError
from . import args as types

if TYPE_CHECKING:
    import pluggy

    from ..session import Session

#: Namespace entries that are the parser's own business, not session options.
_NOT_OPTIONS = frozenset({"handler", "plugin_manager", "command", "prog", "args", "env",
                          "clear_env", "raw", "arch", "base", "entry", "argv0", "plugin_opts",
                          "recording", "sysroot"})


@dataclass(frozen=True)
class ProgramSpec:
    """What to load: an ELF program with its arguments and environment, a raw blob, or a
    recording to replay, plus the plugins to leave out and the session options.

    ``program`` is the ELF file or the raw blob (``raw=True``); ``recording`` replaces both
    for a replay. ``env`` is the program's whole environment. ``options`` become
    ``session.options`` (plugins read their own command-line options there).
    """

    program: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    arch: str | None = None
    raw: bool = False
    base: int | None = None
    entry: int | None = None
    argv0: str | None = None
    #: Where a dynamic program's interpreter and libraries are looked up (None: default).
    sysroot: str | None = None
    recording: str | None = None
    disabled_plugins: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_args(cls, ns: argparse.Namespace, *, environ: Mapping[str, str] | None = None
                  ) -> ProgramSpec:
        """Check and convert what :func:`add_program_options` parsed (one-line errors)."""
        disabled = disabled_plugins(getattr(ns, "plugin_opts", []))
        options = {k: v for k, v in vars(ns).items()
                   if k not in _NOT_OPTIONS and not k.startswith("_")}
        if getattr(ns, "snapshot_budget", None):
            options["timeline.budget"] = ns.snapshot_budget
        frozen_options = MappingProxyType(options)
        if getattr(ns, "recording", None):
            return cls(recording=ns.recording, disabled_plugins=disabled,
                       options=frozen_options)
        if ns.raw:
            if ns.prog:
                raise SyxdbgError("give either PROG or --raw FILE, not both")
            return cls(program=ns.raw, raw=True, arch=ns.arch, base=ns.base, entry=ns.entry,
                       disabled_plugins=disabled, options=frozen_options)
        if not ns.prog:
            raise SyxdbgError("no program given (PROG, or --raw FILE)")
        if ns.base is not None or ns.entry is not None:
            raise SyxdbgError("--base and --entry apply to raw blobs (--raw FILE) only")
        env = {} if ns.clear_env else dict(os.environ if environ is None else environ)
        env.update(dict(ns.env))
        return cls(program=ns.prog, args=tuple(ns.args), env=MappingProxyType(env),
                   arch=ns.arch, argv0=ns.argv0, sysroot=getattr(ns, "sysroot", None),
                   disabled_plugins=disabled,
                   options=frozen_options)

    @property
    def name(self) -> str:
        """The file this spec loads (the recording for a replay), for messages."""
        return self.recording or self.program or "program"


def disabled_plugins(opts: Sequence[str]) -> tuple[str, ...]:
    """The names of ``-p no:NAME`` options."""
    out = []
    for opt in opts:
        if not opt.startswith("no:") or len(opt) == 3:
            raise SyxdbgError(f"-p expects no:NAME, got {opt!r}")
        out.append(opt[3:])
    return tuple(out)


def open_session(spec: ProgramSpec, plugins: pluggy.PluginManager | None = None,
                 **options: Any) -> Session:
    """The session ``spec`` describes (nothing has run yet); ``options`` add to the spec's.

    ``plugins`` is the plugin manager the command line already built (plugins added their
    options to the parser); None builds one without the disabled plugins.
    """
    merged = {**spec.options, **options}
    from .. import api

    if spec.recording is not None:
        return api.replay(spec.recording, disable_plugins=list(spec.disabled_plugins),
                          plugins=plugins, options=merged)
    assert spec.program is not None
    if spec.raw:
        return api.open(spec.program, (), arch=spec.arch, raw=True, base=spec.base,
                        entry=spec.entry, disable_plugins=spec.disabled_plugins,
                        plugins=plugins, options=merged)
    return api.open(spec.program, spec.args, env=dict(spec.env), arch=spec.arch,
                    argv0=spec.argv0, sysroot=spec.sysroot,
                    disable_plugins=spec.disabled_plugins,
                    plugins=plugins, options=merged)


def apply_follow(session: Session) -> None:
    """``--follow exec:NAME`` (the Linux plugin's option): run forward to that exec before
    the front end starts (gdb, serve, shell, replay), so it starts in that process.
    ``--pid N`` (:func:`add_pid_option`): run forward until process N exists."""
    follow = session.options.get("follow")
    if follow is not None and follow[0] == "exec":
        session.run_to_exec(str(follow[1]))
    elif follow is not None and follow[0] == "pid!" and session.has_processes:
        session.run_to_process(int(follow[1]))


def _pid(text: str) -> tuple[str, int]:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"invalid pid {text!r} (a positive number)")
    return ("pid!", int(text))


def add_pid_option(p: argparse.ArgumentParser) -> None:
    """``--pid N``: debug process N of the program's tree (as ``rr replay -p``): the
    session runs forward until N exists and follows it (``--follow pid:N`` follows it
    without moving; a replay's pids are the recording's)."""
    p.add_argument("--pid", metavar="N", dest="follow", type=_pid,
                   help="debug process N of the program's tree: run forward until it exists "
                   "and follow it (as rr replay -p; a replay's pids are the recording's)")


def add_program_options(p: argparse.ArgumentParser, *, history: bool = True) -> None:
    """The options and positionals of every command that loads a program.

    ``history=False`` hides ``--snapshot-budget`` (commands that keep no in-memory history).
    """
    p.set_defaults(_takes_program=True)
    g = p.add_argument_group("program")
    g.add_argument("--raw", metavar="FILE",
                   help="load FILE as a raw blob instead of an ELF (needs --arch and --base)")
    g.add_argument("--arch", help="architecture of a raw blob: x86_64, aarch64, arm, "
                   "riscv64 or cortex-m (firmware: docs/firmware.md; ELF programs: inferred "
                   "from the file, cortex-m with --board)")
    g.add_argument("--base", type=types.number, metavar="ADDR",
                   help="load address of a raw blob")
    g.add_argument("--entry", type=types.number, metavar="ADDR",
                   help="entry point of a raw blob (default: --base)")
    g.add_argument("-E", "--env", type=types.env_pair, action="append", default=[],
                   metavar="NAME=VALUE", help="set an environment variable for the program")
    g.add_argument("--clear-env", action="store_true",
                   help="start the program with an empty environment (then apply --env)")
    g.add_argument("--argv0", help="argv[0] for the program (default: PROG as given)")
    g.add_argument("--sysroot", metavar="DIR", type=types.directory,
                   help="root of a dynamic program's interpreter and libraries: the guest's "
                   "absolute paths are looked up there first, then on the host (default: / "
                   "for the host's architecture, /usr/aarch64-linux-gnu for aarch64 on x86_64)")
    add_plugin_switch(g)
    g.add_argument("--snapshot-budget", type=types.size, metavar="SIZE",
                   help="memory for recorded history (checkpoints), e.g. 512M or 2G; older "
                   "checkpoints are thinned to stay inside it (default 1G)"
                   if history else argparse.SUPPRESS)
    p.add_argument("prog", nargs="?", metavar="PROG",
                   help="Linux ELF executable (static or dynamic)")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                   help="arguments passed to the program")


def add_plugin_switch(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``-p no:NAME``, on every command that loads plugins."""
    p.add_argument("-p", dest="plugin_opts", action="append", default=[], metavar="no:NAME",
                   help="disable plugin NAME (may be repeated)")


def add_output_options(p: argparse.ArgumentParser) -> None:
    """Where files written at a remote client's request go (``monitor trace FILE``, ...)."""
    g = p.add_argument_group("files written for gdb clients")
    g.add_argument("--output-dir", metavar="DIR", default=None,
                   help="directory for files a gdb client asks for (monitor trace, monitor "
                   "coverage): relative names only, never outside DIR (default: the current "
                   "directory)")
    g.add_argument("--allow-overwrite", dest="output_overwrite", action="store_true",
                   help="let a gdb client replace existing files in the output directory")


def output_options(ns: argparse.Namespace) -> dict[str, Any]:
    """Session options of :func:`add_output_options`: ``output_dir`` (an absolute path to an
    existing directory) and ``output_overwrite``."""
    directory = os.path.abspath(ns.output_dir or os.getcwd())
    if not os.path.isdir(directory):
        raise SyxdbgError(f"--output-dir {ns.output_dir}: not a directory")
    return {"output_dir": directory, "output_overwrite": bool(ns.output_overwrite)}
