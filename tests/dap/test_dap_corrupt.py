"""The corrupt program through the DAP: line breakpoints, stack, scopes and variables,
next / stepIn / stepOut / stepBack, reverseContinue to a data breakpoint, evaluate (the
shell's last-write in the REPL), disassemble, readMemory, on both architectures."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import line_of, start
from dapclient import Client

ARCHES = ["gcc", "aarch64"]

CALL_CHAIN = ["record_history", "audit", "apply_transaction", "process_batch", "run_day",
              "main"]


@pytest.mark.parametrize("toolchain", ARCHES)
def test_breakpoint_stack_variables_steps(adapter: Callable[[], Client],
                                          build_program: Callable[..., Path],
                                          toolchain: str) -> None:
    exe = build_program("corrupt", toolchain)
    c = adapter()
    store = line_of("corrupt", "ledger.history[pos] = amount;")
    caps = start(c, {"program": str(exe), "env": {}, "clearEnv": True},
                 breakpoints={"corrupt.c": [{"line": store}]})
    assert caps["supportsStepBack"] and caps["supportsDataBreakpoints"]
    stop = c.stopped()
    assert stop["reason"] == "breakpoint" and stop["hitBreakpointIds"]
    frames = c.frames()
    names = [f["name"] for f in frames]
    assert names[:6] == CALL_CHAIN, names
    top = frames[0]
    assert top["source"]["path"].endswith("corrupt.c")
    assert top["line"] in (store, store - 1)  # the function's first line or the store
    # Scopes: the parameter, and the globals with real values.
    scopes = c.scopes(top["id"])
    assert set(scopes) == {"Arguments", "Locals", "Globals", "Registers"}
    args = c.variables(scopes["Arguments"])
    assert args["amount"]["value"] == "510"  # the first large amount
    assert args["amount"]["type"] == "int64_t"
    glob = c.variables(scopes["Globals"])
    assert set(glob) >= {"ledger", "fixed_mode", "amounts"}
    ledger = c.variables(glob["ledger"]["variablesReference"])
    assert ledger["balance"]["value"] == str(120 - 45 + 510)
    assert ledger["tx_count"]["value"] == "3"
    assert ledger["large_count"]["value"] == "1"
    history = c.variables(ledger["history"]["variablesReference"])
    assert len(history) == 16 and history["[0]"]["value"] == "0"
    amounts = c.variables(glob["amounts"]["variablesReference"], filter="indexed", start=2,
                          count=3)
    assert [v["value"] for v in amounts.values()] == ["510", "300", "-600"]
    regs = c.variables(scopes["Registers"])
    pc = "rip" if toolchain == "gcc" else "pc"
    assert int(regs[pc]["value"].split()[0], 16) == int(top["instructionPointerReference"],
                                                        16)
    # Callers' values the optimiser left only as DW_OP_entry_value come from the call
    # sites, as in gdb: process_batch's batch and i (kept as a pointer into it).
    batch = frames[3]
    bargs = c.variables(c.scopes(batch["id"])["Arguments"])
    assert bargs["batch"]["value"].startswith("0x"), bargs
    assert c.variables(c.scopes(batch["id"])["Locals"])["i"]["value"] == "2"
    assert c.evaluate("batch[i]", frame_id=batch["id"])["body"]["result"] == "510"
    # ... and where no call site says, optimized out (apply_transaction's amount).
    assert "optimized out" in c.variables(c.scopes(frames[2]["id"])["Arguments"])[
        "amount"]["value"]
    # A caller's frame knows only the registers its callee preserves.
    caller_regs = c.variables(c.scopes(frames[2]["id"])["Registers"])
    scratch, saved = ("rdi", "rbx") if toolchain == "gcc" else ("x0", "x19")
    assert scratch not in caller_regs and saved in caller_regs
    # A caller's frame: process_batch's loop over the batch.
    caller = c.variables(c.scopes(frames[4]["id"])["Locals"])  # run_day
    assert caller["i"]["value"] == "0"
    # evaluate: variables, members, elements, C expressions over them.
    assert c.evaluate("ledger.balance")["body"]["result"] == "585"
    assert c.evaluate("amounts[6]")["body"]["result"] == "900"
    assert c.evaluate("amount * 2 + 1", frame_id=top["id"])["body"]["result"].startswith(
        "1021 ")
    assert c.evaluate("amount", context="hover", frame_id=top["id"])["body"]["result"] \
        == "510"
    # Steps: next inside record_history, stepOut to audit, stepBack into the past.
    c.request("next", {"threadId": 1})
    assert c.stopped()["reason"] == "step"
    after_next = c.frames()[0]
    assert after_next["name"] == "record_history" and after_next["line"] > top["line"]
    c.request("stepOut", {"threadId": 1})
    assert c.stopped()["reason"] == "step"
    out = c.frames()
    assert [f["name"] for f in out[:5]] == CALL_CHAIN[1:6]
    # Backwards the breakpoint inside record_history stops a step back over it.
    c.request("stepBack", {"threadId": 1})
    assert c.stopped()["reason"] == "breakpoint"
    c.request("setBreakpoints", {"source": {"path": "corrupt.c"}, "breakpoints": []})
    c.request("stepOut", {"threadId": 1})
    assert c.stopped()["reason"] == "step"
    c.request("stepBack", {"threadId": 1})
    assert c.stopped()["reason"] == "step"
    back = c.frames()
    assert back[0]["name"] == "audit" and back[0]["line"] < out[0]["line"]
    c.request("stepIn", {"threadId": 1})
    assert c.stopped()["reason"] == "step"
    assert c.frames()[0]["name"] == "record_history"
    # Instruction granularity: one instruction each way.
    pc0 = int(c.frames()[0]["instructionPointerReference"], 16)
    c.request("stepIn", {"threadId": 1, "granularity": "instruction"})
    c.stopped()
    pc1 = int(c.frames()[0]["instructionPointerReference"], 16)
    c.request("stepBack", {"threadId": 1, "granularity": "instruction"})
    c.stopped()
    assert int(c.frames()[0]["instructionPointerReference"], 16) == pc0 != pc1


@pytest.mark.parametrize("toolchain", ARCHES)
def test_reverse_continue_to_the_corrupting_write(adapter: Callable[[], Client],
                                                  build_program: Callable[..., Path],
                                                  toolchain: str) -> None:
    """The demo: run to the end, watch ledger.balance, reverse-continue: the culprit is the
    out-of-bounds store in record_history, with amount 777."""
    exe = build_program("corrupt", toolchain)
    c = adapter()
    start(c, {"program": str(exe), "env": {}, "clearEnv": True})
    stop = c.stopped()
    assert stop["reason"] == "exited", stop  # the end of history, a stop to go back from
    info = c.body("dataBreakpointInfo", {"name": "ledger.balance"})
    assert info["dataId"] and "write" in info["accessTypes"]
    # The same from the Variables view (VS Code's "Break on Value Change").
    top = c.frames()[0]
    glob = c.variables(c.scopes(top["id"])["Globals"])
    same = c.body("dataBreakpointInfo", {"name": "balance", "variablesReference":
                                         glob["ledger"]["variablesReference"]})
    assert same["dataId"] == info["dataId"]
    bps = c.body("setDataBreakpoints", {"breakpoints": [{"dataId": info["dataId"],
                                                         "accessType": "write"}]})
    assert bps["breakpoints"][0]["verified"]
    c.request("reverseContinue", {"threadId": 1})
    stop = c.stopped()
    assert stop["reason"] == "data breakpoint", stop
    frames = c.frames()
    assert frames[0]["name"] == "record_history"
    assert frames[0]["line"] == line_of("corrupt", "ledger.history[pos] = amount;")
    assert [f["name"] for f in frames[:6]] == CALL_CHAIN
    assert c.evaluate("ledger.balance", frame_id=frames[0]["id"])["body"]["result"] != "777"
    assert c.evaluate("ledger.history_pos")["body"]["result"] == "16"
    # Forward one line: the store happened.
    c.request("setDataBreakpoints", {"breakpoints": []})
    c.request("next", {"threadId": 1})
    assert c.stopped()["reason"] == "step"
    assert c.evaluate("ledger.balance")["body"]["result"] == "777"
    # The shell's own last-write in the REPL: a motion, with its text as the result.
    c.request("continue", {"threadId": 1})
    assert c.stopped()["reason"] == "exited"
    result = c.evaluate("last-write ledger.balance", context="repl")["body"]["result"]
    assert "record_history" in result, result
    c.stopped()
    assert c.frames()[0]["name"] == "record_history"
    # REPL commands that do not move.
    regs = c.evaluate("info registers", context="repl")["body"]["result"]
    assert ("rip" if toolchain == "gcc" else "pc") in regs
    # readMemory: the ledger's bytes, balance at offset 128.
    ledger = c.evaluate("&ledger")["body"]
    address = int(ledger["result"].split()[0], 16) if ledger["result"].startswith("0x") \
        else int(ledger["memoryReference"], 16)
    mem = c.body("readMemory", {"memoryReference": f"{address:#x}", "offset": 128,
                                "count": 8})
    balance = int.from_bytes(base64.b64decode(mem["data"]), "little", signed=True)
    assert balance == int(c.evaluate("ledger.balance")["body"]["result"])
    # disassemble around pc: 5 before, pc, 4 after.
    pc = c.frames()[0]["instructionPointerReference"]
    insns = c.body("disassemble", {"memoryReference": pc, "instructionOffset": -5,
                                   "instructionCount": 10})["instructions"]
    assert len(insns) == 10
    assert insns[5]["address"] == pc
    assert all(i["instruction"] != "??" for i in insns)
    addrs = [int(i["address"], 16) for i in insns]
    assert addrs == sorted(addrs)
    assert any(i.get("symbol", "").startswith("record_history") for i in insns)
    # The end: continue from the exit ends the session.
    c.request("continue", {"threadId": 1})
    assert c.stopped()["reason"] == "exited"
    c.request("continue", {"threadId": 1})
    assert c.wait_event("exited")["body"]["exitCode"] == 1
    c.wait_event("terminated")


def test_continue_after_step_out_stops_only_at_breakpoints(adapter: Callable[[], Client],
                                                          build_program: Callable[..., Path]
                                                          ) -> None:
    """stepOut runs to the return address; a later continue must not stop there again."""
    exe = build_program("corrupt")
    c = adapter()
    start(c, {"program": str(exe), "env": {}, "clearEnv": True},
          functions=[{"name": "record_history"}])
    assert c.stopped()["reason"] == "function breakpoint"
    c.request("setFunctionBreakpoints", {"breakpoints": []})
    c.request("stepOut", {"threadId": 1})
    assert c.stopped()["reason"] == "step"
    assert c.frames()[0]["name"] == "audit"
    c.request("continue", {"threadId": 1})
    assert c.stopped()["reason"] == "exited"
