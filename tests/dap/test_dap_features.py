"""More of the DAP: conditions, hit counts and log points, function breakpoints, -O0
variables, pause of a looping program, faults as exceptions, a recording replayed, goto
targets, restart, and the stdio and TCP transports of a real ``python -m syxdbg dap``."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import progs
import pytest
from conftest import line_of, start
from dapclient import Client

from syxdbg.dap import CAPABILITIES

SYXDBG = [sys.executable, "-m", "syxdbg"]
LAUNCH_ENV = {"env": {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}, "clearEnv": True}


def test_capabilities_are_exactly_what_is_implemented(adapter: Callable[[], Client]) -> None:
    c = adapter()
    caps = c.body("initialize", {"adapterID": "syxdbg"})
    assert caps == CAPABILITIES
    assert caps["supportsStepBack"] and caps["supportsDataBreakpoints"]
    c.wait_event("initialized")


def test_conditions_hit_counts_log_points(adapter: Callable[[], Client],
                                         build_program: Callable[..., Path]) -> None:
    exe = build_program("corrupt")
    c = adapter()
    apply_line = line_of("corrupt", "ledger.balance += amount;")
    start(c, {"program": str(exe), **LAUNCH_ENV},
          breakpoints={"corrupt.c": [{"line": apply_line, "logMessage": "tx {amount}"}]},
          functions=[{"name": "record_history", "condition": "amount == 777"},
                     {"name": "audit", "hitCondition": "5"}])
    stop = c.stopped()
    assert stop["reason"] == "function breakpoint"
    top = c.frames()[0]
    assert top["name"] == "audit"
    assert c.evaluate("amount", frame_id=top["id"])["body"]["result"] == "-600"  # 5th tx
    c.request("continue", {"threadId": 1})
    stop = c.stopped()
    assert stop["reason"] == "function breakpoint"
    top = c.frames()[0]
    assert top["name"] == "record_history"
    assert c.evaluate("amount", frame_id=top["id"])["body"]["result"] == "777"
    assert c.evaluate("ledger.history_pos")["body"]["result"] == "16"
    assert c.evaluate("ledger.history_pos == 16 && amount > 700",
                      frame_id=top["id"])["body"]["result"].startswith("1 ")
    logged = re.findall(r"tx (-?\d+)", c.output("console"))
    assert logged[:5] == ["120", "-45", "510", "300", "-600"]
    assert len(logged) == 40  # every transaction logged, none stopped
    # Breakpoints can go after launch too; one that matches no code is not verified.
    bad = c.body("setFunctionBreakpoints", {"breakpoints": [{"name": "no_such_function"}]})
    assert bad["breakpoints"][0]["verified"] is False
    assert "no_such_function" in bad["breakpoints"][0]["message"]
    c.request("continue", {"threadId": 1})
    assert c.stopped()["reason"] == "exited"


def O0(arch: str) -> progs.Toolchain:  # noqa: N802
    base = progs.TOOLCHAINS[arch]
    return progs.Toolchain(f"{arch}-O0", base.cc, base.arch, ("-static", "-O0", "-g", "-Wall"))


@pytest.mark.parametrize("arch", ["gcc", "aarch64"])
def test_variables_at_O0(adapter: Callable[[], Client], require_tool: Callable[[str], str],
                         arch: str) -> None:
    """-O0: DW_OP_fbreg against DW_AT_frame_base DW_OP_call_frame_cfa, in the innermost
    frame and in callers."""
    require_tool(progs.TOOLCHAINS[arch].cc)
    exe = progs.build("corrupt", O0(arch))
    c = adapter()
    wrap = line_of("corrupt", "ledger.history_pos = pos;")
    start(c, {"program": str(exe), **LAUNCH_ENV},
          breakpoints={"corrupt.c": [{"line": wrap}]})
    assert c.stopped()["reason"] == "breakpoint"
    frames = c.frames()
    assert [f["name"] for f in frames[:3]] == ["record_history", "audit",
                                               "apply_transaction"]
    local = c.variables(c.scopes(frames[0]["id"])["Locals"])
    assert local["pos"]["value"] == "1"
    assert "memoryReference" in local["pos"]  # on the stack
    args = c.variables(c.scopes(frames[0]["id"])["Arguments"])
    assert args["amount"]["value"] == "510"
    batch = next(f for f in frames if f["name"] == "process_batch")
    bargs = c.variables(c.scopes(batch["id"])["Arguments"])
    assert bargs["n"]["value"] == "8"
    assert bargs["batch"]["type"] == "const int64_t *"
    pointee = c.variables(bargs["batch"]["variablesReference"])
    assert pointee["*batch"]["value"] == "120"
    blocal = c.variables(c.scopes(batch["id"])["Locals"])
    assert blocal["i"]["value"] == "2"
    assert c.evaluate("batch[2]", frame_id=batch["id"])["body"]["result"] == "510"
    assert c.evaluate("*batch", frame_id=batch["id"])["body"]["result"] == "120"
    main = next(f for f in frames if f["name"] == "main")
    margs = c.variables(c.scopes(main["id"])["Arguments"])
    assert margs["argc"]["value"] == "1"
    argv = c.variables(margs["argv"]["variablesReference"])
    assert argv["*argv"]["value"].endswith(f'{exe.name}"')


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_pause_a_looping_program(adapter: Callable[[], Client],
                                 build_program: Callable[..., Path], toolchain: str) -> None:
    exe = build_program("spin", toolchain)
    # Checkpoints every 50k instructions: the reverse search below re-executes at most
    # that much with a watchpoint.
    c = adapter({"timeline.interval": 50_000})
    start(c, {"program": str(exe), **LAUNCH_ENV})
    time.sleep(1.0)
    assert not c.events("stopped")
    c.request("pause", {"threadId": 1})
    stop = c.stopped()
    assert stop["reason"] == "pause"
    top = c.frames()[0]
    assert top["name"] == "main" and top["source"]["path"].endswith("spin.c")
    n = int(c.evaluate("n", frame_id=top["id"])["body"]["result"])
    assert n > 1000
    # The second of running showed progress (the position reached), ended at the stop.
    assert c.events("progressStart") and c.events("progressUpdate")
    assert c.events("progressEnd")[0]["body"]["progressId"] == \
        c.events("progressStart")[0]["body"]["progressId"]
    # A data breakpoint on the local n (on the stack): reverse-continue finds the last
    # write of n before now, one iteration back.
    info = c.body("dataBreakpointInfo", {"name": "n", "frameId": top["id"]})
    assert info["dataId"], info
    c.request("setDataBreakpoints", {"breakpoints": [{"dataId": info["dataId"],
                                                      "accessType": "write"}]})
    c.request("reverseContinue", {"threadId": 1})
    assert c.stopped()["reason"] == "data breakpoint"
    assert int(c.evaluate("n")["body"]["result"]) in (n - 1, n)
    c.request("setDataBreakpoints", {"breakpoints": []})
    # Unreadable memory is reported as such.
    mem = c.body("readMemory", {"memoryReference": "0x10", "count": 16})
    assert mem["unreadableBytes"] == 16 and "data" not in mem
    # Back in time from there, and forward again: the loop runs on until paused.
    c.request("stepBack", {"threadId": 1})
    c.stopped()
    c.request("continue", {"threadId": 1})
    time.sleep(0.3)
    c.request("pause", {"threadId": 1})
    assert c.stopped()["reason"] == "pause"
    assert int(c.evaluate("n")["body"]["result"]) > n


@pytest.mark.parametrize("arch", ["gcc", "aarch64"])
def test_fault_is_an_exception_stop(adapter: Callable[[], Client],
                                    build_program: Callable[..., Path], arch: str) -> None:
    exe = build_program("segv", arch)
    c = adapter()
    start(c, {"program": str(exe), "args": ["null"], **LAUNCH_ENV})
    stop = c.stopped()
    assert stop["reason"] == "exception" and stop["text"] == "SIGSEGV"
    assert "SIGSEGV" in stop["description"]
    info = c.body("exceptionInfo", {"threadId": 1})
    assert info["exceptionId"] == "SIGSEGV" and info["breakMode"] == "always"
    assert c.frames()[0]["name"] == "main"
    c.request("continue", {"threadId": 1})
    assert c.wait_event("exited")["body"]["exitCode"] == 128 + 11
    c.wait_event("terminated")


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_replay_a_recording(adapter: Callable[[], Client], build_program: Callable[..., Path],
                            tmp_path: Path, toolchain: str) -> None:
    exe = build_program("corrupt", toolchain)
    rec = tmp_path / "corrupt.syxrec"
    done = subprocess.run([*SYXDBG, "record", "-o", str(rec), "--clear-env", str(exe)],
                          capture_output=True, timeout=600)
    assert done.returncode == 1, done.stderr
    c = adapter()
    start(c, {"recording": str(rec), "stopOnEntry": True})
    assert c.stopped()["reason"] == "entry"
    record = line_of("corrupt", "ledger.history[pos] = amount;")
    targets = c.body("gotoTargets", {"source": {"path": "corrupt.c"}, "line": record})
    forward = next(t for t in targets["targets"] if t["label"].startswith("Run forward"))
    c.request("goto", {"threadId": 1, "targetId": forward["id"]})
    assert c.stopped()["reason"] == "goto"
    top = c.frames()[0]
    assert top["name"] == "record_history" and top["line"] == record
    assert c.evaluate("amount", frame_id=top["id"])["body"]["result"] == "510"
    # To the end of the recording, then back to the corrupting store.
    c.request("continue", {"threadId": 1})
    assert c.stopped()["reason"] == "end of history"
    info = c.body("dataBreakpointInfo", {"name": "ledger.balance"})
    c.request("setDataBreakpoints", {"breakpoints": [{"dataId": info["dataId"]}]})
    c.request("reverseContinue", {"threadId": 1})
    assert c.stopped()["reason"] == "data breakpoint"
    assert c.frames()[0]["name"] == "record_history"
    assert c.evaluate("amount", frame_id=c.frames()[0]["id"])["body"]["result"] == "777"
    # A recording is read-only.
    write = c.request("writeMemory", {"memoryReference": "0x0", "data": "AA=="}, ok=False)
    assert not write["success"]
    # The custom gotoPosition request, and restart (back to the origin: stopOnEntry).
    pos = c.body("gotoPosition", {"position": "1000"})
    assert pos["position"] == 1000
    c.stopped()
    c.request("restart", {})
    assert c.stopped()["reason"] == "entry"
    assert c.frames()[0]["name"] == "_start"
    sources = c.body("loadedSources")["sources"]
    assert any(s["path"].endswith("corrupt.c") for s in sources)


class _Tee:
    """A binary reader that keeps every byte it hands out."""

    def __init__(self, inner) -> None:  # noqa: ANN001
        self.inner = inner
        self.data = bytearray()

    def readline(self, limit: int = -1) -> bytes:
        got = self.inner.readline(limit)
        self.data += got
        return got

    def read(self, n: int = -1) -> bytes:
        got = self.inner.read(n)
        self.data += got
        return got


def _frames(data: bytes) -> list[dict]:
    """The DAP messages in a byte stream (strict framing)."""
    import json

    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, data[:200]
        assert head.startswith(b"Content-Length: "), head
        n = int(head.split(b":")[1])
        out.append(json.loads(rest[:n]))
        data = rest[n:]
    return out


def test_stdio_subprocess_guest_output_and_stdin(build_program: Callable[..., Path],
                                                 tmp_path: Path) -> None:
    """A real ``python -m syxdbg dap`` over its stdin/stdout: the guest's output comes as
    output events (never inside the protocol stream), its stdin from the launch file."""
    from dapclient import Client

    exe = build_program("readstdin")
    feed = tmp_path / "input.txt"
    feed.write_text("hello dap\nsecond line\n")
    proc = subprocess.Popen([*SYXDBG, "dap"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=tmp_path)
    assert proc.stdin is not None and proc.stdout is not None
    tee = _Tee(proc.stdout)
    c = Client(tee, proc.stdin)  # type: ignore[arg-type]
    try:
        start(c, {"program": str(exe), "stdin": str(feed), "stopAtExit": False,
                  **LAUNCH_ENV})
        assert c.wait_event("exited")["body"]["exitCode"] == 0
        c.wait_event("terminated")
        out = c.output("stdout")
        assert "HELLO DAP\nSECOND LINE\n" in out
        assert "lines=2 words=4 bytes=22" in out
        c.request("disconnect", {})
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        c.close()
    assert not c.schema_errors, c.schema_errors
    # Every byte on stdout was a DAP message (strict framing, nothing between messages).
    assert _frames(bytes(tee.data)) == c.messages


def test_tcp_port_zero(build_program: Callable[..., Path]) -> None:
    from dapclient import Client

    exe = build_program("hello")
    proc = subprocess.Popen([*SYXDBG, "dap", "--port", "0"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    try:
        line = proc.stderr.readline()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert m, line
        sock = socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=60)
        c = Client(sock.makefile("rb", buffering=0), sock.makefile("wb"))
        start(c, {"program": str(exe), "args": ["one"], **LAUNCH_ENV})
        assert c.stopped()["reason"] == "exited"
        assert "argv[1]=one" in c.output("stdout")
        assert "hello: to stderr" in c.output("stderr")
        c.request("continue", {"threadId": 1})
        assert c.wait_event("exited")["body"]["exitCode"] == 3
        c.request("disconnect", {})
        assert proc.wait(60) == 0
        sock.close()
        c.close()
        assert not c.schema_errors, c.schema_errors
    finally:
        if proc.poll() is None:
            proc.kill()
    assert os.path.exists(exe)


def test_breakpoint_set_while_running_stops_the_loop(adapter: Callable[[], Client],
                                                     build_program: Callable[..., Path]
                                                     ) -> None:
    """A breakpoint added while the program runs takes effect at once (the continue is
    interrupted, the breakpoint applied, and it goes on), as in gdb."""
    exe = build_program("spin")
    c = adapter()
    start(c, {"program": str(exe), **LAUNCH_ENV})
    time.sleep(0.5)
    body = c.body("setBreakpoints", {"source": {"path": "spin.c"},
                                     "breakpoints": [{"line": line_of("spin", "n++;")}]})
    assert body["breakpoints"][0]["verified"]
    stop = c.stopped()
    assert stop["reason"] == "breakpoint", stop
    assert stop["hitBreakpointIds"] == [body["breakpoints"][0]["id"]]
    assert c.frames()[0]["line"] == line_of("spin", "n++;")
    assert c.body("threads")["threads"] == [{"id": 1, "name": exe.name}]
    # terminate ends the session.
    c.request("terminate", {})
    c.wait_event("terminated")


def test_write_memory_changes_the_program(adapter: Callable[[], Client],
                                          build_program: Callable[..., Path]) -> None:
    """Fix the bug by hand before it happens: at the 17th large transaction, reset the
    ring buffer's position; the program then ends with status 0 ("ledger ok")."""
    import base64

    exe = build_program("corrupt")
    c = adapter()
    start(c, {"program": str(exe), **LAUNCH_ENV},
          functions=[{"name": "record_history", "condition": "amount == 777"}])
    assert c.stopped()["reason"] == "function breakpoint"
    assert c.evaluate("ledger.history_pos")["body"]["result"] == "16"
    pos = c.evaluate("&ledger.history_pos")["body"]["result"].split()[0]
    wrote = c.body("writeMemory", {"memoryReference": pos,
                                   "data": base64.b64encode(bytes(8)).decode()})
    assert wrote["bytesWritten"] == 8
    assert c.evaluate("ledger.history_pos")["body"]["result"] == "0"
    c.request("setFunctionBreakpoints", {"breakpoints": []})
    c.request("continue", {"threadId": 1})
    assert c.stopped()["reason"] == "exited"
    c.request("continue", {"threadId": 1})
    assert c.wait_event("exited")["body"]["exitCode"] == 0


def test_the_schema_check_catches_bad_messages() -> None:
    """The validator the client runs on every message is the real schema: it refuses a
    stopped event without a reason and a response without its body."""
    from dapclient import validate

    assert validate({"seq": 1, "type": "event", "event": "stopped", "body": {}})
    assert validate({"seq": 2, "type": "response", "request_seq": 1, "success": True,
                     "command": "stackTrace"})
    assert not validate({"seq": 3, "type": "event", "event": "stopped",
                         "body": {"reason": "step", "threadId": 1}})


def test_launch_errors_and_moved_breakpoints(adapter: Callable[[], Client],
                                             build_program: Callable[..., Path],
                                             tmp_path: Path) -> None:
    c = adapter()
    c.body("initialize", {"adapterID": "syxdbg"})
    bad = c.request("launch", {"program": str(tmp_path / "missing")}, ok=False)
    assert not bad["success"] and "missing" in bad["message"]
    none = c.request("launch", {}, ok=False)
    assert "program" in none["message"]
    # A breakpoint requested before launch is pending, then verified by a breakpoint event.
    exe = build_program("corrupt")
    comment = line_of("corrupt", "/* Batches of 8: the corrupting store happens")
    pending = c.body("setBreakpoints", {"source": {"path": "corrupt.c"},
                                        "breakpoints": [{"line": comment}]})["breakpoints"]
    assert pending[0]["verified"] is False
    c.request("launch", {"program": str(exe), **LAUNCH_ENV})
    changed = c.wait_event("breakpoint")["body"]["breakpoint"]
    assert changed["id"] == pending[0]["id"] and changed["verified"]
    assert changed["line"] > comment  # moved to the next line with code
    c.request("configurationDone")
    assert c.stopped()["reason"] == "breakpoint"
    assert c.frames()[0]["line"] == changed["line"]


def test_optimised_O2_variables_render(adapter: Callable[[], Client],
                                       require_tool: Callable[[str], str]) -> None:
    """-O2 code (inlining, location lists, entry values): every variable of every frame
    renders as a value, <optimized out> or <unavailable>, never an error."""
    require_tool("gcc")
    base = progs.TOOLCHAINS["gcc"]
    exe = progs.build("corrupt", progs.Toolchain("gcc-O2", base.cc, base.arch,
                                                 ("-static", "-O2", "-g", "-Wall")))
    c = adapter()
    start(c, {"program": str(exe), **LAUNCH_ENV},
          functions=[{"name": "record_history", "condition": "ledger.history_pos == 16"}])
    assert c.stopped()["reason"] == "function breakpoint"
    frames = c.frames()
    assert frames[0]["name"] == "record_history"
    seen = 0
    for f in frames:
        if "source" not in f:
            continue
        for name, ref in c.scopes(f["id"]).items():
            if name == "Globals":
                continue
            for v in c.variables(ref).values():
                seen += 1
                assert v["value"] and not v["value"].startswith("<internal"), v
    assert seen >= 3
    assert c.evaluate("ledger.history_pos")["body"]["result"] == "16"


@pytest.mark.parametrize("toolchain", ["gcc-dyn", "aarch64-dyn", "gcc-pie"])
def test_dynamic_and_pie_programs(adapter: Callable[[], Client],
                                  build_program: Callable[..., Path], toolchain: str) -> None:
    """PIE and dynamically linked programs: DWARF addresses are relocated by the load bias
    (breakpoints, frames, globals through DW_OP_addr); aarch64 libraries from a sysroot."""
    exe = build_program("corrupt", toolchain)
    launch = {"program": str(exe), **LAUNCH_ENV}
    if toolchain == "aarch64-dyn":
        launch["sysroot"] = progs.QEMU_SYSROOTS["aarch64"]
        launch["arch"] = "aarch64"
    c = adapter()
    start(c, launch, functions=[{"name": "record_history", "condition": "amount == 777"}])
    assert c.stopped()["reason"] == "function breakpoint"
    frames = c.frames()
    assert [f["name"] for f in frames[:6]] == ["record_history", "audit", "apply_transaction",
                                               "process_batch", "run_day", "main"]
    glob = c.variables(c.scopes(frames[0]["id"])["Globals"])
    ledger = c.variables(glob["ledger"]["variablesReference"])
    assert ledger["history_pos"]["value"] == "16"
    assert ledger["large_count"]["value"] == "17"


def test_wrong_arch_is_refused(adapter: Callable[[], Client],
                               build_program: Callable[..., Path]) -> None:
    c = adapter()
    c.body("initialize", {"adapterID": "syxdbg"})
    bad = c.request("launch", {"program": str(build_program("corrupt")), "arch": "aarch64"},
                    ok=False)
    assert "not aarch64" in bad["message"]


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_set_variable(adapter: Callable[[], Client], build_program: Callable[..., Path],
                      toolchain: str) -> None:
    """setVariable on a parameter in a register, a struct member in memory and a register:
    the store then writes the new amount at the new position, and the program ends well."""
    exe = build_program("corrupt", toolchain)
    c = adapter()
    start(c, {"program": str(exe), **LAUNCH_ENV},
          functions=[{"name": "record_history", "condition": "amount == 777"}])
    assert c.stopped()["reason"] == "function breakpoint"
    top = c.frames()[0]
    scopes = c.scopes(top["id"])
    got = c.body("setVariable", {"variablesReference": scopes["Arguments"], "name": "amount",
                                 "value": "5"})
    assert got["value"] == "5"
    glob = c.variables(scopes["Globals"])
    ref = glob["ledger"]["variablesReference"]
    got = c.body("setVariable", {"variablesReference": ref, "name": "history_pos",
                                 "value": "ledger.history_pos - 16"})
    assert got["value"] == "0"
    assert c.evaluate("ledger.history_pos")["body"]["result"] == "0"
    bad = c.request("setVariable", {"variablesReference": ref, "name": "history",
                                    "value": "1"}, ok=False)
    assert not bad["success"]
    reg = "r11" if toolchain == "gcc" else "x9"
    got = c.body("setVariable", {"variablesReference": scopes["Registers"], "name": reg,
                                 "value": "0x1234"})
    assert got["value"] == "0x1234"
    c.request("setFunctionBreakpoints", {"breakpoints": []})
    store = line_of("corrupt", "ledger.history[pos] = amount;")
    while c.frames()[0]["line"] <= store:
        c.request("next", {"threadId": 1})
        assert c.stopped()["reason"] == "step"
    assert c.evaluate("ledger.history[0]")["body"]["result"] == "5"
    c.request("continue", {"threadId": 1})
    assert c.stopped()["reason"] == "exited"
    c.request("continue", {"threadId": 1})
    assert c.wait_event("exited")["body"]["exitCode"] == 0


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_inlined_function_is_a_frame(adapter: Callable[[], Client],
                                     build_program: Callable[..., Path], toolchain: str
                                     ) -> None:
    """sortalloc's check_fill is inlined into heap_churn at -O1: it is a frame of its own
    (its parameters, at the pc's line), and heap_churn's frame is at the call's line. The
    location lists use DW_OP_bra and comparisons (keep = min(size, n))."""
    exe = build_program("sortalloc", toolchain)
    c = adapter()
    start(c, {"program": str(exe), **LAUNCH_ENV},
          breakpoints={"sortalloc.c": [{"line": line_of("sortalloc", "if (p[i] != v)")}]})
    assert c.stopped()["reason"] == "breakpoint"
    frames = c.frames()
    assert [f["name"] for f in frames[:3]] == ["check_fill", "heap_churn", "main"]
    assert frames[0]["line"] == line_of("sortalloc", "if (p[i] != v)")
    assert frames[1]["line"] == line_of("sortalloc", "if (keep && check_fill(p, keep")
    assert frames[0]["instructionPointerReference"] == frames[1]["instructionPointerReference"]
    inner = c.variables(c.scopes(frames[0]["id"])["Arguments"])
    assert set(inner) == {"p", "n", "v"}
    outer = c.variables(c.scopes(frames[1]["id"])["Locals"])
    assert "keep" in outer and "round" in outer and "p" not in c.variables(
        c.scopes(frames[1]["id"])["Arguments"])
    assert inner["n"]["value"] == outer["keep"]["value"] != "<optimized out>"
    assert inner["p"]["value"].split()[0] == outer["p"]["value"].split()[0]
    s = int(outer["s"]["value"])
    size = int(c.evaluate(f"size[{s}]", frame_id=frames[1]["id"])["body"]["result"])
    assert int(inner["v"]["value"].split()[0]) == (s + size) & 0xFF
    assert c.evaluate("p[i]", frame_id=frames[0]["id"])["body"]["result"] == \
        inner["v"]["value"]


def test_stop_on_entry_then_steps_without_line_information(adapter: Callable[[], Client],
                                                           build_program: Callable[..., Path]
                                                           ) -> None:
    """At _start (no DWARF lines) next/stepIn/stepBack step instructions; stepping back
    from the first instruction reports the beginning of history."""
    exe = build_program("corrupt")
    c = adapter()
    start(c, {"program": str(exe), "stopOnEntry": True, **LAUNCH_ENV})
    assert c.stopped()["reason"] == "entry"
    entry = c.frames()[0]
    assert entry["name"] == "_start" and "source" not in entry
    c.request("next", {"threadId": 1})
    assert c.stopped()["reason"] == "step"
    assert c.frames()[0]["instructionPointerReference"] != entry["instructionPointerReference"]
    c.request("stepBack", {"threadId": 1})
    assert c.stopped()["reason"] == "step"
    assert c.frames()[0]["instructionPointerReference"] == entry["instructionPointerReference"]
    c.request("stepBack", {"threadId": 1})
    assert c.stopped()["reason"] == "entry"  # the beginning of history
    c.request("reverseContinue", {"threadId": 1})
    assert c.stopped()["reason"] == "entry"
    # A motion that cannot run says why (and the program stays where it is).
    c.request("stepOut", {"threadId": 1})
    stop = c.stopped()
    assert stop["description"].startswith("error: cannot find the caller"), stop
    assert "error: cannot find the caller" in c.output("console")
    assert c.frames()[0]["instructionPointerReference"] == entry["instructionPointerReference"]


def test_restart_with_new_arguments_reloads(adapter: Callable[[], Client],
                                            build_program: Callable[..., Path]) -> None:
    """restart with a changed configuration loads the program again, with the same
    breakpoints; without a change it goes back to the origin (history kept)."""
    exe = build_program("corrupt")
    c = adapter()
    launch = {"program": str(exe), **LAUNCH_ENV}
    start(c, launch, functions=[{"name": "record_history", "condition": "amount == 777"}],
          breakpoints={"corrupt.c": [{"line": line_of("corrupt", "run_day();")}]})
    assert c.stopped()["reason"] == "breakpoint"  # run_day() in main
    c.request("continue", {"threadId": 1})
    assert c.stopped()["reason"] == "function breakpoint"
    c.request("restart", {"arguments": launch})  # unchanged: back to the origin, run
    assert c.stopped()["reason"] == "breakpoint"
    assert c.frames()[0]["name"] == "main"
    c.request("restart", {"arguments": {**launch, "args": ["--fixed"]}})
    assert c.stopped()["reason"] == "breakpoint"
    c.request("continue", {"threadId": 1})
    assert c.stopped()["reason"] == "function breakpoint"
    assert c.evaluate("ledger.history_pos")["body"]["result"] == "0"  # --fixed wrapped it
    c.request("setFunctionBreakpoints", {"breakpoints": []})
    c.request("setBreakpoints", {"source": {"path": "corrupt.c"}, "breakpoints": []})
    c.request("continue", {"threadId": 1})
    assert c.stopped()["reason"] == "exited"
    c.request("continue", {"threadId": 1})
    assert c.wait_event("exited")["body"]["exitCode"] == 0


def test_next_passes_a_false_condition_inside_the_call(adapter: Callable[[], Client],
                                                       build_program: Callable[..., Path]
                                                       ) -> None:
    """next over run_day() runs 40 transactions through a conditional breakpoint whose
    condition is never true, and a hit count not reached: it stops on main's next line."""
    exe = build_program("corrupt")
    c = adapter()
    call = line_of("corrupt", "run_day();")
    start(c, {"program": str(exe), **LAUNCH_ENV},
          breakpoints={"corrupt.c": [{"line": call}]},
          functions=[{"name": "record_history", "condition": "amount == 12345"},
                     {"name": "audit", "hitCondition": "> 100"}])
    assert c.stopped()["reason"] == "breakpoint"
    c.request("next", {"threadId": 1})
    assert c.stopped()["reason"] == "step"
    top = c.frames()[0]
    assert top["name"] == "main" and top["line"] > call
    assert c.evaluate("ledger.tx_count")["body"]["result"] == "40"


@pytest.mark.parametrize("program", [p for p in progs.PROGRAMS if p != "segv"])
def test_every_program_steps_and_renders(adapter: Callable[[], Client],
                                         build_program: Callable[..., Path],
                                         program: str) -> None:
    """Each of the suite's programs: break at main, step a few lines, and at every stop
    every scope of every frame renders (and one level of children), schema-valid."""
    exe = build_program(program)
    c = adapter()
    start(c, {"program": str(exe), "args": ["3"] if program == "loop" else [],
              **LAUNCH_ENV}, functions=[{"name": "main"}])
    assert c.stopped()["reason"] == "function breakpoint"
    for _ in range(3):  # (sortalloc's 4th line runs a billion instructions)
        frames = c.frames()
        for f in frames[:4]:
            for ref in c.scopes(f["id"]).values():
                for v in c.variables(ref).values():
                    assert v["value"], v
                    if v["variablesReference"]:
                        c.variables(v["variablesReference"], start=0, count=4)
        c.request("next", {"threadId": 1})
        if c.stopped()["reason"] != "step":
            break
    assert not [m for m in c.messages if m.get("type") == "response"
                and not m.get("success")]


@pytest.mark.parametrize("toolchain", ["gcc", "aarch64"])
def test_floats_in_vector_registers(adapter: Callable[[], Client],
                                    build_program: Callable[..., Path], toolchain: str
                                    ) -> None:
    """fpsimd's scalar_part (inlined into main) keeps its doubles and floats in SSE /
    SIMD registers (DWARF 17.. on x86_64, 64.. on aarch64)."""
    exe = build_program("fpsimd", toolchain)
    c = adapter()
    line = line_of("fpsimd", "fmod       = ")
    start(c, {"program": str(exe), **LAUNCH_ENV},
          breakpoints={"fpsimd.c": [{"line": line}]})
    assert c.stopped()["reason"] == "breakpoint"
    frames = c.frames()
    assert frames[0]["name"] == "scalar_part" and frames[1]["name"] == "main"
    local = c.variables(c.scopes(frames[0]["id"])["Locals"])
    assert local["d"]["value"] == "3.0" and local["d"]["type"] == "double"
    assert "memoryReference" not in local["d"]  # in a register, not on the stack
    assert not c.evaluate("d * 2", frame_id=frames[0]["id"], ok=False)["success"]
    glob = c.variables(c.scopes(frames[0]["id"])["Globals"])
    fin = c.variables(glob["fin"]["variablesReference"])
    assert [v["value"] for v in fin.values()] == ["1.5", "-2.25", "3", "0.100000001"]
    vin = c.variables(glob["vin"]["variablesReference"], filter="indexed", start=5, count=1)
    assert vin["[5]"]["value"] == "-7.25"


def test_no_debug_runs_to_the_end(adapter: Callable[[], Client],
                                  build_program: Callable[..., Path]) -> None:
    """VS Code's Run Without Debugging (noDebug): breakpoints are not set, the program runs
    to its end and the session ends."""
    exe = build_program("corrupt")
    c = adapter()
    c.body("initialize", {"adapterID": "syxdbg"})
    c.request("launch", {"program": str(exe), "noDebug": True, **LAUNCH_ENV})
    bps = c.body("setFunctionBreakpoints", {"breakpoints": [{"name": "main"}]})
    assert bps["breakpoints"][0]["verified"] is False
    c.request("configurationDone")
    assert c.wait_event("exited")["body"]["exitCode"] == 1
    c.wait_event("terminated")
    assert not c.events("stopped")


def test_console_completions(adapter: Callable[[], Client],
                             build_program: Callable[..., Path]) -> None:
    exe = build_program("corrupt")
    c = adapter()
    start(c, {"program": str(exe), **LAUNCH_ENV},
          functions=[{"name": "record_history"}])
    c.stopped()
    fid = c.frames()[0]["id"]

    def labels(text: str) -> set[str]:
        body = c.body("completions", {"text": text, "column": len(text) + 1, "frameId": fid})
        return {t["label"] for t in body["targets"]}

    assert {"last-write", "info"} <= labels("")
    assert "last-write" in labels("last")
    assert labels("last-write led") == {"ledger"}
    assert "amount" in labels("am")
    assert "$rip" in labels("print $ri")
    assert "record_history" in labels("break record_h")
