"""``info sharedlibrary``: the loaded shared libraries (see :mod:`.solibs`)."""

from __future__ import annotations

from .context import Context
from .registry import Args, CommandRegistry


def register(r: CommandRegistry) -> None:
    info = r.get("info")

    @info.subcommand("sharedlibrary", "the loaded shared libraries: address range, file",
                     aliases=("dll", "solibs", "shared"))
    def _sharedlibrary(ctx: Context, args: Args) -> str:
        """The dynamic loader's link map at this position (ld.so and what it loaded),
        as gdb's ``info sharedlibrary``: the span of each library's segments, whether its
        symbols were read (from its file, or its separate debug file by build id), the
        name the guest uses, and the host file when the sysroot holds it elsewhere."""
        libs = ctx.debuginfo.libraries()
        if not libs:
            return "No shared libraries loaded at this time.\n"
        lines = [f"{'From':<18}  {'To':<18}  Syms  Shared Object Library"]
        for lib in libs:
            o = lib.obj
            syms = "Yes " if lib.has_symbols else "No  "
            where = f" ({o.path})" if o.path != o.name else ""
            lines.append(f"{o.start:#018x}  {o.end:#018x}  {syms}  {o.name}{where}")
        return "\n".join(lines) + "\n"
