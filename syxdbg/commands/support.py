"""help, info, set/show, set reg, context, echo, quit: the commands about commands."""

from __future__ import annotations

from .context import Context
from .registry import CATEGORIES, Arg, Args, Command, CommandError, CommandRegistry, Output


def help_text(r: CommandRegistry, name: str | None) -> str:
    """``help`` (every command by category) or ``help NAME`` (one command)."""
    if name is None:
        cmds = [c for c in r if r.visible(c)]
        head = "syxdbg monitor commands:" if r.frontend == "gdb" else "syxdbg commands:"
        lines = [head]
        for cat in CATEGORIES:
            group = [c for c in cmds if c.category == cat]
            if not group:
                continue
            lines.append(f"{cat}:")
            for c in group:
                alias = f" ({', '.join(c.aliases)})" if c.aliases else ""
                lines.append(f"  {c.name}{alias}  {c.help}")
        if r.frontend == "gdb":
            lines.append("monitor help NAME shows one command.")
        else:
            lines.append("help NAME shows one command; empty Enter repeats stepping "
                         "commands.")
        return "\n".join(lines) + "\n"
    words = name.split()
    cmd, rest = r.lookup(words)
    if rest:
        raise CommandError(f"no subcommand {rest[0]!r} of {cmd.full_name}")
    return command_help(cmd)


def command_help(cmd: Command) -> str:
    lines = [f"{cmd.full_name} -- {cmd.help}", f"usage: {cmd.usage()}"]
    if cmd.aliases:
        lines.append(f"aliases: {', '.join(cmd.aliases)}")
    if cmd.description:
        lines += ["", *[ln.strip() for ln in cmd.description.strip().splitlines()]]
    if cmd.args:
        lines.append("")
        for a in cmd.args:
            if a.help:
                lines.append(f"  {a.name.upper():<10} {a.help}")
    if cmd.subcommands:
        lines.append("")
        seen = set()
        for sub in cmd.subcommands.values():
            if id(sub) in seen:
                continue
            seen.add(id(sub))
            lines.append(f"  {cmd.name} {sub.name:<12} {sub.help}")
    if cmd.shell_only:
        lines.append("(shell only: under gdb, use gdb's own command)")
    return "\n".join(lines) + "\n"


def program_info(ctx: Context) -> str:
    s = ctx.session
    m = s.machine
    image = s.image
    regions = m.mem.regions()
    mapped = sum(r.size for r in regions)
    final = m.finished
    # The timeline's table without internal stepping references (the machine's would
    # count them, and gdb's own internal breakpoints).
    bps = s.timeline.breakpoints if s.has_timeline else m.breakpoints
    watches = s.timeline.watchpoints if s.has_timeline else m.watchpoints
    state = "stopped" if final is None else getattr(final, "describe", final.__repr__)()
    lines = [
        f"program:   {image.path if image else '?'} ({image.kind if image else '?'})",
        f"arch:      {m.arch.name}",
        f"position:  {m.position}",
        f"pc:        {ctx.where(m.pc, line=False)}",
        f"state:     {state}",
        f"memory:    {len(regions)} regions, {mapped // 1024} KiB mapped",
        f"breakpoints: {len(bps)}, watchpoints: {len(watches)}",
    ]
    if s.has_timeline:
        w = s.when()
        lines.append(f"history:   frontier {w.frontier}, origin {w.origin}, "
                     f"{w.mode}")
    return "\n".join(lines) + "\n"


def register(r: CommandRegistry) -> None:
    r.settings.declare("context.panes", ["threads", "regs", "code", "source", "stack",
                                        "timeline"],
                       "the panes of the context display, in order (context.panes lists "
                       "them: help context)", type=list)
    r.settings.declare("context.auto", True, "show the context display after every stop")
    r.settings.declare("context.code-lines", 8, "instructions in the code pane")
    r.settings.declare("context.source-lines", 7, "lines in the source pane")
    r.settings.declare("context.stack-lines", 8, "stack words in the stack pane")
    r.settings.declare("context.output", "", "send the context display to this file or "
                       "terminal (e.g. /dev/pts/3) instead of the shell; empty: the shell")
    r.settings.declare("progress", True, "show progress during long searches (reverse-"
                       "continue, last-write, goto)")

    @r.command("help", "list the commands, or show one command's help: help [COMMAND]",
               category="support", aliases=("h",),
               args=(Arg("command", "command", optional=True, many=True),))
    def _help(ctx: Context, args: Args) -> str:
        """``help`` lists every command by category with its aliases; ``help NAME`` gives
        its usage, aliases and description; ``help info`` lists subcommands."""
        return help_text(r, " ".join(args.command) if args.command else None)

    def _info_default(ctx: Context, args: Args) -> str:
        return program_info(ctx)

    r.group("info", "information: info [breakpoints|registers|mappings|checkpoints|"
            "symbols|line]; alone: the program, position, pc and state", category="info",
            aliases=("i",), default=_info_default,
            description="Without a subcommand: program, architecture, position (instructions "
            "retired), pc with symbol, state, memory summary, breakpoint and watchpoint "
            "counts.")

    @r.command("show", "show a setting, or all of them", category="settings",
               args=(Arg("name", "setting", optional=True),))
    def _show(ctx: Context, args: Args) -> str:
        st = ctx.settings
        names = [args.name] if args.name else st.names()
        lines = []
        for n in names:
            decl = st.declaration(n)
            lines.append(f"{n} = {st.show(n)}    # {decl.help}")
        return "\n".join(lines) + "\n"

    @r.command("set", "set a setting (set NAME VALUE) or a register (set reg NAME VALUE)",
               category="settings",
               args=(Arg("name", "setting", help="a setting, 'reg', or $REG"),
                     Arg("value", "text", optional=True, many=True)))
    def _set(ctx: Context, args: Args) -> str:
        """``set context.panes regs code``, ``set reg rax 0x10``, ``set $rax = 0x10``.
        Writing a register in the past discards the recorded future (gdb's record full
        does the same), which is reported."""
        name = args.name
        value = args.value or ""
        if name in ("reg", "register", "var") or name.startswith("$"):
            if name.startswith("$"):
                reg, rest = name[1:], value
            else:
                reg, _, rest = value.partition(" ")
                reg = reg.lstrip("$")
            rest = rest.strip().removeprefix("=").strip()
            if not reg or not rest:
                raise CommandError("usage: set reg NAME VALUE")
            return set_register(ctx, reg, rest)
        if not value:
            raise CommandError(f"set {name}: which value?")
        ctx.settings.set(name, value.removeprefix("= ").strip())
        return f"{name} = {ctx.settings.show(name)}\n"

    @r.command("context", "show the context display (panes: regs code source stack "
               "timeline)", category="support", aliases=("ctx",),
               args=(Arg("panes", "pane", optional=True, many=True),))
    def _context(ctx: Context, args: Args) -> Output:
        """The display the shell shows after every stop; ``context code stack`` shows only
        those panes. Which panes and their order: ``set context.panes``."""
        from .panes import render_context

        for name in args.panes or ():
            r.panes.get(name)  # one-line error for an unknown pane
        return render_context(ctx, r.panes, panes=args.panes, width=ctx.width)

    @r.command("echo", "print TEXT (for scripts)", category="support",
               args=(Arg("text", "text", optional=True, many=True),))
    def _echo(ctx: Context, args: Args) -> str:
        return (args.text or "") + "\n"

    @r.command("quit", "leave the shell", category="support", aliases=("q", "exit"),
               shell_only=True)
    def _quit(ctx: Context, args: Args) -> str:
        ctx.quit_requested = True
        return ""


def set_register(ctx: Context, reg: str, text: str) -> str:
    s = ctx.session
    info = s.machine.arch.register(reg)
    if info is None:
        raise CommandError(f"no register {reg!r}")
    value = ctx.evaluate(text) & ((1 << info.bitsize) - 1)
    dropped = s.write_register(reg, value)
    out = f"{reg} = {value:#x}\n"
    if dropped is not None:
        out += dropped.describe() + "\n"
    return out
