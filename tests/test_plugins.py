"""Plugins: discovery through entry points in a real virtual environment, -p no:NAME,
clear load errors, and plugin state that travels with time (in the shell, and in a real gdb
through ``monitor``)."""

from __future__ import annotations

import re
import site
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PLUGIN = r'''
"""A third-party syxdbg plugin: counts the syscalls the guest makes (snapshottable)."""

from syxdbg import hookimpl

__version__ = "1.2.3"


class SyscallCounter:
    def __init__(self, session):
        self.count = 0
        self.session = session

    def save_state(self):
        return self.count

    def load_state(self, state):
        self.count = state


class Plugin:
    def __init__(self):
        self.counters = {}

    @hookimpl
    def syxdbg_addoption(self, parser):
        parser.add_argument("--count-syscalls", action="store_true",
                            help="print how many syscalls the program made")

    @hookimpl
    def syxdbg_machine_created(self, session, machine):
        counter = SyscallCounter(session)
        self.counters[id(session)] = counter
        inner = machine.syscall_handler

        def counting(m):
            counter.count += 1
            inner(m)

        machine.set_syscall_handler(counting)

    @hookimpl
    def syxdbg_register_state(self, session, registry):
        registry.register("syscall-counter", self.counters[id(session)])

    @hookimpl
    def syxdbg_register_commands(self, registry):
        counters = self.counters

        @registry.command("syscalls", "how many system calls the program made")
        def syscalls(ctx, args):
            return f"{counters[id(ctx.session)].count} system calls so far\n"

    @hookimpl
    def syxdbg_stop(self, session, event):
        if session.options.get("count_syscalls") and event.reason == "exited":
            print(f"syscalls: {self.counters[id(session)].count}", flush=True)


plugin = Plugin()
'''


def make_package(root: Path, name: str, module_text: str, entry: str) -> Path:
    pkg = root / name
    (pkg / name.replace("-", "_")).mkdir(parents=True)
    (pkg / name.replace("-", "_") / "__init__.py").write_text(module_text)
    (pkg / "pyproject.toml").write_text(textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{name}"
        version = "1.2.3"

        [project.entry-points.syxdbg]
        {entry}
    """))
    return pkg


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment that sees the installed syxdbg and holds two plugins."""
    root = tmp_path_factory.mktemp("plugins")
    env = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(env)],
                   check=True)
    py = env / "bin" / "python"
    # See this interpreter's packages too (where syxdbg is installed), also when this
    # interpreter is itself a virtual environment (--system-site-packages would then skip it).
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()"
                              "['purelib'])"], check=True, capture_output=True,
                             text=True).stdout.strip()
    parents = [p for p in site.getsitepackages() if Path(p).is_dir()]
    Path(purelib, "syxdbg_parent_site.pth").write_text(
        "".join(f"import site; site.addsitedir({p!r})\n" for p in parents))
    good = make_package(root, "syxdbg-counter", PLUGIN,
                        'counter = "syxdbg_counter:plugin"')
    bad = make_package(root, "syxdbg-broken", "raise ImportError('missing dependency foo')\n",
                       'broken = "syxdbg_broken"')
    for pkg in (good, bad):
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps",
                        "--no-build-isolation", str(pkg)], check=True)
    return py


def test_entry_point_plugins_are_listed_and_a_broken_one_is_named(venv: Path) -> None:
    proc = subprocess.run([str(venv), "-m", "syxdbg", "plugins", "-p", "no:broken"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.split()[:2] == ["linux", "0.1.0"] and "builtin" in line for line in lines)
    assert any(line.split()[:2] == ["counter", "1.2.3"] and "syxdbg-counter" in line
               for line in lines)
    proc = subprocess.run([str(venv), "-m", "syxdbg", "plugins"], capture_output=True,
                          text=True)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "plugin 'broken'" in err[0] and "missing dependency foo" in err[0]
    assert "Traceback" not in proc.stderr
    proc = subprocess.run([str(venv), "-m", "syxdbg", "plugins", "-p", "no:broken", "-p",
                           "no:counter"], capture_output=True, text=True)
    assert "counter" not in proc.stdout and "linux" in proc.stdout


def test_plugin_option_hook_and_state_across_time_travel(venv: Path, build_program) -> None:
    hello = build_program("hello", "musl")
    proc = subprocess.run([str(venv), "-m", "syxdbg", "run", "-p", "no:broken",
                           "--count-syscalls", str(hello)], capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("syscalls: ")
    count = int(proc.stdout.strip().splitlines()[-1].split()[1])
    assert count > 3
    # The plugin's state goes back in time with the program.
    script = textwrap.dedent(f"""
        import syxdbg
        s = syxdbg.open({str(hello)!r}, disable_plugins=["broken"], env={{}})
        counter = s.states.get("syscall-counter")
        s.run(until="main")
        at_main = counter.count
        s.run()
        assert counter.count == {count}, counter.count
        s.seek(0)
        assert counter.count == 0, counter.count
        s.cont("forward", until=s.symbols["main"])
        assert counter.count == at_main, (counter.count, at_main)
        print("ok", at_main)
    """)
    proc = subprocess.run([str(venv), "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("ok ")


def test_disabling_the_linux_plugin_leaves_no_syscall_layer(build_program) -> None:
    proc = subprocess.run([sys.executable, "-m", "syxdbg", "run", "-p", "no:linux",
                           str(build_program("hello", "gcc"))], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "no syscall layer" in proc.stderr and "Traceback" not in proc.stderr


def test_plugin_command_in_the_shell_and_its_state_going_backwards(venv: Path,
                                                                  build_program) -> None:
    hello = build_program("hello", "musl")
    proc = subprocess.run([str(venv), "-m", "syxdbg", "shell", "-p", "no:broken", "-ex", "run",
                           "-ex", "syscalls", "-ex", "goto 0", "-ex", "syscalls", str(hello)],
                          capture_output=True, text=True)
    counts = [line for line in proc.stdout.splitlines() if line.endswith("system calls so far")]
    assert len(counts) == 2, proc.stdout + proc.stderr
    assert int(counts[0].split()[0]) > 3 and counts[1].startswith("0 ")


@contextmanager
def serving(py: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """``syxdbg serve --port 0 ARGS`` run by the interpreter ``py``: the process and the port
    it printed (no sleeps: the port line is read as soon as it is written)."""
    proc = subprocess.Popen([str(py), "-m", "syxdbg", "serve", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        m = re.fullmatch(r"syxdbg: listening on 127\.0\.0\.1:(\d+)", line.strip())
        if m is None:
            proc.kill()
            pytest.fail(f"syxdbg serve did not start: {line}{proc.communicate()[1]}")
        yield proc, int(m.group(1))
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def gdb_batch(gdb: str, exe: Path, port: int, *commands: str) -> subprocess.CompletedProcess[str]:
    """A real gdb connected to ``port`` runs ``commands``. gdb prints stops on stdout and
    ``monitor`` output on stderr, each stream in command order."""
    argv = [gdb, "-nx", "-batch", "-ex", f"file {exe}", "-ex", f"target remote 127.0.0.1:{port}"]
    for command in commands:
        argv += ["-ex", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def test_plugin_command_through_gdbs_monitor_and_its_state_going_backwards(
        venv: Path, build_program, require_tool: Callable[[str], str]) -> None:
    gdb = require_tool("gdb")
    hello = build_program("hello", "musl")
    # The server runs in the virtual environment: the plugin is found there only.
    with serving(venv, "-p", "no:broken", "--clear-env", str(hello)) as (server, port):
        res = gdb_batch(
            gdb, hello, port,
            "monitor help", "monitor syscalls",  # at the entry point: none yet
            "break main", "break _Exit",
            "continue", "monitor syscalls",  # A: the start-up code's
            "continue", "monitor syscalls",  # B: all but exit_group
            "reverse-stepi", "monitor syscalls",  # B: restored from a checkpoint and replayed
            "reverse-continue", "monitor syscalls",  # back at main: A again
            # monitor moves behind gdb's back; `syxdbg gdb` flushes the cache with a hook.
            "monitor goto 0", "maintenance flush register-cache", "monitor syscalls",
            "continue", "monitor syscalls",  # replaying forward counts again
            "continue", "monitor syscalls",
            "kill")
        assert server.wait(timeout=60) == 0
        out, err = server.communicate()
    log = f"gdb stdout:\n{res.stdout}\ngdb stderr:\n{res.stderr}\nserver:\n{err}"
    assert re.search(r"^  syscalls +how many system calls the program made$", res.stderr,
                     re.M), log
    stops = re.findall(r"^Breakpoint \d, (?:0x[0-9a-f]+ in )?(\w+) \(", res.stdout, re.M)
    assert stops == ["main", "_Exit", "main", "main", "_Exit"], log
    assert "No more reverse-execution history" not in res.stdout, log
    counts = [int(n) for n in re.findall(r"^(\d+) system calls so far$", res.stderr, re.M)]
    assert len(counts) == 8, log
    at_main, at_exit = counts[1], counts[2]
    assert 0 < at_main < at_exit, log
    assert counts == [0, at_main, at_exit, at_exit, at_main, 0, at_main, at_exit], log
    # Going back and replaying through the plugin's syscall handler wrote nothing again.
    assert out.count("argc=1\n") == 1, out
    assert "killed by gdb" in err


def test_a_plugin_disabled_with_p_no_has_no_monitor_command(
        venv: Path, build_program, require_tool: Callable[[str], str]) -> None:
    gdb = require_tool("gdb")
    hello = build_program("hello", "musl")
    with serving(venv, "-p", "no:broken", "-p", "no:counter", str(hello)) as (server, port):
        res = gdb_batch(gdb, hello, port, "monitor help", "monitor syscalls", "kill")
        assert server.wait(timeout=60) == 0
    assert "syxdbg monitor commands:" in res.stderr, res.stderr  # monitor itself works
    assert "how many system calls" not in res.stderr
    assert "error: unknown command 'syscalls'" in res.stderr, res.stderr
