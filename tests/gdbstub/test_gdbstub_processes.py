"""The stub's multiprocess packets and process events (gdbstub's ``Processes`` capability)
against a double with two processes: 0x10 (threads 0x10, 0x11; thread 0x10 is current) and
0x20 (thread 0x20). Stops it is told to report come back as gdb reads them
(``T05fork:p20.20;...thread:p10.10;``); ids are ``pPID.TID`` only when gdb offered
``multiprocess+``. Real gdb drives the same code in tests/gdb/test_gdb_fork.py.
"""

from __future__ import annotations

from collections.abc import Sequence

from gdbstub_doubles import converse
from test_gdbstub_threads import ThreadedTarget

from gdbstub import (
    Cap,
    Capabilities,
    Execd,
    Exited,
    Forked,
    GdbStub,
    ResumeAction,
    SessionEnd,
    Signal,
    StopReason,
    TargetError,
    Terminated,
    ThreadInfo,
    VforkDone,
)
from gdbstub.packet import hex_encode

PIDS = {0x10: 0x10, 0x11: 0x10, 0x20: 0x20}  # tid -> pid
OFFER = b"qSupported:multiprocess+;swbreak+;fork-events+;vfork-events+;exec-events+"


class ProcessTarget(ThreadedTarget):
    def __init__(self) -> None:
        super().__init__()
        self.attached = {0x10, 0x20}
        self.events: tuple[bool, bool, bool] | None = None
        self.detached: list[int] = []
        self.killed_processes: list[int] = []
        self.stops: list[StopReason] = []

    def thread_ids(self) -> Sequence[int]:
        return sorted(t for t, p in PIDS.items() if p in self.attached)

    def select_thread(self, tid: int | None) -> None:
        if tid is not None and tid not in PIDS:
            raise TargetError(0x16)
        self.general = tid

    def thread_info(self, tid: int) -> ThreadInfo:
        return ThreadInfo(tid, "", f"process {PIDS[tid]:x}")

    def process_of(self, tid: int) -> int:
        return PIDS[tid]

    def set_process_events(self, fork: bool, vfork: bool, exec_: bool) -> None:
        self.events = (fork, vfork, exec_)

    def detach_process(self, pid: int) -> bool:
        self.detached.append(pid)
        self.attached.discard(pid)
        return bool(self.attached)

    def kill_process(self, pid: int) -> bool:
        self.killed_processes.append(pid)
        self.attached.discard(pid)
        return bool(self.attached)

    def attach_process(self, pid: int) -> StopReason:
        if pid not in PIDS.values():
            raise TargetError(0x16)
        self.attached.add(pid)
        return Signal(17)

    def run_chunk(self, deadline: float) -> StopReason | None:
        if self.stops:
            self.action = None
            return self.stops.pop(0)
        return super().run_chunk(deadline)


def stub(target: ProcessTarget | None = None) -> GdbStub:
    return GdbStub(target or ProcessTarget())


def test_multiprocess_and_the_events_are_offered_only_when_gdb_offers_them() -> None:
    assert Capabilities.probe(ProcessTarget()).has(Cap.PROCESSES)
    assert not Capabilities.probe(ThreadedTarget()).has(Cap.PROCESSES)
    target = ProcessTarget()
    reply = converse(stub(target), OFFER).replies[0].split(b";")
    assert {b"multiprocess+", b"fork-events+", b"vfork-events+", b"exec-events+"} <= set(reply)
    assert target.events == (True, True, True)
    target = ProcessTarget()
    reply = converse(stub(target), b"qSupported:swbreak+;fork-events+").replies[0]
    assert b"multiprocess+" not in reply and b"fork-events+" not in reply
    assert target.events == (False, False, False)  # (events need multiprocess ids)
    plain = converse(stub(target), b"qSupported:swbreak+", b"qfThreadInfo", b"qC")
    assert plain.replies[1:] == [b"m10,11,20", b"QC10"]


def test_thread_ids_name_their_process() -> None:
    conv = converse(stub(), OFFER, b"qfThreadInfo", b"qsThreadInfo", b"qC", b"?",
                    b"qXfer:threads:read::0,1000", b"Tp20.20", b"Tp20.21")
    assert conv.replies[1:4] == [b"mp10.10,p10.11,p20.20", b"l", b"QCp10.10"]
    assert conv.replies[4].endswith(b"thread:p10.10;")
    assert b'<thread id="p20.20" core="0">process 20</thread>' in conv.replies[5]
    assert conv.replies[6:] == [b"OK", b"E16"]


def test_hg_of_any_thread_of_a_process_selects_one_of_its_threads() -> None:
    """gdb selects a process before reading its memory with ``Hg pPID.0``."""
    target = ProcessTarget()
    conv = converse(stub(target), OFFER, b"Hgp20.0", b"Hgp10.0", b"Hgp10.11", b"Hgp30.0")
    assert conv.replies[1:] == [b"OK", b"OK", b"OK", b"OK"]
    assert target.general is None  # (p30: no thread of it: "any thread")
    conv = converse(stub(target), OFFER, b"Hgp20.0")
    assert target.general == 0x20


def test_a_vcont_for_one_process_resumes_that_process() -> None:
    target = ProcessTarget()
    converse(stub(target), OFFER, b"vCont;c:p20.-1", b"vCont;c", b"vCont;s:p10.11;c:p10.-1",
             b"vCont;c:p-1.-1")
    got = [(a.kind.value, a.thread, a.processes) for a in target.resumes]
    assert got == [("continue", None, frozenset({0x20})), ("continue", None, None),
                   ("step", 0x11, None), ("continue", None, None)]
    assert isinstance(target.resumes[0], ResumeAction)


def test_process_events_are_stop_reasons_gdb_reads() -> None:
    target = ProcessTarget()
    target.stops = [Forked(0x20, 0x20), Forked(0x21, 0x21, vfork=True), VforkDone(),
                    Execd("/bin/tr\u00e9s"), Exited(3, pid=0x20), Terminated(9)]
    conv = converse(stub(target), OFFER, *[b"vCont;c"] * 6)
    fork, vfork, done, execd, exited, killed = conv.replies[1:]
    assert fork.startswith(b"T05fork:p20.20;") and fork.endswith(b"thread:p10.10;")
    assert vfork.startswith(b"T05vfork:p21.21;")
    assert done.startswith(b"T05vforkdone:;")
    assert execd.startswith(b"T05exec:" + hex_encode("/bin/tr\u00e9s".encode()) + b";")
    assert (exited, killed) == (b"W03;process:20", b"X09;process:10")


def test_events_gdb_did_not_ask_for_degrade_to_a_plain_stop() -> None:
    target = ProcessTarget()
    target.stops = [Forked(0x20, 0x20), Exited(0)]
    conv = converse(stub(target), b"qSupported:multiprocess+", b"vCont;c", b"vCont;c")
    assert conv.replies[1].startswith(b"T05") and b"fork" not in conv.replies[1]
    assert conv.replies[2] == b"W00;process:10"
    target.stops = [Exited(0)]
    assert converse(stub(target), b"qSupported:", b"c").replies[1] == b"W00"


def test_detach_and_vkill_of_one_process_keep_the_session() -> None:
    target = ProcessTarget()
    conv = converse(stub(target), OFFER, b"D;20", b"qfThreadInfo", b"vKill;10")
    assert conv.replies[1:] == [b"OK", b"mp10.10,p10.11", b"OK"]
    assert (target.detached, target.killed_processes) == ([0x20], [0x10])
    assert conv.end is SessionEnd.KILLED  # the last process gdb debugged: as ``k``
    target = ProcessTarget()
    conv = converse(stub(target), OFFER, b"D;20", b"D;10", b"qC")
    assert conv.replies[1:] == [b"OK", b"OK"] and conv.end is SessionEnd.DETACHED


def test_qpasssignals_is_offered_and_passed_on() -> None:
    class Passing(ProcessTarget):
        passed: list[frozenset[int]] = []

        def pass_signals(self, signals: frozenset[int]) -> None:
            self.passed.append(signals)

    target = Passing()
    assert Capabilities.probe(target).has(Cap.PASS_SIGNALS)
    conv = converse(stub(target), OFFER, b"QPassSignals:e;14;1e", b"QPassSignals:",
                    b"QPassSignals:zz")
    assert b"QPassSignals+" in conv.replies[0].split(b";")
    assert conv.replies[1:] == [b"OK", b"OK", b"E01"]
    assert target.passed == [frozenset({0xE, 0x14, 0x1E}), frozenset()]


def test_vattach_debugs_one_more_process() -> None:
    target = ProcessTarget()
    conv = converse(stub(target), OFFER, b"D;20", b"qfThreadInfo", b"vAttach;20",
                    b"qfThreadInfo", b"vAttach;99")
    assert conv.replies[2] == b"mp10.10,p10.11"
    assert conv.replies[3].startswith(b"T11")  # (SIGSTOP, as gdbserver's attach)
    assert conv.replies[4:] == [b"mp10.10,p10.11,p20.20", b"E16"]
