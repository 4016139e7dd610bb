"""The stub's thread packets (gdbstub's ``Threads`` capability) against a threaded double.

The double has threads 0x10 (the current one), 0x11 and 0x12; its registers are the toy's
for the current thread and a per-thread rip for the others, so ``Hg`` is visible in ``g``
and ``p``. Without the capability the stub serves one thread, id 1 (test_gdbstub_dispatch).
"""

from __future__ import annotations

from collections.abc import Sequence

from gdbstub_doubles import REGNUM, FullToyTarget, converse, program

from gdbstub import Cap, Capabilities, GdbStub, ResumeAction, TargetError, ThreadInfo
from gdbstub.packet import hex_decode

CURRENT = 0x10
OTHERS = {0x11: 0x1111, 0x12: 0x2222}  # tid -> its rip


class ThreadedTarget(FullToyTarget):
    def __init__(self) -> None:
        super().__init__(program(b""))
        self.general: int | None = None
        self.resumes: list[ResumeAction] = []

    def thread_ids(self) -> Sequence[int]:
        return [CURRENT, *OTHERS]

    def current_thread(self) -> int:
        return CURRENT

    def select_thread(self, tid: int | None) -> None:
        if tid is not None and tid not in self.thread_ids():
            raise TargetError(0x16)
        self.general = tid

    def thread_info(self, tid: int) -> ThreadInfo:
        if tid not in self.thread_ids():
            raise TargetError(0x16)
        return ThreadInfo(tid, "main" if tid == CURRENT else "", f"worker <{tid:x}> & co")

    def read_registers(self) -> Sequence[bytes]:
        regs = list(super().read_registers())
        if self.general in OTHERS:
            regs[REGNUM["rip"]] = OTHERS[self.general].to_bytes(8, "little")
        return regs

    def read_register(self, regnum: int) -> bytes | None:
        return self.read_registers()[regnum] if 0 <= regnum < len(self.regs) else None

    def resume(self, action: ResumeAction) -> None:
        self.resumes.append(action)
        super().resume(action)


def stub() -> GdbStub:
    return GdbStub(ThreadedTarget())


def test_the_capability_is_probed_and_advertised() -> None:
    assert Capabilities.probe(ThreadedTarget()).has(Cap.THREADS)
    assert not Capabilities.probe(FullToyTarget()).has(Cap.THREADS)
    reply = converse(stub(), b"qSupported:swbreak+").replies[-1]
    assert b"qXfer:threads:read+" in reply.split(b";")


def test_thread_list_current_thread_and_alive() -> None:
    conv = converse(stub(), b"qfThreadInfo", b"qsThreadInfo", b"qC", b"T11", b"T13", b"T-1")
    assert conv.replies == [b"m10,11,12", b"l", b"QC10", b"OK", b"E16", b"OK"]


def test_hg_selects_the_registers_thread() -> None:
    s = stub()
    target = s.target
    assert isinstance(target, ThreadedTarget)
    rip = b"p%x" % REGNUM["rip"]
    conv = converse(s, b"Hg12", rip, b"Hg0", rip, b"Hg99", b"Hgp1.11", rip)
    assert conv.replies[0] == b"OK" and conv.replies[1] == b"2222000000000000"
    assert conv.replies[2] == b"OK" and conv.replies[3] != b"2222000000000000"
    assert conv.replies[4] == b"E16"  # no such thread: the selection is unchanged
    assert conv.replies[5:] == [b"OK", b"1111000000000000"]
    assert target.general == 0x11


def test_stop_replies_name_the_current_thread() -> None:
    conv = converse(stub(), b"?", b"vCont;s:10")
    assert all(r.endswith(b"thread:10;") for r in conv.replies), conv.replies


def test_a_thread_step_carries_the_thread() -> None:
    """gdb's stepi of one thread (scheduler-locking off): ``vCont;s:TID;c``; the stub
    passes that thread with the step. ``Hc`` then ``s`` does the same; ``vCont;c`` is a
    continue of every thread."""
    s = stub()
    target = s.target
    assert isinstance(target, ThreadedTarget)
    converse(s, b"vCont;s:11;c", b"Hc12", b"s", b"Hc-1", b"s", b"vCont;c")
    kinds = [(a.kind.value, a.thread) for a in target.resumes]
    assert kinds == [("step", 0x11), ("step", 0x12), ("step", None), ("continue", None)]


def test_a_step_of_a_thread_that_does_not_exist_is_refused() -> None:
    """``vCont;s:TID`` naming no thread of the target is an error, as ``Hg``/``Hc`` are,
    and nothing moves (it used to pass the id on: the target failed to step it and the
    stub still sent a stop reply, as if one instruction had run)."""
    s = stub()
    target = s.target
    assert isinstance(target, ThreadedTarget)
    conv = converse(s, b"vCont;s:1", b"vCont;s:99;c", b"vCont;r1,2:13", b"vCont;s:p1.11;c")
    assert conv.replies[:3] == [b"E16", b"E16", b"E16"]
    assert conv.replies[3].startswith(b"T")  # (the empty toy program faults at once)
    assert [(a.kind.value, a.thread) for a in target.resumes] == [("step", 0x11)]


def test_thread_extra_info_and_the_xml_list() -> None:
    conv = converse(stub(), b"qThreadExtraInfo,11", b"qThreadExtraInfo,99",
                    b"qXfer:threads:read::0,1000", b"qXfer:threads:read:x:0,10")
    assert hex_decode(conv.replies[0]) == b"worker <11> & co"
    assert conv.replies[1] == b"E16"
    xml = conv.replies[2]
    assert xml.startswith(b"l<?xml")
    assert b'<thread id="10" core="0" name="main">worker &lt;10&gt; &amp; co</thread>' in xml
    assert b'<thread id="12" core="0">worker &lt;12&gt; &amp; co</thread>' in xml
    assert conv.replies[3] == b"E01"  # an annex: malformed


def test_single_threaded_targets_keep_thread_1() -> None:
    conv = converse(GdbStub(FullToyTarget(program(b""))), b"qfThreadInfo", b"Hg5", b"qC",
                    b"qThreadExtraInfo,1", b"qXfer:threads:read::0,100")
    assert conv.replies == [b"m1", b"OK", b"QC1", b"", b""]
