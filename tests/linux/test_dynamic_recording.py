"""A recording carries the libraries the program mapped (issue 15): LIBS and LIBF chunks,
extracted into the replay's private sysroot, checked against their digests."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from support import join_chunks, split_chunks
from test_dynamic import SYSROOT_FILES, _copy_sysroot, _syxdbg
from test_linux_programs import _fresh_dir

import syxdbg
from syxdbg.commands import make_registry, solibs
from syxdbg.recording import Recording
from syxdbg.recording._format import _HEADER


def test_recording_carries_its_libraries(build_program: Callable[..., Path],
                                         tmp_path: Path) -> None:
    exe = build_program("filecopy", "gcc-dyn")
    src, files = SYSROOT_FILES["gcc-dyn"]
    root = _copy_sysroot(tmp_path / "root", src, files)
    work = _fresh_dir(tmp_path, "work")
    rec = tmp_path / "run.syxrec"
    p = _syxdbg("record", "-q", "--clear-env", "--sysroot", str(root), "-o", str(rec),
                str(exe), "src.bin", "dst.bin", cwd=work)
    assert p.returncode == 0, p.stderr.decode()
    recording = Recording.open(str(rec))
    libs = dict(recording.libraries)
    libc = next(g for g in libs if "libc.so" in g)
    assert libs[libc].read() == (root / libc.lstrip("/")).read_bytes()
    shutil.rmtree(root)
    shutil.rmtree(work)
    p = _syxdbg("replay", "--check", str(rec), cwd=tmp_path)
    assert p.returncode == 0, p.stderr.decode()
    with syxdbg.replay(str(rec)) as s:
        private = solibs.files_root(s)
        assert Path(private, libc.lstrip("/")).read_bytes() == libs[libc].read()
        r = make_registry(s, frontend="shell")
        r.run_text("break main")
        r.run_text("continue")
        r.run_text("break malloc")
        assert "<libc.so.6:malloc>" in r.run_text("continue")
        assert r.run_text("bt").splitlines()[0].endswith(" in libc.so.6:malloc ()")
        r.run_text("delete")
        s.run()
        assert s.position == recording.end_position
    # Real gdb on the replay, the sysroot gone: libc's symbols come from the recording.
    p = _syxdbg("replay", "--batch", "--ex", "break main", "--ex", "continue", "--ex",
                "info sharedlibrary", "--ex", "break malloc", "--ex", "continue", "--ex",
                "bt 1", str(rec), cwd=tmp_path)
    out = p.stdout.decode() + p.stderr.decode()
    assert re.search(r"Yes\s+\S*/libc\.so\.6", out), out
    assert "Could not load shared library symbols" not in out, out
    assert re.search(r"#0 .*malloc", out), out

    header = rec.read_bytes()[:_HEADER.size]
    chunks = split_chunks(rec.read_bytes())
    at = next(i for i, (t, _) in enumerate(chunks) if t == b"LIBF")
    libf = bytearray(chunks[at][1])
    libf[-40] ^= 0xFF
    entries = json.loads(chunks[at - 1][1])
    entries[0]["path"] = "/../../etc/x"
    cases = {
        "altered": ([*chunks[:at], (b"LIBF", bytes(libf)), *chunks[at + 1:]], "library"),
        "escape": ([*chunks[:at - 1], (b"LIBS", json.dumps(entries).encode()),
                    *chunks[at:]], "malformed library list (LIBS)"),
    }
    for name, (new, message) in cases.items():
        out = tmp_path / f"{name}.syxrec"
        out.write_bytes(join_chunks(header, new))
        p = _syxdbg("replay", "--check", str(out))
        err = p.stderr.decode()
        assert p.returncode != 0 and "Traceback" not in err, (name, err)
        assert message in err and len(err.strip().splitlines()) == 1, (name, err)
