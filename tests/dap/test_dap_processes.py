"""Processes as DAP threads (issue 18): ``tests/linux/programs/procs.c`` forks a child that
execs the program again as a pipeline's reader (``count_stdin``). Every live process's
threads are listed (``pid P / tid T ...``), ``thread`` events say when a child appears or
goes (forward and backward), a motion asked for a thread of another process follows that
process through the Session, source breakpoints stop in the child after its exec (the same
program), and the launch configuration's ``follow`` is ``--follow``. The Session is the
oracle of pids and positions."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import progs
import pytest
from conftest import start
from dapclient import Client

import syxdbg

PROCS = Path(__file__).resolve().parents[1] / "linux" / "programs" / "procs.c"
LAUNCH_ENV = {"env": dict(progs.DEFAULT_ENV), "clearEnv": True}


def procs_line(text: str, after: int = 0) -> int:
    """The first line of procs.c after line ``after`` that holds ``text``."""
    for n, line in enumerate(PROCS.read_text().splitlines(), 1):
        if n > after and text in line:
            return n
    raise AssertionError(text)


#: The pipeline's fork in main: the line before it, and the parent's first line after it.
PIPELINE = procs_line("A pipeline: this process writes")
BEFORE_FORK = procs_line("if (pipe(fds) != 0)", PIPELINE)
AFTER_FORK = procs_line("close(fds[0]);", procs_line("_exit(127);", PIPELINE))
COUNT_LOOP = procs_line("while ((n = read(0, buf, sizeof buf)) > 0)")


def _build(tmp_path_factory: pytest.TempPathFactory, toolchain: str) -> Path:
    """procs.c built as the Linux tests build it (-static -O1 -g)."""
    import subprocess

    tc = progs.toolchain_for(toolchain)
    exe = tmp_path_factory.mktemp("dap-procs") / f"procs-{tc.name}"
    subprocess.run(tc.command(PROCS, exe), check=True, capture_output=True)
    return exe


@pytest.fixture(scope="module")
def procs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory, "gcc")


@pytest.fixture(scope="module", params=["gcc", "aarch64"])
def procs_any(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
              require_tool: Callable[[str], str]) -> Path:
    """procs.c on x86_64 and aarch64."""
    if request.param == "aarch64":
        require_tool(progs.toolchain_for("aarch64").cc)
    return _build(tmp_path_factory, str(request.param))


def _pipeline_child(exe: Path) -> tuple[int, int, int]:
    """(parent pid, the pipeline reader's pid, the position of the stop at the line after
    its fork) from a plain session."""
    with syxdbg.open(str(exe), [], env=dict(progs.DEFAULT_ENV)) as s:
        from syxdbg.commands import make_registry

        di = make_registry(s).ctx.debuginfo
        where = di.addresses_of(str(PROCS), AFTER_FORK)[0]
        stop = s.run(until=where)
        parent = s.current_process
        child = next(p.pid for p in s.processes if p.pid != parent and p.state != "zombie")
        return parent, child, stop.position


def stop_position(stop: dict) -> str:
    found = re.search(r"position (\d+)", stop["description"])
    assert found, stop
    return found.group(1)


def _threads(c: Client) -> dict[int, str]:
    return {t["id"]: t["name"] for t in c.body("threads")["threads"]}


def _id_of(threads: dict[int, str], pid: int) -> int:
    found = [i for i, name in threads.items() if name.startswith(f"pid {pid} / tid {pid} ")]
    assert len(found) == 1, threads
    return found[0]


def _thread_events(c: Client, reason: str) -> list[int]:
    return [int(e["body"]["threadId"]) for e in c.events("thread")
            if e["body"]["reason"] == reason]


def test_child_processes_are_threads_and_a_step_follows_one(
        adapter: Callable[[], Client], procs_any: Path) -> None:
    procs = procs_any
    parent, child, position = _pipeline_child(procs)
    c = adapter()
    start(c, {"program": str(procs), **LAUNCH_ENV},
          breakpoints={str(PROCS): [{"line": BEFORE_FORK}, {"line": AFTER_FORK},
                                    {"line": COUNT_LOOP}]})
    stop = c.stopped()
    assert stop["reason"] == "breakpoint", stop
    assert c.frames()[0]["line"] == BEFORE_FORK
    # The default follows the first process: the first fork's child (which does not reach
    # these lines) came and went; one process now.
    assert len(c.body("threads")["threads"]) == 1
    c.request("continue", {"threadId": stop["threadId"]})
    stop = c.stopped()
    assert (stop["reason"], c.frames()[0]["line"]) == ("breakpoint", AFTER_FORK), stop
    threads = _threads(c)
    assert len(threads) == 2, threads
    pid_parent, pid_child = _id_of(threads, parent), _id_of(threads, child)
    assert stop["threadId"] == pid_parent and pid_parent == 1
    assert threads[pid_parent] == f"pid {parent} / tid {parent} {procs.name}"
    assert threads[pid_child].startswith(f"pid {child} / tid {child} {procs.name} ("), threads
    assert pid_child in _thread_events(c, "started")
    console = c.output("console")
    assert re.search(rf"\[process {child} \({procs.name}\): forked by {parent} at position "
                     rf"{position}\]", console), console

    # The child's thread, unwound in its own registers and memory: in fork, called from
    # main's fork line, where its pid is not assigned yet (the parent's holds the child's
    # pid); a last label frame says it is not running.
    frames = c.body("stackTrace", {"threadId": pid_child})["stackFrames"]
    assert "fork" in frames[0]["name"].lower(), frames
    assert frames[-1]["presentationHint"] == "label", frames
    assert f"process {child} is not running at position {position}" in frames[-1]["name"]
    assert c.body("scopes", {"frameId": frames[-1]["id"]})["scopes"] == []
    in_main = next(f for f in frames if f["name"] == "main")
    assert in_main["line"] == BEFORE_FORK + 2, in_main  # pid = fork();
    child_locals = c.variables(c.scopes(in_main["id"])["Locals"])
    parent_top = c.body("stackTrace", {"threadId": pid_parent})["stackFrames"][0]
    parent_locals = c.variables(c.scopes(parent_top["id"])["Locals"])
    assert parent_locals["pid"]["value"] == str(child), parent_locals["pid"]
    # (x86_64: <optimized out>; aarch64: what the register held, the first child's pid)
    assert child_locals["pid"]["value"] != str(child), child_locals["pid"]
    assert child_locals["st"]["value"] == parent_locals["st"]["value"] == str(5 << 8)
    assert c.evaluate("st", frame_id=in_main["id"])["body"]["result"] == str(5 << 8)
    assert c.evaluate("st + 1", frame_id=in_main["id"])["body"]["result"].startswith(
        f"{(5 << 8) + 1} ")  # (the child's variables in an expression)
    refused = c.request("setVariable", {"variablesReference": c.scopes(in_main["id"])["Locals"],
                                        "name": "st", "value": "1"}, ok=False)
    assert not refused["success"] and "not running" in refused["message"], refused

    # A step asked for the child's thread follows the child: it runs until the child does.
    c.request("next", {"threadId": pid_child})
    stop = c.stopped()
    assert (stop["reason"], stop["threadId"]) == ("step", pid_child), stop
    assert f"[following process {child}" in c.output("console")
    names = [f["name"] for f in c.body("stackTrace", {"threadId": pid_child})["stackFrames"]]
    assert "main" in names, names
    entered = int(stop_position(stop))
    parent_frames = c.body("stackTrace", {"threadId": pid_parent})["stackFrames"]
    assert parent_frames[-1]["presentationHint"] == "label", parent_frames
    assert any(f["name"] == "main" for f in parent_frames), parent_frames

    # A step back asked for the parent's thread: back to where the parent last ran.
    c.request("stepBack", {"threadId": pid_parent})
    stop = c.stopped()
    assert (stop["reason"], stop["threadId"]) == ("step", pid_parent), stop
    assert position < int(stop_position(stop)) < entered
    assert f"[following process {parent}" in c.output("console")

    # After its exec (the same program) the source breakpoint in count_stdin stops it.
    c.request("continue", {"threadId": pid_child})
    stop = c.stopped()
    assert (stop["reason"], stop["threadId"]) == ("breakpoint", pid_child), stop
    top = c.body("stackTrace", {"threadId": pid_child})["stackFrames"][0]
    assert (top["name"], top["line"]) == ("count_stdin", COUNT_LOOP), top
    scopes = {s["name"]: s["variablesReference"]
              for s in c.body("scopes", {"frameId": top["id"]})["scopes"]}
    assert "bytes" in c.variables(scopes["Locals"])

    # Backwards in the child: no hit of its own before, so back to the start of history,
    # before the fork: the child's thread exits.
    c.request("reverseContinue", {"threadId": pid_child})
    stop = c.stopped()
    assert stop["reason"] == "entry", stop
    assert list(_threads(c)) == [pid_parent]
    assert pid_child in _thread_events(c, "exited")
    assert f"[process {child}: not forked yet at position 0]" in c.output("console")
    c.request("disconnect", {})


def test_reverse_across_a_fork_in_the_parent(adapter: Callable[[], Client],
                                             procs_any: Path) -> None:
    procs = procs_any
    parent, child, position = _pipeline_child(procs)
    c = adapter()
    start(c, {"program": str(procs), **LAUNCH_ENV},
          breakpoints={str(PROCS): [{"line": BEFORE_FORK}, {"line": AFTER_FORK}]})
    first = c.stopped()
    c.request("continue", {"threadId": first["threadId"]})
    assert c.stopped()["reason"] == "breakpoint"
    assert len(_threads(c)) == 2
    # stepBack over the fork line: the child is gone again.
    c.request("reverseContinue", {"threadId": 1})
    back = c.stopped()
    assert (back["reason"], c.frames()[0]["line"]) == ("breakpoint", BEFORE_FORK), back
    threads = _threads(c)
    assert list(threads) == [1] and threads[1].startswith(f"pid {parent} / tid {parent} ")
    child_id = _thread_events(c, "started")[-1]
    assert _thread_events(c, "exited")[-1] == child_id
    c.request("continue", {"threadId": 1})
    assert c.stopped()["reason"] == "breakpoint"
    assert _id_of(_threads(c), child) == child_id  # the same DAP id: tids are deterministic
    # Line by line backwards from after the fork to before it.
    for _ in range(4):
        c.request("stepBack", {"threadId": 1})
        assert c.stopped()["reason"] == "step"
        if c.frames()[0]["line"] < AFTER_FORK - 7:
            break
    assert c.frames()[0]["line"] == BEFORE_FORK + 2, c.frames()[0]  # the fork's line
    assert _thread_events(c, "exited").count(child_id) == 2
    c.request("disconnect", {})


def test_launch_follow_exec(adapter: Callable[[], Client], procs: Path) -> None:
    parent, child, _ = _pipeline_child(procs)
    c = adapter()
    start(c, {"program": str(procs), "follow": f"exec:{procs.name}", "stopOnEntry": True,
              **LAUNCH_ENV}, breakpoints={str(PROCS): [{"line": COUNT_LOOP}]})
    entry = c.stopped()
    assert entry["reason"] == "entry"
    threads = _threads(c)
    assert entry["threadId"] == _id_of(threads, child), (entry, threads)
    assert _id_of(threads, parent) in threads
    c.request("continue", {"threadId": entry["threadId"]})
    stop = c.stopped()
    assert (stop["reason"], stop["threadId"]) == ("breakpoint", entry["threadId"])
    assert c.body("stackTrace", {"threadId": stop["threadId"]})["stackFrames"][0]["name"] \
        == "count_stdin"
    c.request("disconnect", {})


def test_launch_follow_pid(adapter: Callable[[], Client], procs: Path) -> None:
    """follow pid:N: the pipeline reader's breakpoint stops (only that child runs it); the
    first process's own line breakpoint does not."""
    parent, child, _ = _pipeline_child(procs)
    c = adapter()
    start(c, {"program": str(procs), "follow": f"pid:{child}", **LAUNCH_ENV},
          breakpoints={str(PROCS): [{"line": AFTER_FORK}, {"line": COUNT_LOOP}]})
    stop = c.stopped()
    threads = _threads(c)
    assert (stop["reason"], stop["threadId"]) == ("breakpoint", _id_of(threads, child)), stop
    top = c.body("stackTrace", {"threadId": stop["threadId"]})["stackFrames"][0]
    assert top["name"] == "count_stdin", top
    c.request("disconnect", {})


@pytest.mark.parametrize("value", ["pid:0", "exec:a/b", "every", "exec:"])
def test_launch_follow_errors(adapter: Callable[[], Client], procs: Path, value: str) -> None:
    c = adapter()
    c.body("initialize", {"adapterID": "syxdbg"})
    resp = c.request("launch", {"program": str(procs), "follow": value}, ok=False)
    assert not resp["success"] and "follow" in resp["message"], resp


SPAWN = r"""
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int status_seen;

int main(void) {
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/busybox", "busybox", "true", (char *)0);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    status_seen = WEXITSTATUS(st);
    printf("child status %d\n", status_seen);
    return 0;
}
"""


def test_a_process_that_execs_another_program(
        adapter: Callable[[], Client], tmp_path: Path,
        require_tool: Callable[[str], str]) -> None:
    """A child execs busybox: the console says so, its stack is its pc in busybox and its
    registers (no source: the adapter has the launched program's debug information only),
    and going back before the exec says that too."""
    import subprocess

    busybox = require_tool("busybox")
    source = tmp_path / "spawn.c"
    source.write_text(SPAWN.replace("/bin/busybox", busybox))
    exe = tmp_path / "spawn"
    subprocess.run(progs.toolchain_for("gcc").command(source, exe), check=True,
                   capture_output=True)
    with syxdbg.open(str(exe), [], env=dict(progs.DEFAULT_ENV)) as s:
        parent = s.current_process
        execed = s.run_to_exec("busybox").position
        child = s.current_process
    c = adapter()
    start(c, {"program": str(exe), "follow": "any", "stopOnEntry": True, **LAUNCH_ENV})
    assert c.stopped()["reason"] == "entry"
    c.request("gotoPosition", {"position": execed - 1})
    assert c.stopped()["reason"] == "goto"
    threads = _threads(c)
    assert len(threads) == 2 and threads[_id_of(threads, child)].endswith(exe.name), threads
    c.request("gotoPosition", {"position": execed})
    stop = c.stopped()
    threads = _threads(c)
    child_id = _id_of(threads, child)
    assert stop["threadId"] == child_id and threads[child_id].endswith(" busybox"), threads
    assert f"[process {child}: execs {busybox} at position {execed}]" in c.output("console")
    frames = c.body("stackTrace", {"threadId": child_id})["stackFrames"]
    assert len(frames) == 1 and frames[0]["name"].endswith(" in busybox"), frames
    assert "source" not in frames[0]
    scopes = c.scopes(frames[0]["id"])
    assert list(scopes) == ["Registers"]
    regs = c.variables(scopes["Registers"])
    assert regs["rip"]["value"].startswith(frames[0]["instructionPointerReference"]), regs
    # The parent (not running, the launched program): its whole stack, in waitpid.
    parent_frames = c.body("stackTrace", {"threadId": _id_of(threads, parent)})
    assert any(f["name"] == "main" for f in parent_frames["stackFrames"]), parent_frames
    c.request("stepBack", {"threadId": child_id, "granularity": "instruction"})
    assert c.stopped()["reason"] == "step"
    assert f"[process {child}: back before its exec: runs {exe.name}" in c.output("console")
    top = c.body("stackTrace", {"threadId": child_id})["stackFrames"][0]
    assert "execve" in top["name"], top
    c.request("disconnect", {})


THREADED = r"""
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static int pipefd[2];

static void *worker(void *arg) {
    char c;
    (void)arg;
    if (read(pipefd[0], &c, 1) != 1)
        return NULL;
    return NULL;
}

int main(void) {
    pthread_t t;
    int st;
    if (pipe(pipefd) != 0 || pthread_create(&t, NULL, worker, NULL) != 0)
        return 1;
    pid_t pid = fork();
    if (pid == 0)
        _exit(3); /* the child */
    waitpid(pid, &st, 0);
    if (write(pipefd[1], "x", 1) != 1)
        return 2;
    pthread_join(t, NULL);
    printf("child status %d\n", WEXITSTATUS(st));
    return 0;
}
"""


def test_threads_of_a_process_that_is_not_running(
        adapter: Callable[[], Client], tmp_path: Path) -> None:
    """A threaded parent forks: stopped in the child (follow any), the parent's two threads
    are listed with what they wait for, and its worker's stack (unwound in the parent's
    memory) is in ``worker``."""
    import subprocess

    source = tmp_path / "forkthreads.c"
    source.write_text(THREADED)
    exe = tmp_path / "forkthreads"
    subprocess.run(progs.toolchain_for("gcc").command(source, exe), check=True,
                   capture_output=True)
    line = next(n for n, text in enumerate(THREADED.splitlines(), 1)
                if "/* the child */" in text)
    c = adapter()
    start(c, {"program": str(exe), "follow": "any", **LAUNCH_ENV},
          breakpoints={str(source): [{"line": line}]})
    stop = c.stopped()
    assert stop["reason"] == "breakpoint", stop
    threads = _threads(c)
    assert len(threads) == 3, threads
    child = next(name for i, name in threads.items() if i == stop["threadId"])
    parent_names = [name for i, name in threads.items() if i != stop["threadId"]]
    pid = int(child.split()[1])
    parent = int(parent_names[0].split()[1])
    assert child == f"pid {pid} / tid {pid} {exe.name}", threads
    assert all(n.startswith(f"pid {parent} / tid ") for n in parent_names), threads
    worker_id = next(i for i, name in threads.items()
                     if name.startswith(f"pid {parent} / ") and f"tid {parent} " not in name)
    assert "read of an empty pipe" in threads[worker_id], threads
    frames = c.body("stackTrace", {"threadId": worker_id})["stackFrames"]
    assert any(f["name"] == "worker" for f in frames), frames
    assert frames[-1]["presentationHint"] == "label"
    c.request("continue", {"threadId": stop["threadId"]})
    assert c.stopped()["reason"] == "exited"
    c.request("disconnect", {})


def test_output_of_every_process_over_stdio(procs: Path, tmp_path: Path) -> None:
    """A real ``python -m syxdbg dap``: what every process of procs.c prints (the parent,
    its children, the exec'd pipeline reader) arrives as output events, in the program's
    order, as a native run prints it."""
    import subprocess
    import sys

    from dapclient import Client

    native = progs.native_run(procs, argv0=str(procs))
    assert native.status == 0, native.describe()
    proc = subprocess.Popen([sys.executable, "-m", "syxdbg", "dap"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    assert proc.stdin is not None and proc.stdout is not None
    c = Client(proc.stdout, proc.stdin)
    try:
        start(c, {"program": str(procs), "stopAtExit": False, **LAUNCH_ENV})
        assert c.wait_event("exited", 300)["body"]["exitCode"] == 0
        c.wait_event("terminated")
        assert c.output("stdout") == native.stdout.decode()
        assert "count: " in c.output("stdout")  # the exec'd child's line
        c.request("disconnect", {})
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        c.close()
    assert not c.schema_errors, c.schema_errors
