"""The Linux kernel's state pickled by older versions keeps loading (tests/linux/data/).

A recording pickles the kernel's ``save_state()`` value in each checkpoint; refactoring the
plugin must keep those values loadable (same module and class names, new fields defaulted).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from syxdbg_plugins.linux import get_kernel

import syxdbg

DATA = Path(__file__).parent / "data"
SYSPROBE_V1 = DATA / "sysprobe-v1.syxrec"
END = 82964


def test_a_version_1_sysprobe_recording_replays_and_checks(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "syxdbg", "replay", "--check", str(SYSPROBE_V1)],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "replayed 82,964 instructions" in res.stdout
    assert "the program exited with status 0, as recorded" in res.stdout
    assert "final memory digest match" in res.stdout


def test_the_end_checkpoint_restores_the_recorded_kernel_state() -> None:
    with syxdbg.replay(str(SYSPROBE_V1)) as s:
        s.seek(END)
        assert s.position == END
        kernel = get_kernel(s)
        assert kernel is not None
        st = kernel.save_state()
        assert st.cwd == b"/tmp/lx/scratch"
        assert st.umask == 0o22
        assert st.image_path == b"/tmp/lx/sysprobe"
        assert st.ids[:2] == (8908, 8904)
        assert [fd for fd, _ in st.fds] == [0, 1, 2]
        assert [sig for sig, _ in st.sigactions] == [10, 12]
        assert [(m.start, m.end, m.prot, m.name) for m in st.mappings] == [
            (0x40F000, 0x410000, 0, "[anon]"),
            (0x410000, 0x411000, 3, "[heap]"),
            (0x7FFFDFFFF000, 0x7FFFE0000000, 3, "[anon]"),
        ]
        assert (st.brk_start, st.brk) == (0x40F000, 0x411000)
        # Fields added since: their defaults (no memory limit then, no /proc layout).
        assert kernel.s.memory_limit == 0 and kernel.s.exec_layout == (0, 0, 0, 0, 0, 0)
        # Going back to the start restores the initial state from checkpoint 0.
        s.seek(0)
        assert get_kernel(s) is kernel
        assert kernel.save_state().mappings == ()
